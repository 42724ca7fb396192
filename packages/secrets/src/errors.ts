/** Stable codes of @precinct/secrets errors; tests and callers branch on these, never on text. */
export type SecretsErrorCode =
  /** Vault/OpenBao could not be reached, timed out, or answered 5xx. */
  | 'ERR_SECRETS_UNAVAILABLE'
  /** Login with the JWT-SVID was refused (bad signature, audience, subject, role). */
  | 'ERR_SECRETS_LOGIN'
  /** The token is not allowed to do this (403). */
  | 'ERR_SECRETS_DENIED'
  /** Nothing at that path (404). */
  | 'ERR_SECRETS_NOT_FOUND'
  /** The server refused the request as malformed (400) or answered something unexpected. */
  | 'ERR_SECRETS_RESPONSE'
  /** No valid token or lease right now (expired while the server was down, or not yet). */
  | 'ERR_SECRETS_NOT_READY'
  /** The client was closed. */
  | 'ERR_SECRETS_CLOSED'
  /** A person's subject that no people's-token path can hold (malformed Unicode, too long). */
  | 'ERR_SECRETS_PERSON_INVALID';

/**
 * The one error class of @precinct/secrets. Messages name the operation, the API path and the
 * HTTP status, never a token, password or secret value, and never the server's error text
 * (which may quote input): that is the caller's contract, tested in test/secrets.
 */
export class SecretsError extends Error {
  readonly code: SecretsErrorCode;
  /** HTTP status from the server, when there was one. */
  readonly status: number | undefined;
  constructor(
    code: SecretsErrorCode,
    message: string,
    opts: { status?: number; cause?: unknown } = {},
  ) {
    super(`secrets: ${message}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SecretsError';
    this.code = code;
    this.status = opts.status;
  }
}

export function codeForStatus(status: number): SecretsErrorCode {
  if (status === 403 || status === 401) return 'ERR_SECRETS_DENIED';
  if (status === 404) return 'ERR_SECRETS_NOT_FOUND';
  if (status >= 500) return 'ERR_SECRETS_UNAVAILABLE';
  return 'ERR_SECRETS_RESPONSE';
}

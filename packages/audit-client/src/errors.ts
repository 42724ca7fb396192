/** The stable codes of `AuditClientError`. */
export type AuditClientErrorCode =
  /** A bad option passed by the caller (a programming error, not network input). */
  | 'ERR_CONFIG'
  /** The client was closed before the event could be sent. */
  | 'ERR_CLIENT_CLOSED'
  /** The store refused the request for good (a 4xx other than 429): retrying cannot help. */
  | 'ERR_CLIENT_REJECTED'
  /** A query could not be answered now (5xx, 429 or a network error): it may be retried. */
  | 'ERR_CLIENT_UNAVAILABLE'
  /** An export's detached signature is missing, malformed or does not match. */
  | 'ERR_EXPORT_SIGNATURE';

/** Base error of @precinct/audit-client; `code` is stable, the message is for logs. */
export class AuditClientError extends Error {
  readonly code: AuditClientErrorCode;
  constructor(code: AuditClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditClientError';
    this.code = code;
  }
}

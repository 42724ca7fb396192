/**
 * RFC 9457 problem details (`application/problem+json`), the error body every Precinct HTTP
 * API sends, and the one table that maps each error code to its HTTP status. Clients get the
 * generic `title` of a code; the specific reason belongs in logs and metrics, never here.
 *
 * `code` means one thing across Precinct: an `ERR_*` string, the same kind an exception's
 * `code` carries. The table's keys (`not_found`, ...) are only the TypeScript-side names call
 * sites pick an entry by; on the wire each entry is `ERR_<KEY IN UPPER SNAKE>` (`ERR_NOT_FOUND`),
 * derived here and nowhere else. A service answering one of its own domain errors may put that
 * error's more specific `ERR_*` code in the body instead (the identity server's
 * `ERR_ENTRY_EXISTS` with the `conflict` entry's status and title): clients branch on `code`,
 * the table still owns the status.
 *
 * Pure: no HTTP framework. The Fastify helpers live in `@precinct/runtime/http`.
 */

/** The media type of a problem details body. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * Every generic error a Precinct service answers with, its HTTP status and the generic title the
 * client sees. One place, so a code means the same status in every service. Keys are lower snake
 * case: the wire code is the key upper-cased behind `ERR_` (see `problemWireCode`).
 */
export const PROBLEMS = {
  bad_request: { status: 400, title: 'bad request' },
  authentication_failed: { status: 401, title: 'authentication failed' },
  authorization_failed: { status: 403, title: 'authorization failed' },
  not_found: { status: 404, title: 'not found' },
  method_not_allowed: { status: 405, title: 'method not allowed' },
  conflict: { status: 409, title: 'conflict' },
  payload_too_large: { status: 413, title: 'request body too large' },
  unsupported_media_type: { status: 415, title: 'unsupported media type' },
  too_many_requests: { status: 429, title: 'too many requests' },
  internal: { status: 500, title: 'internal error' },
  unavailable: { status: 503, title: 'service unavailable' },
  // The audit store's (their titles are what it has always answered):
  invalid_request: { status: 400, title: 'invalid request' },
  legal_hold_not_found: { status: 404, title: 'no legal hold for this correlation' },
  request_timeout: { status: 408, title: 'request timeout' },
  export_too_large: { status: 413, title: 'export too large' },
  idempotency_key_reused: { status: 422, title: 'idempotency key reused' },
  request_headers_too_large: { status: 431, title: 'request headers too large' },
  authentication_unavailable: { status: 503, title: 'authentication unavailable' },
  storage_unavailable: { status: 503, title: 'storage unavailable' },
  database_unreachable: { status: 503, title: 'database unreachable' },
  // The kube auth plugins' (RBAC could not be asked: fail closed):
  authorization_unavailable: { status: 503, title: 'authorization unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

/** An entry of the table above, by its TypeScript-side name (never sent as such). */
export type ProblemCode = keyof typeof PROBLEMS;

/** The `code` member the table's entries answer with: `ERR_` and the key in upper case. */
export type ProblemWireCode = `ERR_${Uppercase<ProblemCode>}`;

/**
 * What a problem body's `code` member may hold: a table entry's wire code or a service's own,
 * more specific domain code. Always `ERR_` and upper snake case.
 */
export type ErrorCode = ProblemWireCode | `ERR_${Uppercase<string>}`;

const ERROR_CODE = /^ERR_[A-Z0-9]+(?:_[A-Z0-9]+)*$/;

/** An RFC 9457 problem details object, as sent. */
export interface ProblemDetails {
  /** A URI naming the problem type; `about:blank` means "the status says it all". */
  type: string;
  title: string;
  status: number;
  /** Human-readable, specific to this occurrence; never a token, secret or internal reason. */
  detail?: string;
  instance?: string;
  /**
   * Extension member, the stable `ERR_*` code clients branch on: the entry's wire code, or the
   * service's own domain code where it answered one (see the top of this file).
   */
  code: ErrorCode;
}

/** The HTTP status of `code`. Throws TypeError on a code that is not in the table. */
export function problemStatus(code: ProblemCode): number {
  const entry = (PROBLEMS as Record<string, { status: number } | undefined>)[code];
  if (!entry || !Object.hasOwn(PROBLEMS, code)) {
    throw new TypeError(`unknown problem code ${JSON.stringify(code)}`);
  }
  return entry.status;
}

/** The wire code of table entry `code` (`not_found` -> `ERR_NOT_FOUND`). TypeError if unknown. */
export function problemWireCode(code: ProblemCode): ProblemWireCode {
  problemStatus(code);
  return `ERR_${code.toUpperCase()}` as ProblemWireCode;
}

/**
 * Builds the problem details body for table entry `code`; `detail` is optional and must be safe
 * to show. `domainCode` replaces the entry's wire code in the body (a service's own, more
 * specific `ERR_*` error code); status and title stay the entry's. A `domainCode` that is not
 * `ERR_` and upper snake case is a TypeError, so a key or a free text never reaches the wire.
 */
export function problem(
  code: ProblemCode,
  detail?: string,
  domainCode?: ErrorCode,
): ProblemDetails {
  const status = problemStatus(code);
  if (domainCode !== undefined && !ERROR_CODE.test(domainCode)) {
    throw new TypeError(`not an ERR_* code: ${JSON.stringify(domainCode)}`);
  }
  return {
    type: 'about:blank',
    title: PROBLEMS[code].title,
    status,
    code: domainCode ?? problemWireCode(code),
    ...(detail !== undefined ? { detail } : {}),
  };
}

/**
 * RFC 9457 problem details (`application/problem+json`), the error body every Precinct HTTP
 * API sends, and the one table that maps each error code to its HTTP status. Clients get the
 * generic `title` of a code; the specific reason belongs in logs and metrics, never here.
 *
 * Pure: no HTTP framework. The Fastify helpers live in `@precinct/runtime/http`.
 */

/** The media type of a problem details body. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * Every error code a Precinct service answers with, its HTTP status and the generic title the
 * client sees. One place, so a code means the same status in every service.
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

/** A code from the table above. */
export type ProblemCode = keyof typeof PROBLEMS;

/** An RFC 9457 problem details object, as sent. */
export interface ProblemDetails {
  /** A URI naming the problem type; `about:blank` means "the status says it all". */
  type: string;
  title: string;
  status: number;
  /** Human-readable, specific to this occurrence; never a token, secret or internal reason. */
  detail?: string;
  instance?: string;
  /** Extension member: the stable code from PROBLEMS, for clients that branch on it. */
  code: ProblemCode;
}

/** The HTTP status of `code`. Throws TypeError on a code that is not in the table. */
export function problemStatus(code: ProblemCode): number {
  const entry = (PROBLEMS as Record<string, { status: number } | undefined>)[code];
  if (!entry || !Object.hasOwn(PROBLEMS, code)) {
    throw new TypeError(`unknown problem code ${JSON.stringify(code)}`);
  }
  return entry.status;
}

/** Builds the problem details body for `code`; `detail` is optional and must be safe to show. */
export function problem(code: ProblemCode, detail?: string): ProblemDetails {
  const status = problemStatus(code);
  return {
    type: 'about:blank',
    title: PROBLEMS[code].title,
    status,
    code,
    ...(detail !== undefined ? { detail } : {}),
  };
}

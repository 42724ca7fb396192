/** `ERR_DB_UNAVAILABLE`: the database cannot be reached now, retry (HTTP 503); `ERR_DB`: any other. */
export type DbErrorCode = 'ERR_DB_UNAVAILABLE' | 'ERR_DB';

/**
 * What a {@link Db} throws for a failed statement or connection. The driver's error is the
 * `cause`; the message carries the driver's message (SQL state text, never parameters), so it
 * is for logs, not for clients.
 */
export class DbError extends Error {
  readonly code: DbErrorCode;
  /** The SQLSTATE (e.g. `23505`), when the server answered with one. */
  readonly sqlState: string | undefined;
  constructor(code: DbErrorCode, message: string, options: { cause?: unknown; sqlState?: string }) {
    super(message, { cause: options.cause });
    this.name = 'DbError';
    this.code = code;
    this.sqlState = options.sqlState;
  }
}

// SQLSTATE classes that mean "the database is not reachable right now": the client should
// retry. 08 connection exception, 53 insufficient resources, 57P01-03 admin/crash shutdown and
// cannot connect now.
const UNAVAILABLE_STATES = /^(08|53|57P0[1-3])/;
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
]);
// node-postgres and PGlite say these without a code.
const UNAVAILABLE_MESSAGES =
  /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i;

/** Classifies a driver error (pg or PGlite); a DbError is returned as is. */
export function toDbError(err: unknown): DbError {
  if (err instanceof DbError) return err;
  const e = err as { code?: unknown; message?: unknown } | null | undefined;
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const sqlState =
    code && /^[0-9A-Z]{5}$/.test(code) && !UNAVAILABLE_NODE_CODES.has(code) ? code : undefined;
  const unavailable =
    (code !== undefined && (UNAVAILABLE_STATES.test(code) || UNAVAILABLE_NODE_CODES.has(code))) ||
    UNAVAILABLE_MESSAGES.test(msg);
  return unavailable
    ? new DbError('ERR_DB_UNAVAILABLE', `database unavailable: ${msg}`, { cause: err, sqlState })
    : new DbError('ERR_DB', `database error: ${msg}`, { cause: err, sqlState });
}

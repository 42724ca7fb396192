export type AuditStoreErrorCode =
  | 'ERR_DB_UNAVAILABLE'
  | 'ERR_DB'
  | 'ERR_VALIDATION'
  | 'ERR_IDEMPOTENCY_CONFLICT'
  | 'ERR_NOT_FOUND'
  | 'ERR_CONFIG';

/** Base error of @precinct/audit-store; `code` is stable, the message is for logs. */
export class AuditStoreError extends Error {
  readonly code: AuditStoreErrorCode;
  constructor(code: AuditStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditStoreError';
    this.code = code;
  }
}

export { AuditStoreError, type AuditStoreErrorCode } from './errors.js';
export { auditStoreCommand, verifyExportCommand } from './commands.js';
export {
  startAuditStore,
  DEFAULT_TOKEN_AUDIENCE,
  defaultNamespace,
  type AuditStore,
  type AuditStoreOptions,
  type AuthzTarget,
} from './server.js';
// The client and the chain format, from their own package (no server dependencies): re-exported
// so callers of @precinct/audit-store keep working.
export {
  AuditClient,
  AuditClientError,
  verifyExport,
  COLUMNS,
  canonicalJson,
  linkHash,
  GENESIS_HASH,
  type AuditClientErrorCode,
  type AuditClientOptions,
  type AuditQuery,
  type AuditPage,
  type AuditEventInput,
  type StoredEvent,
} from '@precinct/audit-client';
export type { VerifyResult, LegalHold, EventFilter } from './store.js';
/**
 * The store's database (node-postgres or PGlite; PGlite data dirs 0700, files 0600), for
 * callers that share one between several stores: pass it as `startAuditStore({ db })`.
 */
export { createPgDb, createPgliteDb, type Db } from './db.js';

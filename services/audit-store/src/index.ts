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
export { AuditClient, type AuditClientOptions } from './client.js';
export { verifyExport } from './export.js';
export {
  COLUMNS,
  canonicalJson,
  linkHash,
  GENESIS_HASH,
  type AuditEventInput,
  type StoredEvent,
} from './events.js';
export type { VerifyResult, LegalHold, EventFilter } from './store.js';
/**
 * The store's database (node-postgres or PGlite; PGlite data dirs 0700, files 0600), for
 * callers that share one between several stores: pass it as `startAuditStore({ db })`.
 */
export { createPgDb, createPgliteDb, type Db } from './db.js';

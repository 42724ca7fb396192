// @precinct/audit-client: what an event producer or an auditor needs from the audit store,
// with node built-ins only (no HTTP framework, database driver or metrics library).
export { AuditClientError, type AuditClientErrorCode } from './errors.js';
export {
  AuditClient,
  type AuditClientOptions,
  type AuditQuery,
  type AuditEventFilter,
  type AuditPage,
} from './client.js';
export {
  COLUMNS,
  GENESIS_HASH,
  canonicalJson,
  linkHash,
  type AuditEventInput,
  type EventOutcome,
  type StoredEvent,
} from './chain.js';
export { verifyExport } from './export.js';

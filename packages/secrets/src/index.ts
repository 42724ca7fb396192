export { SecretsError, type SecretsErrorCode } from './errors.js';
export {
  VaultHttp,
  type VaultHttpOptions,
  type VaultResponse,
  type SecretsLogger,
} from './http.js';
export { VaultSession, type VaultSessionOptions, type SessionJwtSource } from './session.js';
export {
  RotatingPool,
  leaseDatabaseCredentials,
  renewLease,
  revokeLease,
  type DatabaseLease,
  type RotatingPoolOptions,
} from './database.js';
export { VaultAdmin, postgresRevocationStatements, workloadPolicy } from './configure.js';
export {
  createEgressBroker,
  jwtSvidCaller,
  type EgressAuditEvent,
  type EgressBrokerOptions,
  type EgressProvider,
  type EgressRequest,
} from './broker.js';
export { peopleTokenKey } from './people.js';

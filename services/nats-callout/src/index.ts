export { natsCalloutCommand } from './command.js';
export {
  loadConfig,
  parseDurationSeconds,
  parseSigningKeyFile,
  type NatsCalloutConfig,
  type NatsClientAuth,
} from './config.js';
export {
  startNatsCallout,
  type NatsCallout,
  type NatsCalloutDeps,
  type NatsCalloutStatus,
} from './service.js';
export {
  Authorizer,
  GENERIC_ERROR,
  type AuthorizerOptions,
  type Decision,
  type DecisionReason,
  type ServiceAccountTokenVerifier,
  type VerifiedServiceAccount,
} from './authorizer.js';
export {
  ANNOTATIONS,
  buildPermissions,
  isValidSubject,
  privateInboxPrefix,
  type PermissionInput,
  type PermissionWarning,
  type PermissionWarningReason,
  type UserPermissions,
} from './permissions.js';
export {
  serviceAccountInformer,
  staticServiceAccounts,
  type ServiceAccountRecord,
  type ServiceAccountSource,
  type ServiceAccountSourceStatus,
} from './serviceaccounts.js';
export { createMetrics, type CalloutMetrics } from './metrics.js';
export { ConfigError, NatsCalloutError, type NatsCalloutErrorCode } from './errors.js';

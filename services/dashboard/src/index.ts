export { DashboardIdp, type DashboardIdpOptions, type PublicJwk } from './idp.js';
export { PasswordBook, loadOrCreateDemoPasswords } from './people.js';
export { type DashboardOidcOptions } from './oidc.js';
export {
  brokerPeopleTokens,
  type BrokerPeopleTokensOptions,
  type PeopleTokensBackend,
  type SecretsMetadataClient,
} from './people-tokens.js';
export {
  SESSION_COOKIE,
  startDashboard,
  type Dashboard,
  type DashboardOptions,
  type Peer,
} from './server.js';
export {
  platformApi,
  type PlatformApiOptions,
  type PlatformBackends,
  type Workload,
  type TrustView,
  type BundleAuthority,
  type AuditFilter,
  type AuditExport,
  type AuditEventView,
  type ChainVerification,
  type ServiceAccountView,
  type NatsClientView,
  type ConsentBackend,
} from './platform-api.js';
export { CONTENT_SECURITY_POLICY, SECURITY_HEADERS, buildUi } from './static.js';
export {
  auditStoreBackend,
  x509SourcesBackend,
  type AuditStoreBackendOptions,
} from './platform-backends.js';

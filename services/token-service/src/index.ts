export {
  OAUTH_ERROR_STATUS,
  TokenExchangeError,
  TokenServiceConfigError,
  type ExchangeFailureReason,
  type OAuthErrorCode,
  type RefusalExplanation,
} from './errors.js';
export {
  exchangeAuditEvents,
  type ExchangeAuditEvent,
  type ExchangeAuditOptions,
} from './audit.js';
export { MemoryConsentStore, type ConsentStore } from './consent.js';
export { SigningKeyRing, type SigningKey, type SigningKeyRingOptions } from './keys.js';
export {
  ID_TOKEN_TYPE,
  PersonAuthError,
  createOidcPersonAuthenticator,
  type AuthenticatedPerson,
  type OidcPersonAuthenticatorOptions,
  type PersonAuthenticator,
} from './person.js';
export {
  TOKEN_EXCHANGE_GRANT_TYPE,
  createTokenExchange,
  tokenHash,
  type ExchangeCaller,
  type ExchangeDecision,
  type ExchangeOutcome,
  type GrantScope,
  type ScopeRefusal,
  type TokenExchange,
  type TokenExchangeOptions,
  type TokenExchangeResponse,
} from './exchange.js';
export {
  JWKS_PATH,
  TOKEN_PATH,
  startTokenService,
  type TokenService,
  type TokenServiceOptions,
} from './server.js';
export { tokenServiceCommand } from './commands.js';

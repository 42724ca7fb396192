export {
  OAUTH_ERROR_STATUS,
  TokenExchangeError,
  TokenServiceConfigError,
  type ExchangeFailureReason,
  type OAuthErrorCode,
} from './errors.js';
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
  type ExchangeCaller,
  type ExchangeOutcome,
  type GrantScope,
  type TokenExchange,
  type TokenExchangeOptions,
  type TokenExchangeResponse,
} from './exchange.js';
export {
  JWKS_PATH,
  TOKEN_PATH,
  startTokenService,
  tokenHash,
  type TokenService,
  type TokenServiceOptions,
} from './server.js';
export { tokenServiceCommand } from './commands.js';

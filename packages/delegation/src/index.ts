export { DelegationError, DelegationConfigError, type DelegationFailureReason } from './errors.js';
export {
  DELEGATION_HEADER,
  createDelegationVerifier,
  type Delegation,
  type DelegationVerifier,
  type DelegationVerifierOptions,
} from './verifier.js';
export {
  createDelegationIssuer,
  generateDelegationKey,
  type DelegationIssuer,
  type DelegationIssuerOptions,
  type DelegationRequest,
  type DelegationSigningAlgorithm,
} from './issuer.js';
export {
  TXN_TOKEN_HEADER,
  TXN_TOKEN_MAX_LIFETIME_SECONDS,
  TXN_TOKEN_TYP,
  TXN_TOKEN_TYPE,
  TxnTokenError,
  createTxnTokenVerifier,
  parseScope,
  type TxnToken,
  type TxnTokenFailureReason,
  type TxnTokenVerifier,
  type TxnTokenVerifierOptions,
} from './txn-token.js';
// A rate-limited remote JWKS (one fetch per cool-down in every state, shared in-flight fetch,
// keys kept through failures), for other token verifiers that fetch an issuer's keys.
export { remoteKeySet } from './keys.js';

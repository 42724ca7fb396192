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

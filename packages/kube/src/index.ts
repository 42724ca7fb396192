export {
  KubeError,
  KubeAuthError,
  KubeUnavailableError,
  KubeConfigError,
  type KubeErrorCode,
  type KubeAuthErrorCode,
} from './errors.js';
export {
  type ServiceAccountIdentity,
  parseServiceAccountUsername,
  serviceAccountGroups,
} from './identity.js';
export { MAX_TOKEN_BYTES } from './jwt.js';
export { createJwksVerifier, type TokenVerifier, type JwksVerifierOptions } from './verifier.js';
export { createTokenReviewVerifier, type TokenReviewVerifierOptions } from './tokenreview.js';
export {
  cachingVerifier,
  serviceAccountMatches,
  type CachingVerifier,
  type CachingVerifierOptions,
  type CachedServiceAccount,
  type ServiceAccountRef,
} from './cache.js';
export {
  createSubjectAccessReviewAuthorizer,
  type Authorizer,
  type AuthorizationDecision,
  type UserInfo,
  type ResourceAttributes,
  type NonResourceAttributes,
  type SubjectAccessReviewAuthorizerOptions,
  type SubjectAccessReviewSpec,
  type SubjectAccessReviewStatus,
} from './sar.js';
export { loadKubeConfig } from './kubeconfig.js';
export {
  createKubeAuth,
  createNodeHttpAuth,
  stripIdentityHeaders,
  resolveAttrs,
  bearerToken,
  type RouteAuthorization,
  type KubeAuthOptions,
  type NodeHttpAuthOptions,
  type AuthOutcome,
} from './middleware.js';
export {
  kubeAuthFastifyPlugin,
  spiffeUser,
  type KubeAuthFastifyOptions,
  type SpiffePeerId,
} from './fastify.js';
export {
  watchServiceAccounts,
  watchPods,
  evictOnServiceAccountChange,
  requireLiveServiceAccount,
  type ObjectWatch,
  type ObjectWatchOptions,
  type ObjectWatchEvents,
  type ObjectWatchState,
  type ObjectStatus,
  type WatchedObject,
} from './serviceaccount-watch.js';

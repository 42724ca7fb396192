/** Stable codes for a token that failed verification. Clients never see these; logs do. */
export type KubeAuthErrorCode =
  | 'ERR_TOKEN_MISSING'
  | 'ERR_TOKEN_MALFORMED'
  | 'ERR_TOKEN_TOO_LARGE'
  | 'ERR_TOKEN_ALG'
  | 'ERR_TOKEN_CRIT'
  | 'ERR_TOKEN_KID'
  | 'ERR_TOKEN_SIGNATURE'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_YET_VALID'
  | 'ERR_TOKEN_ISSUED_IN_FUTURE'
  | 'ERR_TOKEN_ISSUER'
  | 'ERR_TOKEN_AUDIENCE'
  | 'ERR_TOKEN_CLAIMS'
  | 'ERR_TOKEN_REJECTED';

export type KubeErrorCode = KubeAuthErrorCode | 'ERR_KUBE_UNAVAILABLE' | 'ERR_KUBE_CONFIG';

/** Base class of every error this package throws for untrusted input or an upstream failure. */
export class KubeError extends Error {
  readonly code: KubeErrorCode;
  constructor(code: KubeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The token is not acceptable. Answer 401. */
export class KubeAuthError extends KubeError {
  override name = 'KubeAuthError';
  declare readonly code: KubeAuthErrorCode;
  constructor(code: KubeAuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, `kube: ${message}`, options);
  }
}

/**
 * The Kubernetes API or the JWKS endpoint could not answer, so nothing can be decided.
 * Answer 503 (fail closed), never allow, never cache.
 */
export class KubeUnavailableError extends KubeError {
  override name = 'KubeUnavailableError';
  declare readonly code: 'ERR_KUBE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_KUBE_UNAVAILABLE', `kube: ${message}`, options);
  }
}

/** Neither a kubeconfig nor an in-cluster ServiceAccount could be loaded. */
export class KubeConfigError extends KubeError {
  override name = 'KubeConfigError';
  declare readonly code: 'ERR_KUBE_CONFIG';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_KUBE_CONFIG', `kube: ${message}`, options);
  }
}

import { decodeUnverified } from './jwt.js';
import { JwksStore, type JwksLocation } from './jwks.js';
import { identityFromClaims, type ServiceAccountIdentity } from './identity.js';
import { KubeAuthError } from './errors.js';
import { verifySignature } from './signature.js';

/** Every verifier implements this. */
export interface TokenVerifier {
  /**
   * Resolves with the caller's identity. Throws KubeAuthError (ERR_TOKEN_*) for a token that
   * is not acceptable, KubeUnavailableError when the keys or the API cannot be reached.
   */
  verify(token: string): Promise<ServiceAccountIdentity>;
  close?(): void;
}

/** createJwksVerifier's verifier: its key store is exposed for readiness and scheduled refreshes. */
export interface JwksTokenVerifier extends TokenVerifier {
  readonly jwks: JwksStore;
}

export interface JwksVerifierOptions {
  /** Expected `iss`, exactly. */
  issuer: string;
  /** The token must carry at least one of these in `aud`. */
  audiences: string[];
  /** Exclusive with jwksPath. Without either, OIDC discovery at `<issuer>/.well-known/openid-configuration`. */
  jwksUrl?: string | URL;
  /** A JWKS document on disk (re-read on an unknown kid). */
  jwksPath?: string;
  /** Default ['RS256', 'ES256']. Only asymmetric algorithms can be allowed. */
  algorithms?: string[];
  /** Allowed clock skew for exp/nbf/iat. Default 60 s, at most 300 s. */
  clockToleranceSeconds?: number;
  /** Extra CA for an https JWKS or discovery endpoint. */
  ca?: string | Buffer;
  /** Sent to the discovery/JWKS endpoints (an in-cluster API server wants one). */
  bearerToken?: string;
  /** At most one JWKS fetch per interval, in every state (first load, unknown kid, failure). Default 10 s. */
  minRefreshIntervalMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

const ASYMMETRIC = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
]);

/**
 * Offline verification of ServiceAccount tokens against the issuer's published keys: no call
 * to the API server per request. Note: a token of a deleted ServiceAccount still verifies
 * offline until it expires; use createTokenReviewVerifier where that matters.
 */
export function createJwksVerifier(opts: JwksVerifierOptions): JwksTokenVerifier {
  if (!opts.issuer) throw new TypeError('createJwksVerifier: issuer is required');
  if (!Array.isArray(opts.audiences) || opts.audiences.length === 0) {
    throw new TypeError('createJwksVerifier: at least one audience is required');
  }
  if (opts.jwksUrl && opts.jwksPath) {
    throw new TypeError('createJwksVerifier: jwksUrl and jwksPath are exclusive');
  }
  const algorithms = opts.algorithms ?? ['RS256', 'ES256'];
  for (const a of algorithms) {
    if (!ASYMMETRIC.has(a)) throw new TypeError(`createJwksVerifier: algorithm ${a} not allowed`);
  }
  const tolerance = opts.clockToleranceSeconds ?? 60;
  if (!(tolerance >= 0 && tolerance <= 300)) {
    throw new TypeError('createJwksVerifier: clockToleranceSeconds must be within 0..300');
  }
  const location: JwksLocation = opts.jwksPath
    ? { kind: 'file', path: opts.jwksPath }
    : opts.jwksUrl
      ? { kind: 'url', url: new URL(opts.jwksUrl) }
      : { kind: 'discovery', issuer: opts.issuer };
  const now = opts.now ?? Date.now;
  const store = new JwksStore(location, {
    ca: opts.ca,
    bearerToken: opts.bearerToken,
    now,
    ...(opts.minRefreshIntervalMs !== undefined
      ? { minRefreshIntervalMs: opts.minRefreshIntervalMs }
      : {}),
  });

  const tol = tolerance * 1000;
  function checkClaims(payload: Record<string, unknown>): string[] {
    const t = now();
    if (payload.iss !== opts.issuer)
      throw new KubeAuthError('ERR_TOKEN_ISSUER', 'unexpected issuer');
    const aud = payload.aud;
    const tokenAudiences =
      typeof aud === 'string'
        ? [aud]
        : Array.isArray(aud)
          ? aud.filter((a) => typeof a === 'string')
          : [];
    const accepted = tokenAudiences.filter((a) => opts.audiences.includes(a));
    if (accepted.length === 0)
      throw new KubeAuthError('ERR_TOKEN_AUDIENCE', 'no accepted audience');
    const { exp, nbf, iat } = payload;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) {
      throw new KubeAuthError('ERR_TOKEN_CLAIMS', 'exp is missing or not a number');
    }
    if (typeof iat !== 'number' || !Number.isFinite(iat)) {
      throw new KubeAuthError('ERR_TOKEN_CLAIMS', 'iat is missing or not a number');
    }
    if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) {
      throw new KubeAuthError('ERR_TOKEN_CLAIMS', 'nbf is not a number');
    }
    if (t - tol >= exp * 1000) throw new KubeAuthError('ERR_TOKEN_EXPIRED', 'token has expired');
    if (typeof nbf === 'number' && t + tol < nbf * 1000) {
      throw new KubeAuthError('ERR_TOKEN_NOT_YET_VALID', 'token not yet valid');
    }
    if (t + tol < iat * 1000) {
      throw new KubeAuthError('ERR_TOKEN_ISSUED_IN_FUTURE', 'token issued in the future');
    }
    if (typeof payload.sub !== 'string')
      throw new KubeAuthError('ERR_TOKEN_CLAIMS', 'sub is missing');
    return accepted;
  }

  return {
    jwks: store,
    async verify(token) {
      const decoded = decodeUnverified(token, algorithms);
      const { header, payload } = decoded;
      const kid = header.kid as string | undefined;
      const alg = header.alg as string;
      const keys = store.peek(kid, alg) ?? (await store.keysFor(kid, alg));
      if (!keys.some((key) => verifySignature(alg, key, decoded.signingInput, decoded.signature))) {
        throw new KubeAuthError('ERR_TOKEN_SIGNATURE', 'signature does not verify');
      }
      // Claims are looked at only once the signature holds.
      const accepted = checkClaims(payload);
      return identityFromClaims(payload, accepted);
    },
  };
}

import type { KeyObject } from 'node:crypto';
import { jwtVerify, errors as joseErrors } from 'jose';
import { decodeUnverified } from './jwt.js';
import { JwksStore, type JwksLocation } from './jwks.js';
import { identityFromClaims, type ServiceAccountIdentity } from './identity.js';
import { KubeAuthError, KubeError } from './errors.js';

/** Every verifier implements this. */
export interface TokenVerifier {
  /**
   * Resolves with the caller's identity. Throws KubeAuthError (ERR_TOKEN_*) for a token that
   * is not acceptable, KubeUnavailableError when the keys or the API cannot be reached.
   */
  verify(token: string): Promise<ServiceAccountIdentity>;
  close?(): void;
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
  /** At most one JWKS refresh per interval for unknown kids. Default 10 s. */
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

function mapJoseError(err: unknown): KubeError {
  if (err instanceof KubeError) return err;
  if (err instanceof joseErrors.JWTExpired) {
    return new KubeAuthError('ERR_TOKEN_EXPIRED', 'token has expired', { cause: err });
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const claim = err.claim;
    if (claim === 'iss') return new KubeAuthError('ERR_TOKEN_ISSUER', 'unexpected issuer');
    if (claim === 'aud') return new KubeAuthError('ERR_TOKEN_AUDIENCE', 'no accepted audience');
    if (claim === 'nbf') return new KubeAuthError('ERR_TOKEN_NOT_YET_VALID', 'token not yet valid');
    if (claim === 'iat') {
      return new KubeAuthError('ERR_TOKEN_ISSUED_IN_FUTURE', 'token issued in the future');
    }
    return new KubeAuthError('ERR_TOKEN_CLAIMS', `claim ${claim} is not valid`, { cause: err });
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new KubeAuthError('ERR_TOKEN_SIGNATURE', 'signature does not verify');
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) {
    return new KubeAuthError('ERR_TOKEN_ALG', 'algorithm not allowed');
  }
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) {
    return new KubeAuthError('ERR_TOKEN_MALFORMED', 'token is not a valid JWT', { cause: err });
  }
  return new KubeAuthError('ERR_TOKEN_SIGNATURE', 'token could not be verified', { cause: err });
}

/**
 * Offline verification of ServiceAccount tokens against the issuer's published keys: no call
 * to the API server per request. Note: a token of a deleted ServiceAccount still verifies
 * offline until it expires; use createTokenReviewVerifier where that matters.
 */
export function createJwksVerifier(opts: JwksVerifierOptions): TokenVerifier {
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

  async function verifyWith(token: string, key: KeyObject) {
    const { payload } = await jwtVerify(token, key, {
      issuer: opts.issuer,
      audience: opts.audiences,
      algorithms,
      clockTolerance: tolerance,
      requiredClaims: ['exp', 'iat', 'sub'],
      currentDate: new Date(now()),
    });
    return payload as Record<string, unknown>;
  }

  return {
    async verify(token) {
      const { header } = decodeUnverified(token, algorithms);
      const kid = header.kid as string | undefined;
      const keys = await store.keysFor(kid, header.alg as string);
      let payload: Record<string, unknown> | undefined;
      let firstError: unknown;
      for (const key of keys) {
        try {
          payload = await verifyWith(token, key);
          break;
        } catch (err) {
          firstError ??= err;
          if (!(err instanceof joseErrors.JWSSignatureVerificationFailed)) break;
        }
      }
      if (!payload) throw mapJoseError(firstError);
      if (typeof payload.iat === 'number' && payload.iat * 1000 > now() + tolerance * 1000) {
        throw new KubeAuthError('ERR_TOKEN_ISSUED_IN_FUTURE', 'token issued in the future');
      }
      const aud = payload.aud;
      const tokenAudiences = Array.isArray(aud) ? (aud as string[]) : [aud as string];
      const accepted = tokenAudiences.filter((a) => opts.audiences.includes(a));
      return identityFromClaims(payload, accepted);
    },
  };
}

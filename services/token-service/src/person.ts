import { createHash } from 'node:crypto';
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';
import { remoteKeySet } from '@precinct/delegation';
import { TokenServiceConfigError } from './errors.js';

/** RFC 8693 token type of an OpenID Connect ID token. */
export const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';

/** A person, proved. */
export interface AuthenticatedPerson {
  /** The person's identifier in this trust domain; becomes the Transaction Token's `sub`. */
  subject: string;
  /** How they authenticated (`amr`), when the proof says; goes into `rctx.authn`. */
  amr?: readonly string[];
}

/**
 * Why a person's proof was not accepted: `invalid` (a definitive refusal) or `unavailable`
 * (the keys to check it could not be had; fail closed, the client may retry).
 */
export class PersonAuthError extends Error {
  override name = 'PersonAuthError';
  readonly code = 'ERR_PERSON_AUTH' as const;
  readonly reason: 'invalid' | 'unavailable';
  constructor(reason: 'invalid' | 'unavailable', options?: { cause?: unknown }) {
    super(
      reason === 'invalid'
        ? "person-auth: the person's proof is not valid"
        : "person-auth: the keys to check the person's proof are unavailable",
      options,
    );
    this.reason = reason;
  }
}

/**
 * Proves who the person is from the exchange's `subject_token`. Pluggable: the OIDC ID token
 * verifier below is one; the dashboard's session can be another.
 */
export interface PersonAuthenticator {
  /** The `subject_token_type` values this authenticator handles. */
  readonly tokenTypes: readonly string[];
  /** Verifies the proof. Rejects with PersonAuthError only. */
  authenticate(token: string, tokenType: string): Promise<AuthenticatedPerson>;
}

export interface OidcPersonAuthenticatorOptions {
  /** The OpenID Provider's issuer; `iss` must equal it exactly. */
  issuer: string;
  /** This token service's client id at the provider; `aud` must contain it. */
  clientId: string;
  /**
   * The provider's JWKS: a URL (kept, refetched on an unknown `kid` or after 10 minutes, at most
   * once per 30 s in every state, a failing provider included) or a key set.
   */
  jwks: URL | { keys: JWK[] };
  /** Allowed `alg`. Default RS256, ES256, PS256, EdDSA (asymmetric only). */
  algorithms?: string[];
  /** Claim naming the person. Default `sub`; `email` additionally needs `email_verified`. */
  subjectClaim?: 'sub' | 'email';
  /** Clock skew for `exp`/`iat`, in seconds. Default 30. */
  clockToleranceSeconds?: number;
  /** ID tokens over this many bytes are refused unparsed. Default 16384. */
  maxTokenBytes?: number;
  /** Fetch for the JWKS URL (e.g. with a private CA). */
  fetch?: typeof globalThis.fetch;
  /**
   * How long a verified ID token is remembered (by its SHA-256), in seconds; never past its
   * `exp`. An agent exchanges the same person's ID token for every transaction, and the RSA
   * or ECDSA check is most of an exchange's cost. The price: a provider key withdrawn from its
   * JWKS is still honoured this long for tokens already seen. Default 60; 0 disables.
   */
  verifiedCacheSeconds?: number;
  /** Most remembered ID tokens (oldest forgotten first). Default 10000. */
  verifiedCacheSize?: number;
  /** Current time in ms; for tests. Default Date.now. */
  clock?: () => number;
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
  'EdDSA',
]);

/**
 * A PersonAuthenticator for OpenID Connect ID tokens from one provider, verified with jose:
 * signature against the provider's JWKS, `iss`, `aud` (and `azp` when `aud` has several
 * values, OIDC Core 3.1.3.7), `exp` and `iat`, and a `typ` that, if present, says JWT.
 */
export function createOidcPersonAuthenticator(
  opts: OidcPersonAuthenticatorOptions,
): PersonAuthenticator {
  if (typeof opts.issuer !== 'string' || opts.issuer === '') {
    throw new TokenServiceConfigError('OIDC issuer is required');
  }
  if (typeof opts.clientId !== 'string' || opts.clientId === '') {
    throw new TokenServiceConfigError('OIDC client id is required');
  }
  const algorithms = opts.algorithms ?? ['RS256', 'ES256', 'PS256', 'EdDSA'];
  for (const alg of algorithms) {
    if (!ASYMMETRIC.has(alg)) {
      throw new TokenServiceConfigError(`OIDC algorithm ${JSON.stringify(alg)} is not allowed`);
    }
  }
  const subjectClaim = opts.subjectClaim ?? 'sub';
  const tolerance = opts.clockToleranceSeconds ?? 30;
  const maxBytes = opts.maxTokenBytes ?? 16384;
  const clock = opts.clock ?? Date.now;
  let keys: JWTVerifyGetKey;
  if (opts.jwks instanceof URL) {
    keys = remoteKeySet(opts.jwks, {
      cooldownMs: 30_000,
      timeoutMs: 5000,
      now: clock,
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
    });
  } else {
    try {
      keys = createLocalJWKSet(opts.jwks);
    } catch (err) {
      throw new TokenServiceConfigError('OIDC jwks is not a valid JSON Web Key Set', {
        cause: err,
      });
    }
  }
  // A failure of the key set itself (fetch refused, timeout, bad document) is "cannot decide":
  // it must come out as unavailable, never as a bad proof (nor the other way round).
  class KeysUnavailable extends Error {}
  const getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await keys(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey) throw err;
      if (err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      throw new KeysUnavailable('keys unavailable', { cause: err });
    }
  };
  const cacheMs = (opts.verifiedCacheSeconds ?? 60) * 1000;
  const cacheSize = opts.verifiedCacheSize ?? 10_000;
  if (
    !Number.isFinite(cacheMs) ||
    cacheMs < 0 ||
    !Number.isSafeInteger(cacheSize) ||
    cacheSize < 1
  ) {
    throw new TokenServiceConfigError('verifiedCacheSeconds/verifiedCacheSize are out of range');
  }
  // Only successes are remembered, keyed by the token's hash: a forged or garbage token is
  // checked in full every time and can never push a verified one out by being stored.
  const verified = new Map<string, { person: AuthenticatedPerson; until: number }>();
  return {
    tokenTypes: [ID_TOKEN_TYPE],
    async authenticate(token, tokenType) {
      if (tokenType !== ID_TOKEN_TYPE) throw new PersonAuthError('invalid');
      if (typeof token !== 'string' || token.length > maxBytes) {
        throw new PersonAuthError('invalid');
      }
      const key = cacheMs > 0 ? createHash('sha256').update(token).digest('base64url') : '';
      if (cacheMs > 0) {
        const hit = verified.get(key);
        if (hit && clock() < hit.until) return hit.person;
        if (hit) verified.delete(key);
      }
      let typ: unknown;
      try {
        typ = decodeProtectedHeader(token).typ;
      } catch (err) {
        throw new PersonAuthError('invalid', { cause: err });
      }
      // Another kind of JWT (a Transaction Token, an access token) is never an ID token.
      if (typ !== undefined && String(typ).toUpperCase() !== 'JWT') {
        throw new PersonAuthError('invalid');
      }
      let payload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          issuer: opts.issuer,
          audience: opts.clientId,
          algorithms,
          clockTolerance: tolerance,
          currentDate: new Date(clock()),
          requiredClaims: ['sub', 'exp', 'iat'],
        }));
      } catch (err) {
        throw err instanceof KeysUnavailable
          ? new PersonAuthError('unavailable', { cause: err.cause })
          : new PersonAuthError('invalid');
      }
      if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== opts.clientId) {
        throw new PersonAuthError('invalid');
      }
      if ((payload.iat as number) > clock() / 1000 + tolerance)
        throw new PersonAuthError('invalid');
      let subject: unknown = payload.sub;
      if (subjectClaim === 'email') {
        if (payload.email_verified !== true) throw new PersonAuthError('invalid');
        subject = payload.email;
      }
      if (typeof subject !== 'string' || subject === '' || subject.length > 256) {
        throw new PersonAuthError('invalid');
      }
      const amr = Array.isArray(payload.amr)
        ? payload.amr.filter((m): m is string => typeof m === 'string').slice(0, 8)
        : undefined;
      const person: AuthenticatedPerson = Object.freeze({
        subject,
        ...(amr && amr.length > 0 ? { amr: Object.freeze(amr) } : {}),
      });
      if (cacheMs > 0) {
        const until = Math.min(clock() + cacheMs, (payload.exp as number) * 1000);
        if (verified.size >= cacheSize) verified.delete(verified.keys().next().value as string);
        verified.set(key, { person, until });
      }
      return person;
    },
  };
}

import {
  createPublicKey,
  generateKeyPairSync,
  KeyObject,
  randomUUID,
  type webcrypto,
} from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { DelegationConfigError } from './errors.js';

/** What the local issuer signs with: both are small, fast, and need no parameter choices. */
export type DelegationSigningAlgorithm = 'ES256' | 'EdDSA';

export interface DelegationIssuerOptions {
  /** Goes into `iss`; verifiers must be configured with exactly this string. */
  issuer: string;
  privateKey: CryptoKey | KeyObject;
  /** Goes into the header and the published JWK, so verifiers can pick the key during rotation. */
  kid: string;
  alg: DelegationSigningAlgorithm;
}

export interface DelegationRequest {
  /** The person the agents act for (`sub`). */
  subject: string;
  /** The acting agents, outermost (the one that will present the token) first. */
  actors: string[];
  /** The service(s) the token is for. */
  audience: string | string[];
  /** Seconds until `exp`. Default 300: short enough that no revocation list is needed. */
  ttlSeconds?: number;
}

export interface DelegationIssuer {
  /** Signs a delegation token. Throws TypeError on an invalid request. */
  issue(request: DelegationRequest): Promise<string>;
  /** The public key as a JWKS document, to serve to verifiers or pass to them in memory. */
  jwks(): Promise<{ keys: JWK[] }>;
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

function toKeyObject(key: CryptoKey | KeyObject): KeyObject {
  if (key instanceof KeyObject) return key;
  try {
    return KeyObject.from(key as webcrypto.CryptoKey);
  } catch (err) {
    throw new DelegationConfigError('privateKey must be a CryptoKey or KeyObject', { cause: err });
  }
}

function keyFitsAlg(key: KeyObject, alg: DelegationSigningAlgorithm): boolean {
  if (key.type !== 'private') return false;
  if (alg === 'EdDSA') return key.asymmetricKeyType === 'ed25519';
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

/**
 * A delegation token issuer for local development and tests. Production tokens come from the
 * platform's token service; this exists so the verifier can be exercised end to end without
 * one, with exactly the claim shape the verifier expects.
 */
export function createDelegationIssuer(opts: DelegationIssuerOptions): DelegationIssuer {
  if (!nonEmptyString(opts.issuer)) throw new DelegationConfigError('issuer is required');
  if (!nonEmptyString(opts.kid)) throw new DelegationConfigError('kid is required');
  if (opts.alg !== 'ES256' && opts.alg !== 'EdDSA') {
    throw new DelegationConfigError('alg must be ES256 or EdDSA');
  }
  const keyObject = toKeyObject(opts.privateKey);
  if (!keyFitsAlg(keyObject, opts.alg)) {
    throw new DelegationConfigError(`privateKey is not a private key for ${opts.alg}`);
  }
  const { issuer, privateKey, kid, alg } = opts;
  let published: Promise<{ keys: JWK[] }> | undefined;

  return {
    async issue(request) {
      const { subject, actors, audience } = request;
      const ttl = request.ttlSeconds ?? 300;
      if (!nonEmptyString(subject)) throw new TypeError('subject must be a non-empty string');
      if (!Array.isArray(actors) || actors.length === 0 || !actors.every(nonEmptyString)) {
        throw new TypeError('actors must be a non-empty array of non-empty strings');
      }
      const aud = typeof audience === 'string' ? [audience] : audience;
      if (!Array.isArray(aud) || aud.length === 0 || !aud.every(nonEmptyString)) {
        throw new TypeError('audience must be a non-empty string or array of them');
      }
      if (!Number.isSafeInteger(ttl) || ttl <= 0) {
        throw new TypeError('ttlSeconds must be a positive integer');
      }
      // Nest from the earliest actor outwards, so the first actor ends up outermost.
      let act: Record<string, unknown> | undefined;
      for (let i = actors.length - 1; i >= 0; i--) {
        act = act === undefined ? { sub: actors[i] } : { sub: actors[i], act };
      }
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ act, jti: randomUUID() })
        .setProtectedHeader({ alg, kid })
        .setIssuer(issuer)
        .setSubject(subject)
        .setAudience(typeof audience === 'string' ? audience : [...aud])
        .setIssuedAt(now)
        .setExpirationTime(now + ttl)
        .sign(privateKey);
    },
    jwks() {
      published ??= exportJWK(createPublicKey(keyObject)).then((jwk) => ({
        keys: [{ ...jwk, kid, alg, use: 'sig' }],
      }));
      return published;
    },
  };
}

/**
 * A fresh signing key for createDelegationIssuer, with its RFC 7638 thumbprint as `kid` (stable
 * for the key, so a restarted issuer with the same key keeps its kid).
 */
export async function generateDelegationKey(
  alg: DelegationSigningAlgorithm,
): Promise<{ privateKey: KeyObject; kid: string }> {
  if (alg !== 'ES256' && alg !== 'EdDSA') {
    throw new DelegationConfigError('alg must be ES256 or EdDSA');
  }
  const { privateKey, publicKey } =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
  return { privateKey, kid };
}

import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { errors, type JWK, type JWTVerifyGetKey } from 'jose';
import { TokenServiceConfigError } from './errors.js';

/** One ES256 signing key of the ring. */
export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public key as published (`kid`, `alg`, `use` set). */
  jwk: JWK;
  /** When it started to sign (ms); undefined while it is only published as the next key. */
  activatedAt: number | undefined;
  /** When it stopped signing (ms). */
  retiredAt: number | undefined;
}

export interface SigningKeyRingOptions {
  /** How long one key signs before the next takes over, in seconds. Default 3600. */
  rotationSeconds?: number;
  /**
   * The longest lifetime of a token this ring signs, in seconds; a retired key stays published
   * this long (plus `clockToleranceSeconds`) so every token it signed still verifies.
   */
  maxTokenLifetimeSeconds: number;
  /** Verifiers' clock skew allowance, in seconds. Default 30. */
  clockToleranceSeconds?: number;
  /** The current time in ms. Default Date.now. */
  clock?: () => number;
}

/** RFC 7638 thumbprint of an EC public JWK: stable for the key, so it makes a good `kid`. */
function thumbprint(jwk: JWK): string {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

function newKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const raw = publicKey.export({ format: 'jwk' }) as JWK;
  const kid = thumbprint(raw);
  const jwk: JWK = {
    kty: raw.kty,
    crv: raw.crv,
    x: raw.x,
    y: raw.y,
    kid,
    alg: 'ES256',
    use: 'sig',
  };
  return { kid, privateKey, publicKey, jwk, activatedAt: undefined, retiredAt: undefined };
}

/**
 * The token service's ES256 keys, rotated lazily on use (so a frozen clock drives it in tests
 * and no timer is needed). The JWKS holds, in order: the current key, the next key (published
 * one rotation period before it signs, so verifiers with a cached JWKS already know it), and
 * every retired key until the last token it could have signed has expired. Keys live in memory
 * only: a restart publishes new keys, and tokens signed before it stop verifying (they live at
 * most a few minutes anyway).
 */
export class SigningKeyRing {
  readonly #rotationMs: number;
  readonly #retainMs: number;
  readonly #clock: () => number;
  #current: SigningKey;
  #next: SigningKey;
  #retired: SigningKey[] = [];

  constructor(opts: SigningKeyRingOptions) {
    const rotation = opts.rotationSeconds ?? 3600;
    const tolerance = opts.clockToleranceSeconds ?? 30;
    if (!Number.isSafeInteger(rotation) || rotation <= 0) {
      throw new TokenServiceConfigError('key rotation period must be a positive whole second');
    }
    if (!Number.isSafeInteger(opts.maxTokenLifetimeSeconds) || opts.maxTokenLifetimeSeconds <= 0) {
      throw new TokenServiceConfigError('maxTokenLifetimeSeconds must be a positive integer');
    }
    if (!Number.isFinite(tolerance) || tolerance < 0) {
      throw new TokenServiceConfigError('clockToleranceSeconds must be a non-negative number');
    }
    this.#rotationMs = rotation * 1000;
    this.#retainMs = (opts.maxTokenLifetimeSeconds + tolerance) * 1000;
    this.#clock = opts.clock ?? Date.now;
    this.#current = newKey();
    this.#current.activatedAt = this.#clock();
    this.#next = newKey();
  }

  #tick(now: number): void {
    if (now - (this.#current.activatedAt as number) >= this.#rotationMs) this.rotate(now);
    this.#retired = this.#retired.filter((k) => now - (k.retiredAt as number) <= this.#retainMs);
  }

  /** The key to sign with now (rotating first if the period is over). */
  current(): SigningKey {
    this.#tick(this.#clock());
    return this.#current;
  }

  /** Makes the next key current now, whatever the period (an operator's or a test's choice). */
  rotate(now = this.#clock()): void {
    this.#current.retiredAt = now;
    this.#retired.unshift(this.#current);
    this.#current = this.#next;
    this.#current.activatedAt = now;
    this.#next = newKey();
  }

  /** The public JWKS verifiers trust: current, next, and retired keys still needed. */
  jwks(): { keys: JWK[] } {
    this.#tick(this.#clock());
    return { keys: [this.#current, this.#next, ...this.#retired].map((k) => ({ ...k.jwk })) };
  }

  /**
   * A jose key resolver over the published keys, by `kid` only: how the service verifies the
   * Transaction Tokens it signed itself (replacement requests).
   */
  readonly getKey: JWTVerifyGetKey = (header) => {
    this.#tick(this.#clock());
    const key = [this.#current, ...this.#retired].find((k) => k.kid === header.kid);
    if (!key || header.alg !== 'ES256') throw new errors.JWKSNoMatchingKey();
    return key.publicKey;
  };
}

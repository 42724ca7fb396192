import { readFile } from 'node:fs/promises';
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { getJson, type GetJsonOptions } from './http-get.js';
import { KubeAuthError, KubeUnavailableError } from './errors.js';

export type JwksLocation =
  | { kind: 'url'; url: URL }
  | { kind: 'file'; path: string }
  | { kind: 'discovery'; issuer: string };

export interface JwksStoreOptions extends GetJsonOptions {
  /** At most one refresh triggered by an unknown kid per this interval. Default 10 s. */
  minRefreshIntervalMs?: number;
  /** Keys older than this are refreshed in the background on use. Default 5 min. */
  maxAgeMs?: number;
  now?: () => number;
}

interface StoredKey {
  kid: string | undefined;
  kty: string;
  crv: string | undefined;
  jwkAlg: string | undefined;
  key: KeyObject;
}

const MAX_KEYS = 100;

function algMatchesKey(alg: string, k: StoredKey): boolean {
  if (k.jwkAlg && k.jwkAlg !== alg) return false;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return k.kty === 'RSA';
  if (alg === 'ES256') return k.kty === 'EC' && k.crv === 'P-256';
  if (alg === 'ES384') return k.kty === 'EC' && k.crv === 'P-384';
  if (alg === 'ES512') return k.kty === 'EC' && k.crv === 'P-521';
  return false;
}

/**
 * The verification keys of one issuer. Loaded lazily, refreshed when a token names a kid we
 * do not know (rate-limited, so a flood of forged kids cannot hammer the endpoint), and kept
 * when a refresh fails: an outage of the JWKS endpoint never drops keys we already trust.
 */
export class JwksStore {
  private keys: StoredKey[] = [];
  private loadedAt = -Infinity;
  private lastRefreshAttempt = -Infinity;
  private inflight: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly location: JwksLocation,
    private readonly opts: JwksStoreOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Number of usable keys currently held. */
  get size(): number {
    return this.keys.length;
  }

  /**
   * The synchronous fast path of keysFor: keys already held for this header, or undefined
   * (then call keysFor). Saves the await of an async call on every token.
   */
  peek(kid: string | undefined, alg: string): KeyObject[] | undefined {
    if (this.keys.length === 0) return undefined;
    const found = this.match(kid, alg);
    if (found.length === 0) return undefined;
    const t = this.now();
    if (
      t - this.lastRefreshAttempt >= (this.opts.minRefreshIntervalMs ?? 10_000) &&
      t - this.loadedAt > (this.opts.maxAgeMs ?? 300_000)
    ) {
      void this.refresh(false);
    }
    return found;
  }

  /**
   * Candidate keys for a token header. Throws KubeAuthError ERR_TOKEN_KID when the kid is
   * unknown after a refresh, KubeUnavailableError when no keys could ever be loaded or the
   * refresh for an unknown kid failed (the token may be signed by a new key we cannot fetch:
   * 503, so the caller retries, rather than a definitive 401).
   */
  async keysFor(kid: string | undefined, alg: string): Promise<KeyObject[]> {
    if (this.keys.length === 0 && this.loadedAt === -Infinity) {
      await this.refresh(true);
    }
    const interval = this.opts.minRefreshIntervalMs ?? 10_000;
    const canRefresh = this.now() - this.lastRefreshAttempt >= interval;
    let found = this.match(kid, alg);
    if (found.length > 0) {
      if (canRefresh && this.now() - this.loadedAt > (this.opts.maxAgeMs ?? 300_000)) {
        void this.refresh(false);
      }
      return found;
    }
    if (kid !== undefined && this.keys.some((k) => k.kid === kid)) {
      throw new KubeAuthError('ERR_TOKEN_ALG', `algorithm ${alg} does not match key ${kid}`);
    }
    if (canRefresh) {
      await this.refresh(true);
      found = this.match(kid, alg);
      if (found.length > 0) return found;
    }
    throw new KubeAuthError('ERR_TOKEN_KID', 'no trusted key matches the token');
  }

  // Candidate lists per (kid, alg), rebuilt with each key set: the per-token lookup is then one
  // Map get. Only pairs that matched a key are remembered, so forged kids cannot grow it.
  private matches = new Map<string, KeyObject[]>();

  private match(kid: string | undefined, alg: string): KeyObject[] {
    const memo = `${alg} ${kid ?? ''}`;
    const hit = this.matches.get(memo);
    if (hit) return hit;
    const found = this.keys
      .filter((k) => (kid === undefined || k.kid === kid) && algMatchesKey(alg, k))
      .map((k) => k.key);
    if (found.length > 0) this.matches.set(memo, found);
    return found;
  }

  /** Fetches the key set now (single-flight). */
  async refresh(throwOnFailure: boolean): Promise<void> {
    if (!this.inflight) {
      this.lastRefreshAttempt = this.now();
      this.inflight = this.load().finally(() => {
        this.inflight = undefined;
      });
    }
    try {
      await this.inflight;
    } catch (err) {
      if (throwOnFailure) {
        throw new KubeUnavailableError('could not load the JWKS', { cause: err });
      }
    }
  }

  private async load(): Promise<void> {
    const doc = await this.fetchDocument();
    const list = (doc as { keys?: unknown }).keys;
    if (!Array.isArray(list)) throw new Error('JWKS has no "keys" array');
    const keys: StoredKey[] = [];
    for (const jwk of list.slice(0, MAX_KEYS) as Array<
      JsonWebKey & { kid?: string; use?: string; alg?: string }
    >) {
      if (!jwk || typeof jwk !== 'object') continue;
      if (jwk.use !== undefined && jwk.use !== 'sig') continue;
      if (jwk.kty !== 'RSA' && jwk.kty !== 'EC') continue;
      if ('d' in jwk) continue; // never accept a private key as a verification key
      try {
        // node:crypto imports JWKs natively and yields the KeyObject crypto.verify wants.
        const key = createPublicKey({ key: jwk, format: 'jwk' });
        if (jwk.kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) continue;
        keys.push({ kid: jwk.kid, kty: jwk.kty, crv: jwk.crv, jwkAlg: jwk.alg, key });
      } catch {
        // One unusable key must not take the others down with it.
      }
    }
    this.keys = keys;
    this.matches = new Map();
    this.loadedAt = this.now();
  }

  private async fetchDocument(): Promise<unknown> {
    const { location } = this;
    if (location.kind === 'file') {
      const text = await readFile(location.path, 'utf8');
      return JSON.parse(text);
    }
    const http = { ca: this.opts.ca, bearerToken: this.opts.bearerToken };
    if (location.kind === 'url') return getJson(location.url, http);
    const base = location.issuer.replace(/\/+$/, '');
    const discovery = (await getJson(
      new URL(`${base}/.well-known/openid-configuration`),
      http,
    )) as { issuer?: unknown; jwks_uri?: unknown };
    if (discovery.issuer !== location.issuer) {
      throw new Error('discovery document issuer does not match the configured issuer');
    }
    if (typeof discovery.jwks_uri !== 'string') throw new Error('discovery has no jwks_uri');
    return getJson(new URL(discovery.jwks_uri), http);
  }
}

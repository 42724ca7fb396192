import { readFile } from 'node:fs/promises';
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { getJson, type GetJsonOptions } from './http-get.js';
import { KubeAuthError, KubeUnavailableError } from './errors.js';

export type JwksLocation =
  | { kind: 'url'; url: URL }
  | { kind: 'file'; path: string }
  | { kind: 'discovery'; issuer: string };

export interface JwksStoreOptions extends GetJsonOptions {
  /**
   * At most one fetch per this interval, whatever triggered it: the first load, an unknown
   * kid, a retry after a failure, a background refresh. Default 10 s.
   */
  minRefreshIntervalMs?: number;
  /** Keys older than this are refreshed in the background on use. Default 5 min. */
  maxAgeMs?: number;
  now?: () => number;
}

/** What the store knows about its keys, for readiness probes and metrics. */
export interface JwksStatus {
  /** Usable keys held now (kept through failed refreshes). */
  keys: number;
  /** When the last fetch succeeded (ms since the epoch), undefined before the first. */
  loadedAt: number | undefined;
  /** When the last fetch started, undefined before the first. */
  lastAttemptAt: number | undefined;
  /** Whether the last finished fetch failed. */
  failing: boolean;
  /** A fetch is in progress. */
  fetching: boolean;
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
 * do not know, and kept when a refresh fails: an outage of the JWKS endpoint never drops keys
 * we already trust. Every fetch is rate-limited (minRefreshIntervalMs) in every state, and
 * concurrent callers share the fetch in progress: tokens arriving while the endpoint is down,
 * or carrying forged kids, cannot turn into a request each.
 */
export class JwksStore {
  private keys: StoredKey[] = [];
  private loadedAt = -Infinity;
  private lastRefreshAttempt = -Infinity;
  private lastFailed = false;
  private inflight: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly interval: number;
  private readonly maxAge: number;

  constructor(
    private readonly location: JwksLocation,
    private readonly opts: JwksStoreOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.interval = opts.minRefreshIntervalMs ?? 10_000;
    this.maxAge = opts.maxAgeMs ?? 300_000;
  }

  /** Number of usable keys currently held. */
  get size(): number {
    return this.keys.length;
  }

  status(): JwksStatus {
    return {
      keys: this.keys.length,
      loadedAt: this.loadedAt === -Infinity ? undefined : this.loadedAt,
      lastAttemptAt: this.lastRefreshAttempt === -Infinity ? undefined : this.lastRefreshAttempt,
      failing: this.lastFailed,
      fetching: this.inflight !== undefined,
    };
  }

  /** May a fetch start now? False within minRefreshIntervalMs of the last one's start. */
  private canFetch(): boolean {
    return this.now() - this.lastRefreshAttempt >= this.interval;
  }

  private refreshIfOld(): void {
    if (this.canFetch() && this.now() - this.loadedAt > this.maxAge) void this.refresh(false);
  }

  /**
   * The synchronous fast path of keysFor: keys already held for this header, or undefined
   * (then call keysFor). Saves the await of an async call on every token.
   */
  peek(kid: string | undefined, alg: string): KeyObject[] | undefined {
    if (this.keys.length === 0) return undefined;
    const found = this.match(kid, alg);
    if (found.length === 0) return undefined;
    this.refreshIfOld();
    return found;
  }

  /**
   * Candidate keys for a token header. Throws KubeAuthError ERR_TOKEN_KID when the kid is
   * unknown to a key set fetched successfully, KubeUnavailableError when no keys could be
   * loaded yet or the last fetch failed (the token may be signed by a new key we cannot
   * fetch: 503, so the caller retries, rather than a definitive 401).
   */
  async keysFor(kid: string | undefined, alg: string): Promise<KeyObject[]> {
    // A fetch in progress (started by another token, or by the owner) answers for us too.
    if (this.inflight) await this.inflight.catch(() => {});
    let found = this.match(kid, alg);
    if (found.length > 0) {
      this.refreshIfOld();
      return found;
    }
    const wrongAlg = () => {
      if (kid !== undefined && this.keys.some((k) => k.kid === kid)) {
        throw new KubeAuthError('ERR_TOKEN_ALG', `algorithm ${alg} does not match key ${kid}`);
      }
    };
    wrongAlg();
    if (this.canFetch()) {
      await this.refresh(true);
      found = this.match(kid, alg);
      if (found.length > 0) return found;
      wrongAlg();
    } else if (this.lastFailed || this.loadedAt === -Infinity) {
      throw new KubeUnavailableError(
        'the JWKS could not be loaded; the next fetch waits for the refresh interval',
      );
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

  /**
   * Fetches the key set now, or joins the fetch in progress. Not rate-limited: for an owner
   * that schedules its own refreshes (a readiness loop); per-token paths go through keysFor.
   */
  async refresh(throwOnFailure: boolean): Promise<void> {
    if (!this.inflight) {
      this.lastRefreshAttempt = this.now();
      this.inflight = this.load().then(
        () => {
          this.lastFailed = false;
          this.inflight = undefined;
        },
        (err: unknown) => {
          this.lastFailed = true;
          this.inflight = undefined;
          throw err;
        },
      );
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

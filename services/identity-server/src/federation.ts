import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { request } from 'node:https';
import type { Logger } from '@precinct/runtime';
import type { KeyManager } from './authority.js';
import type { Clock } from './clock.js';
import { IdentityServerError } from './errors.js';
import { parseTrustDomain } from './spiffe-id.js';

/** A JWK as it appears in a SPIFFE bundle. */
export interface BundleJwk {
  kty: string;
  use: 'x509-svid' | 'jwt-svid';
  kid?: string;
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  x5c?: string[];
  [k: string]: unknown;
}

/** The SPIFFE bundle document (SPIFFE Trust Domain and Bundle spec, section 4). */
export interface SpiffeBundleDocument {
  keys: BundleJwk[];
  spiffe_sequence?: number;
  spiffe_refresh_hint?: number;
}

/** The trust domain's own bundle as a SPIFFE bundle document. */
export function bundleDocument(keys: KeyManager, refreshHintSeconds: number): SpiffeBundleDocument {
  const x509 = keys.x509BundleCerts().map((der): BundleJwk => {
    const jwk = new X509Certificate(der).publicKey.export({ format: 'jwk' }) as Record<
      string,
      string
    >;
    return { ...jwk, kty: jwk.kty!, use: 'x509-svid', x5c: [der.toString('base64')] };
  });
  const jwt = keys.jwks().keys.map((k): BundleJwk => ({ ...k, kty: k.kty!, use: 'jwt-svid' }));
  return {
    keys: [...x509, ...jwt],
    spiffe_sequence: keys.version,
    spiffe_refresh_hint: refreshHintSeconds,
  };
}

/** A peer trust domain's bundle, parsed and checked. */
export interface FederatedBundle {
  trustDomain: string;
  /** Concatenated DER of its X.509 authorities. */
  x509Der: Buffer;
  /** Its JWT authorities as a JWK Set (without `use`). */
  jwks: { keys: Record<string, unknown>[] };
  sequence: number | undefined;
  refreshHintSeconds: number | undefined;
  fetchedAt: number;
}

const MAX_BUNDLE_BYTES = 1 << 20;
const MAX_KEYS = 256;

/** Parses and validates a SPIFFE bundle document; throws ERR_BUNDLE_INVALID. */
export function parseBundleDocument(
  trustDomain: string,
  text: string,
  now: number,
): FederatedBundle {
  const bad = (why: string) =>
    new IdentityServerError('ERR_BUNDLE_INVALID', `bundle of ${trustDomain}: ${why}`);
  let doc: SpiffeBundleDocument;
  try {
    doc = JSON.parse(text) as SpiffeBundleDocument;
  } catch {
    throw bad('not JSON');
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray(doc.keys))
    throw bad('no keys array');
  if (doc.keys.length > MAX_KEYS) throw bad(`more than ${MAX_KEYS} keys`);
  const certs: Buffer[] = [];
  const jwks: Record<string, unknown>[] = [];
  for (const k of doc.keys) {
    if (typeof k !== 'object' || k === null || typeof k.kty !== 'string')
      throw bad('a key without kty');
    if (k.use === 'x509-svid') {
      if (!Array.isArray(k.x5c) || k.x5c.length !== 1 || typeof k.x5c[0] !== 'string') {
        throw bad('an x509-svid key must have exactly one x5c certificate');
      }
      const der = Buffer.from(k.x5c[0], 'base64');
      try {
        const cert = new X509Certificate(der);
        if (!cert.ca) throw new Error('not a CA');
      } catch {
        throw bad('an x509-svid key has an invalid or non-CA certificate');
      }
      certs.push(der);
    } else if (k.use === 'jwt-svid') {
      if (typeof k.kid !== 'string' || k.kid.length === 0)
        throw bad('a jwt-svid key must have a kid');
      const { use: _use, ...rest } = k;
      void _use;
      jwks.push(rest);
    }
    // Keys with another `use` are ignored, as the spec requires.
  }
  const hint =
    typeof doc.spiffe_refresh_hint === 'number' && doc.spiffe_refresh_hint > 0
      ? doc.spiffe_refresh_hint
      : undefined;
  const seq = typeof doc.spiffe_sequence === 'number' ? doc.spiffe_sequence : undefined;
  return {
    trustDomain,
    x509Der: Buffer.concat(certs),
    jwks: { keys: jwks },
    sequence: seq,
    refreshHintSeconds: hint,
    fetchedAt: now,
  };
}

/** One federation relationship: whose bundle, from where, trusting which web CA. */
export interface FederationPeer {
  trustDomain: string;
  /** `https://` URL of the peer's bundle endpoint (https_web profile). */
  url: string;
  /** Extra CA (PEM) for the endpoint's TLS certificate, when it is not publicly trusted. */
  caPem?: string;
}

// Bounds on the peer's refresh hint: never hammer, never go stale for long.
const MIN_REFRESH_MS = 10_000;
const MAX_REFRESH_MS = 3600_000;
const DEFAULT_REFRESH_MS = 300_000;
const RETRY_MS = 30_000;

function fetchText(url: string, caPem: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.protocol !== 'https:') return reject(new Error('bundle endpoint URL must be https'));
    const req = request(
      u,
      { method: 'GET', ...(caPem ? { ca: caPem } : {}), timeout: 10_000 },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`bundle endpoint answered HTTP ${res.statusCode}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BUNDLE_BYTES) {
            req.destroy(new Error('bundle larger than 1 MiB'));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('bundle endpoint timed out')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Bundles of federated trust domains, fetched from each peer's bundle endpoint (https_web) and
 * refreshed at the interval the peer's `spiffe_refresh_hint` asks for (bounded to 10 s..1 h).
 * A failed fetch keeps the last good bundle and retries in 30 s. `change` fires when a bundle
 * changed.
 */
export class FederatedBundles extends EventEmitter<{ change: [] }> {
  readonly #bundles = new Map<string, FederatedBundle>();
  readonly #peers: FederationPeer[];
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #timers = new Map<string, () => void>();
  #version = 0;
  #closed = false;

  constructor(peers: FederationPeer[], clock: Clock, logger: Logger, ownTrustDomain: string) {
    super();
    for (const p of peers) {
      const td = parseTrustDomain(p.trustDomain);
      if (td === ownTrustDomain) {
        throw new IdentityServerError(
          'ERR_CONFIG_INVALID',
          'cannot federate with the own trust domain',
        );
      }
      if (!/^https:\/\//.test(p.url)) {
        throw new IdentityServerError(
          'ERR_CONFIG_INVALID',
          `bundle endpoint of ${td} must be an https URL`,
        );
      }
    }
    this.#peers = peers.map((p) => ({ ...p, trustDomain: parseTrustDomain(p.trustDomain) }));
    this.#clock = clock;
    this.#logger = logger;
  }

  /** Increments whenever any federated bundle changed. */
  get version(): number {
    return this.#version;
  }

  get(trustDomain: string): FederatedBundle | undefined {
    return this.#bundles.get(trustDomain);
  }

  /** Fetches every peer once now (failures are logged, not thrown), then keeps refreshing. */
  async start(): Promise<void> {
    await Promise.all(this.#peers.map((p) => this.refresh(p.trustDomain)));
  }

  /** Fetches one peer's bundle now and re-arms its timer. */
  async refresh(trustDomain: string): Promise<void> {
    const peer = this.#peers.find((p) => p.trustDomain === trustDomain);
    if (!peer || this.#closed) return;
    this.#timers.get(trustDomain)?.();
    let next = RETRY_MS;
    try {
      const text = await fetchText(peer.url, peer.caPem);
      const b = parseBundleDocument(peer.trustDomain, text, this.#clock.now());
      const old = this.#bundles.get(peer.trustDomain);
      this.#bundles.set(peer.trustDomain, b);
      if (
        !old ||
        !old.x509Der.equals(b.x509Der) ||
        JSON.stringify(old.jwks) !== JSON.stringify(b.jwks)
      ) {
        this.#version++;
        this.#logger.info(
          { trustDomain: peer.trustDomain, sequence: b.sequence },
          'federated bundle updated',
        );
        this.emit('change');
      }
      const hint = b.refreshHintSeconds ? b.refreshHintSeconds * 1000 : DEFAULT_REFRESH_MS;
      next = Math.min(MAX_REFRESH_MS, Math.max(MIN_REFRESH_MS, hint));
    } catch (err) {
      this.#logger.warn(
        { trustDomain: peer.trustDomain, reason: (err as Error).message },
        'federated bundle fetch failed',
      );
    }
    if (this.#closed) return;
    this.#timers.set(
      trustDomain,
      this.#clock.setTimeout(() => void this.refresh(trustDomain), next),
    );
  }

  close(): void {
    this.#closed = true;
    for (const cancel of this.#timers.values()) cancel();
    this.#timers.clear();
  }
}

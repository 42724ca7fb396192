import { X509Certificate, createPublicKey, type JsonWebKey } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { request } from 'node:https';
import type { Logger } from '@precinct/runtime';
import { SpiffeBundle, SpiffeError, TrustDomain } from '@precinct/spiffe';
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

// The own bundle document, rebuilt only when the published keys (or the hint) changed.
const ownDocuments = new WeakMap<KeyManager, { version: number; hint: number; text: string }>();

/**
 * The trust domain's own bundle in the SPIFFE bundle format (JSON text), written by the SDK's
 * `SpiffeBundle`, so what this server publishes is what the SDK (and its peers) parse.
 */
export function bundleDocument(keys: KeyManager, refreshHintSeconds: number): string {
  const cached = ownDocuments.get(keys);
  if (cached && cached.version === keys.version && cached.hint === refreshHintSeconds)
    return cached.text;
  const bundle = new SpiffeBundle(TrustDomain.parse(keys.trustDomain), {
    x509Authorities: keys.x509BundleCerts().map((der) => new X509Certificate(der)),
    jwtAuthorities: new Map(
      keys.jwks().keys.map((k) => [k.kid, createPublicKey({ key: jwkMaterial(k), format: 'jwk' })]),
    ),
    refreshHint: refreshHintSeconds,
    sequenceNumber: keys.version,
  });
  const text = bundle.marshal();
  ownDocuments.set(keys, { version: keys.version, hint: refreshHintSeconds, text });
  return text;
}

function jwkMaterial(k: object): JsonWebKey {
  const { kid: _kid, alg: _alg, use: _use, ...material } = k as Record<string, unknown>;
  return material as JsonWebKey;
}

/** A peer trust domain's bundle, parsed and checked. */
export interface FederatedBundle {
  trustDomain: string;
  /** As the SDK parsed it: what JWT-SVIDs of that trust domain are validated against. */
  bundle: SpiffeBundle;
  /** Concatenated DER of its X.509 authorities (the Workload API's federated bundle). */
  x509Der: Buffer;
  /** Its JWT authorities as a JWK Set document (the Workload API's JWT bundle). */
  jwtBundleJson: string;
  sequence: number | undefined;
  refreshHintSeconds: number | undefined;
  fetchedAt: number;
}

const MAX_BUNDLE_BYTES = 1 << 20;
const MAX_KEYS = 256;

/**
 * Parses a peer's SPIFFE bundle document with the SDK's `SpiffeBundle.parse`, after checks
 * stricter than the spec's "ignore what you do not understand": an authority entry the SDK
 * would skip (an x509-svid key without exactly one certificate, a jwt-svid key without a kid)
 * means the peer's bundle is not what it meant to publish, so the whole document is refused
 * and the last good bundle stays in use. Throws ERR_BUNDLE_INVALID.
 */
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
  for (const k of doc.keys) {
    if (typeof k !== 'object' || k === null || typeof k.kty !== 'string')
      throw bad('a key without kty');
    if (k.use === 'x509-svid') {
      if (!Array.isArray(k.x5c) || k.x5c.length !== 1 || typeof k.x5c[0] !== 'string') {
        throw bad('an x509-svid key must have exactly one x5c certificate');
      }
    } else if (k.use === 'jwt-svid') {
      if (typeof k.kid !== 'string' || k.kid.length === 0)
        throw bad('a jwt-svid key must have a kid');
    }
  }
  let bundle: SpiffeBundle;
  try {
    bundle = SpiffeBundle.parse(trustDomain, text);
  } catch (err) {
    throw bad(err instanceof SpiffeError ? err.message : 'not a SPIFFE bundle');
  }
  const certs = bundle.x509.x509Authorities();
  if (certs.some((c) => !c.ca)) throw bad('an x509-svid key has a non-CA certificate');
  const hint =
    bundle.refreshHint !== undefined && bundle.refreshHint > 0 ? bundle.refreshHint : undefined;
  return {
    trustDomain,
    bundle,
    x509Der: Buffer.concat(certs.map((c) => c.raw)),
    jwtBundleJson: bundle.jwt.marshal(),
    sequence: bundle.sequenceNumber,
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
      if (!old || !old.x509Der.equals(b.x509Der) || old.jwtBundleJson !== b.jwtBundleJson) {
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

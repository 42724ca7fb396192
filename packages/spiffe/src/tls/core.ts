// The TLS helpers' only contact points with the SDK core: every SPIFFE decision (ID parsing,
// X.509-SVID verification against the peer trust domain's bundle) is the core's.
import { SpiffeId, TrustDomain, toSpiffeId, toTrustDomain } from '../spiffeid/id.js';
import { verifyX509Svid, type X509Svid, type X509SvidSource } from '../svid/x509svid.js';
import type { X509Bundle, X509BundleSource } from '../bundle/x509bundle.js';
import { X509BundleSet } from '../bundle/set.js';
import { toPem } from '../bundle/der.js';

export { SpiffeId, TrustDomain };
export type X509SvidLike = X509Svid;
export type X509SvidSourceLike = X509SvidSource;
export type X509BundleSourceLike = X509BundleSource;

export function parseSpiffeId(s: string): SpiffeId {
  return toSpiffeId(s);
}

export function parseTrustDomain(s: string): TrustDomain {
  return toTrustDomain(s);
}

/** Runs the core's X.509-SVID verification; the verified chain is returned as DER. */
export function verifyPeerChain(
  chain: Buffer[],
  bundleSource: X509BundleSource,
): { id: SpiffeId; verifiedChain: Buffer[] } {
  const { id, verifiedChain } = verifyX509Svid(chain, bundleSource);
  return { id, verifiedChain: verifiedChain.map((c) => c.raw) };
}

const material = new WeakMap<X509Svid, { certPem: string; keyPem: string }>();

/** PEM chain and key of an SVID, computed once per SVID object. */
export function svidKeyMaterial(svid: X509Svid): { certPem: string; keyPem: string } {
  let m = material.get(svid);
  if (!m) {
    const { certs, key } = svid.marshal();
    m = { certPem: certs, keyPem: key };
    material.set(svid, m);
  }
  return m;
}

/** A bundle's revision (0 for bundle-like objects without one, e.g. from another copy). */
export function revisionOf(bundle: object): number {
  const r = (bundle as { revision?: unknown }).revision;
  return typeof r === 'number' ? r : 0;
}

/** Bundle sources that can list their bundles (sets, and the Workload API sources). */
interface Enumerable {
  getX509Bundles?(): X509Bundle[];
}

const anchorsCache = new WeakMap<object, { revision: number; pem: string }>();
// Per source: the bundle objects of the last call and their joined PEM, so an unchanged set
// yields the very same string (callers compare it with === on every new connection).
const unionCache = new WeakMap<
  object,
  { bundles: readonly X509Bundle[]; revisions: number[]; pem: string }
>();

/** True when the source can list its bundles (and so its trust anchors). */
export function canListBundles(source: X509BundleSource): boolean {
  return (
    source instanceof X509BundleSet ||
    typeof (source as Enumerable).getX509Bundles === 'function' ||
    typeof (source as X509Bundle).x509Authorities === 'function'
  );
}

/**
 * The union of every trust anchor a bundle source holds, as PEM. Clients hand it to OpenSSL
 * as a pre-filter (Node calls `checkServerIdentity` only after OpenSSL accepted the chain);
 * servers advertise its subjects as the acceptable client CAs. The SPIFFE verdict is always
 * the core's, per trust domain. Cached per bundle object.
 */
export function trustAnchorsPem(source: X509BundleSource): string {
  let bundles: X509Bundle[];
  if (source instanceof X509BundleSet) bundles = source.bundleList();
  else if (typeof (source as Enumerable).getX509Bundles === 'function') {
    bundles = (source as Enumerable).getX509Bundles!();
  } else if (typeof (source as X509Bundle).x509Authorities === 'function') {
    bundles = [source as X509Bundle];
  } else {
    throw new TypeError(
      'tls: the bundle source must list its bundles (X509Bundle, X509BundleSet, X509Source, BundleSource)',
    );
  }
  const last = unionCache.get(source);
  const revisions = bundles.map(revisionOf);
  if (
    last &&
    last.bundles.length === bundles.length &&
    last.bundles.every((b, i) => b === bundles[i] && last.revisions[i] === revisions[i])
  ) {
    return last.pem;
  }
  const union = bundles
    .map((b, i) => {
      let cached = anchorsCache.get(b);
      if (cached === undefined || cached.revision !== revisions[i]) {
        const pem = b
          .x509Authorities()
          .map((c) => toPem(c))
          .join('');
        anchorsCache.set(b, (cached = { revision: revisions[i]!, pem }));
      }
      return cached.pem;
    })
    .join('');
  unionCache.set(source, { bundles: [...bundles], revisions, pem: union });
  return union;
}

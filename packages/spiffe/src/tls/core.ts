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

/** Bundle sources that can list their bundles (sets, and the Workload API sources). */
interface Enumerable {
  getX509Bundles?(): X509Bundle[];
}

const anchorsCache = new WeakMap<object, string>();

/**
 * The union of every trust anchor a bundle source holds, as PEM: only OpenSSL's pre-filter
 * for client connections (Node calls `checkServerIdentity` only after OpenSSL accepted the
 * chain); the SPIFFE verdict is the core's, per trust domain. Cached per bundle object.
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
  return bundles
    .map((b) => {
      let pem = anchorsCache.get(b);
      if (pem === undefined) {
        pem = b
          .x509Authorities()
          .map((c) => toPem(c))
          .join('');
        anchorsCache.set(b, pem);
      }
      return pem;
    })
    .join('');
}

import { SpiffeError } from '../errors.js';
import type { TrustDomain } from '../spiffeid/id.js';
import type { X509Bundle, X509BundleSource } from './x509bundle.js';
import type { JwtBundle, JwtBundleSource } from './jwtbundle.js';

/** Bundles of several trust domains, each kept apart: a lookup never merges them. */
class Set_<B extends { trustDomain: TrustDomain }> {
  protected readonly bundles = new Map<string, B>();
  constructor(bundles: B[] = []) {
    for (const b of bundles) this.add(b);
  }
  add(b: B): void {
    this.bundles.set(b.trustDomain.name, b);
  }
  remove(td: TrustDomain): void {
    this.bundles.delete(td.name);
  }
  has(td: TrustDomain): boolean {
    return this.bundles.has(td.name);
  }
  get(td: TrustDomain): B | undefined {
    return this.bundles.get(td.name);
  }
  bundleList(): B[] {
    return [...this.bundles.values()].sort((a, b) =>
      a.trustDomain.name < b.trustDomain.name ? -1 : 1,
    );
  }
  get size(): number {
    return this.bundles.size;
  }
  protected require(td: TrustDomain, kind: string): B {
    const b = this.bundles.get(td.name);
    if (!b) {
      throw new SpiffeError(
        'ERR_BUNDLE_NOT_FOUND',
        `${kind}: no ${kind === 'x509bundle' ? 'X.509' : 'JWT'} bundle for trust domain "${td.name}"`,
      );
    }
    return b;
  }
}

export class X509BundleSet extends Set_<X509Bundle> implements X509BundleSource {
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    return this.require(td, 'x509bundle');
  }
}

export class JwtBundleSet extends Set_<JwtBundle> implements JwtBundleSource {
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    return this.require(td, 'jwtbundle');
  }
}

import type { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SpiffeError } from '../errors.js';
import { toTrustDomain, type TrustDomain } from '../spiffeid/id.js';
import { parseCertificates, toPem } from './der.js';

/** Gives the X.509 bundle of a trust domain; throws SpiffeError when it has none. */
export interface X509BundleSource {
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle;
}

/** The X.509 authorities (root CAs) of one trust domain. */
export class X509Bundle implements X509BundleSource {
  private authorities: X509Certificate[];
  #revision = 0;

  constructor(
    readonly trustDomain: TrustDomain,
    authorities: X509Certificate[] = [],
  ) {
    this.authorities = [...authorities];
  }

  /** Parses concatenated PEM or DER certificates. An empty input is an empty bundle. */
  static parse(td: TrustDomain | string, data: Buffer | string): X509Bundle {
    const t = toTrustDomain(td);
    if ((typeof data === 'string' ? data.trim() : data).length === 0) return new X509Bundle(t);
    return new X509Bundle(t, parseCertificates(data, 'x509bundle'));
  }

  static load(td: TrustDomain | string, path: string): X509Bundle {
    return X509Bundle.parse(td, readFileSync(path));
  }

  x509Authorities(): X509Certificate[] {
    return [...this.authorities];
  }

  hasX509Authority(cert: X509Certificate): boolean {
    return this.authorities.some((a) => a.raw.equals(cert.raw));
  }

  addX509Authority(cert: X509Certificate): void {
    if (this.hasX509Authority(cert)) return;
    this.authorities.push(cert);
    this.#revision++;
  }

  removeX509Authority(cert: X509Certificate): void {
    const before = this.authorities.length;
    this.authorities = this.authorities.filter((a) => !a.raw.equals(cert.raw));
    if (this.authorities.length !== before) this.#revision++;
  }

  /**
   * Changes whenever an authority is added or removed, so caches keyed by this bundle
   * (TLS verdicts, trust-anchor PEM) notice an in-place change.
   */
  get revision(): number {
    return this.#revision;
  }

  get empty(): boolean {
    return this.authorities.length === 0;
  }

  /** PEM of every authority, concatenated. */
  marshal(): string {
    return this.authorities.map((a) => toPem(a)).join('');
  }

  equals(other: X509Bundle): boolean {
    return (
      this.trustDomain.equals(other.trustDomain) &&
      this.authorities.length === other.authorities.length &&
      this.authorities.every((a, i) => a.raw.equals(other.authorities[i]!.raw))
    );
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    if (!td.equals(this.trustDomain)) {
      throw new SpiffeError(
        'ERR_BUNDLE_NOT_FOUND',
        `x509bundle: no X.509 bundle found for trust domain "${td.name}"`,
      );
    }
    return this;
  }
}

// Static and mutable sources for TLS tests, built from the test CA's output with the core.
import { X509Svid } from '../../src/svid/x509svid.js';
import { X509Bundle } from '../../src/bundle/x509bundle.js';
import { X509BundleSet } from '../../src/bundle/set.js';
import { SpiffeError } from '../../src/errors.js';
import type { IssuedSvid, TestCa } from './ca.js';

/** An X509SvidSource whose SVID the test swaps (rotation) or withdraws (`fail()`). */
export class MutableSvidSource {
  #svid: X509Svid | undefined;
  constructor(issued: IssuedSvid) {
    this.set(issued);
  }
  set(issued: IssuedSvid): void {
    this.#svid = X509Svid.parse(Buffer.concat(issued.chainDer), issued.keyDer);
  }
  fail(): void {
    this.#svid = undefined;
  }
  getX509Svid(): X509Svid {
    if (!this.#svid) throw new SpiffeError('ERR_SOURCE_NO_SVID', 'test: no SVID');
    return this.#svid;
  }
}

/** An X509BundleSet with the roots of the given CAs (CAs of one trust domain are merged). */
export function staticBundleSource(cas: TestCa[]): X509BundleSet {
  const byTd = new Map<string, Buffer[]>();
  for (const ca of cas)
    byTd.set(ca.trustDomain, [...(byTd.get(ca.trustDomain) ?? []), ca.bundleDer()]);
  return new X509BundleSet(
    [...byTd].map(([td, ders]) => X509Bundle.parse(td, Buffer.concat(ders))),
  );
}

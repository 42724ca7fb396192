// Workload API responses to SDK types. A response in which a mandatory field has its default
// value, or whose content does not parse, is refused as a whole with
// ERR_WORKLOADAPI_INVALID_RESPONSE (Workload API 4.5): the caller keeps the last good one.
import { SpiffeError } from '../errors.js';
import { toTrustDomain, type TrustDomain } from '../spiffeid/id.js';
import { X509Svid, verifyX509Svid } from '../svid/x509svid.js';
import { parseInsecure, type JwtSvid } from '../svid/jwtsvid.js';
import { X509Bundle } from '../bundle/x509bundle.js';
import { JwtBundle } from '../bundle/jwtbundle.js';
import { X509BundleSet, JwtBundleSet } from '../bundle/set.js';
import type {
  RawJwtBundlesResponse,
  RawJwtSvidResponse,
  RawValidateJwtSvidResponse,
  RawX509BundlesResponse,
  RawX509SvidResponse,
} from './proto.js';

export type X509SvidLike = X509Svid;
export type X509BundleLike = X509Bundle;
export type X509BundleSetLike = X509BundleSet;
export type JwtBundleLike = JwtBundle;
export type JwtBundleSetLike = JwtBundleSet;
export type JwtSvidLike = JwtSvid;
export type TrustDomainLike = TrustDomain;

/** One X509SVIDResponse: the SVIDs (default first) and every trusted X.509 bundle. */
export interface X509Context {
  svids: X509Svid[];
  bundles: X509BundleSet;
}

function invalid(message: string, cause?: unknown): SpiffeError {
  return new SpiffeError(
    'ERR_WORKLOADAPI_INVALID_RESPONSE',
    `workloadapi: invalid response: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw invalid(`${what}: ${(err as Error).message}`, err);
  }
}

function x509Bundle(td: string, der: Buffer, what: string): X509Bundle {
  if (!der || der.length === 0) throw invalid(`${what} is empty`);
  const b = guard(what, () => X509Bundle.parse(td, der));
  if (b.empty) throw invalid(`${what} has no certificates`);
  return b;
}

export function x509ContextFromResponse(raw: RawX509SvidResponse): X509Context {
  if (!raw.svids || raw.svids.length === 0) throw invalid('no SVIDs');
  const bundles = new X509BundleSet();
  const svids = raw.svids.map((s, i) => {
    const what = `svids[${i}]`;
    if (!s.spiffe_id) throw invalid(`${what}.spiffe_id is empty`);
    if (!s.x509_svid?.length) throw invalid(`${what}.x509_svid is empty`);
    if (!s.x509_svid_key?.length) throw invalid(`${what}.x509_svid_key is empty`);
    const svid = guard(what, () =>
      X509Svid.parse(s.x509_svid, s.x509_svid_key, s.hint || undefined),
    );
    if (svid.id.toString() !== s.spiffe_id) {
      throw invalid(`${what}.spiffe_id does not match the certificate's SPIFFE ID`);
    }
    const bundle = x509Bundle(svid.id.trustDomain.name, s.bundle, `${what}.bundle`);
    if (!bundles.has(bundle.trustDomain)) bundles.add(bundle);
    return svid;
  });
  for (const [key, der] of Object.entries(raw.federated_bundles ?? {})) {
    const td = guard(`federated bundle key "${key}"`, () => toTrustDomain(key));
    if (bundles.has(td)) continue;
    bundles.add(x509Bundle(td.name, der, `federated bundle "${key}"`));
  }
  // Hardening, beyond what the spec asks of clients: an SVID that does not verify against
  // the bundle of its own trust domain in the same response (bad signature, expired, CA leaf,
  // foreign chain) would only fail every peer later; refuse the response instead.
  for (const [i, svid] of svids.entries()) {
    guard(`svids[${i}] does not verify against its bundle`, () =>
      verifyX509Svid(svid.certificates, bundles),
    );
  }
  return { svids, bundles };
}

function bundleEntries<T>(
  map: Record<string, Buffer> | undefined,
  parse: (td: TrustDomain, data: Buffer, what: string) => T,
): T[] {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) throw invalid('no bundles');
  return entries.map(([key, data]) => {
    const what = `bundle "${key}"`;
    const td = guard(`${what} key`, () => toTrustDomain(key));
    if (!data || data.length === 0) throw invalid(`${what} is empty`);
    return parse(td, data, what);
  });
}

export function x509BundlesFromResponse(raw: RawX509BundlesResponse): X509BundleSet {
  return new X509BundleSet(
    bundleEntries(raw.bundles, (td, der, what) => x509Bundle(td.name, der, what)),
  );
}

export function jwtBundlesFromResponse(raw: RawJwtBundlesResponse): JwtBundleSet {
  return new JwtBundleSet(
    bundleEntries(raw.bundles, (td, json, what) => guard(what, () => JwtBundle.parse(td, json))),
  );
}

export function jwtSvidsFromResponse(raw: RawJwtSvidResponse, audience: string[]): JwtSvid[] {
  if (!raw.svids || raw.svids.length === 0) throw invalid('no JWT-SVIDs');
  return raw.svids.map((s, i) => {
    const what = `svids[${i}]`;
    if (!s.spiffe_id) throw invalid(`${what}.spiffe_id is empty`);
    if (!s.svid) throw invalid(`${what}.svid is empty`);
    // The Workload API is trusted: structure, subject, exp and audience are checked, the
    // signature is not (as go-spiffe does).
    const svid = guard(what, () => parseInsecure(s.svid, audience));
    if (svid.id.toString() !== s.spiffe_id) {
      throw invalid(`${what}.spiffe_id does not match the token's subject`);
    }
    return s.hint ? { ...svid, hint: s.hint } : svid;
  });
}

export function validatedJwtSvidFromResponse(
  raw: RawValidateJwtSvidResponse,
  token: string,
): JwtSvid {
  if (!raw.spiffe_id) throw invalid('spiffe_id is empty');
  const aud = structuredAudience(token);
  const svid = guard('token', () => parseInsecure(token, aud));
  if (svid.id.toString() !== raw.spiffe_id) throw invalid('spiffe_id does not match the token');
  return svid;
}

function structuredAudience(token: string): string[] {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as {
      aud?: unknown;
    };
    const aud = payload.aud;
    const list = Array.isArray(aud) ? aud.filter((a) => typeof a === 'string') : [aud];
    return list.filter((a): a is string => typeof a === 'string' && a !== '');
  } catch {
    return [];
  }
}

export function svidExpiresAt(svid: X509Svid): Date {
  return svid.expiresAt;
}

/** The bundle of `td` from a set; throws the set's SpiffeError when there is none. */
export function bundleForTrustDomain<B>(
  set: {
    getX509BundleForTrustDomain?(td: TrustDomain): B;
    getJwtBundleForTrustDomain?(td: TrustDomain): B;
  },
  td: TrustDomain | string,
): B {
  const t = toTrustDomain(td as TrustDomain | string);
  if (set.getX509BundleForTrustDomain) return set.getX509BundleForTrustDomain(t);
  return set.getJwtBundleForTrustDomain!(t);
}

export function x509BundleSetEntries(set: X509BundleSet): X509Bundle[] {
  return set.bundleList();
}

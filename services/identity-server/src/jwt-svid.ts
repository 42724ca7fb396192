import { SignJWT } from 'jose';
import {
  JwtBundle,
  SpiffeError,
  parseAndValidateJwtSvid,
  type JwtBundleSource,
  type SpiffeErrorCode,
} from '@precinct/spiffe';
import type { KeyManager } from './authority.js';

/** A signed JWT-SVID. */
export interface SignedJwtSvid {
  token: string;
  expiresAt: number;
}

/**
 * Signs a JWT-SVID (ES256, `kid` of the active key, `typ` JWT): `sub` the SPIFFE ID, `aud` the
 * requested audiences, `exp` no later than the signing key's own expiry, `iss` when the server
 * has an OIDC issuer URL.
 */
export async function signJwtSvid(
  keys: KeyManager,
  p: { spiffeId: string; audience: string[]; ttlSeconds: number; now: number; issuer?: string },
): Promise<SignedJwtSvid> {
  const key = keys.activeJwtAuthority();
  const iat = Math.floor(p.now / 1000);
  const exp = Math.min(iat + p.ttlSeconds, Math.floor(key.notAfter / 1000));
  let jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setSubject(p.spiffeId)
    .setAudience(p.audience)
    .setIssuedAt(iat)
    .setExpirationTime(exp);
  if (p.issuer) jwt = jwt.setIssuer(p.issuer);
  return { token: await jwt.sign(key.privateKey), expiresAt: exp * 1000 };
}

/** Why a JWT-SVID was refused (a bounded label for logs and metrics). */
export type JwtSvidRejection =
  'malformed' | 'signature' | 'expired' | 'audience' | 'subject' | 'key' | 'alg';

/**
 * What this server accepts: it signs ES256 itself; RS256 is what SPIRE and other issuers of
 * federated trust domains sign with by default. The SDK's allow-list narrows the spec's nine.
 */
const ALGORITHMS = ['ES256', 'RS256'];

const REJECTION: Partial<Record<SpiffeErrorCode, JwtSvidRejection>> = {
  ERR_JWTSVID_SIGNATURE: 'signature',
  ERR_JWTSVID_EXPIRED: 'expired',
  ERR_JWTSVID_AUDIENCE: 'audience',
  ERR_JWTSVID_SUB: 'subject',
  ERR_JWTSVID_NO_BUNDLE: 'key',
  ERR_JWTSVID_KID: 'key',
  ERR_JWTSVID_ALG: 'alg',
  ERR_JWTSVID_ALG_KEY_MISMATCH: 'alg',
};

// The own trust domain's JWT bundle, rebuilt only when the published keys changed.
const ownBundles = new WeakMap<KeyManager, { version: number; bundle: JwtBundle }>();
function ownJwtBundle(keys: KeyManager): JwtBundle {
  const cached = ownBundles.get(keys);
  if (cached && cached.version === keys.version) return cached.bundle;
  const bundle = JwtBundle.parse(keys.trustDomain, JSON.stringify(keys.jwks()));
  ownBundles.set(keys, { version: keys.version, bundle });
  return bundle;
}

/**
 * Validates a JWT-SVID with the SDK's rules (`parseAndValidateJwtSvid`) against the published
 * JWT keys of its subject's trust domain: this server's own, or a federated one's
 * (`federated(td)`). ES256 and RS256 only; the audience must contain `audience`; `sub` must be
 * a workload's SPIFFE ID (not a trust domain ID).
 */
export function validateJwtSvid(
  keys: KeyManager,
  token: string,
  audience: string,
  now: number,
  federated: (trustDomain: string) => JwtBundle | undefined = () => undefined,
):
  | { ok: true; spiffeId: string; claims: Record<string, unknown> }
  | { ok: false; reason: JwtSvidRejection } {
  const bundles: JwtBundleSource = {
    getJwtBundleForTrustDomain(td) {
      const b = td.name === keys.trustDomain ? ownJwtBundle(keys) : federated(td.name);
      if (!b) throw new SpiffeError('ERR_BUNDLE_NOT_FOUND', `no JWT bundle for ${td.name}`);
      return b;
    },
  };
  try {
    const svid = parseAndValidateJwtSvid(token, bundles, [audience], {
      now: new Date(now),
      algorithms: ALGORITHMS,
    });
    if (svid.id.isTrustDomainId()) return { ok: false, reason: 'subject' };
    return { ok: true, spiffeId: svid.id.toString(), claims: svid.claims };
  } catch (err) {
    const reason = err instanceof SpiffeError ? REJECTION[err.code] : undefined;
    return { ok: false, reason: reason ?? 'malformed' };
  }
}

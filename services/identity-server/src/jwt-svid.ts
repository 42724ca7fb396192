import {
  SignJWT,
  createLocalJWKSet,
  decodeJwt,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
} from 'jose';
import type { KeyManager } from './authority.js';
import { parseSpiffeId } from './spiffe-id.js';

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
 * Validates a JWT-SVID against the published JWT keys of its subject's trust domain: this
 * server's own, or a federated one's (`federated(td)`). ES256 and RS256 only; the audience must
 * contain `audience`; `sub` must be a SPIFFE ID (not a trust domain ID).
 */
export async function validateJwtSvid(
  keys: KeyManager,
  token: string,
  audience: string,
  now: number,
  federated: (trustDomain: string) => JSONWebKeySet | undefined = () => undefined,
): Promise<
  { ok: true; spiffeId: string; claims: JWTPayload } | { ok: false; reason: JwtSvidRejection }
> {
  if (token.length > 16_384) return { ok: false, reason: 'malformed' };
  // The unverified subject only picks which trust domain's keys to verify with; the
  // verified subject must name that same trust domain.
  let td: string;
  try {
    const sub = parseSpiffeId(decodeJwt(token).sub ?? '');
    if (!sub.path) return { ok: false, reason: 'subject' };
    td = sub.trustDomain;
  } catch {
    return { ok: false, reason: 'subject' };
  }
  const jwks = td === keys.trustDomain ? (keys.jwks() as JSONWebKeySet) : federated(td);
  if (!jwks) return { ok: false, reason: 'key' };
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
      audience,
      algorithms: ['ES256', 'RS256'],
      currentDate: new Date(now),
      requiredClaims: ['sub', 'exp', 'aud'],
    });
    const id = parseSpiffeId(payload.sub!);
    if (id.trustDomain !== td) return { ok: false, reason: 'subject' };
    return { ok: true, spiffeId: id.id, claims: payload };
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) return { ok: false, reason: 'expired' };
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      return { ok: false, reason: err.claim === 'aud' ? 'audience' : 'malformed' };
    }
    if (err instanceof joseErrors.JWKSNoMatchingKey) return { ok: false, reason: 'key' };
    if (err instanceof joseErrors.JOSEAlgNotAllowed) return { ok: false, reason: 'alg' };
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
      return { ok: false, reason: 'signature' };
    }
    return { ok: false, reason: 'malformed' };
  }
}

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomUUID,
  type KeyObject,
} from 'node:crypto';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, exportJWK, jwtVerify, type JWK } from 'jose';

/** The RS256 key that signs ServiceAccount tokens, with its Kubernetes-style key id. */
export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** base64url(SHA-256(PKIX DER of the public key)), the way kube-apiserver derives `kid`. */
  kid: string;
  privatePem: string;
}

export function generateSigningKey(): SigningKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return signingKeyFromPem(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
}

export function signingKeyFromPem(pem: string): SigningKey {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'rsa') throw new Error('signing key must be RSA');
  const publicKey = createPublicKey(privateKey);
  const der = publicKey.export({ format: 'der', type: 'spki' });
  const kid = createHash('sha256').update(der).digest('base64url');
  return { privateKey, publicKey, kid, privatePem: pem };
}

/** The public JWKS document served at /openid/v1/jwks. */
export async function jwks(key: SigningKey): Promise<{ keys: JWK[] }> {
  const jwk = await exportJWK(key.publicKey);
  return { keys: [{ use: 'sig', kty: 'RSA', kid: key.kid, alg: 'RS256', n: jwk.n, e: jwk.e }] };
}

export interface BoundObject {
  kind: 'Pod' | 'Secret' | 'Node';
  name: string;
  uid?: string;
}

export interface IssueTokenOptions {
  issuer: string;
  audiences: string[];
  namespace: string;
  serviceAccount: { name: string; uid: string };
  expirationSeconds: number;
  boundObject?: BoundObject;
  now?: Date;
}

/** Claims of a projected ServiceAccount token, as kube-apiserver writes them. */
export interface ServiceAccountClaims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: { name: string; uid: string };
    pod?: { name: string; uid?: string };
    secret?: { name: string; uid?: string };
    node?: { name: string; uid?: string };
  };
}

/** Signs a token shaped like a real cluster's projected ServiceAccount token. */
export async function issueToken(
  key: SigningKey,
  o: IssueTokenOptions,
): Promise<{ token: string; expiresAt: Date; claims: ServiceAccountClaims }> {
  const iat = Math.floor((o.now ?? new Date()).getTime() / 1000);
  const exp = iat + o.expirationSeconds;
  const bound = o.boundObject;
  const ref = bound ? { name: bound.name, ...(bound.uid ? { uid: bound.uid } : {}) } : undefined;
  const claims: ServiceAccountClaims = {
    aud: o.audiences,
    exp,
    iat,
    iss: o.issuer,
    jti: randomUUID(),
    'kubernetes.io': {
      namespace: o.namespace,
      ...(bound?.kind === 'Node' ? { node: ref } : {}),
      ...(bound?.kind === 'Pod' ? { pod: ref } : {}),
      ...(bound?.kind === 'Secret' ? { secret: ref } : {}),
      serviceaccount: { name: o.serviceAccount.name, uid: o.serviceAccount.uid },
    },
    nbf: iat,
    sub: `system:serviceaccount:${o.namespace}:${o.serviceAccount.name}`,
  };
  const token = await new SignJWT(claims as unknown as Record<string, unknown>)
    .setProtectedHeader({ alg: 'RS256', kid: key.kid })
    .sign(key.privateKey);
  return { token, expiresAt: new Date(exp * 1000), claims };
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** go-jose's default leeway for exp, nbf and iat. */
const CLOCK_LEEWAY_SECONDS = 60;

/** Tokens larger than this are rejected before any crypto. */
export const MAX_TOKEN_BYTES = 16 * 1024;

/**
 * Verifies signature, algorithm, issuer, time claims and shape. Audience and the
 * ServiceAccount's existence are the caller's business. Throws on any failure.
 */
export async function verifyToken(key: SigningKey, token: string, issuer: string) {
  if (token.length > MAX_TOKEN_BYTES) throw new Error('token too large');
  // Compact JWS segments are unpadded base64url (RFC 7515): '=' padding or other characters
  // are refused, as go-jose refuses them, even where a lenient decoder would yield the same bytes.
  if (!COMPACT_JWS.test(token)) throw new Error('malformed token');
  const header = decodeProtectedHeader(token);
  if (header.kid !== undefined && header.kid !== key.kid) throw new Error('unknown kid');
  const { payload } = await jwtVerify(token, key.publicKey, {
    issuer,
    algorithms: ['RS256'],
    clockTolerance: CLOCK_LEEWAY_SECONDS,
    requiredClaims: ['exp', 'iat', 'sub'],
  });
  // jose checks iat only against a maximum age; kube-apiserver refuses a token issued in the
  // future beyond the same leeway it grants exp and nbf.
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.iat !== 'number' || payload.iat > now + CLOCK_LEEWAY_SECONDS)
    throw new Error('token issued in the future');
  const k = payload['kubernetes.io'] as ServiceAccountClaims['kubernetes.io'] | undefined;
  const sa = k?.serviceaccount;
  if (
    !k ||
    typeof k.namespace !== 'string' ||
    typeof sa?.name !== 'string' ||
    typeof sa.uid !== 'string' ||
    payload.sub !== `system:serviceaccount:${k.namespace}:${sa.name}`
  ) {
    throw new Error('not a ServiceAccount token');
  }
  const aud = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
  return { claims: payload as unknown as ServiceAccountClaims, audiences: aud };
}

import 'reflect-metadata';
import {
  KeyObject,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  type webcrypto,
} from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { IdentityServerError } from './errors.js';
import {
  ALGS,
  backdate,
  generateKeyPair,
  serial,
  subtle,
  type CryptoKey,
  type KeyType,
} from './keys.js';

// The trust domain's signing authorities: X.509 CAs (self-signed, or intermediates under an
// upstream root) and JWT-SVID keys, made, loaded from PEM, and described once for signing.

/** One X.509 signing authority (a CA certificate and its key). */
export interface X509Authority {
  readonly cert: x509.X509Certificate;
  readonly der: Buffer;
  readonly privateKey: CryptoKey;
  readonly keyType: KeyType;
  readonly notBefore: number;
  readonly notAfter: number;
  /** Authority key identifier extension for leaves, DER, computed once. */
  readonly akiDer: Buffer;
  readonly subjectDer: Buffer;
  /** The AlgorithmIdentifier this CA signs with, DER. */
  readonly sigAlgDer: Buffer;
  readonly signingKey: KeyObject;
  /** Certificates sent after the leaf: the intermediate itself under an upstream CA. */
  readonly chainDer: Buffer[];
}

/** One JWT-SVID signing key (ES256). */
export interface JwtAuthority {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: webcrypto.JsonWebKey & { kid: string; alg: string };
  readonly notBefore: number;
  readonly notAfter: number;
}

/** An upstream root that signs this server's CAs. */
export interface Upstream {
  cert: x509.X509Certificate;
  der: Buffer;
  key: CryptoKey;
  keyType: KeyType;
}

/**
 * Makes a CA for `trustDomain` valid from `now` (backdated) for `ttlMs`: self-signed, or an
 * intermediate signed by `upstream` (then no longer-lived than the upstream root).
 */
export async function makeCa(o: {
  trustDomain: string;
  keyType: KeyType;
  ttlMs: number;
  upstream: Upstream | undefined;
  now: number;
}): Promise<X509Authority> {
  const { trustDomain, keyType, ttlMs, now } = o;
  const keys = await generateKeyPair(keyType);
  const notBefore = now - backdate(ttlMs);
  const up = o.upstream;
  if (up) {
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `O=Precinct, CN=${trustDomain} intermediate ${new Date(now).toISOString()}`,
      issuer: up.cert.subjectName,
      notBefore: new Date(notBefore),
      notAfter: new Date(Math.min(notBefore + ttlMs, up.cert.notAfter.getTime())),
      signingAlgorithm: ALGS[up.keyType].sign,
      publicKey: keys.publicKey,
      signingKey: up.key,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        new x509.SubjectAlternativeNameExtension(
          [{ type: 'url', value: `spiffe://${trustDomain}` }],
          false,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(up.cert, false),
      ],
    });
    return authorityFromCert(cert, keys.privateKey, keyType);
  }
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=Precinct, CN=${trustDomain} CA ${new Date(now).toISOString()}`,
    notBefore: new Date(notBefore),
    notAfter: new Date(notBefore + ttlMs),
    signingAlgorithm: ALGS[keyType].sign,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      new x509.SubjectAlternativeNameExtension(
        [{ type: 'url', value: `spiffe://${trustDomain}` }],
        false,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return authorityFromCert(cert, keys.privateKey, keyType);
}

/** Makes a JWT-SVID signing key (ES256) valid from `now` (backdated) for `ttlMs`. */
export async function makeJwtKey(ttlMs: number, now: number): Promise<JwtAuthority> {
  const keys = await generateKeyPair('ec-p256');
  const kid = randomBytes(16).toString('base64url');
  const notBefore = now - backdate(ttlMs);
  return jwtAuthorityFromKey(kid, keys.privateKey, keys.publicKey, notBefore, notBefore + ttlMs);
}

/** A JWT authority from its key pair (the public JWK is exported once, here). */
export async function jwtAuthorityFromKey(
  kid: string,
  privateKey: CryptoKey,
  /** The public key, or the private key itself: only the public members are kept. */
  publicKey: CryptoKey,
  notBefore: number,
  notAfter: number,
): Promise<JwtAuthority> {
  const jwk = await subtle.exportKey('jwk', publicKey);
  return {
    kid,
    privateKey,
    publicJwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid, alg: 'ES256' },
    notBefore,
    notAfter,
  };
}

/** An X.509 authority from its certificate and key, with the DER parts leaves reuse. */
export async function authorityFromCert(
  cert: x509.X509Certificate,
  privateKey: CryptoKey,
  keyType: KeyType,
): Promise<X509Authority> {
  return {
    cert,
    der: Buffer.from(cert.rawData),
    privateKey,
    keyType,
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
    akiDer: Buffer.from((await x509.AuthorityKeyIdentifierExtension.create(cert, false)).rawData),
    subjectDer: Buffer.from(cert.subjectName.toArrayBuffer()),
    sigAlgDer: SIG_ALG_DER[keyType],
    signingKey: KeyObject.from(privateKey),
    chainDer: cert.issuer === cert.subject ? [] : [Buffer.from(cert.rawData)],
  };
}

const SIG_ALG_DER: Record<KeyType, Buffer> = {
  // ecdsa-with-SHA256 (RFC 5758: parameters absent)
  'ec-p256': Buffer.from('300a06082a8648ce3d040302', 'hex'),
  // sha256WithRSAEncryption (RFC 4055: parameters NULL)
  'rsa-2048': Buffer.from('300d06092a864886f70d01010b0500', 'hex'),
};

/** Checks and loads an upstream root (self-signed CA) and its key; throws ERR_CONFIG_INVALID. */
export async function loadUpstream(u: { certPem: string; keyPem: string }): Promise<Upstream> {
  const bad = (why: string, cause?: unknown) =>
    new IdentityServerError('ERR_CONFIG_INVALID', `upstream CA: ${why}`, { cause });
  let cert: x509.X509Certificate;
  let key: KeyObject;
  try {
    cert = new x509.X509Certificate(u.certPem);
  } catch (err) {
    throw bad('the certificate is not PEM X.509', err);
  }
  if (!cert.getExtension(x509.BasicConstraintsExtension)?.ca)
    throw bad('the certificate is not a CA');
  if (!(await cert.isSelfSigned())) throw bad('the certificate must be a self-signed root');
  try {
    key = createPrivateKey(u.keyPem);
  } catch (err) {
    throw bad('the key is not a PEM private key', err);
  }
  const keyType: KeyType | undefined =
    key.asymmetricKeyType === 'rsa'
      ? 'rsa-2048'
      : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
        ? 'ec-p256'
        : undefined;
  if (!keyType) throw bad('the key must be EC P-256 or RSA');
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!spki.equals(Buffer.from(cert.publicKey.rawData)))
    throw bad('the key does not match the certificate');
  const cryptoKey = await subtle.importKey(
    'pkcs8',
    key.export({ type: 'pkcs8', format: 'der' }),
    ALGS[keyType].gen,
    false,
    ['sign'],
  );
  return { cert, der: Buffer.from(cert.rawData), key: cryptoKey as CryptoKey, keyType };
}

import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

// Node's WebCrypto drives @peculiar/x509; passed per call so we never touch its global provider.
type Crypto = Parameters<typeof x509.cryptoProvider.set>[0];
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto as unknown as Crypto;
const subtle = webcrypto.subtle;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

/** A CA key and certificate as PEM. */
export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
}

/** A serving certificate (leaf, issued by the CA) and its key, as PEM. */
export interface ServingCertificate {
  certPem: string;
  keyPem: string;
}

// A positive serial (first byte below 0x80), 16 random bytes as RFC 5280 recommends.
function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
}

/** A new self-signed EC P-256 CA valid for ten years. */
export async function createCertificateAuthority(): Promise<CertificateAuthority> {
  const keys = (await subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name: 'CN=precinct-kube-dev-ca',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3650 * DAY),
      keys,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await pkcs8Pem(keys.privateKey) };
}

async function importCaKey(keyPem: string): Promise<CryptoKey> {
  const key: KeyObject = createPrivateKey(keyPem);
  const der = key.export({ format: 'der', type: 'pkcs8' });
  return subtle.importKey('pkcs8', der, EC, false, ['sign']);
}

/**
 * A one-year serving certificate for `hosts` (DNS names or IP literals), always including
 * localhost, 127.0.0.1 and ::1 so loopback clients of either family verify it.
 */
export async function issueServingCertificate(
  ca: CertificateAuthority,
  hosts: string[],
): Promise<ServingCertificate> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importCaKey(ca.keyPem);
  const keys = (await subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const names = new Map<string, x509.JsonGeneralName>();
  for (const h of ['localhost', '127.0.0.1', '::1', ...hosts]) {
    const host = h.replace(/^\[|\]$/g, '');
    if (!host) continue;
    names.set(host.toLowerCase(), { type: isIP(host) ? 'ip' : 'dns', value: host });
  }
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: 'CN=kube-apiserver',
      issuer: caCert.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 365 * DAY),
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension([...names.values()], false),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await pkcs8Pem(keys.privateKey) };
}

import 'reflect-metadata';
import { generateKeyPair as nodeGenerateKeyPair, randomBytes, webcrypto } from 'node:crypto';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';

// Key material of the identity server: key types and their algorithms, key generation, and
// the small encodings every certificate shares.

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const subtle = webcrypto.subtle;

/** Key algorithms for CA and workload keys. */
export type KeyType = 'ec-p256' | 'rsa-2048';

export const ALGS: Record<
  KeyType,
  { gen: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams; sign: webcrypto.Algorithm }
> = {
  'ec-p256': {
    gen: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.Algorithm,
  },
  'rsa-2048': {
    gen: {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

// Certificates start 10 s in the past so a peer whose clock lags a little still accepts them
// (SPIRE backdates by the same amount). Short test lifetimes backdate by a tenth instead.
export const backdate = (ttlMs: number) => Math.min(10_000, ttlMs / 10);

/** Generates a key pair of `type`, extractable (the Workload API hands the key to the workload). */
export function generateKeyPair(type: KeyType): Promise<CryptoKeyPair> {
  return subtle.generateKey(ALGS[type].gen, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

const genKeyPair = promisify(nodeGenerateKeyPair);

/** A workload key: the public half for the certificate, the private half as PKCS#8 DER. */
export interface WorkloadKey {
  type: KeyType;
  /** SubjectPublicKeyInfo DER (exported once: OpenSSL's export costs more than a signature). */
  spkiDer: Buffer;
  pkcs8Der: Buffer;
}

/** Generates a workload's key pair (the Workload API hands the private key to the workload). */
export async function generateWorkloadKey(type: KeyType): Promise<WorkloadKey> {
  const { publicKey, privateKey } =
    type === 'rsa-2048'
      ? await genKeyPair('rsa', { modulusLength: 2048 })
      : await genKeyPair('ec', { namedCurve: 'P-256' });
  return {
    type,
    spkiDer: publicKey.export({ type: 'spki', format: 'der' }),
    pkcs8Der: privateKey.export({ type: 'pkcs8', format: 'der' }),
  };
}

export async function pkcs8(key: CryptoKey): Promise<string> {
  return Buffer.from(await subtle.exportKey('pkcs8', key)).toString('base64');
}

/** A positive 16-byte serial number, hex, for @peculiar/x509. */
export function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  return b.toString('hex');
}

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  type KeyObject,
} from 'node:crypto';
import { AuditStoreError } from './errors.js';

/** The store's export signing key (Ed25519). */
export interface SigningKey {
  privateKey: KeyObject;
  publicKeyPem: string;
  /** `sha256:<hex>` of the public key's SPKI DER: names the key in export headers. */
  keyId: string;
}

/** From a PKCS#8 PEM private key, or a fresh (ephemeral) one. */
export function loadSigningKey(pem?: string | Buffer): SigningKey {
  const privateKey = pem ? createPrivateKey(pem) : generateKeyPairSync('ed25519').privateKey;
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new AuditStoreError(
      'ERR_CONFIG',
      'the export signing key must be an Ed25519 private key',
    );
  }
  const pub = createPublicKey(privateKey);
  const der = pub.export({ type: 'spki', format: 'der' });
  return {
    privateKey,
    publicKeyPem: pub.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: `sha256:${createHash('sha256').update(der).digest('hex')}`,
  };
}

/** Detached Ed25519 signature (base64) over the exact bytes of an export. */
export function signExport(data: Buffer, key: SigningKey): string {
  return sign(null, data, key.privateKey).toString('base64');
}

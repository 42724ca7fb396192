import { createPublicKey, verify } from 'node:crypto';
import { AuditClientError } from './errors.js';

/**
 * Checks an export offline: throws ERR_EXPORT_SIGNATURE unless `signature` (base64, the
 * `x-audit-export-signature` header) is an Ed25519 signature of exactly `data` (the NDJSON body)
 * under `publicKeyPem` (the store's `/api/v1/audit/export/public-key`).
 */
export function verifyExport(data: Buffer, signature: string, publicKeyPem: string | Buffer): void {
  let ok = false;
  try {
    const pub = createPublicKey(publicKeyPem);
    ok = verify(null, data, pub, Buffer.from(signature.trim(), 'base64'));
  } catch (err) {
    throw new AuditClientError('ERR_EXPORT_SIGNATURE', 'export signature could not be checked', {
      cause: err,
    });
  }
  if (!ok) throw new AuditClientError('ERR_EXPORT_SIGNATURE', 'export signature does not match');
}

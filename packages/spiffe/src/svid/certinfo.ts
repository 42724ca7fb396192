import 'reflect-metadata';
import { createHash, type X509Certificate } from 'node:crypto';
import * as px from '@peculiar/x509';

/** What SPIFFE validation needs from a certificate beyond what node:crypto exposes. */
export interface CertInfo {
  /** basicConstraints cA */
  ca: boolean;
  /** undefined when the certificate has no keyUsage extension */
  keyUsage: number | undefined;
  uris: string[];
  dnsNames: string[];
}

export const KeyUsage = {
  digitalSignature: px.KeyUsageFlags.digitalSignature,
  keyCertSign: px.KeyUsageFlags.keyCertSign,
  cRLSign: px.KeyUsageFlags.cRLSign,
} as const;

// node:crypto does not expose keyUsage bits or SAN entries unambiguously, so extensions are
// read with @peculiar/x509. Parsing costs tens of microseconds; TLS handshakes see the same
// few certificates again and again, so results are memoized by DER digest (bounded).
const memo = new Map<string, CertInfo>();
const MEMO_MAX = 2048;

export function certInfo(cert: X509Certificate): CertInfo {
  const key = createHash('sha256').update(cert.raw).digest('base64');
  const hit = memo.get(key);
  if (hit) return hit;
  const parsed = new px.X509Certificate(cert.raw);
  const bc = parsed.getExtension(px.BasicConstraintsExtension);
  const ku = parsed.getExtension(px.KeyUsagesExtension);
  const san = parsed.getExtension(px.SubjectAlternativeNameExtension);
  const names = san?.names.items ?? [];
  const info: CertInfo = {
    ca: bc?.ca === true,
    keyUsage: ku ? ku.usages : undefined,
    uris: names.filter((n) => n.type === 'url').map((n) => n.value),
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
  };
  if (memo.size >= MEMO_MAX) memo.delete(memo.keys().next().value!);
  memo.set(key, info);
  return info;
}

import 'reflect-metadata';
import { createHash, type X509Certificate } from 'node:crypto';
import * as px from '@peculiar/x509';

/** One name constraint subtree (RFC 5280 4.2.1.10); `other` is a type we do not process. */
export interface Subtree {
  type: 'dns' | 'uri' | 'other';
  value: string;
}

/** What SPIFFE validation needs from a certificate beyond what node:crypto exposes. */
export interface CertInfo {
  /** basicConstraints cA */
  ca: boolean;
  /** basicConstraints pathLenConstraint (undefined: no limit) */
  pathLen: number | undefined;
  /** nameConstraints, when present */
  nameConstraints: { permitted: Subtree[]; excluded: Subtree[] } | undefined;
  /** OIDs of critical extensions this library does not process (RFC 5280 4.2: reject). */
  unhandledCritical: string[];
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

const OID_NAME_CONSTRAINTS = '2.5.29.30';
// Extensions whose criticality we honour: the ones validation reads (basic constraints, key
// usage, SAN, name constraints) and those that only describe or locate things (key
// identifiers, EKU, policies, CRL distribution points, AIA), which RFC 5280 path validation
// does not need to process for a verdict.
const HANDLED = new Set([
  '2.5.29.19', // basicConstraints
  '2.5.29.15', // keyUsage
  '2.5.29.17', // subjectAltName
  OID_NAME_CONSTRAINTS,
  '2.5.29.37', // extKeyUsage
  '2.5.29.32', // certificatePolicies
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.35', // authorityKeyIdentifier
  '2.5.29.31', // cRLDistributionPoints
  '1.3.6.1.5.5.7.1.1', // authorityInfoAccess
]);

/** One DER TLV at `off`: tag byte, value bounds. Throws on truncation. */
function tlv(buf: Buffer, off: number): { tag: number; start: number; end: number } {
  if (off + 2 > buf.length) throw new Error('truncated DER');
  const tag = buf[off]!;
  let len = buf[off + 1]!;
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > buf.length) throw new Error('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  if (start + len > buf.length) throw new Error('truncated DER');
  return { tag, start, end: start + len };
}

/**
 * NameConstraints ::= SEQUENCE { permittedSubtrees [0] GeneralSubtrees OPTIONAL,
 * excludedSubtrees [1] GeneralSubtrees OPTIONAL }, GeneralSubtree ::= SEQUENCE { base
 * GeneralName, minimum [0] DEFAULT 0, maximum [1] OPTIONAL }. dNSName and URI bases are
 * kept; any other base type, or a minimum/maximum (RFC 5280 forbids them), is `other`, which
 * the verifier refuses. Unparsable input also yields `other`: fail closed.
 */
function parseNameConstraints(der: Buffer): { permitted: Subtree[]; excluded: Subtree[] } {
  const out = { permitted: [] as Subtree[], excluded: [] as Subtree[] };
  try {
    const seq = tlv(der, 0);
    if (seq.tag !== 0x30) throw new Error('not a SEQUENCE');
    for (let off = seq.start; off < seq.end;) {
      const part = tlv(der, off);
      off = part.end;
      const list = part.tag === 0xa0 ? out.permitted : part.tag === 0xa1 ? out.excluded : undefined;
      if (!list) throw new Error('unexpected field');
      for (let o = part.start; o < part.end;) {
        const sub = tlv(der, o);
        o = sub.end;
        if (sub.tag !== 0x30) throw new Error('not a GeneralSubtree');
        const base = tlv(der, sub.start);
        const value = der.subarray(base.start, base.end).toString('latin1');
        const extra = base.end < sub.end;
        const type = extra
          ? 'other'
          : base.tag === 0x82
            ? 'dns'
            : base.tag === 0x86
              ? 'uri'
              : 'other';
        list.push({ type, value });
      }
    }
  } catch {
    out.permitted.push({ type: 'other', value: '' });
  }
  return out;
}

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
  const nc = parsed.extensions.find((e) => e.type === OID_NAME_CONSTRAINTS);
  const info: CertInfo = {
    ca: bc?.ca === true,
    pathLen: bc?.ca === true ? bc.pathLength : undefined,
    nameConstraints: nc ? parseNameConstraints(Buffer.from(nc.value)) : undefined,
    unhandledCritical: parsed.extensions
      .filter((e) => e.critical && !HANDLED.has(e.type))
      .map((e) => e.type),
    keyUsage: ku ? ku.usages : undefined,
    uris: names.filter((n) => n.type === 'url').map((n) => n.value),
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
  };
  if (memo.size >= MEMO_MAX) memo.delete(memo.keys().next().value!);
  memo.set(key, info);
  return info;
}

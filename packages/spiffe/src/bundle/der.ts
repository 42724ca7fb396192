import { X509Certificate } from 'node:crypto';
import { SpiffeError } from '../errors.js';

/** Bundles and chains larger than this are refused before parsing. */
export const MAX_CERTS_INPUT_BYTES = 4 * 1024 * 1024;
const MAX_CERTS = 1000;

/**
 * Splits concatenated DER certificates. Hand-written: it only reads the outer SEQUENCE length
 * of each certificate (X.509 parsing proper is node:crypto's); no library splits DER blobs.
 */
export function splitDer(der: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < der.length) {
    if (der[i] !== 0x30) throw new Error('not a DER SEQUENCE');
    const first = der[i + 1];
    if (first === undefined) throw new Error('truncated DER');
    let len: number;
    let header: number;
    if (first < 0x80) {
      len = first;
      header = 2;
    } else {
      const n = first & 0x7f;
      if (n === 0 || n > 4) throw new Error('unsupported DER length');
      len = 0;
      for (let k = 0; k < n; k++) {
        const b = der[i + 2 + k];
        if (b === undefined) throw new Error('truncated DER');
        len = len * 256 + b;
      }
      header = 2 + n;
    }
    const end = i + header + len;
    if (end > der.length) throw new Error('truncated DER');
    out.push(der.subarray(i, end));
    if (out.length > MAX_CERTS) throw new Error('too many certificates');
    i = end;
  }
  return out;
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** The DER blocks of a PEM document with the given label. */
export function pemBlocks(text: string, label: string): Buffer[] {
  const out: Buffer[] = [];
  for (const m of text.matchAll(PEM_RE)) {
    if (m[1] === label) out.push(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'));
  }
  return out;
}

function looksLikePem(data: Buffer | string): boolean {
  const s = typeof data === 'string' ? data : data.subarray(0, 64).toString('latin1');
  return s.trimStart().startsWith('-----BEGIN');
}

/** Parses certificates given as PEM text or concatenated DER. */
export function parseCertificates(
  data: Buffer | string,
  area: 'x509bundle' | 'x509svid',
): X509Certificate[] {
  const prefix = area === 'x509bundle' ? 'ERR_X509BUNDLE' : 'ERR_X509SVID';
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  if (size > MAX_CERTS_INPUT_BYTES) {
    throw new SpiffeError(`${prefix}_TOO_LARGE`, `${area}: input larger than 4 MiB`);
  }
  let ders: Buffer[];
  try {
    ders = looksLikePem(data)
      ? pemBlocks(typeof data === 'string' ? data : data.toString('latin1'), 'CERTIFICATE')
      : splitDer(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
    return ders.map((d) => new X509Certificate(d));
  } catch (err) {
    throw new SpiffeError(`${prefix}_CERTIFICATES`, `${area}: cannot parse certificates`, {
      cause: err,
    });
  }
}

export function toPem(cert: X509Certificate | Buffer): string {
  const der = Buffer.isBuffer(cert) ? cert : cert.raw;
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`;
}

import 'reflect-metadata';
import { randomBytes, sign } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { X509Authority } from './ca.js';
import { SEQUENCE, bitString, integer, time, tlv } from './der.js';
import { backdate, type WorkloadKey } from './keys.js';

// X.509-SVIDs: the leaf certificate assembled from DER parts encoded once (per process, per
// CA, per entry), and signed with node:crypto.

/** A freshly signed X.509-SVID. */
export interface SignedX509Svid {
  /** DER certificates, leaf first (the CA is in the bundle, not the chain). */
  chainDer: Buffer[];
  notBefore: number;
  notAfter: number;
  /** The authority that signed it. */
  authority: X509Authority;
}

/** What an X.509-SVID says. */
export interface X509SvidParams {
  publicKey: Pick<WorkloadKey, 'type' | 'spkiDer'>;
  spiffeId: string;
  dnsNames?: string[];
  ttlMs: number;
}

/**
 * Signs an X.509-SVID for `publicKey`: one URI SAN, not a CA, digitalSignature (plus
 * keyEncipherment for RSA keys), serverAuth and clientAuth. Its lifetime is capped to
 * `ca`'s. Synchronous: node:crypto signs on this thread, faster than a WebCrypto
 * round-trip to the thread pool.
 */
export function signX509Svid(
  ca: X509Authority,
  params: X509SvidParams,
  now: number,
): SignedX509Svid {
  // Certificate times have whole seconds: round here so what we report (and schedule the
  // refresh by) is exactly what the certificate says.
  const notBefore = Math.max(
    Math.floor((now - backdate(params.ttlMs)) / 1000) * 1000,
    ca.notBefore,
  );
  const notAfter = Math.min(Math.ceil((now + params.ttlMs) / 1000) * 1000, ca.notAfter);
  const rsa = params.publicKey.type === 'rsa-2048';
  const dns = params.dnsNames ?? [];
  const leaf = leafTemplate(params.spiffeId, dns);
  const extensions = Buffer.concat([rsa ? LEAF_EXT.rsa : LEAF_EXT.ec, leaf.sanDer, ca.akiDer]);
  const tbs = tlv(
    SEQUENCE,
    V3,
    integer(randomSerial()),
    ca.sigAlgDer,
    ca.subjectDer,
    tlv(SEQUENCE, time(notBefore), time(notAfter)),
    leaf.subjectDer,
    params.publicKey.spkiDer,
    tlv(0xa3, tlv(SEQUENCE, extensions)),
  );
  const sig = sign('sha256', tbs, ca.signingKey);
  const der = tlv(SEQUENCE, tbs, ca.sigAlgDer, bitString(sig));
  return { chainDer: [der, ...ca.chainDer], notBefore, notAfter, authority: ca };
}

// Constant parts of every leaf, encoded once by @peculiar/x509.
const V3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);
const LEAF_SUBJECT_DER = Buffer.from(new x509.Name([{ O: ['Precinct'] }]).toArrayBuffer());
const leafExtensions = (usage: number) =>
  Buffer.concat(
    [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(usage, true),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
    ].map((e) => Buffer.from(e.rawData)),
  );
const LEAF_EXT = {
  ec: leafExtensions(x509.KeyUsageFlags.digitalSignature),
  rsa: leafExtensions(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment),
};

// Subject and SAN depend only on the entry, so they are encoded once per entry, not per SVID.
const leafTemplates = new Map<string, { sanDer: Buffer; subjectDer: Buffer }>();
function leafTemplate(spiffeId: string, dns: string[]): { sanDer: Buffer; subjectDer: Buffer } {
  const key = JSON.stringify([spiffeId, dns]);
  let t = leafTemplates.get(key);
  if (t) return t;
  const san = new x509.SubjectAlternativeNameExtension(
    [{ type: 'url', value: spiffeId }, ...dns.map((d) => ({ type: 'dns' as const, value: d }))],
    false,
  );
  t = {
    sanDer: Buffer.from(san.rawData),
    subjectDer: dns[0]
      ? Buffer.from(new x509.Name([{ O: ['Precinct'] }, { CN: [dns[0]] }]).toArrayBuffer())
      : LEAF_SUBJECT_DER,
  };
  if (leafTemplates.size >= 10_000) leafTemplates.delete(leafTemplates.keys().next().value!);
  leafTemplates.set(key, t);
  return t;
}

function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01; // positive, and 16 bytes long
  return b;
}

import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SpiffeError, type SpiffeErrorCode } from '../errors.js';
import { SpiffeId } from '../spiffeid/id.js';
import type { X509BundleSource } from '../bundle/x509bundle.js';
import { parseCertificates, pemBlocks, toPem } from '../bundle/der.js';
import { certInfo, KeyUsage, type CertInfo, type Subtree } from './certinfo.js';

/** Gives the current X.509-SVID. */
export interface X509SvidSource {
  getX509Svid(): X509Svid;
}

const MAX_CHAIN_DEPTH = 10;

function fail(code: SpiffeErrorCode, message: string, cause?: unknown): never {
  throw new SpiffeError(code, `x509svid: ${message}`, cause ? { cause } : undefined);
}

/**
 * The SPIFFE ID of a leaf certificate: exactly one URI SAN, a SPIFFE ID with a path
 * (X509-SVID spec, sections 2 and 4).
 */
export function idFromCert(cert: X509Certificate): SpiffeId {
  const { uris } = certInfo(cert);
  if (uris.length === 0) fail('ERR_X509SVID_NO_URI_SAN', 'certificate contains no URI SAN');
  if (uris.length > 1)
    fail('ERR_X509SVID_MULTIPLE_URI_SAN', 'certificate contains more than one URI SAN');
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(uris[0]!);
  } catch (err) {
    fail('ERR_X509SVID_BAD_ID', 'certificate URI SAN is not a valid SPIFFE ID', err);
  }
  return id;
}

function checkLeaf(leaf: X509Certificate): SpiffeId {
  const id = idFromCert(leaf);
  if (id.isTrustDomainId())
    fail('ERR_X509SVID_ROOT_ID', 'leaf certificate SPIFFE ID must have a non-root path');
  const info = certInfo(leaf);
  if (info.ca) fail('ERR_X509SVID_LEAF_CA', 'leaf certificate must not have CA flag set to true');
  if (info.keyUsage !== undefined) {
    if (info.keyUsage & KeyUsage.keyCertSign) {
      fail(
        'ERR_X509SVID_LEAF_KEY_CERT_SIGN',
        "leaf certificate must not have 'keyCertSign' as key usage",
      );
    }
    if (info.keyUsage & KeyUsage.cRLSign) {
      fail('ERR_X509SVID_LEAF_CRL_SIGN', "leaf certificate must not have 'cRLSign' as key usage");
    }
    if (!(info.keyUsage & KeyUsage.digitalSignature)) {
      fail(
        'ERR_X509SVID_LEAF_DIGITAL_SIGNATURE',
        "leaf certificate must have 'digitalSignature' as key usage",
      );
    }
  }
  return id;
}

function within(cert: X509Certificate, now: Date): boolean {
  const t = now.getTime();
  return Date.parse(cert.validFrom) <= t && t <= Date.parse(cert.validTo);
}

function issued(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

function hostOfUri(uri: string): string | undefined {
  try {
    return new URL(uri).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

// RFC 5280 4.2.1.10: a URI constraint names a host; a leading '.' means "any subdomain".
function uriMatches(uri: string, c: string): boolean {
  const host = hostOfUri(uri);
  if (host === undefined) return false;
  const want = c.toLowerCase();
  return want.startsWith('.') ? host.endsWith(want) : host === want;
}

// A DNS constraint matches the name and its subdomains; with a leading '.', subdomains only.
function dnsMatches(name: string, c: string): boolean {
  const n = name.toLowerCase();
  const want = c.toLowerCase();
  if (want === '') return true;
  if (want.startsWith('.')) return n.endsWith(want);
  return n === want || n.endsWith(`.${want}`);
}

function namesWithin(info: CertInfo, nc: { permitted: Subtree[]; excluded: Subtree[] }): boolean {
  const kinds = [
    { type: 'uri' as const, names: info.uris, match: uriMatches },
    { type: 'dns' as const, names: info.dnsNames, match: dnsMatches },
  ];
  for (const { type, names, match } of kinds) {
    const permitted = nc.permitted.filter((t) => t.type === type);
    const excluded = nc.excluded.filter((t) => t.type === type);
    for (const name of names) {
      if (excluded.some((t) => match(name, t.value))) return false;
      if (permitted.length > 0 && !permitted.some((t) => match(name, t.value))) return false;
    }
  }
  return true;
}

/**
 * The RFC 5280 path rules beyond signatures and validity, on a built path (leaf ... anchor):
 * no critical extension we do not process (leaf and intermediates), each CA's
 * pathLenConstraint, and each CA's name constraints over every certificate below it (URI
 * and DNS names; a constraint of another type is refused, as libraries without support
 * for it must).
 */
function checkPathRules(path: X509Certificate[]): void {
  const infos = path.map((c) => certInfo(c));
  for (const [i, info] of infos.entries()) {
    if (i < infos.length - 1 && info.unhandledCritical.length > 0) {
      fail(
        'ERR_X509SVID_CRITICAL_EXTENSION',
        `certificate has an unsupported critical extension (${info.unhandledCritical.join(', ')})`,
      );
    }
    if (i === 0) continue;
    // Intermediates between this CA and the leaf.
    if (info.pathLen !== undefined && i - 1 > info.pathLen) {
      fail('ERR_X509SVID_PATH_LEN', 'certificate chain exceeds a CA path length constraint');
    }
    const nc = info.nameConstraints;
    if (!nc) continue;
    if ([...nc.permitted, ...nc.excluded].some((t) => t.type === 'other')) {
      fail('ERR_X509SVID_NAME_CONSTRAINTS', 'unsupported name constraint type');
    }
    for (const below of infos.slice(0, i)) {
      if (!namesWithin(below, nc)) {
        fail('ERR_X509SVID_NAME_CONSTRAINTS', 'certificate name violates a CA name constraint');
      }
    }
  }
}

export interface VerifyResult {
  id: SpiffeId;
  /** leaf ... root, as verified */
  verifiedChain: X509Certificate[];
}

/**
 * Verifies a presented chain (leaf first, then intermediates) against the X.509 bundle of the
 * leaf's OWN trust domain only: a chain that would verify under another trust domain's
 * authorities fails. Checks the leaf rules, that every intermediate is a CA allowed to sign
 * certificates, every signature, and every validity period at `now`.
 */
export function verifyX509Svid(
  chain: Array<X509Certificate | Buffer>,
  bundles: X509BundleSource,
  opts: { now?: Date } = {},
): VerifyResult {
  if (chain.length === 0) fail('ERR_X509SVID_EMPTY', 'empty certificates chain');
  const certs = chain.map((c) => (Buffer.isBuffer(c) ? new X509Certificate(c) : c));
  const leaf = certs[0]!;
  const id = checkLeaf(leaf);
  let bundle;
  try {
    bundle = bundles.getX509BundleForTrustDomain(id.trustDomain);
  } catch (err) {
    fail(
      'ERR_X509SVID_NO_BUNDLE',
      `could not get X509 bundle for trust domain "${id.trustDomain.name}"`,
      err,
    );
  }
  const roots = bundle.x509Authorities();
  const now = opts.now ?? new Date();
  const intermediates = certs.slice(1);
  const path: X509Certificate[] = [leaf];
  let current = leaf;
  for (let depth = 0; depth <= MAX_CHAIN_DEPTH; depth++) {
    if (!within(current, now)) {
      fail('ERR_X509SVID_VALIDITY', 'certificate is expired or not yet valid');
    }
    const root = roots.find((r) => issued(current, r));
    if (root) {
      if (!within(root, now))
        fail('ERR_X509SVID_VALIDITY', 'root certificate is expired or not yet valid');
      path.push(root);
      checkPathRules(path);
      return { id, verifiedChain: path };
    }
    const next = intermediates.find((c) => !path.includes(c) && issued(current, c));
    if (!next) fail('ERR_X509SVID_UNTRUSTED', 'certificate signed by unknown authority');
    const info = certInfo(next);
    if (!info.ca) fail('ERR_X509SVID_INTERMEDIATE_NOT_CA', 'intermediate certificate is not a CA');
    if (info.keyUsage !== undefined && !(info.keyUsage & KeyUsage.keyCertSign)) {
      fail(
        'ERR_X509SVID_INTERMEDIATE_KEY_USAGE',
        'intermediate certificate cannot sign certificates',
      );
    }
    path.push(next);
    current = next;
  }
  fail('ERR_X509SVID_CHAIN_TOO_LONG', 'certificate chain is too long');
}

function parseKey(data: Buffer | string): KeyObject {
  try {
    const text = typeof data === 'string' ? data : data.toString('latin1');
    if (text.trimStart().startsWith('-----BEGIN')) {
      const blocks = pemBlocks(text, 'PRIVATE KEY');
      if (blocks.length !== 1) throw new Error('expected one PKCS#8 PRIVATE KEY block');
      return createPrivateKey({ key: blocks[0]!, format: 'der', type: 'pkcs8' });
    }
    return createPrivateKey({
      key: typeof data === 'string' ? Buffer.from(data, 'latin1') : data,
      format: 'der',
      type: 'pkcs8',
    });
  } catch (err) {
    fail('ERR_X509SVID_KEY', 'cannot parse PKCS#8 private key', err);
  }
}

/** An X.509-SVID: the SPIFFE ID, the chain (leaf first) and the private key of the leaf. */
export class X509Svid {
  constructor(
    readonly id: SpiffeId,
    readonly certificates: X509Certificate[],
    readonly privateKey: KeyObject,
    readonly hint?: string,
  ) {}

  /**
   * Parses a chain (PEM or concatenated DER, leaf first) and a PKCS#8 key (PEM or DER).
   * The leaf must follow the SVID rules and the key must be the leaf's.
   */
  static parse(certs: Buffer | string, key: Buffer | string, hint?: string): X509Svid {
    const certificates = parseCertificates(certs, 'x509svid');
    if (certificates.length === 0) fail('ERR_X509SVID_EMPTY', 'no certificates found');
    const leaf = certificates[0]!;
    const id = checkLeaf(leaf);
    for (const c of certificates.slice(1)) {
      if (!certInfo(c).ca)
        fail('ERR_X509SVID_INTERMEDIATE_NOT_CA', 'signing certificate must be a CA');
    }
    const privateKey = parseKey(key);
    if (!leaf.checkPrivateKey(privateKey)) {
      fail('ERR_X509SVID_KEY_MISMATCH', 'leaf certificate does not match the private key');
    }
    return new X509Svid(id, certificates, privateKey, hint);
  }

  static load(certsPath: string, keyPath: string): X509Svid {
    return X509Svid.parse(readFileSync(certsPath), readFileSync(keyPath));
  }

  /** The leaf's notAfter. */
  get expiresAt(): Date {
    return new Date(this.certificates[0]!.validTo);
  }

  /** PEM chain and PEM PKCS#8 key, e.g. for node:tls `cert` and `key`. */
  marshal(): { certs: string; key: string } {
    return {
      certs: this.certificates.map((c) => toPem(c)).join(''),
      key: this.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    };
  }

  getX509Svid(): X509Svid {
    return this;
  }
}

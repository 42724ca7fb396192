// An in-test certificate authority for SPIFFE trust domains: X.509-SVIDs (with knobs to
// break every rule a verifier checks) and JWT-SVIDs signed by an ES256 key in a JWKS.
import 'reflect-metadata';
import { webcrypto, createPrivateKey, randomBytes } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const HOUR = 3600_000;

export interface IssueOptions {
  notBefore?: Date;
  notAfter?: Date;
  /** Replace the URI SAN list (empty: no URI SAN). */
  uris?: string[];
  dns?: string[];
  isCa?: boolean;
  keyUsage?: number;
  emptySubject?: boolean;
  /** Extra extensions, e.g. an unknown critical one. */
  extensions?: x509.Extension[];
}

/** Name constraints for a test CA: subtrees by GeneralName type. */
export interface NameConstraintsSpec {
  permitted?: { type: 'uri' | 'dns' | 'ip'; value: string }[];
  excluded?: { type: 'uri' | 'dns' | 'ip'; value: string }[];
}

export interface CaOptions {
  /** basicConstraints pathLenConstraint (intermediates default to 0; undefined: none). */
  pathLen?: number | null;
  nameConstraints?: NameConstraintsSpec;
}

function derTlv(tag: number, body: Buffer): Buffer {
  const len = body.length;
  const head =
    len < 0x80 ? Buffer.from([tag, len]) : Buffer.from([tag, 0x82, len >> 8, len & 0xff]);
  return Buffer.concat([head, body]);
}

/** DER of a NameConstraints value (RFC 5280 4.2.1.10), built by hand for the tests. */
export function nameConstraintsExtension(spec: NameConstraintsSpec): x509.Extension {
  const tag = { dns: 0x82, uri: 0x86, ip: 0x87 } as const;
  const subtrees = (list: NonNullable<NameConstraintsSpec['permitted']>) =>
    Buffer.concat(
      list.map((t) =>
        derTlv(
          0x30,
          derTlv(
            tag[t.type],
            t.type === 'ip' ? Buffer.from(t.value, 'hex') : Buffer.from(t.value, 'latin1'),
          ),
        ),
      ),
    );
  const parts: Buffer[] = [];
  if (spec.permitted) parts.push(derTlv(0xa0, subtrees(spec.permitted)));
  if (spec.excluded) parts.push(derTlv(0xa1, subtrees(spec.excluded)));
  return new x509.Extension('2.5.29.30', true, derTlv(0x30, Buffer.concat(parts)));
}

/** An X.509-SVID as the Workload API carries it, plus PEM forms for node:tls. */
export interface IssuedSvid {
  spiffeId: string;
  chainDer: Buffer[];
  keyDer: Buffer;
  certPem: string;
  keyPem: string;
}

export function derToPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

export class TestCa {
  readonly trustDomain: string;
  readonly cert: x509.X509Certificate;
  readonly #keys: CryptoKeyPair;
  readonly #parent: TestCa | undefined;
  #jwtKeys: { kid: string; privateKey: CryptoKey | object; jwk: JWK }[] = [];

  private constructor(
    td: string,
    cert: x509.X509Certificate,
    keys: CryptoKeyPair,
    parent?: TestCa,
  ) {
    this.trustDomain = td;
    this.cert = cert;
    this.#keys = keys;
    this.#parent = parent;
  }

  /** A self-signed root CA for `td` (a bare trust domain name, e.g. `example.org`). */
  static async create(td: string, opts: CaOptions = {}): Promise<TestCa> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomBytes(8).toString('hex'),
      name: `CN=${td} test root, O=precinct-test`,
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 24 * HOUR),
      keys,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(true, opts.pathLen ?? undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${td}` }]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ...(opts.nameConstraints ? [nameConstraintsExtension(opts.nameConstraints)] : []),
      ],
    });
    return new TestCa(td, cert, keys);
  }

  /** An intermediate CA of the same trust domain, signed by this CA. */
  async intermediate(opts: CaOptions = {}): Promise<TestCa> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex'),
      subject: `CN=${this.trustDomain} test intermediate, O=precinct-test`,
      issuer: this.cert.subject,
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 24 * HOUR),
      publicKey: keys.publicKey,
      signingKey: this.#keys.privateKey,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(
          true,
          opts.pathLen === undefined ? 0 : (opts.pathLen ?? undefined),
          true,
        ),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: `spiffe://${this.trustDomain}` },
        ]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert),
        ...(opts.nameConstraints ? [nameConstraintsExtension(opts.nameConstraints)] : []),
      ],
    });
    return new TestCa(this.trustDomain, cert, keys, this);
  }

  /** DER of this CA's root certificate(s): the trust anchors of its bundle. */
  bundleDer(): Buffer {
    return Buffer.from(this.#root().cert.rawData);
  }

  bundlePem(): string {
    return derToPem(this.bundleDer());
  }

  #intermediates(): Buffer[] {
    return this.#parent ? [Buffer.from(this.cert.rawData), ...this.#parent.#intermediates()] : [];
  }

  #root(): TestCa {
    return this.#parent ? this.#parent.#root() : this;
  }

  /** Issues an X.509-SVID for `path` (e.g. `/workload`) or a full SPIFFE ID. */
  async issue(idOrPath: string, opts: IssueOptions = {}): Promise<IssuedSvid> {
    const spiffeId = idOrPath.startsWith('spiffe://')
      ? idOrPath
      : `spiffe://${this.trustDomain}${idOrPath}`;
    const keys = (await webcrypto.subtle.generateKey(EC, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const now = Date.now();
    const uris = opts.uris ?? [spiffeId];
    const names: x509.JsonGeneralName[] = [
      ...uris.map((value) => ({ type: 'url' as const, value })),
      ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ];
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(opts.isCa ?? false, undefined, true),
      new x509.KeyUsagesExtension(
        opts.keyUsage ??
          x509.KeyUsageFlags.digitalSignature |
            x509.KeyUsageFlags.keyEncipherment |
            x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(this.cert),
    ];
    if (names.length > 0) {
      extensions.push(new x509.SubjectAlternativeNameExtension(names, opts.emptySubject ?? false));
    }
    extensions.push(...(opts.extensions ?? []));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex'),
      subject: opts.emptySubject ? '' : 'O=precinct-test, CN=svid',
      issuer: this.cert.subject,
      notBefore: opts.notBefore ?? new Date(now - 60_000),
      notAfter: opts.notAfter ?? new Date(now + HOUR),
      publicKey: keys.publicKey,
      signingKey: this.#keys.privateKey,
      signingAlgorithm: SIGN,
      extensions,
    });
    const chainDer: Buffer[] = [Buffer.from(cert.rawData)];
    // Intermediates up to (not including) the root, which is the bundle's anchor.
    chainDer.push(...this.#intermediates());
    const keyDer = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    return {
      spiffeId,
      chainDer,
      keyDer,
      certPem: chainDer.map((d) => derToPem(d)).join(''),
      keyPem: createPrivateKey({ key: keyDer, format: 'der', type: 'pkcs8' })
        .export({ format: 'pem', type: 'pkcs8' })
        .toString(),
    };
  }

  // --- JWT ---

  /** Adds an ES256 JWT signing key to this trust domain's JWT bundle; returns its kid. */
  async addJwtKey(): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = randomBytes(8).toString('hex');
    const jwk = { ...(await exportJWK(publicKey)), kid, use: 'jwt-svid', alg: 'ES256' };
    this.#jwtKeys.push({ kid, privateKey, jwk });
    return kid;
  }

  /** The JWT bundle (JWKS JSON bytes) as FetchJWTBundles carries it. */
  jwksJson(): Buffer {
    return Buffer.from(JSON.stringify({ keys: this.#jwtKeys.map((k) => k.jwk) }));
  }

  /** A signed JWT-SVID for `sub` (path or SPIFFE ID) and `aud`. */
  async signJwt(
    subOrPath: string,
    aud: string[],
    opts: { ttlSec?: number; kid?: string; extra?: Record<string, unknown> } = {},
  ): Promise<string> {
    if (this.#jwtKeys.length === 0) await this.addJwtKey();
    const key = opts.kid ? this.#jwtKeys.find((k) => k.kid === opts.kid)! : this.#jwtKeys[0]!;
    const sub = subOrPath.startsWith('spiffe://')
      ? subOrPath
      : `spiffe://${this.trustDomain}${subOrPath}`;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ ...(opts.extra ?? {}) })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setSubject(sub)
      .setAudience(aud)
      .setIssuedAt(now)
      .setExpirationTime(now + (opts.ttlSec ?? 300))
      .sign(key.privateKey as CryptoKey);
  }
}

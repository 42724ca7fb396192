import 'reflect-metadata';
import {
  KeyObject,
  createPrivateKey,
  createPublicKey,
  generateKeyPair as nodeGenerateKeyPair,
  randomBytes,
  sign,
  webcrypto,
} from 'node:crypto';
import { promisify } from 'node:util';
import { SEQUENCE, bitString, integer, time, tlv } from './der.js';
import { mkdir, readFile, rename, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { IdentityServerError } from './errors.js';
import type { Clock } from './clock.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const subtle = webcrypto.subtle;

/** Key algorithms for CA and workload keys. */
export type KeyType = 'ec-p256' | 'rsa-2048';

const ALGS: Record<
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
const backdate = (ttlMs: number) => Math.min(10_000, ttlMs / 10);

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

/** One X.509 signing authority (a CA certificate and its key). */
export interface X509Authority {
  readonly cert: x509.X509Certificate;
  readonly der: Buffer;
  readonly privateKey: CryptoKey;
  readonly keyType: KeyType;
  readonly notBefore: number;
  readonly notAfter: number;
  /** Authority key identifier extension for leaves, DER, computed once. */
  readonly akiDer: Buffer;
  readonly subjectDer: Buffer;
  /** The AlgorithmIdentifier this CA signs with, DER. */
  readonly sigAlgDer: Buffer;
  readonly signingKey: KeyObject;
  /** Certificates sent after the leaf: the intermediate itself under an upstream CA. */
  readonly chainDer: Buffer[];
}

/** One JWT-SVID signing key (ES256). */
export interface JwtAuthority {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: webcrypto.JsonWebKey & { kid: string; alg: string };
  readonly notBefore: number;
  readonly notAfter: number;
}

interface Slots<T> {
  active: T | undefined;
  prepared: T | undefined;
  /** Superseded but still published until they expire, so no issued SVID loses trust. */
  retired: T[];
}

/** A freshly signed X.509-SVID. */
export interface SignedX509Svid {
  /** DER certificates, leaf first (the CA is in the bundle, not the chain). */
  chainDer: Buffer[];
  notBefore: number;
  notAfter: number;
  /** The authority that signed it. */
  authority: X509Authority;
}

export interface KeyManagerOptions {
  trustDomain: string;
  /** Where keys.json (0600) lives; without it keys live in memory only. */
  dataDir?: string;
  clock: Clock;
  /** CA certificate lifetime; default 24 h. */
  caTtlMs?: number;
  /** JWT signing key lifetime; default 24 h. */
  jwtKeyTtlMs?: number;
  caKeyType?: KeyType;
  /**
   * An upstream CA (self-signed root, PEM, and its PKCS#8 or SEC1 key): each rotation's CA is
   * then an intermediate it signs, the bundle holds the root, and SVID chains carry the
   * intermediate.
   */
  upstream?: { certPem: string; keyPem: string };
}

interface Upstream {
  cert: x509.X509Certificate;
  der: Buffer;
  key: CryptoKey;
  keyType: KeyType;
}

interface StoredKeys {
  version: 1;
  x509: {
    state: 'active' | 'prepared' | 'retired';
    certPem: string;
    key: string;
    keyType: KeyType;
  }[];
  jwt: {
    state: 'active' | 'prepared' | 'retired';
    kid: string;
    notBefore: number;
    notAfter: number;
    key: string;
  }[];
}

/** Kind of rotation step, for metrics and logs. */
export type RotationEvent =
  | 'x509_prepared'
  | 'x509_activated'
  | 'x509_expired'
  | 'jwt_prepared'
  | 'jwt_activated'
  | 'jwt_expired';

/**
 * The trust domain's keys: X.509 CAs and JWT signing keys, each in three roles (active,
 * prepared, retired) and rotated as SPIRE does. The next key is prepared, and published, at
 * half of the active key's lifetime, activated at five sixths of it, and a retired key stays
 * published until it expires. Every SVID expires no later than the key that signed it, so a
 * workload never holds an SVID its peers have stopped trusting.
 */
export class KeyManager {
  readonly trustDomain: string;
  readonly #opts: Required<Omit<KeyManagerOptions, 'dataDir' | 'upstream'>> & {
    dataDir?: string;
  };
  #upstream: Upstream | undefined;
  #x509: Slots<X509Authority> = { active: undefined, prepared: undefined, retired: [] };
  #jwt: Slots<JwtAuthority> = { active: undefined, prepared: undefined, retired: [] };
  #lock: Promise<unknown> = Promise.resolve();
  #version = 0;

  private constructor(opts: KeyManagerOptions) {
    this.trustDomain = opts.trustDomain;
    this.#opts = {
      caTtlMs: 24 * 3600_000,
      jwtKeyTtlMs: 24 * 3600_000,
      caKeyType: 'ec-p256',
      ...opts,
    };
  }

  /** Loads keys.json from `dataDir` if present, then rotates (creating the first keys). */
  static async open(opts: KeyManagerOptions): Promise<KeyManager> {
    const km = new KeyManager(opts);
    if (opts.upstream) km.#upstream = await loadUpstream(opts.upstream);
    if (opts.dataDir) await km.#load();
    await km.rotate();
    return km;
  }

  /** Increments whenever the published key set changes (bundles must be re-sent). */
  get version(): number {
    return this.#version;
  }

  /** CA certificates relying parties must trust now: active, prepared and retired. */
  x509Authorities(): X509Authority[] {
    return published(this.#x509);
  }

  /** JWT keys relying parties must trust now. */
  jwtAuthorities(): JwtAuthority[] {
    return published(this.#jwt);
  }

  /** The certificates relying parties trust: the CAs, or the upstream root. */
  x509BundleCerts(): Buffer[] {
    return this.#upstream ? [this.#upstream.der] : this.x509Authorities().map((a) => a.der);
  }

  /** The concatenated DER of {@link x509BundleCerts} (the Workload API `bundle`). */
  x509BundleDer(): Buffer {
    return Buffer.concat(this.x509BundleCerts());
  }

  /** The JWK Set of the published JWT keys. */
  jwks(): { keys: JwtAuthority['publicJwk'][] } {
    return { keys: this.jwtAuthorities().map((a) => a.publicJwk) };
  }

  /**
   * Advances the rotation state machine to the clock's now. Returns what happened (empty when
   * nothing changed). Serialised: concurrent calls run one after the other.
   */
  rotate(): Promise<RotationEvent[]> {
    const run = this.#lock.then(() => this.#rotate());
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async #rotate(): Promise<RotationEvent[]> {
    const now = this.#opts.clock.now();
    const events: RotationEvent[] = [];
    const step = async <T extends { notBefore: number; notAfter: number }>(
      slots: Slots<T>,
      make: (now: number) => Promise<T>,
      kind: 'x509' | 'jwt',
    ) => {
      const before = slots.retired.length;
      slots.retired = slots.retired.filter((a) => a.notAfter > now);
      if (slots.retired.length !== before) events.push(`${kind}_expired`);
      if (slots.active && slots.active.notAfter <= now) {
        slots.active = undefined;
        events.push(`${kind}_expired`);
      }
      if (slots.prepared && slots.prepared.notAfter <= now) slots.prepared = undefined;
      if (!slots.active) {
        slots.active = slots.prepared ?? (await make(now));
        slots.prepared = undefined;
        events.push(`${kind}_activated`);
      }
      const a = slots.active;
      const life = a.notAfter - a.notBefore;
      if (!slots.prepared && now >= a.notBefore + life / 2) {
        slots.prepared = await make(now);
        events.push(`${kind}_prepared`);
      }
      if (slots.prepared && now >= a.notBefore + (life * 5) / 6) {
        slots.retired.push(a);
        slots.active = slots.prepared;
        slots.prepared = undefined;
        events.push(`${kind}_activated`);
      }
    };
    await step(this.#x509, (n) => this.#makeCa(n), 'x509');
    await step(this.#jwt, (n) => this.#makeJwtKey(n), 'jwt');
    if (events.length > 0) {
      this.#version++;
      if (this.#opts.dataDir) await this.#save();
    }
    return events;
  }

  /** The instant the next rotation step is due (for the caller's timer). */
  nextRotationAt(): number {
    const due = (s: Slots<{ notBefore: number; notAfter: number }>) => {
      const t: number[] = s.retired.map((r) => r.notAfter);
      if (s.active) {
        const life = s.active.notAfter - s.active.notBefore;
        t.push(s.prepared ? s.active.notBefore + (life * 5) / 6 : s.active.notBefore + life / 2);
        t.push(s.active.notAfter);
      }
      return t;
    };
    return Math.min(...due(this.#x509), ...due(this.#jwt));
  }

  /**
   * Signs an X.509-SVID for `publicKey`: one URI SAN, not a CA, digitalSignature (plus
   * keyEncipherment for RSA keys), serverAuth and clientAuth. Its lifetime is capped to the
   * signing CA's. Synchronous: node:crypto signs on this thread, faster than a WebCrypto
   * round-trip to the thread pool.
   */
  signX509Svid(params: {
    publicKey: Pick<WorkloadKey, 'type' | 'spkiDer'>;
    spiffeId: string;
    dnsNames?: string[];
    ttlMs: number;
  }): SignedX509Svid {
    const ca = this.#x509.active;
    if (!ca) throw new IdentityServerError('ERR_CA_UNAVAILABLE', 'no active CA');
    const now = this.#opts.clock.now();
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

  /** The active JWT key, for signing. Throws when none (never after open()). */
  activeJwtAuthority(): JwtAuthority {
    const a = this.#jwt.active;
    if (!a) throw new IdentityServerError('ERR_CA_UNAVAILABLE', 'no active JWT key');
    return a;
  }

  async #makeCa(now: number): Promise<X509Authority> {
    const keyType = this.#opts.caKeyType;
    const keys = await generateKeyPair(keyType);
    const notBefore = now - backdate(this.#opts.caTtlMs);
    const up = this.#upstream;
    if (up) {
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `O=Precinct, CN=${this.trustDomain} intermediate ${new Date(now).toISOString()}`,
        issuer: up.cert.subjectName,
        notBefore: new Date(notBefore),
        notAfter: new Date(Math.min(notBefore + this.#opts.caTtlMs, up.cert.notAfter.getTime())),
        signingAlgorithm: ALGS[up.keyType].sign,
        publicKey: keys.publicKey,
        signingKey: up.key,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
            true,
          ),
          new x509.SubjectAlternativeNameExtension(
            [{ type: 'url', value: `spiffe://${this.trustDomain}` }],
            false,
          ),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
          await x509.AuthorityKeyIdentifierExtension.create(up.cert, false),
        ],
      });
      return authorityFromCert(cert, keys.privateKey, keyType);
    }
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `O=Precinct, CN=${this.trustDomain} CA ${new Date(now).toISOString()}`,
      notBefore: new Date(notBefore),
      notAfter: new Date(notBefore + this.#opts.caTtlMs),
      signingAlgorithm: ALGS[keyType].sign,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        new x509.SubjectAlternativeNameExtension(
          [{ type: 'url', value: `spiffe://${this.trustDomain}` }],
          false,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return authorityFromCert(cert, keys.privateKey, keyType);
  }

  async #makeJwtKey(now: number): Promise<JwtAuthority> {
    const keys = await generateKeyPair('ec-p256');
    const kid = randomBytes(16).toString('base64url');
    const jwk = await subtle.exportKey('jwk', keys.publicKey);
    return {
      kid,
      privateKey: keys.privateKey,
      publicJwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid, alg: 'ES256' },
      notBefore: now - backdate(this.#opts.jwtKeyTtlMs),
      notAfter: now - backdate(this.#opts.jwtKeyTtlMs) + this.#opts.jwtKeyTtlMs,
    };
  }

  get #file(): string {
    return join(this.#opts.dataDir!, 'keys.json');
  }

  async #load(): Promise<void> {
    let raw: string;
    try {
      raw = await readFile(this.#file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // Keys must never be readable by others; tighten a file someone loosened.
    await chmod(this.#file, 0o600);
    try {
      const stored = JSON.parse(raw) as StoredKeys;
      if (stored.version !== 1)
        throw new Error(`unknown keys.json version ${String(stored.version)}`);
      for (const s of stored.x509) {
        const cert = new x509.X509Certificate(s.certPem);
        const key = await subtle.importKey(
          'pkcs8',
          Buffer.from(s.key, 'base64'),
          ALGS[s.keyType].gen,
          true,
          ['sign'],
        );
        // CAs from another upstream (or from none) would chain to a root nobody trusts now.
        const fits = this.#upstream
          ? cert.issuer === this.#upstream.cert.subject
          : cert.issuer === cert.subject;
        if (fits)
          place(this.#x509, s.state, await authorityFromCert(cert, key as CryptoKey, s.keyType));
      }
      for (const s of stored.jwt) {
        const priv = await subtle.importKey(
          'pkcs8',
          Buffer.from(s.key, 'base64'),
          ALGS['ec-p256'].gen,
          true,
          ['sign'],
        );
        const jwk = await subtle.exportKey('jwk', priv);
        place(this.#jwt, s.state, {
          kid: s.kid,
          privateKey: priv as CryptoKey,
          publicJwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid: s.kid, alg: 'ES256' },
          notBefore: s.notBefore,
          notAfter: s.notAfter,
        });
      }
    } catch (err) {
      throw new IdentityServerError('ERR_KEYSTORE_CORRUPT', `cannot read ${this.#file}`, {
        cause: err,
      });
    }
  }

  async #save(): Promise<void> {
    const roles = <T>(s: Slots<T>) =>
      [
        ...(s.active ? [['active', s.active] as const] : []),
        ...(s.prepared ? [['prepared', s.prepared] as const] : []),
        ...s.retired.map((r) => ['retired', r] as const),
      ] as (readonly ['active' | 'prepared' | 'retired', T])[];
    const stored: StoredKeys = { version: 1, x509: [], jwt: [] };
    for (const [state, a] of roles(this.#x509)) {
      stored.x509.push({
        state,
        certPem: a.cert.toString('pem'),
        key: await pkcs8(a.privateKey),
        keyType: a.keyType,
      });
    }
    for (const [state, a] of roles(this.#jwt)) {
      stored.jwt.push({
        state,
        kid: a.kid,
        notBefore: a.notBefore,
        notAfter: a.notAfter,
        key: await pkcs8(a.privateKey),
      });
    }
    await mkdir(this.#opts.dataDir!, { recursive: true, mode: 0o700 });
    const tmp = `${this.#file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(stored), { mode: 0o600 });
    await rename(tmp, this.#file);
  }
}

function published<T>(s: Slots<T>): T[] {
  return [...(s.active ? [s.active] : []), ...(s.prepared ? [s.prepared] : []), ...s.retired];
}

function place<T>(s: Slots<T>, state: 'active' | 'prepared' | 'retired', a: T): void {
  if (state === 'active') s.active = a;
  else if (state === 'prepared') s.prepared = a;
  else s.retired.push(a);
}

async function authorityFromCert(
  cert: x509.X509Certificate,
  privateKey: CryptoKey,
  keyType: KeyType,
): Promise<X509Authority> {
  return {
    cert,
    der: Buffer.from(cert.rawData),
    privateKey,
    keyType,
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
    akiDer: Buffer.from((await x509.AuthorityKeyIdentifierExtension.create(cert, false)).rawData),
    subjectDer: Buffer.from(cert.subjectName.toArrayBuffer()),
    sigAlgDer: SIG_ALG_DER[keyType],
    signingKey: KeyObject.from(privateKey),
    chainDer: cert.issuer === cert.subject ? [] : [Buffer.from(cert.rawData)],
  };
}

async function pkcs8(key: CryptoKey): Promise<string> {
  return Buffer.from(await subtle.exportKey('pkcs8', key)).toString('base64');
}

// Constant parts of every leaf, encoded once by @peculiar/x509.
const V3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);
const SIG_ALG_DER: Record<KeyType, Buffer> = {
  // ecdsa-with-SHA256 (RFC 5758: parameters absent)
  'ec-p256': Buffer.from('300a06082a8648ce3d040302', 'hex'),
  // sha256WithRSAEncryption (RFC 4055: parameters NULL)
  'rsa-2048': Buffer.from('300d06092a864886f70d01010b0500', 'hex'),
};
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

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  return b.toString('hex');
}

async function loadUpstream(u: { certPem: string; keyPem: string }): Promise<Upstream> {
  const bad = (why: string, cause?: unknown) =>
    new IdentityServerError('ERR_CONFIG_INVALID', `upstream CA: ${why}`, { cause });
  let cert: x509.X509Certificate;
  let key: KeyObject;
  try {
    cert = new x509.X509Certificate(u.certPem);
  } catch (err) {
    throw bad('the certificate is not PEM X.509', err);
  }
  if (!cert.getExtension(x509.BasicConstraintsExtension)?.ca)
    throw bad('the certificate is not a CA');
  if (!(await cert.isSelfSigned())) throw bad('the certificate must be a self-signed root');
  try {
    key = createPrivateKey(u.keyPem);
  } catch (err) {
    throw bad('the key is not a PEM private key', err);
  }
  const keyType: KeyType | undefined =
    key.asymmetricKeyType === 'rsa'
      ? 'rsa-2048'
      : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
        ? 'ec-p256'
        : undefined;
  if (!keyType) throw bad('the key must be EC P-256 or RSA');
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!spki.equals(Buffer.from(cert.publicKey.rawData)))
    throw bad('the key does not match the certificate');
  const cryptoKey = await subtle.importKey(
    'pkcs8',
    key.export({ type: 'pkcs8', format: 'der' }),
    ALGS[keyType].gen,
    false,
    ['sign'],
  );
  return { cert, der: Buffer.from(cert.rawData), key: cryptoKey as CryptoKey, keyType };
}

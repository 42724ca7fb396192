// NATS JWTs (ed25519-nkey, v2) signed and verified natively.
//
// Deliberately hand-written: @nats-io/jwt encodes the same claims, but it signs with tweetnacl
// in pure JavaScript, about 45 ms per signature on a 2-core machine; the callout signs two JWTs
// and verifies one per connection. Key parsing and validation (prefixes, CRC) stay with
// @nats-io/nkeys; a test checks our JWTs decode with @nats-io/jwt.
//
// Ed25519 runs in libsodium (sodium-native) when it loads, else in node:crypto. Measured on
// the 2-core bench machine (CPU time per operation, 600-byte message, keys imported once):
// node:crypto (OpenSSL 3.0's portable ref10 code) signs in ~34 us and verifies in ~93 us;
// libsodium in ~17 us and ~42 us, as Go's crypto/ed25519 (~18 us, ~37 us). With three
// operations per decision that was most of the CPU gap to the Go reference callout; the
// per-call overhead of node:crypto (KeyObject reuse vs re-import) is ~2 us and not the cause.
// PRECINCT_ED25519=node forces node:crypto. Both give the same signatures (Ed25519 is
// deterministic), which a test checks.
import { createRequire } from 'node:module';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { fromPublic, fromSeed } from '@nats-io/nkeys';

/** The part of sodium-native used here. */
interface Sodium {
  crypto_sign_seed_keypair(pk: Buffer, sk: Buffer, seed: Uint8Array): void;
  crypto_sign_detached(sig: Buffer, message: Uint8Array, sk: Buffer): void;
  crypto_sign_verify_detached(sig: Uint8Array, message: Uint8Array, pk: Uint8Array): boolean;
  sodium_malloc(size: number): Buffer;
}

function loadSodium(): Sodium | undefined {
  try {
    return createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return undefined; // no prebuilt binary for this platform: node:crypto it is
  }
}

/** One Ed25519 implementation: keys are imported once, then used per call. */
export interface Ed25519Backend {
  name: 'libsodium' | 'node:crypto';
  /** `seed`: the 32-byte Ed25519 seed. */
  signer(seed: Uint8Array): (data: Uint8Array) => Buffer;
  /** `raw`: the 32-byte public key. */
  verifier(raw: Uint8Array): (data: Uint8Array, signature: Uint8Array) => boolean;
}

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

export const nodeEd25519: Ed25519Backend = {
  name: 'node:crypto',
  signer(seed) {
    const key: KeyObject = createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519, seed]),
      format: 'der',
      type: 'pkcs8',
    });
    return (data) => sign(null, data, key);
  },
  verifier(raw) {
    const key: KeyObject = createPublicKey({
      key: Buffer.concat([SPKI_ED25519, raw]),
      format: 'der',
      type: 'spki',
    });
    return (data, signature) => verify(null, data, key, signature);
  },
};

function sodiumBackend(sodium: Sodium): Ed25519Backend {
  return {
    name: 'libsodium',
    signer(seed) {
      // Secure memory (locked, guarded) for the 64-byte secret key.
      const sk = sodium.sodium_malloc(64);
      sodium.crypto_sign_seed_keypair(Buffer.alloc(32), sk, seed);
      return (data) => {
        const sig = Buffer.allocUnsafe(64);
        sodium.crypto_sign_detached(sig, data, sk);
        return sig;
      };
    },
    verifier(raw) {
      const pk = Buffer.from(raw);
      // sodium-native throws on a wrong signature length; a bad signature is just false here.
      return (data, signature) =>
        signature.length === 64 && sodium.crypto_sign_verify_detached(signature, data, pk);
    },
  };
}

const sodium = loadSodium();
/** libsodium's implementation, when sodium-native loaded (tests compare the two). */
export const sodiumEd25519: Ed25519Backend | undefined = sodium ? sodiumBackend(sodium) : undefined;
/** The implementation in use: libsodium where it loads, else node:crypto. */
export const ed25519: Ed25519Backend =
  process.env.PRECINCT_ED25519 === 'node' ? nodeEd25519 : (sodiumEd25519 ?? nodeEd25519);

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding, as nkeys are written. Does not check a CRC. */
export function base32Decode(s: string): Uint8Array {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of s) {
    const v = B32.indexOf(ch);
    if (v < 0) throw new TypeError('invalid base32');
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Uint8Array.from(out);
}

function base32Encode(b: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of b) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** An nkey that signs: its public key (`A...` for an account) and a node:crypto private key. */
export interface NkeySigner {
  publicKey: string;
  sign(data: Uint8Array): Buffer;
}

/** Parses an nkey seed (validated by @nats-io/nkeys) into an Ed25519 signer. */
export function nkeySigner(seed: string, backend: Ed25519Backend = ed25519): NkeySigner {
  const kp = fromSeed(new TextEncoder().encode(seed));
  const publicKey = kp.getPublicKey();
  // Seed encoding: two prefix bytes, the 32-byte Ed25519 seed, a CRC16.
  return { publicKey, sign: backend.signer(base32Decode(seed).subarray(2, 34)) };
}

type Verify = (data: Uint8Array, signature: Uint8Array) => boolean;
const publicKeyCache = new Map<string, Verify>();

function nkeyVerifier(nkey: string): Verify {
  let v = publicKeyCache.get(nkey);
  if (!v) {
    fromPublic(nkey); // validates prefix and CRC; throws otherwise
    // Public key encoding: one prefix byte, the 32-byte key, a CRC16.
    v = ed25519.verifier(base32Decode(nkey).subarray(1, 33));
    if (publicKeyCache.size > 1000) publicKeyCache.clear();
    publicKeyCache.set(nkey, v);
  }
  return v;
}

/** Is `s` a well-formed public nkey with the given role prefix (`U`, `N`, `A`, `X`)? */
export function isPublicNkey(s: unknown, prefix: string): s is string {
  if (typeof s !== 'string' || !s.startsWith(prefix) || s.length !== 56) return false;
  try {
    fromPublic(s);
    return true;
  } catch {
    return false;
  }
}

/** Claims of a NATS JWT (the fields the callout reads or writes). */
export interface NatsClaims<T = Record<string, unknown>> {
  jti?: string;
  iat?: number;
  iss: string;
  name?: string;
  sub: string;
  aud?: string;
  exp?: number;
  nbf?: number;
  nats: T & { type?: string; version?: number };
}

const HEADER = Buffer.from(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' })).toString(
  'base64url',
);

/** Signs NATS JWT claims (v2). Sets `iss`, `iat`, `jti` and `nats.version`. */
export function encodeNatsJwt(
  claims: Omit<NatsClaims, 'iss' | 'iat' | 'jti'>,
  signer: NkeySigner,
  now = Date.now(),
): string {
  const body: NatsClaims = {
    ...claims,
    iat: Math.floor(now / 1000),
    iss: signer.publicKey,
    nats: { ...claims.nats, version: 2 },
  };
  // As nats-io/jwt does: jti is a hash of the claims without it. Put first, so the claims are
  // serialized once (this runs twice per connection).
  const json = JSON.stringify(body);
  const jti = base32Encode(createHash('sha256').update(json).digest());
  const claimsPart = Buffer.from(`{"jti":"${jti}",${json.slice(1)}`).toString('base64url');
  const payload = `${HEADER}.${claimsPart}`;
  // base64url and '.' only: latin1 is the same bytes as UTF-8, and cheaper to produce.
  return `${payload}.${signer.sign(Buffer.from(payload, 'latin1')).toString('base64url')}`;
}

/** Header segments already parsed and found to be `{"typ":"JWT","alg":"ed25519-nkey"}`. */
const acceptedHeaders = new Set<string>([HEADER]);

/**
 * Decodes a NATS JWT and verifies its signature against its own `iss` nkey. Throws TypeError
 * on anything malformed or badly signed; the caller checks who the issuer must be.
 */
export function decodeNatsJwt<T = Record<string, unknown>>(jwt: string): NatsClaims<T> {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new TypeError('not a JWT');
  // A server sends the same header every time: parse and check it once.
  if (!acceptedHeaders.has(parts[0]!)) {
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString()) as {
      typ?: string;
      alg?: string;
    } | null;
    if (header?.typ?.toUpperCase() !== 'JWT' || header.alg !== 'ed25519-nkey') {
      throw new TypeError('not a v2 NATS JWT');
    }
    if (acceptedHeaders.size < 16) acceptedHeaders.add(parts[0]!);
  }
  const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as NatsClaims<T>;
  if (typeof claims !== 'object' || claims === null || typeof claims.iss !== 'string') {
    throw new TypeError('JWT without issuer');
  }
  const ok = nkeyVerifier(claims.iss)(
    Buffer.from(`${parts[0]}.${parts[1]}`, 'latin1'),
    Buffer.from(parts[2]!, 'base64url'),
  );
  if (!ok) throw new TypeError('bad JWT signature');
  if (typeof claims.nats !== 'object' || claims.nats === null)
    throw new TypeError('no nats claims');
  return claims;
}

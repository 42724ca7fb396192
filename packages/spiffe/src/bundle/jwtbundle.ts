import { createPublicKey, type KeyObject, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SpiffeError } from '../errors.js';
import { toTrustDomain, type TrustDomain } from '../spiffeid/id.js';

/** Gives the JWT bundle of a trust domain; throws SpiffeError when it has none. */
export interface JwtBundleSource {
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle;
}

/** JWKS documents larger than this are refused before parsing. */
export const MAX_JWKS_BYTES = 1024 * 1024;

export interface JwkWithMeta extends JsonWebKey {
  kid?: string;
  use?: string;
  x5c?: string[];
  alg?: string;
}

/** Parses a JWKS document's `keys` array with size and shape checks. */
export function parseJwksKeys(data: Buffer | string, area: string): JwkWithMeta[] {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  if (size > MAX_JWKS_BYTES) {
    throw new SpiffeError('ERR_BUNDLE_TOO_LARGE', `${area}: document larger than 1 MiB`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(typeof data === 'string' ? data : data.toString('utf8'));
  } catch (err) {
    throw new SpiffeError('ERR_BUNDLE_JSON', `${area}: unable to parse JWKS`, { cause: err });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new SpiffeError('ERR_BUNDLE_JSON', `${area}: JWKS is not a JSON object`);
  }
  const keys = (doc as { keys?: unknown }).keys;
  if (keys === undefined) return [];
  if (!Array.isArray(keys))
    throw new SpiffeError('ERR_BUNDLE_JSON', `${area}: "keys" is not an array`);
  return keys.filter(
    (k): k is JwkWithMeta => k !== null && typeof k === 'object' && !Array.isArray(k),
  );
}

/** Imports a public JWK; undefined for a key type we do not know (skipped, not fatal). */
export function importPublicJwk(jwk: JwkWithMeta, area: string): KeyObject | undefined {
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC' && jwk.kty !== 'OKP') return undefined;
  if ('d' in jwk && jwk.d !== undefined) {
    throw new SpiffeError(
      'ERR_BUNDLE_PRIVATE_KEY',
      `${area}: a bundle must not carry private keys`,
    );
  }
  try {
    const { kid: _k, use: _u, x5c: _x, alg: _a, ...material } = jwk;
    return createPublicKey({ key: material as JsonWebKey, format: 'jwk' });
  } catch (err) {
    throw new SpiffeError('ERR_BUNDLE_KEY', `${area}: cannot import key "${jwk.kid ?? ''}"`, {
      cause: err,
    });
  }
}

/** The JWT authorities (public keys by key ID) of one trust domain. */
export class JwtBundle implements JwtBundleSource {
  private readonly authorities = new Map<string, KeyObject>();

  constructor(
    readonly trustDomain: TrustDomain,
    authorities: Map<string, KeyObject> | Record<string, KeyObject> = {},
  ) {
    const entries = authorities instanceof Map ? authorities : new Map(Object.entries(authorities));
    for (const [kid, key] of entries) this.addJwtAuthority(kid, key);
  }

  /**
   * Parses a JWKS. Keys whose `use` is set to something other than `jwt-svid` are not JWT
   * authorities and are skipped, as are keys of an unknown `kty` (the rest still count); a key
   * without `kid` is an error; `{"keys": []}` is a bundle that trusts nothing.
   */
  static parse(td: TrustDomain | string, data: Buffer | string): JwtBundle {
    const bundle = new JwtBundle(toTrustDomain(td));
    for (const jwk of parseJwksKeys(data, 'jwtbundle')) {
      if (jwk.use !== undefined && jwk.use !== 'jwt-svid') continue;
      const key = importPublicJwk(jwk, 'jwtbundle');
      if (!key) continue;
      if (typeof jwk.kid !== 'string' || jwk.kid === '') {
        throw new SpiffeError(
          'ERR_BUNDLE_KID',
          'jwtbundle: key ID is required for JWT authorities',
        );
      }
      bundle.addJwtAuthority(jwk.kid, key);
    }
    return bundle;
  }

  static load(td: TrustDomain | string, path: string): JwtBundle {
    return JwtBundle.parse(td, readFileSync(path));
  }

  jwtAuthorities(): Map<string, KeyObject> {
    return new Map(this.authorities);
  }

  findJwtAuthority(kid: string): KeyObject | undefined {
    return this.authorities.get(kid);
  }

  hasJwtAuthority(kid: string): boolean {
    return this.authorities.has(kid);
  }

  addJwtAuthority(kid: string, key: KeyObject): void {
    if (!kid) throw new TypeError('jwtbundle: key ID cannot be empty');
    if (key.type !== 'public') throw new TypeError('jwtbundle: JWT authorities are public keys');
    this.authorities.set(kid, key);
  }

  removeJwtAuthority(kid: string): void {
    this.authorities.delete(kid);
  }

  get empty(): boolean {
    return this.authorities.size === 0;
  }

  /** A JWKS with `use: jwt-svid` keys. */
  marshal(): string {
    const keys = [...this.authorities].map(([kid, key]) => ({
      ...(key.export({ format: 'jwk' }) as JsonWebKey),
      kid,
      use: 'jwt-svid',
    }));
    return JSON.stringify({ keys });
  }

  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    if (!td.equals(this.trustDomain)) {
      throw new SpiffeError(
        'ERR_BUNDLE_NOT_FOUND',
        `jwtbundle: no JWT bundle found for trust domain "${td.name}"`,
      );
    }
    return this;
  }
}

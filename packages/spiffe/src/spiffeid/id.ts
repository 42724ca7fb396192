import { SpiffeError, type SpiffeErrorCode } from '../errors.js';

// SPIFFE-ID spec, section 2: trust domain characters, path segment characters.
const TD_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[a-zA-Z0-9._-]+$/;
const SCHEME = 'spiffe://';
/**
 * SPIFFE-ID spec 2.3: implementations MUST support IDs up to 2048 bytes (and should not make
 * longer ones). Longer input is refused here as a size bound; 2048 bytes exactly is valid.
 */
export const MAX_SPIFFE_ID_LENGTH = 2048;
/** SPIFFE-ID spec 2.1: the trust domain is at most 255 characters. */
export const MAX_TRUST_DOMAIN_LENGTH = 255;

function fail(code: SpiffeErrorCode, message: string): never {
  throw new SpiffeError(code, `spiffeid: ${message}`);
}

function checkTrustDomainName(name: string): void {
  if (name.length === 0) fail('ERR_SPIFFEID_TRUST_DOMAIN_EMPTY', 'trust domain is missing');
  if (name.length > MAX_TRUST_DOMAIN_LENGTH) {
    fail('ERR_SPIFFEID_TRUST_DOMAIN_TOO_LONG', 'trust domain is longer than 255 characters');
  }
  if (!TD_CHARS.test(name)) {
    fail(
      'ERR_SPIFFEID_TRUST_DOMAIN_CHARS',
      'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    );
  }
}

function checkPath(path: string): void {
  if (path === '') return;
  if (!path.startsWith('/')) fail('ERR_SPIFFEID_PATH', 'path must have a leading slash');
  const segments = path.slice(1).split('/');
  for (const seg of segments) {
    if (seg === '') fail('ERR_SPIFFEID_PATH_EMPTY_SEGMENT', 'path cannot contain empty segments');
    if (seg === '.' || seg === '..') {
      fail('ERR_SPIFFEID_PATH_DOT_SEGMENT', 'path cannot contain dot segments');
    }
    if (!SEGMENT_CHARS.test(seg)) {
      fail(
        'ERR_SPIFFEID_PATH_CHARS',
        'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
      );
    }
  }
}

/** A SPIFFE trust domain (`example.org`). Immutable; compare with `equals`. */
export class TrustDomain {
  private constructor(readonly name: string) {}

  /** Parses a trust domain name, or the trust domain of a SPIFFE ID string. */
  static parse(nameOrId: string): TrustDomain {
    if (typeof nameOrId !== 'string') throw new TypeError('trust domain must be a string');
    if (nameOrId.startsWith('spiffe:')) return SpiffeId.parse(nameOrId).trustDomain;
    if (nameOrId.includes(':') || nameOrId.includes('/')) {
      fail(
        'ERR_SPIFFEID_TRUST_DOMAIN_CHARS',
        'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
      );
    }
    checkTrustDomainName(nameOrId);
    return new TrustDomain(nameOrId);
  }

  /** The trust domain's own SPIFFE ID (`spiffe://example.org`). */
  id(): SpiffeId {
    return SpiffeId.fromPath(this, '');
  }

  /** `spiffe://example.org` */
  idString(): string {
    return `${SCHEME}${this.name}`;
  }

  equals(other: TrustDomain | undefined): boolean {
    return other !== undefined && other.name === this.name;
  }

  toString(): string {
    return this.name;
  }

  toJSON(): string {
    return this.name;
  }
}

/** A SPIFFE ID (`spiffe://example.org/ns/prod/sa/web`), validated per the SPIFFE-ID spec. */
export class SpiffeId {
  private constructor(
    readonly trustDomain: TrustDomain,
    /** `''` for a trust domain ID, else `/segment/...` */
    readonly path: string,
  ) {}

  /**
   * Parses a SPIFFE ID. Rejects another or an uppercase scheme, an empty or invalid trust
   * domain, userinfo, a port, a query, a fragment, percent-encoding, empty, `.` and `..` path
   * segments, a trailing slash, and anything over 2048 bytes.
   */
  static parse(id: string): SpiffeId {
    if (typeof id !== 'string') throw new TypeError('SPIFFE ID must be a string');
    if (id.length === 0) fail('ERR_SPIFFEID_EMPTY', 'cannot be empty');
    if (Buffer.byteLength(id) > MAX_SPIFFE_ID_LENGTH) {
      fail('ERR_SPIFFEID_TOO_LONG', 'SPIFFE ID is longer than 2048 bytes');
    }
    if (!id.startsWith(SCHEME)) fail('ERR_SPIFFEID_SCHEME', 'scheme is missing or invalid');
    const rest = id.slice(SCHEME.length);
    const slash = rest.indexOf('/');
    const td = slash === -1 ? rest : rest.slice(0, slash);
    const path = slash === -1 ? '' : rest.slice(slash);
    if (td.length === 0) fail('ERR_SPIFFEID_TRUST_DOMAIN_EMPTY', 'trust domain is missing');
    if (td.includes('@')) fail('ERR_SPIFFEID_USERINFO', 'userinfo is not allowed');
    if (td.includes(':')) fail('ERR_SPIFFEID_PORT', 'port is not allowed');
    if (id.includes('?')) fail('ERR_SPIFFEID_QUERY', 'query is not allowed');
    if (id.includes('#')) fail('ERR_SPIFFEID_FRAGMENT', 'fragment is not allowed');
    if (id.includes('%')) fail('ERR_SPIFFEID_PERCENT', 'percent-encoding is not allowed');
    checkTrustDomainName(td);
    checkPath(path);
    return new SpiffeId(TrustDomain.parse(td), path);
  }

  /** Builds an ID from a trust domain and path segments (each validated, `/` not allowed). */
  static fromSegments(td: TrustDomain, ...segments: string[]): SpiffeId {
    if (segments.some((s) => s.includes('/'))) {
      fail(
        'ERR_SPIFFEID_PATH_CHARS',
        'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
      );
    }
    const path = segments.map((s) => `/${s}`).join('');
    checkPath(path);
    return new SpiffeId(td, path);
  }

  /** Builds an ID from a trust domain and a path (`''` or `/a/b`). */
  static fromPath(td: TrustDomain, path: string): SpiffeId {
    checkPath(path);
    return new SpiffeId(td, path);
  }

  memberOf(td: TrustDomain): boolean {
    return this.trustDomain.equals(td);
  }

  /** True for a trust domain's own ID (no path). */
  isTrustDomainId(): boolean {
    return this.path === '';
  }

  equals(other: SpiffeId | undefined): boolean {
    return (
      other !== undefined &&
      other.trustDomain.name === this.trustDomain.name &&
      other.path === this.path
    );
  }

  toString(): string {
    return `${SCHEME}${this.trustDomain.name}${this.path}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** Accepts a SpiffeId or a string that parses as one. */
export function toSpiffeId(v: SpiffeId | string): SpiffeId {
  return typeof v === 'string' ? SpiffeId.parse(v) : v;
}

/** Accepts a TrustDomain or a string that parses as one. */
export function toTrustDomain(v: TrustDomain | string): TrustDomain {
  return typeof v === 'string' ? TrustDomain.parse(v) : v;
}

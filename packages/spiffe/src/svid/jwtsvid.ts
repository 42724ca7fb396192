import { constants, verify, type KeyObject } from 'node:crypto';
import { SpiffeError, type SpiffeErrorCode } from '../errors.js';
import { SpiffeId } from '../spiffeid/id.js';
import type { JwtBundleSource } from '../bundle/jwtbundle.js';

/** Fetches JWT-SVIDs (the Workload API, or anything else that can mint them). */
export interface JwtSvidSource {
  fetchJwtSvid(params: {
    audience: string;
    extraAudiences?: string[];
    subject?: SpiffeId;
  }): Promise<JwtSvid>;
}

/** JWT-SVIDs larger than this are rejected before any parsing. */
export const MAX_JWT_SVID_BYTES = 16 * 1024;

/** JWT-SVID spec, section 3: the algorithms a validator accepts. Never none, HS*, EdDSA. */
export const JWT_SVID_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
] as const;

const HASH: Record<string, string> = {
  RS256: 'sha256',
  RS384: 'sha384',
  RS512: 'sha512',
  PS256: 'sha256',
  PS384: 'sha384',
  PS512: 'sha512',
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
};
const EC_CURVE: Record<string, string> = {
  ES256: 'prime256v1',
  ES384: 'secp384r1',
  ES512: 'secp521r1',
};

const B64URL = /^[A-Za-z0-9_-]+$/;
/** JWT-SVID spec, section 2: the only JOSE header parameters a JWT-SVID may carry. */
const HEADERS = new Set(['alg', 'kid', 'typ']);

/** A validated (or, from parseInsecure, merely parsed) JWT-SVID. */
export interface JwtSvid {
  id: SpiffeId;
  audience: string[];
  expiry: Date;
  claims: Record<string, unknown>;
  /** The serialized token, to present to a peer. */
  token: string;
  hint?: string;
}

function fail(code: SpiffeErrorCode, message: string, cause?: unknown): never {
  throw new SpiffeError(code, `jwtsvid: ${message}`, cause ? { cause } : undefined);
}

function decodePart(part: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (err) {
    fail('ERR_JWTSVID_MALFORMED', `unable to parse JWT ${what}`, err);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    fail('ERR_JWTSVID_MALFORMED', `JWT ${what} is not a JSON object`);
  }
  return v as Record<string, unknown>;
}

interface Parsed {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
  id: SpiffeId;
  audience: string[];
  expiry: Date;
}

// Structural checks, hand-written: they are the JWT-SVID spec's rules (compact form only, typ,
// alg allow-list, crit) and run before any key lookup.
function parse(
  token: string,
  audiences: string[],
  now: Date,
  leewaySeconds: number,
  algorithms: readonly string[],
): Parsed {
  if (typeof token !== 'string' || token.length === 0)
    fail('ERR_JWTSVID_MALFORMED', 'token is empty');
  if (token.length > MAX_JWT_SVID_BYTES)
    fail('ERR_JWTSVID_TOO_LARGE', 'token is larger than 16 KiB');
  if (token.trimStart().startsWith('{')) {
    fail('ERR_JWTSVID_SERIALIZATION', 'only the compact serialization is accepted');
  }
  const parts = token.split('.');
  if (parts.length !== 3) fail('ERR_JWTSVID_MALFORMED', 'token must have three parts');
  const [h, p, s] = parts as [string, string, string];
  if (!B64URL.test(h) || !B64URL.test(p) || (s !== '' && !B64URL.test(s))) {
    fail('ERR_JWTSVID_MALFORMED', 'token parts must be base64url');
  }
  const header = decodePart(h, 'header');
  const alg = header.alg;
  if (typeof alg !== 'string' || !algorithms.includes(alg)) {
    fail('ERR_JWTSVID_ALG', `unsupported token signature algorithm ${JSON.stringify(alg)}`);
  }
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') {
    fail('ERR_JWTSVID_TYP', 'token header type must be JWT or JOSE');
  }
  if (header.crit !== undefined) fail('ERR_JWTSVID_CRIT', 'unsupported critical header parameters');
  // JWT-SVID 2: "Any header not described here, registered or private, MUST NOT be included"
  // (jku, x5u, jwk and the like would point a careless validator at attacker keys).
  const extra = Object.keys(header).filter((k) => !HEADERS.has(k));
  if (extra.length > 0) {
    fail('ERR_JWTSVID_HEADER', `header parameters not allowed in a JWT-SVID: ${extra.join(', ')}`);
  }
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    fail('ERR_JWTSVID_MALFORMED', 'kid must be a string');
  }
  if (s === '') fail('ERR_JWTSVID_SIGNATURE', 'token has no signature');
  const claims = decodePart(p, 'claims');
  if (typeof claims.sub !== 'string' || claims.sub === '')
    fail('ERR_JWTSVID_SUB', 'token missing subject claim');
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(claims.sub);
  } catch (err) {
    fail('ERR_JWTSVID_SUB', 'token has an invalid subject claim', err);
  }
  if (claims.exp === undefined) fail('ERR_JWTSVID_EXP', 'token missing exp claim');
  if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) {
    fail('ERR_JWTSVID_EXP', 'token exp claim is not a number');
  }
  const aud = claims.aud;
  const audience =
    typeof aud === 'string'
      ? [aud]
      : Array.isArray(aud) && aud.every((a) => typeof a === 'string')
        ? (aud as string[])
        : undefined;
  if (!audience || audience.length === 0) fail('ERR_JWTSVID_AUD', 'token missing audience claim');
  const t = now.getTime() / 1000;
  if (t - leewaySeconds >= claims.exp) fail('ERR_JWTSVID_EXPIRED', 'token has expired');
  if (claims.nbf !== undefined) {
    if (typeof claims.nbf !== 'number' || !Number.isFinite(claims.nbf)) {
      fail('ERR_JWTSVID_NBF', 'token nbf claim is not a number');
    }
    if (t + leewaySeconds < claims.nbf) fail('ERR_JWTSVID_NOT_YET_VALID', 'token is not valid yet');
  }
  if (!audiences.some((a) => audience.includes(a))) {
    fail(
      'ERR_JWTSVID_AUDIENCE',
      `expected audience in ${JSON.stringify(audiences)} (audience=${JSON.stringify(audience)})`,
    );
  }
  return {
    header,
    claims,
    signingInput: token.slice(0, h.length + 1 + p.length),
    signature: Buffer.from(s, 'base64url'),
    id,
    audience,
    expiry: new Date(claims.exp * 1000),
  };
}

function keyFits(alg: string, key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return type === 'rsa' || type === 'rsa-pss';
  if (alg.startsWith('ES'))
    return type === 'ec' && key.asymmetricKeyDetails?.namedCurve === EC_CURVE[alg];
  return false;
}

function signatureValid(alg: string, key: KeyObject, input: string, sig: Buffer): boolean {
  const data = Buffer.from(input, 'latin1');
  const hash = HASH[alg]!;
  try {
    if (alg.startsWith('RS')) return verify(hash, data, key, sig);
    if (alg.startsWith('PS')) {
      return verify(
        hash,
        data,
        {
          key,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
        },
        sig,
      );
    }
    return verify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false;
  }
}

export interface ValidateOptions {
  now?: Date;
  /** Clock skew allowed on exp and nbf. Default 0. */
  leewaySeconds?: number;
  /**
   * Narrows the accepted `alg` values to a non-empty subset of JWT_SVID_ALGORITHMS (an issuer
   * that only ever signs with ES256 can refuse the rest). Default: all of them. A value outside
   * the spec's set is a TypeError: the spec's set can be narrowed, never widened.
   */
  algorithms?: readonly string[];
}

const SPEC_ALGORITHMS: readonly string[] = JWT_SVID_ALGORITHMS;

function allowedAlgorithms(opts: ValidateOptions): readonly string[] {
  const algs = opts.algorithms;
  if (algs === undefined) return SPEC_ALGORITHMS;
  if (!Array.isArray(algs) || algs.length === 0) {
    throw new TypeError('jwtsvid: algorithms must be a non-empty array');
  }
  for (const a of algs as readonly unknown[]) {
    if (typeof a !== 'string' || !SPEC_ALGORITHMS.includes(a)) {
      throw new TypeError(
        `jwtsvid: algorithm ${JSON.stringify(a)} is not a JWT-SVID algorithm (${SPEC_ALGORITHMS.join(', ')})`,
      );
    }
  }
  return [...algs];
}

/**
 * Parses and validates a JWT-SVID (JWT-SVID spec, sections 2-3, 7): compact form, algorithm
 * allow-list, typ, no crit, subject a SPIFFE ID, exp required and not passed, nbf, one of
 * `audiences` in aud, and a signature by a key of the bundle of the SUBJECT's trust domain
 * (by kid when given, else any key of that trust domain whose type fits the algorithm).
 */
export function parseAndValidate(
  token: string,
  bundles: JwtBundleSource,
  audiences: string[],
  opts: ValidateOptions = {},
): JwtSvid {
  if (!Array.isArray(audiences) || audiences.length === 0) {
    throw new TypeError('jwtsvid: at least one audience is required');
  }
  const parsed = parse(
    token,
    audiences,
    opts.now ?? new Date(),
    opts.leewaySeconds ?? 0,
    allowedAlgorithms(opts),
  );
  let bundle;
  try {
    bundle = bundles.getJwtBundleForTrustDomain(parsed.id.trustDomain);
  } catch (err) {
    fail(
      'ERR_JWTSVID_NO_BUNDLE',
      `no bundle found for trust domain "${parsed.id.trustDomain.name}"`,
      err,
    );
  }
  const alg = parsed.header.alg as string;
  const kid = parsed.header.kid as string | undefined;
  let candidates: KeyObject[];
  if (kid !== undefined) {
    const key = bundle.findJwtAuthority(kid);
    if (!key)
      fail(
        'ERR_JWTSVID_KID',
        `no JWT authority "${kid}" found for trust domain "${parsed.id.trustDomain.name}"`,
      );
    if (!keyFits(alg, key))
      fail('ERR_JWTSVID_ALG_KEY_MISMATCH', `algorithm ${alg} does not match the key type`);
    candidates = [key];
  } else {
    candidates = [...bundle.jwtAuthorities().values()].filter((k) => keyFits(alg, k));
    if (candidates.length === 0) fail('ERR_JWTSVID_KID', `no JWT authority fits algorithm ${alg}`);
  }
  if (!candidates.some((k) => signatureValid(alg, k, parsed.signingInput, parsed.signature))) {
    fail('ERR_JWTSVID_SIGNATURE', 'unable to verify token signature');
  }
  return {
    id: parsed.id,
    audience: parsed.audience,
    expiry: parsed.expiry,
    claims: parsed.claims,
    token,
  };
}

/**
 * Parses a JWT-SVID WITHOUT checking its signature (for a token that came from the Workload
 * API itself, which is trusted). Structure, subject, exp and audience are still checked.
 */
export function parseInsecure(
  token: string,
  audiences: string[],
  opts: ValidateOptions = {},
): JwtSvid {
  const parsed = parse(
    token,
    audiences,
    opts.now ?? new Date(),
    opts.leewaySeconds ?? 0,
    allowedAlgorithms(opts),
  );
  return {
    id: parsed.id,
    audience: parsed.audience,
    expiry: parsed.expiry,
    claims: parsed.claims,
    token,
  };
}

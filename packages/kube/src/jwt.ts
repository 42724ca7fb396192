import { KubeAuthError } from './errors.js';

/** Tokens larger than this are rejected before any parsing or crypto (a real one is ~1 KB). */
export const MAX_TOKEN_BYTES = 16 * 1024;

export interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** `<header>.<payload>` as it arrived: the bytes the signature covers. */
  signingInput: string;
  signature: Buffer;
}

/**
 * Decodes base64url strictly. Node's decoder skips characters outside the alphabet, so a
 * decoded length short of 3/4 of the input reveals them without a regex pass over the input
 * (this runs on every token; measured cheaper than the regex).
 */
function strictBase64url(part: string): Buffer | undefined {
  if (part.length === 0 || part.length % 4 === 1) return undefined;
  const buf = Buffer.from(part, 'base64url');
  if (buf.length !== Math.floor((part.length * 3) / 4)) return undefined;
  // '=' padding and '+', '/' decode silently too; they are not base64url.
  if (part.includes('=') || part.includes('+') || part.includes('/')) return undefined;
  return buf;
}

function decodeJson(part: string, what: string): Record<string, unknown> {
  const buf = strictBase64url(part);
  if (!buf) throw new KubeAuthError('ERR_TOKEN_MALFORMED', `${what} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new KubeAuthError('ERR_TOKEN_MALFORMED', `${what} is not valid JSON`, { cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new KubeAuthError('ERR_TOKEN_MALFORMED', `${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

// A cluster signs with a handful of keys, so nearly every token repeats one of a few header
// segments; remembering their parsed (frozen) form saves a base64url + JSON pass per token
// (measured by bench/kube-verify.bench.ts). Bounded: a flood of distinct forged headers only
// stops new entries from being added.
const HEADER_CACHE_MAX = 64;
const headerCache = new Map<string, Readonly<Record<string, unknown>>>();

function decodeHeader(segment: string): Record<string, unknown> {
  const hit = headerCache.get(segment);
  if (hit) return hit;
  const header = Object.freeze(decodeJson(segment, 'header'));
  if (headerCache.size < HEADER_CACHE_MAX) headerCache.set(segment, header);
  return header;
}

/**
 * Structural checks that run before any key lookup or signature work, so hostile input costs
 * almost nothing: size, compact form, base64url, JSON objects, `alg` in the allow-list,
 * no `crit`. Hand-written on purpose: jose performs the same checks but only after it has been
 * handed a key, and key lookup (possibly a JWKS refresh) must not be reachable by garbage.
 */
export function decodeUnverified(token: string, algorithms: readonly string[]): DecodedJwt {
  if (typeof token !== 'string' || token.length === 0) {
    throw new KubeAuthError('ERR_TOKEN_MISSING', 'no token');
  }
  if (token.length > MAX_TOKEN_BYTES) {
    throw new KubeAuthError('ERR_TOKEN_TOO_LARGE', `token longer than ${MAX_TOKEN_BYTES} bytes`);
  }
  if (token.trimStart().startsWith('{')) {
    throw new KubeAuthError('ERR_TOKEN_MALFORMED', 'JWS JSON serialization is not accepted');
  }
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw new KubeAuthError('ERR_TOKEN_MALFORMED', `expected 3 parts, got ${parts.length}`);
  }
  const [h, p, s] = parts as [string, string, string];
  const header = decodeHeader(h);
  const alg = header.alg;
  if (typeof alg !== 'string' || !algorithms.includes(alg)) {
    throw new KubeAuthError('ERR_TOKEN_ALG', `algorithm ${JSON.stringify(alg)} is not allowed`);
  }
  const signature = strictBase64url(s);
  if (!signature) {
    throw new KubeAuthError('ERR_TOKEN_MALFORMED', 'signature is missing or not base64url');
  }
  if ('crit' in header) {
    throw new KubeAuthError('ERR_TOKEN_CRIT', 'critical header parameters are not supported');
  }
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    throw new KubeAuthError('ERR_TOKEN_MALFORMED', 'kid is not a string');
  }
  return {
    header,
    payload: decodeJson(p, 'payload'),
    signingInput: token.slice(0, h.length + 1 + p.length),
    signature,
  };
}

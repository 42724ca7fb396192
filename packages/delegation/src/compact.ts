import { DelegationError } from './errors.js';

/**
 * Decodes one segment only if it is canonical base64url: the re-encoding must give back the
 * exact input. This refuses padding, '+', '/', characters outside the alphabet (Node's
 * decoder would skip them) and non-zero trailing bits, so no two different strings carry the
 * same token: a verified token string is then a stable key for replay caches and audit.
 */
function canonicalBase64url(segment: string): Buffer | undefined {
  if (segment.length === 0) return undefined;
  const bytes = Buffer.from(segment, 'base64url');
  return bytes.toString('base64url') === segment ? bytes : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Structural checks before any key lookup or crypto, so hostile input costs almost nothing
 * and garbage can never make a remote JWKS be fetched: size first (before any parsing), then
 * the compact form, the header, `alg` against the allow-list, and canonical encodings.
 * jose repeats some of these; it only runs them after the key lookup has been reached.
 */
export function precheck(token: unknown, algorithms: readonly string[], maxBytes: number): void {
  if (typeof token !== 'string') throw new DelegationError('malformed');
  // length counts UTF-16 units, never more than the UTF-8 bytes: the cheap test goes first.
  if (token.length > maxBytes || Buffer.byteLength(token, 'utf8') > maxBytes) {
    throw new DelegationError('too_large');
  }
  const parts = token.split('.');
  if (parts.length !== 3) throw new DelegationError('malformed');
  const [h, p, s] = parts as [string, string, string];
  const headerBytes = canonicalBase64url(h);
  if (!headerBytes) throw new DelegationError('malformed');
  let header: unknown;
  try {
    header = JSON.parse(headerBytes.toString('utf8'));
  } catch {
    throw new DelegationError('malformed');
  }
  if (!isPlainObject(header) || typeof header.alg !== 'string') {
    throw new DelegationError('malformed');
  }
  if (!algorithms.includes(header.alg)) throw new DelegationError('algorithm');
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    throw new DelegationError('malformed');
  }
  if (!canonicalBase64url(p) || !canonicalBase64url(s)) throw new DelegationError('malformed');
}

import type { SpiffeId, TrustDomain } from './core.js';
import { parseSpiffeId, parseTrustDomain } from './core.js';

/**
 * Decides whether an authenticated peer may talk to us. It runs only after the peer's
 * X.509-SVID was verified against the bundle of the peer's own trust domain, and gets the
 * peer's SPIFFE ID and verified chain (leaf first). Return true to allow.
 */
export type Authorizer = (id: SpiffeId, verifiedChain: readonly Buffer[]) => boolean;

/** Allows any authenticated SPIFFE ID (authentication still applies). */
export function authorizeAny(): Authorizer {
  return () => true;
}

/** Allows exactly this SPIFFE ID. */
export function authorizeId(id: SpiffeId | string): Authorizer {
  const want = String(typeof id === 'string' ? parseSpiffeId(id) : id);
  return (peer) => String(peer) === want;
}

/** Allows any of these SPIFFE IDs. */
export function authorizeOneOf(...ids: (SpiffeId | string)[]): Authorizer {
  const want = new Set(ids.map((id) => String(typeof id === 'string' ? parseSpiffeId(id) : id)));
  return (peer) => want.has(String(peer));
}

/** Allows any SPIFFE ID in this trust domain. */
export function authorizeMemberOf(td: TrustDomain | string): Authorizer {
  const want = String(typeof td === 'string' ? parseTrustDomain(td) : td);
  return (peer) => String(peer.trustDomain) === want;
}

/** Allows what the predicate allows; a predicate that throws denies. */
export function authorizeIf(
  fn: (id: SpiffeId, verifiedChain: readonly Buffer[]) => boolean,
): Authorizer {
  return (id, chain) => {
    try {
      return fn(id, chain) === true;
    } catch {
      return false;
    }
  };
}

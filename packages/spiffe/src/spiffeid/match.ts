import { SpiffeError } from '../errors.js';
import { toSpiffeId, toTrustDomain, type SpiffeId, type TrustDomain } from './id.js';

/** Throws SpiffeError ERR_SPIFFEID_UNEXPECTED when the ID does not match. */
export type Matcher = (id: SpiffeId) => void;

const unexpected = (id: SpiffeId): never => {
  throw new SpiffeError('ERR_SPIFFEID_UNEXPECTED', `spiffeid: unexpected ID "${id.toString()}"`);
};

export function matchAny(): Matcher {
  return () => undefined;
}

export function matchId(expected: SpiffeId | string): Matcher {
  const e = toSpiffeId(expected);
  return (id) => {
    if (!id.equals(e)) unexpected(id);
  };
}

export function matchOneOf(...expected: Array<SpiffeId | string>): Matcher {
  const set = new Set(expected.map((e) => toSpiffeId(e).toString()));
  return (id) => {
    if (!set.has(id.toString())) unexpected(id);
  };
}

export function matchMemberOf(td: TrustDomain | string): Matcher {
  const t = toTrustDomain(td);
  return (id) => {
    if (!id.memberOf(t)) unexpected(id);
  };
}

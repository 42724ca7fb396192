import {
  errors,
  jwtVerify,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { precheck } from './compact.js';
import { DelegationConfigError, DelegationError, type DelegationFailureReason } from './errors.js';
import {
  ASYMMETRIC_ALGORITHMS,
  actorChain,
  guardedKeySet,
  isPlainObject,
  nonEmptyString,
  positiveInteger,
} from './keys.js';

/**
 * The HTTP header a service reads the delegation token from. The caller's own identity never
 * comes from here: it comes from the caller's bearer token (`Authorization`) or its mTLS
 * certificate, and that verified identity is what `verify(token, { actor })` compares the
 * token's actor with. Keeping the two apart means a stolen delegation token alone is useless
 * to anyone but the agent it names.
 */
export const DELEGATION_HEADER = 'precinct-delegation';

const DEFAULT_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'RS256', 'PS256'];

/**
 * A token without a `kid` may fit several keys of a set (during a rotation); each is tried,
 * but never more than this many, so a token cannot buy unbounded signature checks.
 */
const MAX_CANDIDATE_KEYS = 8;

export interface DelegationVerifierOptions {
  /** The one token service trusted to mint delegations; compared exactly. */
  issuer: string;
  /** This service's name(s); a token meant for another service must not work here. */
  audience: string | string[];
  /**
   * The issuer's public keys: a URL (fetched, kept, refetched on an unknown `kid` or when
   * older than 10 minutes; at most one fetch per `jwksCooldownSeconds` in every state) or a
   * key set held in memory.
   */
  jwks: URL | { keys: JWK[] };
  /**
   * Least time between two fetches of a remote JWKS, whatever triggers them (first use, an
   * unknown `kid`, a failed fetch). Default 30. Concurrent tokens share the fetch in progress.
   */
  jwksCooldownSeconds?: number;
  /** A remote JWKS fetch that takes longer is abandoned (jwks_unavailable). Default 5000. */
  jwksTimeoutMs?: number;
  /** Clock (ms since the epoch), for tests: token times and the JWKS cool-down. */
  now?: () => number;
  /**
   * Allowed `alg` values. Default ES256, ES384, EdDSA, RS256, PS256. `none` and HMAC are
   * refused at construction: a shared-secret or unsigned token proves nothing about who
   * minted it.
   */
  algorithms?: string[];
  /**
   * Longest allowed `exp - iat`, in seconds. Default 3600. Delegation is meant to be short-
   * lived; a long-lived token is a standing credential and is refused even if not expired.
   */
  maxLifetimeSeconds?: number;
  /** Allowed clock skew for `exp`, `nbf` and `iat`, in seconds. Default 30. */
  clockToleranceSeconds?: number;
  /** Tokens longer than this (UTF-8 bytes) are refused before any parsing. Default 8192. */
  maxTokenBytes?: number;
  /** Most actors allowed in the `act` chain. Default 5; bounds work on hostile nesting. */
  maxActorDepth?: number;
}

/** A verified delegation: `actor` may act for `subject` towards `audience` until `expiresAt`. */
export interface Delegation {
  /** The person (`sub`) the agent acts for. */
  subject: string;
  /** The party presenting the token now (the outermost `act.sub`); equals `expect.actor`. */
  actor: string;
  /** The whole actor chain, outermost (current) first, earliest delegate last. */
  actors: string[];
  issuer: string;
  audience: string[];
  expiresAt: Date;
  /** Every claim of the token, for policy that needs more (`scope`, `jti`...). */
  claims: JWTPayload;
}

export interface DelegationVerifier {
  /**
   * Verifies `token` and that it was issued to the caller. `expect.actor` must be the
   * caller's identity as proved cryptographically (ServiceAccount username, SPIFFE ID), never
   * a value read from the request: that binding is what stops one agent from replaying
   * another agent's delegation. Rejects with DelegationError only.
   */
  verify(token: string, expect: { actor: string }): Promise<Delegation>;
}

function keyResolver(opts: DelegationVerifierOptions, now: () => number): JWTVerifyGetKey {
  if (typeof opts.jwks === 'function') {
    throw new DelegationConfigError('jwks must be a URL or a JSON Web Key Set');
  }
  return guardedKeySet(
    opts.jwks,
    { ...opts, now },
    (err) => err instanceof DelegationError,
    (cause) => new DelegationError('jwks_unavailable', { cause }),
  );
}

/**
 * Maps jose's error classes onto the bounded reasons. Claim failures get no `cause`: jose
 * attaches the whole claims set to them, and the error should stay safe to log whole.
 */
function toDelegationError(err: unknown): DelegationError {
  if (err instanceof DelegationError) return err;
  if (err instanceof errors.JWTExpired) return new DelegationError('expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    const checkFailed = err.reason === 'check_failed';
    let reason: DelegationFailureReason = 'claims';
    if (err.claim === 'iss') reason = 'issuer';
    else if (err.claim === 'aud') reason = 'audience';
    else if ((err.claim === 'nbf' || err.claim === 'iat') && checkFailed) reason = 'not_yet_valid';
    return new DelegationError(reason);
  }
  const byClass: Array<[new (...args: never[]) => Error, DelegationFailureReason]> = [
    [errors.JOSEAlgNotAllowed, 'algorithm'],
    [errors.JWSSignatureVerificationFailed, 'signature'],
    [errors.JWKSNoMatchingKey, 'unknown_key'],
    [errors.JWKSMultipleMatchingKeys, 'unknown_key'],
    [errors.JWKSTimeout, 'jwks_unavailable'],
    [errors.JWKSInvalid, 'jwks_unavailable'],
  ];
  for (const [cls, reason] of byClass) {
    if (err instanceof cls) return new DelegationError(reason, { cause: err });
  }
  // JWSInvalid, JWTInvalid, JOSENotSupported (unknown `crit`), and anything unforeseen:
  // refuse the token rather than let another error type escape to the caller.
  return new DelegationError('malformed', { cause: err });
}

/**
 * Builds a verifier for delegation tokens from one issuer. Every option is checked here, so a
 * misconfigured service fails at start-up with DelegationConfigError.
 */
export function createDelegationVerifier(opts: DelegationVerifierOptions): DelegationVerifier {
  if (!nonEmptyString(opts.issuer)) throw new DelegationConfigError('issuer is required');
  const audience = typeof opts.audience === 'string' ? [opts.audience] : opts.audience;
  if (!Array.isArray(audience) || audience.length === 0 || !audience.every(nonEmptyString)) {
    throw new DelegationConfigError('audience is required');
  }
  const algorithms = [...(opts.algorithms ?? DEFAULT_ALGORITHMS)];
  if (algorithms.length === 0) throw new DelegationConfigError('algorithms must not be empty');
  for (const alg of algorithms) {
    if (!ASYMMETRIC_ALGORITHMS.has(alg)) {
      throw new DelegationConfigError(
        `algorithm ${JSON.stringify(alg)} is not allowed (asymmetric JWS algorithms only)`,
      );
    }
  }
  const maxLifetime = positiveInteger('maxLifetimeSeconds', opts.maxLifetimeSeconds, 3600);
  const maxTokenBytes = positiveInteger('maxTokenBytes', opts.maxTokenBytes, 8192);
  const maxActorDepth = positiveInteger('maxActorDepth', opts.maxActorDepth, 5);
  const tolerance = opts.clockToleranceSeconds ?? 30;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new DelegationConfigError('clockToleranceSeconds must be a non-negative number');
  }
  const now = opts.now ?? Date.now;
  const getKey = keyResolver(opts, now);
  const baseOptions: JWTVerifyOptions = {
    issuer: opts.issuer,
    audience,
    algorithms,
    clockTolerance: tolerance,
    requiredClaims: ['iat', 'exp'],
  };

  async function verifySigned(token: string): Promise<JWTPayload> {
    const jwtOptions = opts.now ? { ...baseOptions, currentDate: new Date(now()) } : baseOptions;
    try {
      return (await jwtVerify(token, getKey, jwtOptions)).payload;
    } catch (err) {
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
      let tried = 0;
      for await (const key of err) {
        if (++tried > MAX_CANDIDATE_KEYS) break;
        try {
          return (await jwtVerify(token, key, jwtOptions)).payload;
        } catch (inner) {
          if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
        }
      }
      throw new DelegationError('signature');
    }
  }

  return {
    async verify(token, expect) {
      if (!isPlainObject(expect) || !nonEmptyString(expect.actor)) {
        throw new TypeError('expect.actor must be the verified identity of the caller');
      }
      precheck(token, algorithms, maxTokenBytes);
      let payload: JWTPayload;
      try {
        payload = await verifySigned(token);
      } catch (err) {
        throw toDelegationError(err);
      }
      // jose has checked iss, aud, nbf, exp, and that iat and exp are present numbers.
      const { iat, exp, sub } = payload;
      if (typeof iat !== 'number' || typeof exp !== 'number') {
        throw new DelegationError('claims');
      }
      if (iat > now() / 1000 + tolerance) throw new DelegationError('not_yet_valid');
      if (exp <= iat) throw new DelegationError('claims');
      if (exp - iat > maxLifetime) throw new DelegationError('lifetime');
      if (!nonEmptyString(sub)) throw new DelegationError('claims');
      // A delegation names its actor: no `act` is as bad as a malformed one.
      const actors = payload.act === undefined ? undefined : actorChain(payload.act, maxActorDepth);
      if (!actors) throw new DelegationError('claims');
      const actor = actors[0] as string;
      // Exact comparison on purpose: identities are not secrets, and trimming or case-folding
      // would let `Agent` stand in for `agent`.
      if (actor !== expect.actor) throw new DelegationError('actor_mismatch');
      return {
        subject: sub,
        actor,
        actors,
        issuer: opts.issuer,
        audience: typeof payload.aud === 'string' ? [payload.aud] : [...(payload.aud ?? [])],
        expiresAt: new Date(exp * 1000),
        claims: payload,
      };
    },
  };
}

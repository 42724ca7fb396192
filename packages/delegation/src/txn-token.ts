import {
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { precheck } from './compact.js';
import { DelegationConfigError, DelegationError } from './errors.js';
import {
  ASYMMETRIC_ALGORITHMS,
  actorChain,
  guardedKeySet,
  isPlainObject,
  nonEmptyString,
  positiveInteger,
} from './keys.js';

/**
 * Transaction Tokens (draft-ietf-oauth-transaction-tokens-10): a short-lived JWT minted by the
 * trust domain's token service that carries the person (`sub`), the agent chain (`act`), the
 * narrowed `scope` and the transaction id (`txn`) across service hops. Services receive it in
 * the `Txn-Token` header and forward it unmodified; they never mint or edit one.
 */

/** The HTTP header a Transaction Token travels in (lower-case, as Node exposes headers). */
export const TXN_TOKEN_HEADER = 'txn-token';
/** The JWS `typ` every Transaction Token carries; anything else is another kind of token. */
export const TXN_TOKEN_TYP = 'txntoken+jwt';
/** The RFC 8693 token type URI for `requested_token_type` and `issued_token_type`. */
export const TXN_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:txn_token';
/** The longest lifetime (`exp - iat`) Precinct issues or accepts by default: 5 minutes. */
export const TXN_TOKEN_MAX_LIFETIME_SECONDS = 300;

/**
 * Why a Transaction Token was refused: a bounded set, for a metrics label and a log field.
 * Clients never see it. `jwks_unavailable` means nothing could be decided (503, retry later);
 * every other reason is a definitive refusal of this token.
 */
export type TxnTokenFailureReason =
  | 'malformed'
  | 'too_large'
  | 'type'
  | 'algorithm'
  | 'signature'
  | 'unknown_key'
  | 'issuer'
  | 'audience'
  | 'expired'
  | 'not_yet_valid'
  | 'lifetime'
  | 'claims'
  | 'actor'
  | 'jwks_unavailable';

const MESSAGES: Record<TxnTokenFailureReason, string> = {
  malformed: 'token is not a well-formed compact JWS',
  too_large: 'token is larger than allowed',
  type: 'token is not a transaction token (typ)',
  algorithm: 'token algorithm is not allowed',
  signature: 'token signature is invalid',
  unknown_key: 'no trusted key matches the token',
  issuer: 'token issuer is not trusted',
  audience: 'token is not meant for this trust domain',
  expired: 'token has expired',
  not_yet_valid: 'token is not valid yet',
  lifetime: 'token lifetime is longer than allowed',
  claims: 'token claims are missing or invalid',
  actor: 'token actor chain is invalid',
  jwks_unavailable: 'verification keys are unavailable',
};

/**
 * A Transaction Token was refused. The message is fixed per reason and never carries the
 * token or a claim from it, so the error can be logged whole.
 */
export class TxnTokenError extends Error {
  override name = 'TxnTokenError';
  readonly code = 'ERR_TXN_TOKEN' as const;
  readonly reason: TxnTokenFailureReason;
  constructor(reason: TxnTokenFailureReason, options?: { cause?: unknown }) {
    super(`txn-token: ${MESSAGES[reason]}`, options);
    this.reason = reason;
  }
}

/** A verified Transaction Token, as typed claims. */
export interface TxnToken {
  /** The person (or workload) the transaction is for (`sub`). */
  subject: string;
  /** The transaction id (`txn`), stable across replacements: correlate logs with it. */
  txn: string;
  /** The granted scopes (`scope`, split on spaces); never empty. */
  scope: string[];
  /** The workload that requested this token (`req_wl`), e.g. a SPIFFE ID. */
  requestingWorkload: string;
  /**
   * The agent acting for the subject now: the outermost `act.sub` (RFC 8693 4.1). Only this
   * one counts for access control; undefined when no agent is involved.
   */
  actor: string | undefined;
  /** The whole actor chain, outermost (current) first; empty without `act`. */
  actors: string[];
  /** The trust domain (`aud`). */
  audience: string;
  issuer: string | undefined;
  issuedAt: Date;
  expiresAt: Date;
  /** Immutable transaction context (`tctx`), if any. */
  tctx: Record<string, unknown> | undefined;
  /** Request context (`rctx`), if any. */
  rctx: Record<string, unknown> | undefined;
  /** Every claim, for policy that needs more. */
  claims: JWTPayload;
}

export interface TxnTokenVerifierOptions {
  /** This trust domain's name (e.g. `example.org`); `aud` must be exactly this string. */
  trustDomain: string;
  /**
   * The token service's public keys: its JWKS URL (fetched, kept, refetched on an unknown
   * `kid` or when older than 10 minutes; at most one fetch per `jwksCooldownSeconds` in every
   * state, a failing endpoint included; each fetch bounded by `jwksTimeoutMs` and 256 KiB), a
   * key set held in memory, or a key resolver function (for the token service itself, which
   * holds its keys).
   */
  jwks: URL | { keys: JWK[] } | JWTVerifyGetKey;
  /** If set, `iss` must equal it exactly (the draft makes `iss` optional). */
  issuer?: string;
  /** Allowed `alg`. Default `['ES256']`. Asymmetric only: `none` and HMAC fail construction. */
  algorithms?: string[];
  /** Longest `exp - iat` accepted, in seconds. Default 300. */
  maxLifetimeSeconds?: number;
  /** Clock skew allowed for `exp` and `iat`, in seconds. Default 5. */
  clockToleranceSeconds?: number;
  /** Tokens over this many UTF-8 bytes are refused before any parsing. Default 8192. */
  maxTokenBytes?: number;
  /** Most actors in the `act` chain. Default 5. */
  maxActorDepth?: number;
  /** With a JWKS URL: the fetch to use (e.g. one whose dispatcher presents an SVID). */
  fetch?: typeof globalThis.fetch;
  /** With a JWKS URL: minimum seconds between refetches. Default 30. */
  jwksCooldownSeconds?: number;
  /** With a JWKS URL: timeout of one fetch, in milliseconds. Default 5000. */
  jwksTimeoutMs?: number;
  /** The current time in milliseconds; for tests with a frozen clock. Default `Date.now`. */
  clock?: () => number;
}

export interface TxnTokenVerifier {
  /** Verifies a Transaction Token from the `Txn-Token` header. Rejects with TxnTokenError only. */
  verify(token: string): Promise<TxnToken>;
}

/** RFC 6749 3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
const MAX_TXN_LENGTH = 256;

/**
 * Splits a `scope` claim or parameter into its scope-tokens; undefined when it is not a
 * non-empty, single-space-delimited list of valid scope-tokens. Duplicates are dropped.
 */
export function parseScope(value: unknown): string[] | undefined {
  if (typeof value !== 'string' || value.length === 0) return undefined;
  const parts = value.split(' ');
  if (!parts.every((p) => SCOPE_TOKEN.test(p))) return undefined;
  return [...new Set(parts)];
}

function keyResolver(opts: TxnTokenVerifierOptions): JWTVerifyGetKey {
  if (typeof opts.jwks === 'function') return opts.jwks;
  return guardedKeySet(
    opts.jwks,
    { ...opts, now: opts.clock ?? Date.now },
    (err) => err instanceof TxnTokenError,
    (cause) => new TxnTokenError('jwks_unavailable', { cause }),
  );
}

/** jose's errors onto the bounded reasons; claim failures get no `cause` (jose attaches claims). */
function toTxnTokenError(err: unknown): TxnTokenError {
  if (err instanceof TxnTokenError) return err;
  if (err instanceof errors.JWTExpired) return new TxnTokenError('expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return new TxnTokenError('issuer');
    if (err.claim === 'aud') return new TxnTokenError('audience');
    if (err.claim === 'typ') return new TxnTokenError('type');
    if ((err.claim === 'nbf' || err.claim === 'iat') && err.reason === 'check_failed') {
      return new TxnTokenError('not_yet_valid');
    }
    return new TxnTokenError('claims');
  }
  const byClass: Array<[new (...args: never[]) => Error, TxnTokenFailureReason]> = [
    [errors.JOSEAlgNotAllowed, 'algorithm'],
    [errors.JWSSignatureVerificationFailed, 'signature'],
    [errors.JWKSNoMatchingKey, 'unknown_key'],
    [errors.JWKSMultipleMatchingKeys, 'unknown_key'],
    [errors.JWKSTimeout, 'jwks_unavailable'],
    [errors.JWKSInvalid, 'jwks_unavailable'],
  ];
  for (const [cls, reason] of byClass) {
    if (err instanceof cls) return new TxnTokenError(reason, { cause: err });
  }
  return new TxnTokenError('malformed', { cause: err });
}

/**
 * Builds a Transaction Token verifier for one trust domain. Every option is checked here, so
 * a misconfigured service fails at start-up with DelegationConfigError.
 *
 * Checks, cheapest first: size, compact form, canonical base64url, `alg` in the allow-list,
 * `typ` exactly `txntoken+jwt`, a `kid` (the token service always sets one; without it a key
 * set would have to be searched); then the signature; then `aud` exactly the trust domain,
 * `iss` if configured, `exp` and `iat` with the skew, `exp - iat` at most the maximum
 * lifetime, `sub`, `txn`, `scope` and `req_wl` present and well-formed, `tctx`/`rctx`
 * objects if present, and a well-formed `act` chain if present.
 */
export function createTxnTokenVerifier(opts: TxnTokenVerifierOptions): TxnTokenVerifier {
  if (!isPlainObject(opts)) throw new DelegationConfigError('options are required');
  if (!nonEmptyString(opts.trustDomain)) throw new DelegationConfigError('trustDomain is required');
  if (opts.issuer !== undefined && !nonEmptyString(opts.issuer)) {
    throw new DelegationConfigError('issuer must be a non-empty string when set');
  }
  const algorithms = [...(opts.algorithms ?? ['ES256'])];
  if (algorithms.length === 0) throw new DelegationConfigError('algorithms must not be empty');
  for (const alg of algorithms) {
    if (!ASYMMETRIC_ALGORITHMS.has(alg)) {
      throw new DelegationConfigError(
        `algorithm ${JSON.stringify(alg)} is not allowed (asymmetric JWS algorithms only)`,
      );
    }
  }
  const maxLifetime = positiveInteger(
    'maxLifetimeSeconds',
    opts.maxLifetimeSeconds,
    TXN_TOKEN_MAX_LIFETIME_SECONDS,
  );
  const maxTokenBytes = positiveInteger('maxTokenBytes', opts.maxTokenBytes, 8192);
  const maxActorDepth = positiveInteger('maxActorDepth', opts.maxActorDepth, 5);
  const tolerance = opts.clockToleranceSeconds ?? 5;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new DelegationConfigError('clockToleranceSeconds must be a non-negative number');
  }
  const clock = opts.clock ?? Date.now;
  if (typeof clock !== 'function') throw new DelegationConfigError('clock must be a function');
  const getKey = keyResolver(opts);
  const trustDomain = opts.trustDomain;

  return {
    async verify(token) {
      try {
        precheck(token, algorithms, maxTokenBytes);
      } catch (err) {
        throw err instanceof DelegationError
          ? new TxnTokenError(
              err.reason === 'too_large'
                ? 'too_large'
                : err.reason === 'algorithm'
                  ? 'algorithm'
                  : 'malformed',
            )
          : toTxnTokenError(err);
      }
      // precheck has parsed the header once already; this cannot throw on a token it passed.
      const header = decodeProtectedHeader(token);
      if (header.typ !== TXN_TOKEN_TYP) throw new TxnTokenError('type');
      if (!nonEmptyString(header.kid)) throw new TxnTokenError('unknown_key');
      const now = clock();
      const jwtOptions: JWTVerifyOptions = {
        audience: trustDomain,
        algorithms,
        typ: TXN_TOKEN_TYP,
        clockTolerance: tolerance,
        currentDate: new Date(now),
        requiredClaims: ['iat', 'exp', 'sub', 'txn', 'scope', 'req_wl'],
        ...(opts.issuer !== undefined ? { issuer: opts.issuer } : {}),
      };
      let payload: JWTPayload;
      try {
        payload = (await jwtVerify(token, getKey, jwtOptions)).payload;
      } catch (err) {
        throw toTxnTokenError(err);
      }
      const { iat, exp, sub, aud } = payload;
      // One trust domain per token: an array `aud`, even one naming us, is refused.
      if (aud !== trustDomain) throw new TxnTokenError('audience');
      if (typeof iat !== 'number' || typeof exp !== 'number') throw new TxnTokenError('claims');
      if (iat > now / 1000 + tolerance) throw new TxnTokenError('not_yet_valid');
      if (exp <= iat) throw new TxnTokenError('claims');
      if (exp - iat > maxLifetime) throw new TxnTokenError('lifetime');
      const { txn, req_wl: reqWl, tctx, rctx } = payload as Record<string, unknown>;
      const scope = parseScope(payload.scope);
      if (!nonEmptyString(sub) || !nonEmptyString(txn) || txn.length > MAX_TXN_LENGTH) {
        throw new TxnTokenError('claims');
      }
      if (!scope || !nonEmptyString(reqWl)) throw new TxnTokenError('claims');
      if (tctx !== undefined && !isPlainObject(tctx)) throw new TxnTokenError('claims');
      if (rctx !== undefined && !isPlainObject(rctx)) throw new TxnTokenError('claims');
      let actors: string[] = [];
      if (Object.hasOwn(payload, 'act')) {
        const chain = actorChain(payload.act, maxActorDepth);
        if (!chain) throw new TxnTokenError('actor');
        actors = chain;
      }
      return {
        subject: sub,
        txn,
        scope,
        requestingWorkload: reqWl,
        actor: actors[0],
        actors,
        audience: trustDomain,
        issuer: typeof payload.iss === 'string' ? payload.iss : undefined,
        issuedAt: new Date(iat * 1000),
        expiresAt: new Date(exp * 1000),
        tctx: tctx as Record<string, unknown> | undefined,
        rctx: rctx as Record<string, unknown> | undefined,
        claims: payload,
      };
    },
  };
}

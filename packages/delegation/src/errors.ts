/**
 * Why a delegation token was refused. A bounded set so it can be a metrics label and a log
 * field; clients never see it (they get a generic "authorization failed").
 */
export type DelegationFailureReason =
  | 'malformed'
  | 'too_large'
  | 'algorithm'
  | 'signature'
  | 'unknown_key'
  | 'issuer'
  | 'audience'
  | 'expired'
  | 'not_yet_valid'
  | 'lifetime'
  | 'claims'
  | 'actor_mismatch'
  | 'jwks_unavailable';

const MESSAGES: Record<DelegationFailureReason, string> = {
  malformed: 'token is not a well-formed compact JWS',
  too_large: 'token is larger than allowed',
  algorithm: 'token algorithm is not allowed',
  signature: 'token signature is invalid',
  unknown_key: 'no trusted key matches the token',
  issuer: 'token issuer is not trusted',
  audience: 'token is not meant for this audience',
  expired: 'token has expired',
  not_yet_valid: 'token is not valid yet',
  lifetime: 'token lifetime is longer than allowed',
  claims: 'token claims are missing or invalid',
  actor_mismatch: 'token actor is not the caller',
  jwks_unavailable: 'verification keys are unavailable',
};

/**
 * A delegation token was refused. The message is fixed per reason and never carries the token
 * (a bearer credential) or any claim from it, so the error can be logged as is. `cause` holds
 * the underlying jose error, if any, for debugging.
 *
 * `jwks_unavailable` means nothing could be decided (answer 503, retry later); every other
 * reason is a definitive refusal of this token (answer 401/403).
 */
export class DelegationError extends Error {
  override name = 'DelegationError';
  readonly code = 'ERR_DELEGATION' as const;
  readonly reason: DelegationFailureReason;
  constructor(reason: DelegationFailureReason, options?: { cause?: unknown }) {
    super(`delegation: ${MESSAGES[reason]}`, options);
    this.reason = reason;
  }
}

/**
 * The verifier or issuer was configured unsafely or inconsistently (an HMAC or `none`
 * algorithm, no audience, a JWKS that is not a key set...). Thrown at construction, so a bad
 * deployment fails at start-up rather than accepting or refusing tokens at random later.
 */
export class DelegationConfigError extends Error {
  override name = 'DelegationConfigError';
  readonly code = 'ERR_DELEGATION_CONFIG' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(`delegation: ${message}`, options);
  }
}

/**
 * Stable codes for everything that stops a decision from being made. A caller maps them, never
 * the message, to its answer: `ERR_POLICY_INPUT` is the caller's bad request (400), every other
 * code means no decision could be made, which is a deny (or 503), never an allow.
 */
export type PolicyErrorCode =
  /** The decision input was malformed, too large or carried unknown fields. */
  | 'ERR_POLICY_INPUT'
  /** The OPA server could not be reached, timed out or answered with a non-2xx status. */
  | 'ERR_POLICY_UNAVAILABLE'
  /** The engine answered, but not with a decision of the expected shape (or no decision). */
  | 'ERR_POLICY_RESULT'
  /** The Wasm policy failed while evaluating. */
  | 'ERR_POLICY_EVALUATION'
  /** Unusable options or data, found at construction. */
  | 'ERR_POLICY_CONFIG';

/**
 * A decision could not be made. The message names the broken rule and never carries the
 * input's values beyond field names, so it can be logged as is; `cause` holds the underlying
 * error, if any.
 */
export class PolicyError extends Error {
  override name = 'PolicyError';
  readonly code: PolicyErrorCode;
  constructor(code: PolicyErrorCode, message: string, options?: { cause?: unknown }) {
    super(`policy: ${message}`, options);
    this.code = code;
  }
}

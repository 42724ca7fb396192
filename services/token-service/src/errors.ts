/**
 * RFC 6749 section 5.2 error codes the token endpoint answers with, and the one table that maps
 * each to its HTTP status. The token endpoint speaks OAuth (`{error, error_description}`), not
 * problem+json: clients of RFC 8693 parse this shape.
 */
export const OAUTH_ERROR_STATUS = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  invalid_target: 400,
  server_error: 500,
  temporarily_unavailable: 503,
} as const satisfies Record<string, number>;

export type OAuthErrorCode = keyof typeof OAUTH_ERROR_STATUS;

/**
 * Why an exchange was refused, as a bounded label for logs and metrics. The client sees only
 * the OAuth `error` and a generic description.
 */
export type ExchangeFailureReason =
  | 'form_too_large'
  | 'form_encoding'
  | 'form_media_type'
  | 'duplicate_parameter'
  | 'too_many_parameters'
  | 'missing_parameter'
  | 'unsupported_grant_type'
  | 'unsupported_token_type'
  | 'actor_token'
  | 'audience'
  | 'scope_syntax'
  | 'scope_not_granted'
  | 'scope_widened'
  | 'context'
  | 'person_proof'
  | 'person_unavailable'
  | 'subject_txn_token'
  | 'replacement_context'
  | 'no_consent'
  | 'caller_trust_domain'
  | 'caller_not_allowed'
  | 'no_client_certificate'
  | 'policy_unavailable'
  | 'consent_unavailable'
  | 'actor_chain_too_deep'
  | 'requested_actor'
  | 'actor_not_permitted'
  | 'internal';

/**
 * What a policy refusal may tell its caller when the service is configured to explain
 * (`explainRefusals`): the transaction it would have belonged to and the policy's own answer.
 */
export interface RefusalExplanation {
  txn?: string;
  decision: { reason: string; details?: unknown };
}

/**
 * A refused token exchange. `error` and `description` are what the client gets (the
 * description is generic and never holds a token, a claim or the internal reason); `reason`
 * goes to logs and metrics.
 */
export class TokenExchangeError extends Error {
  override name = 'TokenExchangeError';
  readonly code = 'ERR_TOKEN_EXCHANGE' as const;
  readonly error: OAuthErrorCode;
  readonly reason: ExchangeFailureReason;
  readonly description: string;
  /** Sent with the error body when set; only the exchange sets it, for policy refusals. */
  readonly explanation: RefusalExplanation | undefined;
  constructor(
    error: OAuthErrorCode,
    reason: ExchangeFailureReason,
    description: string,
    options?: { cause?: unknown; explanation?: RefusalExplanation },
  ) {
    super(`token-service: ${error} (${reason}): ${description}`, options);
    this.error = error;
    this.reason = reason;
    this.description = description;
    this.explanation = options?.explanation;
  }

  get status(): number {
    return OAUTH_ERROR_STATUS[this.error];
  }

  /** The RFC 6749 5.2 body, with the explanation's members when there is one. */
  body(): { error: OAuthErrorCode; error_description: string } & Partial<RefusalExplanation> {
    return { error: this.error, error_description: this.description, ...this.explanation };
  }
}

/** The service was configured unsafely or inconsistently; thrown at start-up. */
export class TokenServiceConfigError extends Error {
  override name = 'TokenServiceConfigError';
  readonly code = 'ERR_TOKEN_SERVICE_CONFIG' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(`token-service: ${message}`, options);
  }
}

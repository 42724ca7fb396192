/**
 * The one error class of the SDK for untrusted input that breaks a SPIFFE rule, a missing
 * bundle, or a closed source. `code` is stable (ERR_SPIFFEID_*, ERR_X509SVID_*,
 * ERR_JWTSVID_*, ERR_BUNDLE_*, ERR_WORKLOADAPI_*, ERR_SOURCE_*, ERR_TLS_*); messages are
 * lowercase, start with the area and state the broken rule. Misuse by the caller throws
 * TypeError instead.
 */
export class SpiffeError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'SpiffeError';
  }
}

/** Stable error codes of the identity server. */
export type IdentityServerErrorCode =
  | 'ERR_ENTRY_INVALID'
  | 'ERR_ENTRY_NOT_FOUND'
  | 'ERR_ENTRY_EXISTS'
  | 'ERR_SPIFFE_ID_INVALID'
  | 'ERR_TRUST_DOMAIN_MISMATCH'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_BUNDLE_INVALID'
  | 'ERR_KEYSTORE_CORRUPT'
  | 'ERR_CA_UNAVAILABLE'
  | 'ERR_ATTESTATION_FAILED'
  | 'ERR_ADMIN_UNAUTHORIZED'
  | 'ERR_ADMIN_REQUEST';

/** Base error of @precinct/identity-server: a stable `code` and the underlying `cause`. */
export class IdentityServerError extends Error {
  override name = 'IdentityServerError';
  readonly code: IdentityServerErrorCode;
  constructor(code: IdentityServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

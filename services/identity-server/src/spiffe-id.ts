import { SpiffeId, TrustDomain } from '@precinct/spiffe';
import { IdentityServerError } from './errors.js';

// SPIFFE ID rules come from @precinct/spiffe; these wrappers give the identity server's own
// error code (the SDK's code is kept as the cause).

/** Validates a trust domain name (`example.org`, also accepts `spiffe://example.org`). */
export function parseTrustDomain(input: string): string {
  try {
    return TrustDomain.parse(input).name;
  } catch (err) {
    throw new IdentityServerError(
      'ERR_SPIFFE_ID_INVALID',
      `invalid trust domain: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** Validates a SPIFFE ID and returns it with its trust domain. */
export function parseSpiffeId(input: string): { id: string; trustDomain: string; path: string } {
  try {
    const id = SpiffeId.parse(input);
    return { id: id.toString(), trustDomain: id.trustDomain.name, path: id.path };
  } catch (err) {
    throw new IdentityServerError(
      'ERR_SPIFFE_ID_INVALID',
      `invalid SPIFFE ID: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

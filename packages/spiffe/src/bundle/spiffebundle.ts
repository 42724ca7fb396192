import { X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SpiffeError } from '../errors.js';
import { toTrustDomain, type TrustDomain } from '../spiffeid/id.js';
import { JwtBundle, importPublicJwk, parseJwksKeys } from './jwtbundle.js';
import { X509Bundle } from './x509bundle.js';

const KNOWN_KTY = new Set(['RSA', 'EC', 'OKP']);

/**
 * A bundle in the SPIFFE bundle format (SPIFFE Trust Domain and Bundle spec, section 4): a
 * JWKS whose keys have `use: x509-svid` (one certificate in `x5c`) or `use: jwt-svid` (a `kid`),
 * with `spiffe_sequence` and `spiffe_refresh_hint`. What federation exchanges.
 */
export class SpiffeBundle {
  readonly x509: X509Bundle;
  readonly jwt: JwtBundle;
  /** Seconds. */
  refreshHint: number | undefined;
  sequenceNumber: number | undefined;

  constructor(
    readonly trustDomain: TrustDomain,
    init: {
      x509Authorities?: X509Certificate[];
      jwtAuthorities?: Map<string, KeyObject>;
      refreshHint?: number;
      sequenceNumber?: number;
    } = {},
  ) {
    this.x509 = new X509Bundle(trustDomain, init.x509Authorities ?? []);
    this.jwt = new JwtBundle(trustDomain, init.jwtAuthorities ?? new Map());
    this.refreshHint = init.refreshHint;
    this.sequenceNumber = init.sequenceNumber;
  }

  /**
   * Parses the SPIFFE bundle format. An `x509-svid` key contributes the first certificate of
   * its `x5c` (an entry without one is skipped); a `jwt-svid` key must carry a `kid`; keys
   * without `use`, of another `use` or of an unknown `kty` are skipped.
   */
  static parse(td: TrustDomain | string, data: Buffer | string): SpiffeBundle {
    const t = toTrustDomain(td);
    const text = typeof data === 'string' ? data : data.toString('utf8');
    const keys = parseJwksKeys(text, 'spiffebundle');
    const doc = JSON.parse(text) as { spiffe_refresh_hint?: unknown; spiffe_sequence?: unknown };
    if (!('keys' in (doc as object))) {
      throw new SpiffeError('ERR_BUNDLE_JSON', 'spiffebundle: no authorities found');
    }
    const bundle = new SpiffeBundle(t);
    const hint = doc.spiffe_refresh_hint;
    if (hint !== undefined) {
      if (typeof hint !== 'number' || !Number.isInteger(hint) || hint < 0) {
        throw new SpiffeError('ERR_BUNDLE_REFRESH_HINT', 'spiffebundle: invalid refresh hint');
      }
      bundle.refreshHint = hint;
    }
    const seq = doc.spiffe_sequence;
    if (seq !== undefined) {
      if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0) {
        throw new SpiffeError('ERR_BUNDLE_SEQUENCE', 'spiffebundle: invalid sequence number');
      }
      bundle.sequenceNumber = seq;
    }
    for (const [i, jwk] of keys.entries()) {
      // Trust Domain and Bundle 4.2.1: an element of an unknown key type is ignored whole.
      if (!KNOWN_KTY.has(String(jwk.kty))) continue;
      if (jwk.use === 'x509-svid') {
        // X509-SVID 6.2: an entry without x5c (or with an empty one) MUST be ignored, and of
        // several values all but the first MUST be ignored.
        if (!Array.isArray(jwk.x5c) || jwk.x5c.length === 0) continue;
        if (typeof jwk.x5c[0] !== 'string') {
          throw new SpiffeError(
            'ERR_BUNDLE_X5C',
            `spiffebundle: x5c of x509-svid entry ${i} is not a base64 certificate`,
          );
        }
        let cert: X509Certificate;
        try {
          cert = new X509Certificate(Buffer.from(jwk.x5c[0], 'base64'));
        } catch (err) {
          throw new SpiffeError('ERR_BUNDLE_X5C', `spiffebundle: bad certificate in entry ${i}`, {
            cause: err,
          });
        }
        bundle.x509.addX509Authority(cert);
      } else if (jwk.use === 'jwt-svid') {
        const key = importPublicJwk(jwk, 'spiffebundle');
        if (!key) continue;
        if (typeof jwk.kid !== 'string' || jwk.kid === '') {
          throw new SpiffeError('ERR_BUNDLE_KID', `spiffebundle: missing key ID in entry ${i}`);
        }
        bundle.jwt.addJwtAuthority(jwk.kid, key);
      }
    }
    return bundle;
  }

  static load(td: TrustDomain | string, path: string): SpiffeBundle {
    return SpiffeBundle.parse(td, readFileSync(path));
  }

  /** The SPIFFE bundle format, as JSON text. */
  marshal(): string {
    const keys: Array<Record<string, unknown>> = [];
    for (const cert of this.x509.x509Authorities()) {
      keys.push({
        ...(cert.publicKey.export({ format: 'jwk' }) as JsonWebKey),
        use: 'x509-svid',
        x5c: [cert.raw.toString('base64')],
      });
    }
    for (const [kid, key] of this.jwt.jwtAuthorities()) {
      keys.push({ ...(key.export({ format: 'jwk' }) as JsonWebKey), use: 'jwt-svid', kid });
    }
    return JSON.stringify({
      keys,
      ...(this.refreshHint !== undefined ? { spiffe_refresh_hint: this.refreshHint } : {}),
      ...(this.sequenceNumber !== undefined ? { spiffe_sequence: this.sequenceNumber } : {}),
    });
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    return this.x509.getX509BundleForTrustDomain(td);
  }

  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    return this.jwt.getJwtBundleForTrustDomain(td);
  }
}

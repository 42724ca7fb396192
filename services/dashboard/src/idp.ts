// The dashboard as the local OpenID Provider for people: after a password login it mints a
// short-lived ES256 ID token that the token service accepts as the person's proof
// (`subject_token`). The private key never leaves this process; the public key is a JWKS.
import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';

export interface DashboardIdpOptions {
  /** `iss` of the ID tokens; the token service must expect exactly this. */
  issuer: string;
  /** `aud`: the token service's client id. */
  audience: string;
  /** ID token lifetime in seconds. Default 60: it is used once, right away. */
  ttlSeconds?: number;
}

export interface PublicJwk {
  kty: string;
  crv?: string;
  x?: string;
  y?: string;
  kid: string;
  alg: 'ES256';
  use: 'sig';
}

const b64 = (v: string | Buffer) => Buffer.from(v).toString('base64url');

export class DashboardIdp {
  readonly issuer: string;
  readonly audience: string;
  readonly kid = randomUUID();
  readonly #key: KeyObject;
  readonly #jwk: PublicJwk;
  readonly #ttl: number;

  constructor(o: DashboardIdpOptions) {
    if (!/^https?:\/\/\S+$/.test(o.issuer))
      throw new TypeError('dashboard idp: issuer must be a URL');
    if (!o.audience) throw new TypeError('dashboard idp: audience is required');
    this.issuer = o.issuer;
    this.audience = o.audience;
    this.#ttl = o.ttlSeconds ?? 60;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#key = privateKey;
    const pub = publicKey.export({ format: 'jwk' });
    this.#jwk = {
      kty: pub.kty!,
      crv: pub.crv!,
      x: pub.x!,
      y: pub.y!,
      kid: this.kid,
      alg: 'ES256',
      use: 'sig',
    };
  }

  /** The public keys, for the token service's OIDC person authenticator. */
  jwks(): { keys: PublicJwk[] } {
    return { keys: [{ ...this.#jwk }] };
  }

  /** An ID token for `subject`, authenticated by password (`amr: ["pwd"]`). */
  mint(subject: string, nowMs = Date.now()): string {
    const iat = Math.floor(nowMs / 1000);
    const header = b64(JSON.stringify({ alg: 'ES256', kid: this.kid, typ: 'JWT' }));
    const payload = b64(
      JSON.stringify({
        iss: this.issuer,
        aud: this.audience,
        sub: subject,
        iat,
        exp: iat + this.#ttl,
        jti: randomUUID(),
        amr: ['pwd'],
      }),
    );
    const input = `${header}.${payload}`;
    const sig = sign('sha256', Buffer.from(input), { key: this.#key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64(sig)}`;
  }
}

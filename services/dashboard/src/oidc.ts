// People from an OpenID Provider (the production identity source): the authorization code flow
// with PKCE, `state` and `nonce`, through openid-client. A login in progress lives here, keyed by
// the hash of a random value in a short-lived cookie; the callback consumes it, so a replayed or
// forged callback finds nothing. The provider's ID token is checked (issuer, audience, expiry,
// nonce, signature against its JWKS) and then forgotten: the dashboard keeps only the person's
// name, and mints its own short ID token per access for the token service, as after a password.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as oidc from 'openid-client';

export interface DashboardOidcOptions {
  /** The provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`). */
  issuer: string;
  clientId: string;
  /** The client secret: read it from a file or the environment, never from a flag's value. */
  clientSecret: string;
  /** The claim naming the person (ID token, else userinfo). Default `preferred_username`. */
  usernameClaim?: string;
  /** The claim listing the person's groups. Default `groups`. */
  groupsClaim?: string;
  /** Members of any of these groups are auditors. Default none. */
  auditorGroups?: readonly string[];
  /** Scopes asked for. Default `openid profile`, plus `groups` when auditorGroups is set. */
  scopes?: readonly string[];
  /**
   * Log out at the provider too (RP-initiated logout), so the next sign-in asks again instead of
   * reusing the provider's session. Register `<dashboard URL>/` as a post-logout redirect URI.
   */
  endProviderSession?: boolean;
}

/** Who logged in: the validated name and, when configured, whether the provider says auditor. */
export interface OidcPerson {
  name: string;
  auditor: boolean;
  /** The provider's ID token, kept server-side only as the logout hint. */
  idToken: string;
}

/** A refused login, with a bounded reason label for logs and metrics. */
export class OidcRefused extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

interface Pending {
  state: string;
  nonce: string;
  verifier: string;
  expiresAt: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const PENDING_TTL_MS = 10 * 60_000;
const MAX_PENDING = 1000;
// Provider and dashboard clocks are expected to be NTP-synchronized; a small tolerance only.
const CLOCK_TOLERANCE_SECONDS = 5;
const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A bounded label for why openid-client refused a response (never its message). */
function reasonOf(err: unknown): string {
  if (err instanceof oidc.AuthorizationResponseError) return 'oidc_provider_error';
  if (err instanceof oidc.ResponseBodyError) return 'oidc_grant_refused';
  // openid-client wraps oauth4webapi's error, whose own cause names the claim that failed.
  let claim = '';
  let message = '';
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const x = e as { cause?: unknown; claim?: unknown; message?: unknown };
    if (!claim && typeof x.claim === 'string') claim = x.claim;
    if (typeof x.message === 'string') message += ` ${x.message}`;
    e = x.cause;
  }
  if (claim === 'iss') return 'oidc_issuer';
  if (claim === 'aud' || claim === 'azp') return 'oidc_audience';
  if (claim === 'exp' || claim === 'iat' || claim === 'nbf') return 'oidc_expired';
  if (claim === 'nonce') return 'oidc_nonce';
  if (/"state"/.test(message)) return 'oidc_state';
  if (/"iss"/.test(message)) return 'oidc_issuer';
  if (/signature|JWS|key/i.test(message)) return 'oidc_signature';
  return 'oidc_failed';
}

export class OidcLogin {
  readonly #o: DashboardOidcOptions;
  readonly #pending = new Map<string, Pending>();
  #config: Promise<oidc.Configuration> | undefined;

  constructor(o: DashboardOidcOptions) {
    let issuer: URL;
    try {
      issuer = new URL(o.issuer);
    } catch {
      throw new TypeError('dashboard oidc: issuer must be a URL');
    }
    // Plain HTTP only for a provider on this machine (tests, a local provider); never remote.
    if (
      issuer.protocol !== 'https:' &&
      !(issuer.protocol === 'http:' && LOOPBACK.has(issuer.hostname))
    )
      throw new TypeError('dashboard oidc: issuer must be https (http only on loopback)');
    if (!o.clientId) throw new TypeError('dashboard oidc: clientId is required');
    if (!o.clientSecret) throw new TypeError('dashboard oidc: clientSecret is required');
    this.#o = o;
  }

  get issuer(): string {
    return this.#o.issuer;
  }

  /** Discovery, once; a failure is retried by the next login instead of being remembered. */
  #configuration(): Promise<oidc.Configuration> {
    this.#config ??= (async () => {
      const url = new URL(this.#o.issuer);
      const config = await oidc.discovery(
        url,
        this.#o.clientId,
        { [oidc.clockTolerance]: CLOCK_TOLERANCE_SECONDS },
        oidc.ClientSecretBasic(this.#o.clientSecret),
        {
          ...(url.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {}),
          timeout: 10,
        },
      );
      // The ID token's signature too, against the provider's JWKS: TLS alone is not enough for us.
      oidc.enableNonRepudiationChecks(config);
      return config;
    })();
    this.#config.catch(() => (this.#config = undefined));
    return this.#config;
  }

  /** Discovers the provider now (at start), so a wrong issuer shows up early in the log. */
  warmUp(): Promise<void> {
    return this.#configuration().then(() => undefined);
  }

  /** Starts a login: where to send the browser, and the value of its login-in-progress cookie. */
  async begin(redirectUri: string): Promise<{ url: string; cookie: string }> {
    const config = await this.#configuration();
    const verifier = oidc.randomPKCECodeVerifier();
    const pending: Pending = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier,
      expiresAt: Date.now() + PENDING_TTL_MS,
    };
    const cookie = randomBytes(32).toString('base64url');
    this.#sweep();
    if (this.#pending.size >= MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value!);
    this.#pending.set(sha256(cookie), pending);
    const groups = (this.#o.auditorGroups?.length ?? 0) > 0 ? ['groups'] : [];
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: (this.#o.scopes ?? ['openid', 'profile', ...groups]).join(' '),
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    });
    return { url: url.href, cookie };
  }

  /**
   * Finishes a login from the callback: `cookie` is the login-in-progress cookie's value,
   * `callbackUrl` the callback URL as the provider sent it (the dashboard's own redirect URI
   * with the provider's query). Throws OidcRefused.
   */
  async finish(cookie: string | undefined, callbackUrl: URL): Promise<OidcPerson> {
    if (!cookie || !/^[A-Za-z0-9_-]{43}$/.test(cookie)) throw new OidcRefused('oidc_no_login');
    const key = sha256(cookie);
    const pending = this.#pending.get(key);
    // One use: a replayed callback (or a second tab's) finds nothing.
    this.#pending.delete(key);
    if (!pending || pending.expiresAt <= Date.now()) throw new OidcRefused('oidc_no_login');
    const state = callbackUrl.searchParams.get('state');
    if (state === null || !sameString(state, pending.state)) throw new OidcRefused('oidc_state');
    const config = await this.#configuration().catch(() => {
      throw new OidcRefused('oidc_provider_unavailable');
    });
    let claims: Record<string, unknown>;
    let idToken: string;
    try {
      const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
      claims = { ...tokens.claims()! };
      idToken = tokens.id_token!;
      const nameClaim = this.#o.usernameClaim ?? 'preferred_username';
      const groupsClaim = this.#o.groupsClaim ?? 'groups';
      // Providers that keep profile claims out of the ID token give them at userinfo.
      if (claims[nameClaim] === undefined || (this.#o.auditorGroups && !(groupsClaim in claims))) {
        const info = await oidc.fetchUserInfo(config, tokens.access_token, String(claims.sub));
        claims = { ...info, ...claims };
      }
    } catch (err) {
      if (err instanceof OidcRefused) throw err;
      throw new OidcRefused(reasonOf(err));
    }
    const name = claims[this.#o.usernameClaim ?? 'preferred_username'];
    if (typeof name !== 'string' || !NAME.test(name)) throw new OidcRefused('oidc_bad_name');
    const groups = claims[this.#o.groupsClaim ?? 'groups'];
    const auditor =
      Array.isArray(groups) &&
      groups.some((g) => typeof g === 'string' && (this.#o.auditorGroups ?? []).includes(g));
    return { name, auditor, idToken };
  }

  /**
   * Where to send the browser to end the provider's session, or undefined when not configured
   * or the provider has no end-session endpoint.
   */
  async endSessionUrl(idToken: string, postLogoutRedirectUri: string): Promise<string | undefined> {
    if (!this.#o.endProviderSession) return undefined;
    const config = await this.#configuration().catch(() => undefined);
    if (!config?.serverMetadata().end_session_endpoint) return undefined;
    return oidc.buildEndSessionUrl(config, {
      id_token_hint: idToken,
      post_logout_redirect_uri: postLogoutRedirectUri,
    }).href;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [k, p] of this.#pending) if (p.expiresAt <= now) this.#pending.delete(k);
  }
}

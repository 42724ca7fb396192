import type { JwtSvidSource } from '@precinct/spiffe';
import { SecretsError } from './errors.js';
import {
  VaultHttp,
  checkPath,
  silentLogger,
  type SecretsLogger,
  type VaultHttpOptions,
  type VaultResponse,
} from './http.js';

/** A JWT-SVID source; with `events` (a JwtSource), a bundle update (key rotation) re-logs in. */
export type SessionJwtSource = JwtSvidSource & {
  events?(signal?: AbortSignal): AsyncIterable<{ type: string }>;
};

export interface VaultSessionOptions extends VaultHttpOptions {
  /** The JWT auth role to log in as (one per workload). */
  role: string;
  /** The audience of the JWT-SVID, as bound in the role (`bound_audiences`). */
  audience: string;
  /** Where JWT-SVIDs come from: a JwtSource on the Workload API. */
  jwtSource: SessionJwtSource;
  /** Mount path of the JWT auth method. Default `jwt`. */
  mount?: string;
  /** Renew (or re-login) when this fraction of the token's lease has passed. Default 2/3. */
  renewAt?: number;
  /** Wait before retrying a failed renewal or login, in ms. Default 1000. */
  retryMs?: number;
  logger?: SecretsLogger;
  /** Milliseconds since the epoch; default `Date.now`. */
  clock?: () => number;
}

/**
 * A Vault/OpenBao token obtained by logging in with the workload's JWT-SVID, kept alive: renewed
 * at `renewAt` of its lease, replaced by a fresh login when it cannot be renewed (revoked,
 * max TTL reached) or when the JWT bundle rotates. While the server is unreachable the current
 * token is kept until it expires; `ready()` is false from then on. The token never leaves this
 * object except as the `X-Vault-Token` header of its own requests.
 */
export class VaultSession {
  readonly http: VaultHttp;
  readonly role: string;
  readonly #opts: VaultSessionOptions;
  readonly #mount: string;
  readonly #log: SecretsLogger;
  readonly #now: () => number;
  #token: string | undefined;
  #expiresAt = 0;
  #leaseSeconds = 0;
  #renewable = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #inflight: Promise<void> | undefined;
  readonly #stop = new AbortController();
  /** How many logins succeeded (the first included). */
  logins = 0;
  /** How many renewals succeeded. */
  renewals = 0;

  private constructor(opts: VaultSessionOptions) {
    if (!opts.role || !opts.audience)
      throw new TypeError('secrets: role and audience are required');
    this.#opts = opts;
    this.http = new VaultHttp(opts);
    this.role = opts.role;
    this.#mount = checkPath(opts.mount ?? 'jwt');
    this.#log = opts.logger ?? silentLogger;
    this.#now = opts.clock ?? Date.now;
  }

  /** Logs in with a fresh JWT-SVID; rejects with ERR_SECRETS_LOGIN or ERR_SECRETS_UNAVAILABLE. */
  static async login(opts: VaultSessionOptions): Promise<VaultSession> {
    const s = new VaultSession(opts);
    await s.relogin();
    s.#watchBundles();
    return s;
  }

  /** True while the session holds a token that has not expired. */
  ready(): boolean {
    return !this.#closed && this.#token !== undefined && this.#now() < this.#expiresAt;
  }

  /** When the current token expires (ms since the epoch), 0 without one. */
  get expiresAt(): number {
    return this.#expiresAt;
  }

  /** Logs in again now with a fresh JWT-SVID (one at a time; concurrent callers share it). */
  relogin(): Promise<void> {
    this.#inflight ??= this.#login().finally(() => (this.#inflight = undefined));
    return this.#inflight;
  }

  async #login(): Promise<void> {
    this.#ensureOpen();
    const svid = await this.#opts.jwtSource.fetchJwtSvid({ audience: this.#opts.audience });
    let res: VaultResponse;
    try {
      res = await this.http.request('POST', `auth/${this.#mount}/login`, {
        body: { role: this.role, jwt: svid.token },
        what: `login to auth/${this.#mount} as role "${this.role}"`,
      });
    } catch (err) {
      if (err instanceof SecretsError && err.code !== 'ERR_SECRETS_UNAVAILABLE') {
        this.#log.warn({ role: this.role, status: err.status }, 'vault login refused');
        throw new SecretsError('ERR_SECRETS_LOGIN', err.message.replace(/^secrets: /, ''), {
          status: err.status,
        });
      }
      throw err;
    }
    const auth = res.auth;
    if (!auth || typeof auth.client_token !== 'string' || !(auth.lease_duration >= 0)) {
      throw new SecretsError('ERR_SECRETS_RESPONSE', 'login: no token in the response');
    }
    if (this.#closed) {
      await this.#revokeSelf(auth.client_token);
      throw new SecretsError('ERR_SECRETS_CLOSED', 'session closed');
    }
    // The previous token is not revoked: leases it created (database credentials) end with
    // it, and their holders rotate onto the new token first (see onLogin). It expires alone.
    this.#setToken(auth.client_token, auth.lease_duration, auth.renewable);
    this.logins++;
    this.#log.info(
      { role: this.role, leaseSeconds: auth.lease_duration, renewable: auth.renewable },
      'vault login',
    );
    for (const fn of this.#onLogin) fn();
  }

  readonly #onLogin = new Set<() => void>();

  /**
   * Calls `fn` after every later login. Leases belong to the token that created them and end
   * with it, so a lease holder moves to a fresh lease when the token changes. Returns a
   * function that removes the listener.
   */
  onLogin(fn: () => void): () => void {
    this.#onLogin.add(fn);
    return () => this.#onLogin.delete(fn);
  }

  #setToken(token: string, leaseSeconds: number, renewable: boolean): void {
    this.#token = token;
    this.#leaseSeconds = leaseSeconds;
    this.#renewable = renewable;
    // lease_duration 0 = a token without expiry (root-like); treat as valid, check hourly.
    this.#expiresAt = leaseSeconds > 0 ? this.#now() + leaseSeconds * 1000 : Infinity;
    this.#schedule(
      leaseSeconds > 0 ? leaseSeconds * 1000 * (this.#opts.renewAt ?? 2 / 3) : 3_600_000,
    );
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#maintain(), Math.max(10, ms));
    this.#timer.unref();
  }

  /** Renews, or logs in again when renewal cannot extend the token; retries while down. */
  async #maintain(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#renewable && this.#token) {
        try {
          const res = await this.http.request('POST', 'auth/token/renew-self', {
            token: this.#token,
            body: { increment: `${this.#leaseSeconds}s` },
            what: 'renew token',
          });
          const got = res.auth?.lease_duration ?? 0;
          // Capped by the token's max TTL: log in again rather than run out.
          if (res.auth && got * 2 >= this.#leaseSeconds) {
            this.renewals++;
            this.#expiresAt = this.#now() + got * 1000;
            this.#schedule(got * 1000 * (this.#opts.renewAt ?? 2 / 3));
            this.#log.debug({ role: this.role, leaseSeconds: got }, 'vault token renewed');
            return;
          }
        } catch (err) {
          if ((err as SecretsError).code === 'ERR_SECRETS_UNAVAILABLE') throw err;
          this.#log.info(
            { role: this.role, status: (err as SecretsError).status },
            'vault token not renewable; logging in again',
          );
        }
      }
      await this.relogin();
    } catch (err) {
      this.#log.warn(
        { role: this.role, code: (err as SecretsError).code, ready: this.ready() },
        'vault token maintenance failed; keeping the current token until it expires',
      );
      this.#schedule(this.#opts.retryMs ?? 1_000);
    }
  }

  #watchBundles(): void {
    const events = this.#opts.jwtSource.events?.bind(this.#opts.jwtSource);
    if (!events) return;
    void (async () => {
      let first = true;
      try {
        for await (const e of events(this.#stop.signal)) {
          if (e.type !== 'update') continue;
          if (first) {
            first = false; // the source replays its current state once
            continue;
          }
          this.#log.info({ role: this.role }, 'JWT bundle rotated; logging in again');
          await this.relogin().catch(() => this.#schedule(this.#opts.retryMs ?? 1_000));
        }
      } catch {
        /* the source closed */
      }
    })();
  }

  /**
   * An authenticated API call. A 403 may mean the token was revoked: the session logs in once
   * more and retries; a second 403 is ERR_SECRETS_DENIED.
   */
  async request(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'LIST',
    path: string,
    body?: unknown,
  ): Promise<VaultResponse> {
    this.#ensureOpen();
    if (!this.ready()) {
      throw new SecretsError('ERR_SECRETS_NOT_READY', `${method} ${path}: no valid token`);
    }
    try {
      return await this.http.request(method, path, { token: this.#token, body });
    } catch (err) {
      if ((err as SecretsError).code !== 'ERR_SECRETS_DENIED') throw err;
      // A policy denial, or a token revoked behind our back? Only the latter warrants a login.
      const before = this.#token;
      const valid = await this.http
        .request('GET', 'auth/token/lookup-self', { token: before, what: 'token lookup' })
        .then(
          () => true,
          (e: unknown) => (e as SecretsError).code !== 'ERR_SECRETS_DENIED',
        );
      if (valid) throw err;
      await this.relogin();
      if (this.#token === before) throw err;
      return this.http.request(method, path, { token: this.#token, body });
    }
  }

  /** Reads the latest version of a KV v2 secret: `secret/data/<path>` for mount `secret`. */
  async readKv(
    path: string,
    opts: { mount?: string } = {},
  ): Promise<{ data: Record<string, unknown>; version: number }> {
    const res = await this.request(
      'GET',
      `${checkPath(opts.mount ?? 'secret')}/data/${checkPath(path)}`,
    );
    const d = res.data as
      { data?: Record<string, unknown> | null; metadata?: { version?: number } } | undefined;
    if (!d || !d.data)
      throw new SecretsError('ERR_SECRETS_NOT_FOUND', `kv ${path}: deleted or empty`);
    return { data: d.data, version: d.metadata?.version ?? 0 };
  }

  /** Writes a new version of a KV v2 secret (the broker stores people's tokens with it). */
  async writeKv(
    path: string,
    data: Record<string, unknown>,
    opts: { mount?: string } = {},
  ): Promise<{ version: number }> {
    const res = await this.request(
      'POST',
      `${checkPath(opts.mount ?? 'secret')}/data/${checkPath(path)}`,
      {
        data,
      },
    );
    return { version: Number((res.data as { version?: number } | undefined)?.version ?? 0) };
  }

  async #revokeSelf(token: string): Promise<void> {
    try {
      await this.http.request('POST', 'auth/token/revoke-self', { token, what: 'revoke token' });
    } catch {
      /* best effort: it expires on its own */
    }
  }

  #ensureOpen(): void {
    if (this.#closed) throw new SecretsError('ERR_SECRETS_CLOSED', 'session closed');
  }

  /** Stops renewing and revokes the token (best effort). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#stop.abort();
    const t = this.#token;
    this.#token = undefined;
    if (t) await this.#revokeSelf(t);
  }
}

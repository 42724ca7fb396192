import pg from 'pg';
import { SecretsError } from './errors.js';
import { checkPath, silentLogger, type SecretsLogger } from './http.js';
import type { VaultSession } from './session.js';

/** One lease of dynamic database credentials. `password` stays inside the pool config. */
export interface DatabaseLease {
  leaseId: string;
  username: string;
  password: string;
  renewable: boolean;
  /** ms since the epoch. */
  expiresAt: number;
  leaseSeconds: number;
}

/** Leases new credentials of database role `role` (`<mount>/creds/<role>`). */
export async function leaseDatabaseCredentials(
  session: VaultSession,
  role: string,
  opts: { mount?: string; clock?: () => number } = {},
): Promise<DatabaseLease> {
  const now = (opts.clock ?? Date.now)();
  const res = await session.request(
    'GET',
    `${checkPath(opts.mount ?? 'database')}/creds/${checkPath(role)}`,
  );
  const d = res.data as { username?: unknown; password?: unknown } | undefined;
  if (!res.lease_id || typeof d?.username !== 'string' || typeof d.password !== 'string') {
    throw new SecretsError(
      'ERR_SECRETS_RESPONSE',
      `database creds ${role}: no credentials in the response`,
    );
  }
  const leaseSeconds = res.lease_duration ?? 0;
  return {
    leaseId: res.lease_id,
    username: d.username,
    password: d.password,
    renewable: res.renewable === true,
    leaseSeconds,
    expiresAt: now + leaseSeconds * 1000,
  };
}

/** Renews a lease by `incrementSeconds`; returns the granted duration (capped by max TTL). */
export async function renewLease(
  session: VaultSession,
  leaseId: string,
  incrementSeconds: number,
): Promise<number> {
  const res = await session.request('PUT', 'sys/leases/renew', {
    lease_id: leaseId,
    increment: incrementSeconds,
  });
  return res.lease_duration ?? 0;
}

/** Revokes a lease now: Vault runs the role's revocation statements (sessions terminated). */
export async function revokeLease(session: VaultSession, leaseId: string): Promise<void> {
  await session.request('PUT', 'sys/leases/revoke', { lease_id: leaseId });
}

export interface RotatingPoolOptions {
  session: VaultSession;
  /** The database secrets engine role, e.g. `orders-app`. */
  role: string;
  /** Secrets engine mount. Default `database`. */
  mount?: string;
  /** Everything but `user` and `password` (host, port, database, ssl, max...). */
  pool: Omit<pg.PoolConfig, 'user' | 'password' | 'connectionString'>;
  /** Renew or rotate when this fraction of the lease has passed. Default 2/3. */
  refreshAt?: number;
  /**
   * `ready()` turns false this long before the current lease expires when no new lease could be
   * had. Default: a sixth of the lease.
   */
  notReadyMarginMs?: number;
  /** Wait before retrying after the secrets manager failed, in ms. Default 1000. */
  retryMs?: number;
  logger?: SecretsLogger;
  clock?: () => number;
}

interface Generation {
  lease: DatabaseLease;
  pool: pg.Pool;
}

/**
 * A pg Pool whose credentials are Vault/OpenBao leases. The lease is renewed while renewal
 * extends it; when it cannot be (max TTL, or the session logged in again and the lease's token
 * will end), a new lease is taken, a new pool is opened and checked with `SELECT 1`, queries
 * move to it, and the old pool is drained (in-flight queries finish) then its lease revoked.
 * If the secrets manager is down, the current pool stays in use until its lease expires;
 * `ready()` turns false before that. There is never a static fallback credential.
 */
export class RotatingPool {
  readonly #opts: RotatingPoolOptions;
  readonly #log: SecretsLogger;
  readonly #now: () => number;
  #current: Generation;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #busy: Promise<void> | undefined;
  #draining = new Set<Promise<void>>();
  #offLogin: () => void;
  /** Completed rotations (new credentials in use). */
  rotations = 0;
  /** Successful lease renewals. */
  renewals = 0;

  private constructor(opts: RotatingPoolOptions, first: Generation) {
    this.#opts = opts;
    this.#log = opts.logger ?? silentLogger;
    this.#now = opts.clock ?? Date.now;
    this.#current = first;
    this.#offLogin = opts.session.onLogin(() => {
      this.#log.info({ role: opts.role }, 'vault session renewed by login; rotating credentials');
      void this.#run(() => this.#rotate());
    });
    this.#schedule(first.lease);
  }

  static async create(opts: RotatingPoolOptions): Promise<RotatingPool> {
    const first = await RotatingPool.#open(opts);
    return new RotatingPool(opts, first);
  }

  static async #open(opts: RotatingPoolOptions): Promise<Generation> {
    const lease = await leaseDatabaseCredentials(opts.session, opts.role, {
      mount: opts.mount,
      clock: opts.clock,
    });
    const pool = new pg.Pool({ ...opts.pool, user: lease.username, password: lease.password });
    pool.on('error', () => {
      /* an idle client's connection ended (e.g. its lease was revoked): the pool drops it */
    });
    try {
      // Check the credentials and open the pool's connections now (password auth costs a few
      // ms each), so queries moved to it do not wait for connection set-up.
      const n = Math.max(1, opts.pool.max ?? 10);
      const clients = await Promise.all(Array.from({ length: n }, () => pool.connect()));
      try {
        await clients[0]!.query('SELECT 1');
      } finally {
        for (const c of clients) c.release();
      }
    } catch (err) {
      await pool.end().catch(() => {});
      await revokeLease(opts.session, lease.leaseId).catch(() => {});
      // pg's errors name the user, never the password; still, keep only the code.
      throw new SecretsError(
        'ERR_SECRETS_UNAVAILABLE',
        `database role ${opts.role}: new credentials do not connect (${(err as { code?: string }).code ?? 'error'})`,
      );
    }
    return { lease, pool };
  }

  /** The pool queries go to now. Hold it only for one query or one checked-out client. */
  get pool(): pg.Pool {
    this.#ensureUsable();
    return this.#current.pool;
  }

  /** The PostgreSQL user of the current lease (not a secret; for diagnostics and tests). */
  get username(): string {
    return this.#current.lease.username;
  }

  get leaseExpiresAt(): number {
    return this.#current.lease.expiresAt;
  }

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    // Not `async`: one promise less per query on the hot path; errors still reject.
    let pool: pg.Pool;
    try {
      pool = this.pool;
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return pool.query<R>(text, values);
  }

  connect(): Promise<pg.PoolClient> {
    try {
      return this.pool.connect();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** True while the current lease has more than the not-ready margin left. */
  ready(): boolean {
    if (this.#closed) return false;
    const l = this.#current.lease;
    const margin = this.#opts.notReadyMarginMs ?? (l.leaseSeconds * 1000) / 6;
    return this.#now() < l.expiresAt - margin;
  }

  #ensureUsable(): void {
    if (this.#closed) throw new SecretsError('ERR_SECRETS_CLOSED', 'pool closed');
    if (this.#now() >= this.#current.lease.expiresAt) {
      throw new SecretsError(
        'ERR_SECRETS_NOT_READY',
        `database role ${this.#opts.role}: lease expired`,
      );
    }
  }

  #schedule(lease: DatabaseLease, ms?: number): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    const wait =
      ms ??
      Math.max(
        10,
        lease.expiresAt -
          this.#now() -
          lease.leaseSeconds * 1000 * (1 - (this.#opts.refreshAt ?? 2 / 3)),
      );
    this.#timer = setTimeout(() => void this.#run(() => this.#refresh()), wait);
    this.#timer.unref();
  }

  /** One maintenance step at a time. */
  #run(step: () => Promise<void>): Promise<void> {
    const next = (this.#busy ?? Promise.resolve()).then(step).catch((err: unknown) => {
      this.#log.warn(
        { role: this.#opts.role, code: (err as SecretsError).code, ready: this.ready() },
        'database credentials not refreshed; keeping the current lease until it expires',
      );
      this.#schedule(this.#current.lease, this.#opts.retryMs ?? 1_000);
    });
    this.#busy = next;
    return next;
  }

  async #refresh(): Promise<void> {
    if (this.#closed) return;
    const l = this.#current.lease;
    if (l.renewable) {
      const granted = await renewLease(this.#opts.session, l.leaseId, l.leaseSeconds).catch(
        (err: unknown) => {
          if ((err as SecretsError).code === 'ERR_SECRETS_UNAVAILABLE') throw err;
          return 0; // not renewable any more: rotate
        },
      );
      // Worth keeping only if renewal bought at least half a lease more.
      if (granted * 2 >= l.leaseSeconds && granted > 0) {
        l.expiresAt = this.#now() + granted * 1000;
        this.renewals++;
        this.#log.debug({ role: this.#opts.role, leaseSeconds: granted }, 'database lease renewed');
        this.#schedule(l, granted * 1000 * (this.#opts.refreshAt ?? 2 / 3));
        return;
      }
    }
    await this.#rotate();
  }

  /** Rotates now: new lease and pool, queries move, the old pool drains, its lease is revoked. */
  async rotate(): Promise<void> {
    await this.#run(() => this.#rotate());
  }

  async #rotate(): Promise<void> {
    if (this.#closed) return;
    const next = await RotatingPool.#open(this.#opts);
    if (this.#closed) {
      await next.pool.end().catch(() => {});
      await revokeLease(this.#opts.session, next.lease.leaseId).catch(() => {});
      return;
    }
    const old = this.#current;
    this.#current = next;
    this.rotations++;
    this.#log.info(
      {
        role: this.#opts.role,
        username: next.lease.username,
        leaseSeconds: next.lease.leaseSeconds,
      },
      'database credentials rotated',
    );
    this.#schedule(next.lease);
    const drain = this.#retire(old);
    this.#draining.add(drain);
    void drain.finally(() => this.#draining.delete(drain));
  }

  async #retire(old: Generation): Promise<void> {
    // end() lets checked-out clients finish and release; then the lease goes.
    await old.pool.end().catch(() => {});
    await revokeLease(this.#opts.session, old.lease.leaseId).catch((err: unknown) => {
      this.#log.warn(
        { role: this.#opts.role, code: (err as SecretsError).code },
        'old lease not revoked; it expires on its own',
      );
    });
  }

  /** Ends the pool and revokes its lease (best effort). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#offLogin();
    await this.#busy?.catch(() => {});
    await Promise.all(this.#draining);
    await this.#retire(this.#current);
  }
}

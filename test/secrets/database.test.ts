// Dynamic PostgreSQL credentials from a real Vault (-dev) database secrets engine on a real
// PostgreSQL with scram-sha-256: a pg Pool rotated under continuous queries, lease renewal,
// revocation terminating the role's sessions, and the secrets manager going down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { peerSkip, type PostgresServer, type VaultServer } from '@precinct/testing';
import type { VaultAdmin } from '@precinct/secrets';
import {
  RotatingPool,
  SecretsError,
  VaultSession,
  leaseDatabaseCredentials,
  workloadPolicy,
} from '@precinct/secrets';
import {
  AUDIENCE,
  captureLogger,
  spiffeId,
  startIdentity,
  startPostgresWithPasswords,
  startVaultWithJwtAuth,
  until,
} from './support.js';

const skip = peerSkip('vault', 'postgres');
let idp: Awaited<ReturnType<typeof startIdentity>>;
let vault: VaultServer;
let admin: VaultAdmin;
let server: PostgresServer;
let adminUrl: string;
let session: VaultSession;
const pools: RotatingPool[] = [];
const { lines, logger } = captureLogger();
const passwords = new Set<string>();

async function sessionsOf(user: string): Promise<number> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const r = await c.query<{ n: string }>(
      'SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1',
      [user],
    );
    return Number(r.rows[0]!.n);
  } finally {
    await c.end();
  }
}

async function rotatingPool(
  role: string,
  extra: Partial<Parameters<typeof RotatingPool.create>[0]> = {},
) {
  const p = await RotatingPool.create({
    session,
    role,
    pool: { host: '127.0.0.1', port: server.port, database: 'postgres', max: 4 },
    logger,
    ...extra,
  });
  pools.push(p);
  return p;
}

before(async () => {
  if (skip) return;
  idp = await startIdentity(['orders']);
  ({ vault, admin } = await startVaultWithJwtAuth(idp.identity));
  const started = await startPostgresWithPasswords();
  server = started.pg;
  passwords.add(started.adminPassword);
  adminUrl = `postgres://postgres:${encodeURIComponent(started.adminPassword)}@127.0.0.1:${server.port}/postgres`;
  await admin.enableDatabaseEngine();
  const roles = ['orders-short', 'orders-renew', 'orders-lease', 'orders-down'];
  await admin.configurePostgres({
    name: 'pg',
    connectionUrl: `postgresql://{{username}}:{{password}}@127.0.0.1:${server.port}/postgres?sslmode=disable`,
    username: 'postgres',
    password: started.adminPassword,
    allowedRoles: roles,
  });
  const grants = ['GRANT SELECT ON items TO "{{name}}";'];
  await admin.writeDatabaseRole({
    name: 'orders-short',
    db: 'pg',
    grants,
    ttlSeconds: 6,
    maxTtlSeconds: 6,
  });
  await admin.writeDatabaseRole({
    name: 'orders-renew',
    db: 'pg',
    grants,
    ttlSeconds: 3,
    maxTtlSeconds: 8,
  });
  await admin.writeDatabaseRole({
    name: 'orders-lease',
    db: 'pg',
    grants,
    ttlSeconds: 60,
    maxTtlSeconds: 120,
  });
  await admin.writeDatabaseRole({
    name: 'orders-down',
    db: 'pg',
    grants,
    ttlSeconds: 10,
    maxTtlSeconds: 10,
  });
  await admin.writePolicy('orders', workloadPolicy({ databaseRoles: roles }));
  await admin.writeWorkloadRole({
    role: 'orders',
    spiffeId: spiffeId('orders'),
    audience: AUDIENCE,
    policies: ['orders'],
  });
  session = await VaultSession.login({
    address: vault.url,
    role: 'orders',
    audience: AUDIENCE,
    jwtSource: idp.sources.get('orders')!,
    logger,
  });
});

after(async () => {
  for (const p of pools) await p.close().catch(() => {});
  await session?.close();
  await vault?.close();
  await idp?.close();
  await server?.close();
});

describe('dynamic PostgreSQL credentials', { skip }, () => {
  test('continuous queries through three credential rotations: zero failures, old sessions gone', async () => {
    const pool = await rotatingPool('orders-short');
    const users = new Set<string>();
    let ok = 0;
    const failures: unknown[] = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        try {
          const r = await pool.query<{ u: string; n: string }>(
            'SELECT current_user AS u, count(*) AS n FROM items',
          );
          users.add(r.rows[0]!.u);
          ok++;
        } catch (err) {
          failures.push(err);
        }
      }
    };
    const workers = [worker(), worker(), worker()];
    await until(() => pool.rotations >= 3, 'three rotations', 60_000);
    // On a loaded machine the third rotation can land between two queries: wait for one on it.
    await until(() => users.size >= 4, 'queries on the newest lease too', 30_000);
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures.map(String), []);
    assert.ok(ok > 0);
    assert.ok(users.size >= 4, `queries ran as ${users.size} leased users`);
    // Drained and revoked: only the current user has sessions left.
    const current = pool.username;
    await until(async () => {
      for (const u of users) if (u !== current && (await sessionsOf(u)) > 0) return false;
      return true;
    }, 'old sessions to end');
    assert.ok((await sessionsOf(current)) > 0, 'control: the current user is connected');
  });

  test('a renewable lease is renewed before it is rotated', async () => {
    const pool = await rotatingPool('orders-renew');
    await until(() => pool.renewals >= 1, 'a renewal', 30_000);
    assert.equal(pool.rotations, 0);
    assert.equal(
      (await pool.query<{ n: string }>('SELECT count(*) AS n FROM items')).rows[0]!.n,
      '2',
    );
  });

  test("revoking a lease terminates that role's sessions (control: another lease's session lives)", async () => {
    const a = await leaseDatabaseCredentials(session, 'orders-lease');
    const b = await leaseDatabaseCredentials(session, 'orders-lease');
    passwords.add(a.password).add(b.password);
    const connect = async (l: typeof a) => {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: server.port,
        database: 'postgres',
        user: l.username,
        password: l.password,
      });
      c.on('error', () => {});
      await c.connect();
      return c;
    };
    const ca = await connect(a);
    const cb = await connect(b);
    assert.equal(await sessionsOf(a.username), 1);
    await admin.request('PUT', 'sys/leases/revoke', { lease_id: a.leaseId });
    assert.equal(await sessionsOf(a.username), 0);
    await assert.rejects(ca.query('SELECT 1'));
    await assert.rejects(connect(a), 'the revoked role cannot log in again');
    assert.equal(
      (await cb.query<{ n: string }>('SELECT count(*) AS n FROM items')).rows[0]!.n,
      '2',
    );
    assert.equal(await sessionsOf(b.username), 1);
    await cb.end();
  });

  test('a wrong password is refused by PostgreSQL (control for the scram set-up)', async () => {
    const l = await leaseDatabaseCredentials(session, 'orders-lease');
    passwords.add(l.password);
    const c = new pg.Client({
      host: '127.0.0.1',
      port: server.port,
      database: 'postgres',
      user: l.username,
      password: 'wrong',
    });
    c.on('error', () => {});
    await assert.rejects(c.connect());
    const good = new pg.Client({
      host: '127.0.0.1',
      port: server.port,
      database: 'postgres',
      user: l.username,
      password: l.password,
    });
    await good.connect();
    await good.end();
  });

  test('secrets manager down: the pool keeps its lease, turns not-ready before expiry, then refuses', async () => {
    const pool = await rotatingPool('orders-down', { notReadyMarginMs: 2_000 });
    assert.ok(pool.ready());
    await vault.stop('SIGKILL'); // a crash
    // Still serving on the current lease.
    assert.equal(
      (await pool.query<{ n: string }>('SELECT count(*) AS n FROM items')).rows[0]!.n,
      '2',
    );
    await until(() => !pool.ready(), 'not-ready');
    assert.ok(Date.now() < pool.leaseExpiresAt, 'not-ready is reported before the lease expires');
    await until(() => Date.now() >= pool.leaseExpiresAt, 'expiry');
    const err = await pool.query('SELECT 1').then(
      () => assert.fail('no static fallback: queries must be refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof SecretsError);
    assert.equal(err.code, 'ERR_SECRETS_NOT_READY');
  });

  test('no password reaches a log line', () => {
    const text = lines.join('\n');
    assert.ok(text.includes('database credentials rotated'), 'control: the logs are there');
    assert.ok(passwords.size >= 3);
    for (const p of passwords) assert.ok(!text.includes(p), 'a password reached the logs');
  });
});

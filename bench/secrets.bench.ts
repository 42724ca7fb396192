// @precinct/secrets against a real Vault (-dev) and PostgreSQL: SVID login and database lease
// latency, and queries/s through a RotatingPool whose credentials rotate every ~4 s against a
// static pg Pool on the same server (reference), with zero errors required across rotations.
import pg from 'pg';
import { findPeer } from '@precinct/testing';
import {
  RotatingPool,
  VaultSession,
  leaseDatabaseCredentials,
  revokeLease,
  workloadPolicy,
} from '@precinct/secrets';
import {
  AUDIENCE,
  spiffeId,
  startIdentity,
  startPostgresWithPasswords,
  startVaultWithJwtAuth,
} from '../test/secrets/support.js';
import { percentile, printTable } from './table.js';

if (!findPeer('vault') || !findPeer('postgres')) {
  console.log('skipped: vault or postgres not found (bash scripts/peers/vault.sh)');
  process.exit(0);
}

const idp = await startIdentity(['orders']);
const { vault, admin } = await startVaultWithJwtAuth(idp.identity);
const { pg: server, adminPassword } = await startPostgresWithPasswords();
await admin.enableDatabaseEngine();
await admin.configurePostgres({
  name: 'pg',
  connectionUrl: `postgresql://{{username}}:{{password}}@127.0.0.1:${server.port}/postgres?sslmode=disable`,
  username: 'postgres',
  password: adminPassword,
  allowedRoles: ['bench-short', 'bench-lease'],
});
const grants = ['GRANT SELECT ON items TO "{{name}}";'];
await admin.writeDatabaseRole({
  name: 'bench-short',
  db: 'pg',
  grants,
  ttlSeconds: 6,
  maxTtlSeconds: 6,
});
await admin.writeDatabaseRole({
  name: 'bench-lease',
  db: 'pg',
  grants,
  ttlSeconds: 60,
  maxTtlSeconds: 60,
});
await admin.writePolicy(
  'orders',
  workloadPolicy({ databaseRoles: ['bench-short', 'bench-lease'] }),
);
await admin.writeWorkloadRole({
  role: 'orders',
  spiffeId: spiffeId('orders'),
  audience: AUDIENCE,
  policies: ['orders'],
});
const opts = {
  address: vault.url,
  role: 'orders',
  audience: AUDIENCE,
  jwtSource: idp.sources.get('orders')!,
};

// Login: JWT-SVID from the Workload API + auth/jwt/login (OIDC keys cached by Vault).
const loginMs: number[] = [];
const tokenMs: number[] = [];
for (let i = 0; i < 40; i++) {
  const t0 = performance.now();
  const s = await VaultSession.login(opts);
  loginMs.push(performance.now() - t0);
  // Reference: the cheapest authenticated round trip (token lookup-self).
  const t1 = performance.now();
  await s.request('GET', 'auth/token/lookup-self');
  tokenMs.push(performance.now() - t1);
  await s.close();
}
const session = await VaultSession.login(opts);
const leaseMs: number[] = [];
for (let i = 0; i < 30; i++) {
  const t0 = performance.now();
  const l = await leaseDatabaseCredentials(session, 'bench-lease');
  leaseMs.push(performance.now() - t0);
  await revokeLease(session, l.leaseId);
}
for (const a of [loginMs, tokenMs, leaseMs]) a.sort((x, y) => x - y);

async function drive(query: () => Promise<unknown>, ms: number, workers = 4) {
  let ok = 0;
  let errors = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < end) {
        try {
          await query();
          ok++;
        } catch {
          errors++;
        }
      }
    }),
  );
  return { qps: (ok * 1000) / ms, errors };
}

const RUN_MS = 24_000; // per side: 12 windows of 2 s each, ~6 rotations
const SQL = 'SELECT count(*) FROM items';
const staticPool = new pg.Pool({
  host: '127.0.0.1',
  port: server.port,
  database: 'postgres',
  user: 'postgres',
  password: adminPassword,
  max: 4,
});
await drive(() => staticPool.query(SQL), 1_000); // warm-up
const rotating = await RotatingPool.create({
  session,
  role: 'bench-short',
  pool: { host: '127.0.0.1', port: server.port, database: 'postgres', max: 4 },
});
await drive(() => rotating.query(SQL), 1_000);
// Interleaved 2 s windows, so load from other work on the machine hits both sides alike.
const st = { qps: 0, errors: 0 };
const rot = { qps: 0, errors: 0 };
const before = rotating.rotations;
const WINDOWS = RUN_MS / 2_000;
for (let w = 0; w < WINDOWS; w++) {
  const a = await drive(() => staticPool.query(SQL), 2_000);
  const b = await drive(() => rotating.query(SQL), 2_000);
  st.qps += a.qps / WINDOWS;
  st.errors += a.errors;
  rot.qps += b.qps / WINDOWS;
  rot.errors += b.errors;
}
const rotations = rotating.rotations - before;

printTable(`@precinct/secrets (Vault -dev + PostgreSQL on loopback; ${rotations} rotations)`, [
  {
    metric: 'SVID login p50',
    ours: percentile(loginMs, 50),
    reference: percentile(tokenMs, 50),
    unit: 'ms',
    target: 'reported (ref: lookup-self)',
    met: true,
  },
  {
    metric: 'SVID login p99',
    ours: percentile(loginMs, 99),
    reference: percentile(tokenMs, 99),
    unit: 'ms',
    target: 'reported',
    met: true,
  },
  {
    metric: 'database lease p50',
    ours: percentile(leaseMs, 50),
    unit: 'ms',
    target: 'reported',
    met: true,
  },
  {
    metric: 'database lease p99',
    ours: percentile(leaseMs, 99),
    unit: 'ms',
    target: 'reported',
    met: true,
  },
  {
    metric: 'queries/s rotating pool vs static pool',
    ours: rot.qps,
    reference: st.qps,
    unit: 'q/s',
    target: '>= 95%',
    met: rot.qps >= 0.95 * st.qps,
  },
  {
    metric: 'failed queries across rotations',
    ours: rot.errors + st.errors,
    unit: '',
    target: `0 (>= 2 rotations)`,
    met: rot.errors + st.errors === 0 && rotations >= 2,
  },
]);

await rotating.close();
await staticPool.end();
await session.close();
await vault.close();
await idp.close();
await server.close();

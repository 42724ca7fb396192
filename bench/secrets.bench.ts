// @precinct/secrets against a real Vault (-dev) and PostgreSQL: SVID login and database lease
// latency, and queries/s through a RotatingPool whose credentials rotate every ~4 s against a
// static pg Pool on the same server (reference), with zero errors required across rotations;
// then the same for requests to the records service (the secrets demo's backend, mTLS).
import pg from 'pg';
import { findPeer } from '@precinct/testing';
import { createLogger } from '@precinct/runtime';
import { X509Source } from '@precinct/spiffe/workloadapi';
import {
  MtlsClient,
  RECORDS_GRANTS,
  RECORDS_SCHEMA,
  startRecordsService,
  type RecordsDatabase,
} from '@precinct/demo';
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

const idp = await startIdentity(['orders', 'records', 'client']);
const { vault, admin } = await startVaultWithJwtAuth(idp.identity);
const { pg: server, adminPassword } = await startPostgresWithPasswords();
await admin.enableDatabaseEngine();
await admin.configurePostgres({
  name: 'pg',
  connectionUrl: `postgresql://{{username}}:{{password}}@127.0.0.1:${server.port}/postgres?sslmode=disable`,
  username: 'postgres',
  password: adminPassword,
  allowedRoles: ['bench-short', 'bench-lease', 'bench-records'],
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
await admin.writeDatabaseRole({
  name: 'bench-records',
  db: 'pg',
  grants: [...RECORDS_GRANTS],
  ttlSeconds: 6,
  maxTtlSeconds: 6,
});
await admin.writePolicy(
  'orders',
  workloadPolicy({ databaseRoles: ['bench-short', 'bench-lease', 'bench-records'] }),
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
await rotating.close();

// The records service, on a RotatingPool and on a static pool: requests/s over mTLS.
{
  const c = new pg.Client({ connectionString: staticUrl() });
  await c.connect();
  for (const sql of RECORDS_SCHEMA) await c.query(sql);
  await c.end();
}
function staticUrl() {
  return `postgres://postgres:${encodeURIComponent(adminPassword)}@127.0.0.1:${server.port}/postgres`;
}
const recordsPool = await RotatingPool.create({
  session,
  role: 'bench-records',
  pool: { host: '127.0.0.1', port: server.port, database: 'postgres', max: 4 },
});
const onPool = (p: { query: RecordsDatabase['query'] }, lease: () => number): RecordsDatabase => ({
  query: (text, values) => p.query(text, values),
  ready: () => true,
  credentialsExpireAt: lease,
  rotations: () => recordsPool.rotations,
});
const svidOf = (sa: string) =>
  X509Source.create({ address: idp.addresses.get(sa)!, timeoutMs: 20_000 });
const recordsSvid = await svidOf('records');
const clientSvid = await svidOf('client');
const service = (database: RecordsDatabase) =>
  startRecordsService({
    svidSource: recordsSvid,
    bundleSource: recordsSvid,
    database,
    callers: [spiffeId('client')],
    host: '127.0.0.1',
    logger: createLogger('records-service', 'warn'),
  });
const recordsStaticPool = new pg.Pool({ connectionString: staticUrl(), max: 4 });
const onRotating = await service(onPool(recordsPool, () => recordsPool.leaseExpiresAt));
const onStatic = await service(onPool(recordsStaticPool, () => Infinity));
const http = new MtlsClient(clientSvid, clientSvid, spiffeId('records'));
const get = (url: string) => async () => {
  const r = await http.json(`${url}/records/1`);
  if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
};
await drive(get(onStatic.url), 1_000);
await drive(get(onRotating.url), 1_000);
const rs = { qps: 0, errors: 0 };
const rr = { qps: 0, errors: 0 };
const recordsBefore = recordsPool.rotations;
for (let w = 0; w < WINDOWS; w++) {
  const a = await drive(get(onStatic.url), 2_000);
  const b = await drive(get(onRotating.url), 2_000);
  rs.qps += a.qps / WINDOWS;
  rs.errors += a.errors;
  rr.qps += b.qps / WINDOWS;
  rr.errors += b.errors;
}
const recordsRotations = recordsPool.rotations - recordsBefore;

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
  {
    metric: `records service req/s, rotating vs static pool (${recordsRotations} rotations)`,
    ours: rr.qps,
    reference: rs.qps,
    unit: 'req/s',
    target: '>= 95%',
    met: rr.qps >= 0.95 * rs.qps,
  },
  {
    metric: 'failed records requests across rotations',
    ours: rr.errors + rs.errors,
    unit: '',
    target: '0 (>= 2 rotations)',
    met: rr.errors + rs.errors === 0 && recordsRotations >= 2,
  },
]);

await http.close();
await onRotating.close();
await onStatic.close();
recordsSvid.close();
clientSvid.close();
await recordsPool.close();
await recordsStaticPool.end();
await staticPool.end();
await session.close();
await vault.close();
await idp.close();
await server.close();

// npm run bench -- audit
// On a real PostgreSQL: ingest through the batch endpoint (auth + RBAC through the
// @precinct/kube plugin with an in-process verifier/authorizer standing in for the cached
// Kubernetes answers, attribution, hash chain) vs a bare multi-row INSERT of the same rows into
// the same server; query by correlation_id p99; store RSS.
import pg from 'pg';
import type { Authorizer, TokenVerifier } from '@precinct/kube';
import { startPostgres } from '@precinct/testing';
import { startAuditStore } from '@precinct/audit-store';
import { percentile, printTable, type Row } from './table.js';

const BATCH = 1000;
const INGEST_EVENTS = Number(process.env.AUDIT_BENCH_EVENTS ?? 30_000);
const STORED_EVENTS = Number(process.env.AUDIT_BENCH_STORED ?? 200_000);
const CORRELATIONS = 1000;

const verifier: TokenVerifier = {
  async verify() {
    return {
      username: 'system:serviceaccount:bench:writer',
      groups: ['system:serviceaccounts'],
      namespace: 'bench',
      serviceAccountName: 'writer',
      audiences: [],
      extra: {},
      source: 'jwks',
    };
  },
};
const authorizer: Authorizer = { authorize: async () => ({ allowed: true, cached: true }) };

const event = (i: number) => ({
  event_type: 'gateway.request',
  event_category: 'gateway',
  event_action: 'proxy',
  event_outcome: 'success',
  correlation_id: `corr-${i % CORRELATIONS}`,
  actor_type: 'user',
  actor_id: `user-${i % 97}`,
  resource_type: 'route',
  resource_id: `/r/${i % 13}`,
  namespace: 'bench',
  event_data: { i, path: '/api/x', status: 200 },
});

const pgs = await startPostgres();
const rows: Row[] = [];
try {
  const store = await startAuditStore({
    databaseUrl: pgs.url,
    host: '127.0.0.1',
    port: 0,
    auth: { verifier, authorizer },
    authz: { namespace: 'bench' },
    retentionIntervalMs: 0,
  });
  const post = async (body: unknown[]) => {
    const r = await fetch(`${store.url}/api/v1/audit/events/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
      body: JSON.stringify(body),
    });
    if (r.status !== 201) throw new Error(`batch: ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
  };
  const batches = (n: number, offset: number) =>
    Array.from({ length: n / BATCH }, (_, b) =>
      Array.from({ length: BATCH }, (_, j) => event(offset + b * BATCH + j)),
    );

  // Two concurrent writers, as two services would.
  const ingest = async (n: number, offset: number) => {
    const all = batches(n, offset);
    const t0 = performance.now();
    const worker = async () => {
      for (let b = all.shift(); b; b = all.shift()) await post(b);
    };
    await Promise.all([worker(), worker()]);
    return n / ((performance.now() - t0) / 1000);
  };
  await ingest(2 * BATCH, 10_000_000); // warm-up
  const ours = await ingest(INGEST_EVENTS, 0);

  // Reference: the same rows (same columns, no chain/auth/HTTP) as multi-row INSERTs.
  const db = new pg.Pool({ connectionString: pgs.url, max: 2 });
  await db.query('CREATE TABLE bare (LIKE audit_events INCLUDING DEFAULTS)');
  const cols = [
    'event_id',
    'version',
    'event_type',
    'event_timestamp',
    'event_category',
    'event_action',
    'event_outcome',
    'actor_type',
    'actor_id',
    'resource_type',
    'resource_id',
    'correlation_id',
    'namespace',
    'retention_days',
    'is_sensitive',
    'event_data',
    'written_by',
    'written_by_kind',
    'chain_seq',
    'prev_hash',
    'event_hash',
  ];
  const bareBatches = batches(INGEST_EVENTS, 0);
  const t0 = performance.now();
  const bareWorker = async () => {
    for (let b = bareBatches.shift(); b; b = bareBatches.shift()) {
      const params: unknown[] = [];
      const tuples = b.map((e, k) => {
        const vals = [
          crypto.randomUUID(),
          '1.0',
          e.event_type,
          new Date().toISOString(),
          e.event_category,
          e.event_action,
          e.event_outcome,
          e.actor_type,
          e.actor_id,
          e.resource_type,
          e.resource_id,
          e.correlation_id,
          e.namespace,
          2555,
          false,
          JSON.stringify(e.event_data),
          'w',
          'serviceaccount',
          k,
          '0'.repeat(64),
          '0'.repeat(64),
        ];
        return `(${vals.map((v) => (params.push(v), `$${params.length}`)).join(',')})`;
      });
      await db.query(`INSERT INTO bare (${cols.join(',')}) VALUES ${tuples.join(',')}`, params);
    }
  };
  await Promise.all([bareWorker(), bareWorker()]);
  const bare = INGEST_EVENTS / ((performance.now() - t0) / 1000);
  rows.push({
    metric: 'batch ingest (auth+chain)',
    ours,
    reference: bare,
    unit: 'ev/s',
    target: '>= 50% of bare INSERT',
    met: ours >= bare * 0.5,
  });

  // Fill up to STORED_EVENTS through the API, then query by correlation_id.
  const t1 = performance.now();
  let stored = INGEST_EVENTS + 2 * BATCH;
  while (stored < STORED_EVENTS) {
    const n = Math.min(20_000, STORED_EVENTS - stored);
    await ingest(n - (n % BATCH) || BATCH, 20_000_000 + stored);
    stored += n - (n % BATCH) || BATCH;
  }
  const loadSeconds = (performance.now() - t1) / 1000;
  const lat: number[] = [];
  for (let i = 0; i < 300; i++) {
    const s = performance.now();
    const r = await fetch(
      `${store.url}/api/v1/audit/events?correlation_id=corr-${i % CORRELATIONS}&limit=50`,
      {
        headers: { authorization: 'Bearer bench' },
      },
    );
    await r.arrayBuffer();
    lat.push(performance.now() - s);
  }
  const p99 = percentile(
    lat.sort((a, b) => a - b),
    99,
  );
  rows.push({
    metric: `query by correlation_id p99 (${stored.toLocaleString('en-US')} events)`,
    ours: p99,
    unit: 'ms',
    target: '< 20 ms',
    met: p99 < 20,
  });
  const rss = process.memoryUsage().rss / 1024 / 1024;
  rows.push({
    metric: 'RSS (store + bench client, one process)',
    ours: rss,
    unit: 'MB',
    target: '< 250 MB',
    met: rss < 250,
  });
  printTable(`audit store on PostgreSQL (fill took ${loadSeconds.toFixed(0)} s)`, rows);
  await db.end();
  await store.close();
} finally {
  await pgs.close();
}

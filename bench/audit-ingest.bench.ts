// npm run bench -- audit
// On a real PostgreSQL started here, with the store in its own process (bench/support/
// audit-store-child.ts: the @precinct/kube auth plugin with an in-process allow-all verifier and
// authorizer standing in for the cached Kubernetes answers, attribution, hash chain):
//   1. ingest through POST /api/v1/audit/events/batch (1000-event batches, 2 concurrent
//      writers) vs a bare multi-row INSERT (one bind parameter per value) of the same rows into
//      the same server, 2 concurrent writers too. With the events of the issue (many fields
//      alike across a batch, as one service's events often are); the same with an
//      Idempotency-Key per batch, as AuditClient sends; and events whose every field differs
//      from one event to the next (the store then has nothing to share between them);
//   2. query by correlation_id through the API, p99, with AUDIT_BENCH_STORED events stored;
//   3. the store process's memory from /proc: peak (VmHWM) over the whole run.
// Request bodies and the reference's statements are built before their timers start: the
// figures are the store's and the database's, not the bench client's.
//
// The store runs as plain JavaScript, as it does in production (bench/support/bundle.ts: the
// child and the workspace sources it imports bundled by esbuild, run with plain node). Run from
// source through the tsx loader instead (AUDIT_BENCH_FROM_SOURCE=1) the process carries more
// memory that production does not: the loader's worker thread with its own V8 heap, esbuild's
// client and cached source maps.
//
// AUDIT_BENCH_EVENTS (default 30,000) events are timed per workload and side;
// AUDIT_BENCH_STORED (default 1,000,000) is the table size for the query figure;
// AUDIT_BENCH_QUERIES (default 1000) queries are timed; AUDIT_BENCH_CPU_PROF=DIR writes a CPU
// profile of the store process there; AUDIT_BENCH_NODE_ARGS adds node flags to the store process
// (its stdout is then shown, e.g. for --trace-gc).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres } from '@precinct/testing';
import { COLUMNS, type AuditEventInput } from '@precinct/audit-store';
import { bundle } from './support/bundle.js';
import { procMemory } from './support/memory.js';
import { percentile, printTable, type Row } from './table.js';

const BATCH = 1000;
const INGEST_EVENTS = Number(process.env.AUDIT_BENCH_EVENTS ?? 30_000);
const STORED_EVENTS = Number(process.env.AUDIT_BENCH_STORED ?? 1_000_000);
const QUERIES = Number(process.env.AUDIT_BENCH_QUERIES ?? 1000);
const CPU_PROF = process.env.AUDIT_BENCH_CPU_PROF;
const NODE_ARGS = (process.env.AUDIT_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const FROM_SOURCE = process.env.AUDIT_BENCH_FROM_SOURCE === '1';
const CORRELATIONS = 1000;
const ROUNDS = 3;
const WRITER = 'system:serviceaccount:bench:writer';

const root = fileURLToPath(new URL('..', import.meta.url));
const childScript = fileURLToPath(new URL('./support/audit-store-child.ts', import.meta.url));

/** An event as the bench sends it: always with `event_data`. */
type BenchEvent = AuditEventInput & { event_data: Record<string, unknown> };

/** The issue's events: 1000 correlations, a few fields varying, the rest alike or absent. */
const uniform = (i: number): BenchEvent => ({
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
const OUTCOMES = ['success', 'failure', 'pending'] as const;
const SEVERITIES = ['debug', 'info', 'warning', 'error', 'critical'];
const T0 = Date.now() - 3_600_000;
/** Every field set and different from the previous event's. */
const varied = (i: number): BenchEvent => ({
  version: `1.${i % 2}`,
  event_type: `svc.op${i % 7}`,
  // Within the last hour whatever i is (the warm-up's start at 10,000,000): the store refuses
  // timestamps more than its clock skew (5 min) ahead.
  event_timestamp: new Date(T0 + (i % 3_000_000)).toISOString(),
  event_category: `cat-${i % 5}`,
  event_action: `act-${i % 3}`,
  event_outcome: OUTCOMES[i % 3]!,
  actor_type: i % 2 ? 'user' : 'service',
  actor_id: `user-${i % 97}`,
  actor_ip: `10.0.${(i >> 8) % 256}.${i % 256}`,
  resource_type: `kind-${i % 4}`,
  resource_id: `/r/${i % 13}`,
  correlation_id: `corr-${i % CORRELATIONS}`,
  parent_event_id: crypto.randomUUID(),
  namespace: `ns-${i % 11}`,
  cluster_id: `cluster-${i % 2}`,
  severity: SEVERITIES[i % 5]!,
  duration_ms: i % 5000,
  error_code: `E${i % 17}`,
  error_message: `message ${i}`,
  retention_days: 2555 - (i % 2),
  is_sensitive: i % 2 === 0,
  event_data: { i, path: '/api/x', status: 200 },
});

/** The audit_events columns, in the order the reference inserts them (the store's order). */
const COLS = COLUMNS;
/** A row as the store would store the event (defaults filled; chain values stand-ins). */
const storedValues = (e: BenchEvent, k: number, now: string): unknown[] => [
  crypto.randomUUID(),
  e.version ?? '1.0',
  e.event_type,
  e.event_timestamp ?? now,
  e.event_category,
  e.event_action,
  e.event_outcome,
  e.actor_type ?? null,
  e.actor_id ?? null,
  e.actor_ip ?? null,
  e.resource_type ?? null,
  e.resource_id ?? null,
  e.correlation_id,
  e.parent_event_id ?? null,
  e.namespace ?? null,
  e.cluster_id ?? null,
  e.severity ?? null,
  e.duration_ms ?? null,
  e.error_code ?? null,
  e.error_message ?? null,
  e.retention_days ?? 2555,
  e.is_sensitive ?? false,
  JSON.stringify(e.event_data),
  WRITER,
  'serviceaccount',
  null,
  k + 1,
  '0'.repeat(64),
  'f'.repeat(64),
];

const batchesOf = <T>(n: number, offset: number, f: (first: number, size: number) => T): T[] =>
  Array.from({ length: Math.ceil(n / BATCH) }, (_, b) =>
    f(offset + b * BATCH, Math.min(BATCH, n - b * BATCH)),
  );

/** Runs `run` on two concurrent workers over `items`; returns the milliseconds taken. */
async function twoWriters<T>(items: T[], run: (item: T) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  const worker = async () => {
    for (let x = items.shift(); x !== undefined; x = items.shift()) await run(x);
  };
  await Promise.all([worker(), worker()]);
  return performance.now() - t0;
}

/** VmRSS and VmHWM (peak RSS) of a process, in MB. */
function memOf(pid: number): { rss: number; hwm: number } {
  const m = procMemory(pid);
  return { rss: m.rss / 1024 / 1024, hwm: m.peak / 1024 / 1024 };
}

/** CPU time (user + system, ms) of a process and, with `children`, of its child processes. */
function cpuMs(pid: number, children = false): number {
  const stat = (p: number | string) => {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return { ppid: Number(f[1]), ms: ((Number(f[11]) + Number(f[12])) * 1000) / 100 };
    } catch {
      return { ppid: -1, ms: 0 };
    }
  };
  let ms = stat(pid).ms;
  if (children)
    for (const d of readdirSync('/proc'))
      if (/^\d+$/.test(d)) {
        const s = stat(d);
        if (s.ppid === pid) ms += s.ms;
      }
  return ms;
}

async function startChild(databaseUrl: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    [
      ...(CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : []),
      ...NODE_ARGS,
      ...(FROM_SOURCE
        ? ['--import', './scripts/register-source.mjs', childScript]
        : [await bundle(childScript)]),
    ],
    {
      cwd: root,
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      if (NODE_ARGS.length) process.stderr.write(b);
      out += b.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`audit store exited ${code}`)));
  });
  return { child, port };
}

const pgs = await startPostgres();
let child: ChildProcess | undefined;
const rows: Row[] = [];
const notes: string[] = [];
try {
  const started = await startChild(pgs.url);
  child = started.child;
  const pid = child.pid!;
  const url = `http://127.0.0.1:${started.port}`;
  const postmaster = Number(readFileSync(`${pgs.dir}/data/postmaster.pid`, 'utf8').split('\n')[0]);
  const idle = memOf(pid);
  const db = new pg.Pool({ connectionString: pgs.url, max: 2 });
  await db.query('CREATE TABLE bare (LIKE audit_events INCLUDING DEFAULTS)');

  const post = async (body: string, idempotencyKey?: string) => {
    const r = await fetch(`${url}/api/v1/audit/events/batch`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer bench',
        ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
      },
      body,
    });
    if (r.status !== 201) throw new Error(`batch: ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
  };
  /** Ours: request bodies built up front, then two concurrent writers. */
  const ingest = (event: (i: number) => BenchEvent, n: number, offset: number, keys: boolean) =>
    twoWriters(
      batchesOf(n, offset, (first, size) => ({
        body: JSON.stringify(Array.from({ length: size }, (_, j) => event(first + j))),
        key: keys ? crypto.randomUUID() : undefined,
      })),
      (b) => post(b.body, b.key),
    );
  /** Reference: the same rows (every column) as multi-row INSERTs, one bind parameter each. */
  const bareIngest = (event: (i: number) => BenchEvent, n: number, offset: number) => {
    const now = new Date().toISOString();
    return twoWriters(
      batchesOf(n, offset, (first, size) => {
        const params: unknown[] = [];
        const tuples = Array.from({ length: size }, (_, k) => {
          const vals = storedValues(event(first + k), k, now);
          return `(${vals.map((v) => (params.push(v), `$${params.length}`)).join(',')})`;
        });
        return { sql: `INSERT INTO bare (${COLS.join(',')}) VALUES ${tuples.join(',')}`, params };
      }),
      async (s) => {
        await db.query(s.sql, s.params);
      },
    );
  };

  // Ours and the reference in alternating rounds after a warm-up, so that a slow spell of the
  // (shared) machine does not land on one side only.
  const perRound = Math.max(BATCH, Math.round(INGEST_EVENTS / ROUNDS / BATCH) * BATCH);
  let offset = 0;
  const compare = async (name: string, event: (i: number) => BenchEvent, keys = false) => {
    await ingest(event, 10 * BATCH, 10_000_000 + offset, keys);
    await bareIngest(event, 10 * BATCH, 10_000_000 + offset);
    const ms = { ours: 0, bare: 0 };
    const cpu = { store: 0, pgOurs: 0, pgBare: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      const [s0, p0] = [cpuMs(pid), cpuMs(postmaster, true)];
      ms.ours += await ingest(event, perRound, offset, keys);
      const [s1, p1] = [cpuMs(pid), cpuMs(postmaster, true)];
      ms.bare += await bareIngest(event, perRound, offset);
      const p2 = cpuMs(postmaster, true);
      cpu.store += s1 - s0;
      cpu.pgOurs += p1 - p0;
      cpu.pgBare += p2 - p1;
      offset += perRound;
    }
    const n = ROUNDS * perRound;
    const ours = n / (ms.ours / 1000);
    const bare = n / (ms.bare / 1000);
    rows.push({
      metric: `batch ingest (auth+chain), ${name}`,
      ours,
      reference: bare,
      unit: 'ev/s',
      target: '>= 50% of bare INSERT',
      met: ours >= bare * 0.5,
    });
    const per1000 = (x: number) => ((x * 1000) / n).toFixed(0);
    notes.push(
      `${name}: CPU per 1000 events: store ${per1000(cpu.store)} ms, its PostgreSQL ` +
        `${per1000(cpu.pgOurs)} ms; reference's PostgreSQL ${per1000(cpu.pgBare)} ms`,
    );
  };
  await compare('issue events', uniform);
  await compare('issue events + Idempotency-Key', uniform, true);
  await compare('every field varying', varied);
  const afterIngest = memOf(pid);

  // Fill the table up to STORED_EVENTS with one INSERT ... SELECT: plausible rows of the same
  // 1000 correlations the API wrote (about 1000 events each at 1M), spread over the last
  // ~STORED_EVENTS ms. Their chain columns are stand-ins: these correlations no longer verify,
  // which the query figure does not need. A table that grew to this size over time would have
  // been vacuumed and analyzed by autovacuum and checkpointed along the way; VACUUM ANALYZE and
  // CHECKPOINT do that here, so the queries do not run beside the catch-up of a bulk load.
  const t1 = performance.now();
  const count = async () =>
    Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM audit_events')).rows[0]!.n);
  const fill = Math.max(0, STORED_EVENTS - (await count()));
  await db.query(
    `INSERT INTO audit_events (${COLS.join(',')})
     SELECT gen_random_uuid(), '1.0', 'gateway.request', now() - g * interval '1 millisecond',
       'gateway', 'proxy', 'success', 'user', 'user-' || (g % 97), NULL, 'route', '/r/' || (g % 13),
       'corr-' || (g % ${CORRELATIONS}), NULL, 'bench', NULL, NULL, NULL, NULL, NULL, 2555, false,
       jsonb_build_object('i', g, 'path', '/api/x', 'status', 200), $2, 'serviceaccount', NULL,
       g / ${CORRELATIONS} + 1, repeat('0', 64), md5(g::text) || md5(g::text)
     FROM generate_series(1, $1::integer) AS g`,
    [fill, WRITER],
  );
  await db.query('VACUUM ANALYZE audit_events');
  await db.query('CHECKPOINT');
  const stored = await count();
  const fillSeconds = (performance.now() - t1) / 1000;

  const get = async (i: number) => {
    const s = performance.now();
    const r = await fetch(
      `${url}/api/v1/audit/events?correlation_id=corr-${(i * 7) % CORRELATIONS}&limit=50`,
      { headers: { authorization: 'Bearer bench' } },
    );
    if (r.status !== 200) throw new Error(`query: ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
    return performance.now() - s;
  };
  // The same query straight to PostgreSQL, for comparison (what of the tail is the
  // database's); the two alternate, so both meet the same conditions.
  const sql = async (i: number) => {
    const s = performance.now();
    await db.query(
      `SELECT * FROM audit_events WHERE correlation_id = $1
       ORDER BY event_timestamp DESC, event_id DESC LIMIT 51 OFFSET 0`,
      [`corr-${(i * 7) % CORRELATIONS}`],
    );
    return performance.now() - s;
  };
  for (let i = 0; i < Math.min(50, QUERIES); i++) await get(i); // warm-up
  const lat: number[] = [];
  const sqlLat: number[] = [];
  for (let i = 0; i < QUERIES; i++) {
    lat.push(await get(i));
    sqlLat.push(await sql(i));
  }
  sqlLat.sort((a, b) => a - b);
  notes.push(
    `the same query in SQL (no HTTP, auth, JSON): p50 ${percentile(sqlLat, 50).toFixed(2)} ms, ` +
      `p90 ${percentile(sqlLat, 90).toFixed(2)} ms, p99 ${percentile(sqlLat, 99).toFixed(2)} ms, ` +
      `max ${sqlLat[sqlLat.length - 1]!.toFixed(2)} ms`,
  );
  const p99 = percentile(
    lat.sort((a, b) => a - b),
    99,
  );
  notes.push(
    `query by correlation_id, ${QUERIES} sequential requests: p50 ${percentile(lat, 50).toFixed(2)} ms, ` +
      `p90 ${percentile(lat, 90).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${lat[lat.length - 1]!.toFixed(2)} ms`,
  );
  rows.push({
    metric: `query by correlation_id p99 (${stored.toLocaleString('en-US')} events)`,
    ours: p99,
    unit: 'ms',
    target: '< 20 ms',
    met: p99 < 20,
  });
  const end = memOf(pid);
  rows.push({
    metric: `store peak RSS (VmHWM, own process; idle ${idle.rss.toFixed(0)} MB)`,
    ours: end.hwm,
    unit: 'MB',
    target: '< 250 MB',
    met: end.hwm < 250,
  });
  printTable(
    `audit store on PostgreSQL, store ${FROM_SOURCE ? 'from source (tsx)' : 'as bundled JS'}; ` +
      `store RSS ${afterIngest.rss.toFixed(0)} MB after ingest, ${end.rss.toFixed(0)} MB after ` +
      `queries; ${fill.toLocaleString('en-US')} rows filled by SQL in ${fillSeconds.toFixed(0)} s`,
    rows,
  );
  for (const n of notes) console.log(n);
  await db.end();
} finally {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  await pgs.close();
}

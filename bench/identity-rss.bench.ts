// npm run bench -- identity-rss
// Memory of the identity server holding 10,000 registration entries with 1,000 attested
// workloads, each on its own socket with a connected FetchX509SVID stream.
//
// Processes, all started by this one:
// - `measure <store>`, the server as it runs in production: plain JavaScript (this file
//   bundled with the workspace sources it imports, see support/bundle.ts), no tsx, with a data
//   dir (a fresh temp dir, as `precinct identity-server --data-dir` uses it) and its entries on
//   embedded PGlite there, or on PostgreSQL (a throwaway server that @precinct/testing starts,
//   in processes of its own). It reads /proc/self/status before the server starts (the modules loaded:
//   the reference), and with the entries and streams: current RSS (VmRSS) and peak (VmHWM).
// - `measure pglite-restart`: a second server on the same data dir, so the entries come from
//   the store at start (no initdb), then the same 1,000 workloads.
// - `workloads`: the gRPC clients, in a process of their own so only the server is measured.
//
// IDENTITY_BENCH_FROM_SOURCE=1 runs the server from source under tsx instead, to see what the
// loader costs. BENCH_ENTRIES and BENCH_WORKLOADS change the counts.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { bundle } from './support/bundle.js';
import { procMemory, settleHeap } from './support/memory.js';
import { printTable, type Row } from './table.js';

const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 10_000);
const WORKLOADS = Number(process.env.BENCH_WORKLOADS ?? 1_000);
const FROM_SOURCE = process.env.IDENTITY_BENCH_FROM_SOURCE === '1';
const MB = 1024 * 1024;
const root = fileURLToPath(new URL('..', import.meta.url));

type Store = 'pglite' | 'pglite-restart' | 'postgres';

interface Memory {
  /** VmRSS, bytes */
  rss: number;
  /** VmHWM: the peak RSS so far, bytes */
  peak: number;
  heapUsed: number;
  external: number;
}

interface Sample {
  baseline: Memory;
  loaded: Memory;
  /** from startIdentityServer() to resolved, ms */
  startMs: number;
}

/** The node arguments that run this file (as a bundle, or from source under tsx). */
function self(script: string): string[] {
  return script.endsWith('.ts') ? ['--import', './scripts/register-source.mjs', script] : [script];
}

/** Full collections until the heap stops shrinking, then the figures from /proc. */
async function memory(): Promise<Memory> {
  await settleHeap();
  const { rss, peak } = procMemory();
  const m = process.memoryUsage();
  return { rss, peak, heapUsed: m.heapUsed, external: m.external };
}

/** The workloads: one client per address, each with a FetchX509SVID stream. */
async function workloads(): Promise<void> {
  const { WORKLOAD_API_SECURITY_HEADER: SECURITY_HEADER, workloadApiServiceDefinition } =
    await import('@precinct/spiffe/workloadapi');
  // The addresses come as one line on stdin; the parent closes stdin when it has measured.
  const addresses = await new Promise<string[]>((resolve) => {
    let input = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => {
      const had = input.includes('\n');
      input += chunk;
      if (!had && input.includes('\n')) resolve(JSON.parse(input.slice(0, input.indexOf('\n'))));
    });
    process.stdin.on('end', () => process.exit(0));
  });
  const Ctor = grpc.makeGenericClientConstructor(
    workloadApiServiceDefinition(),
    'SpiffeWorkloadAPI',
  );
  const md = new grpc.Metadata();
  md.set(SECURITY_HEADER, 'true');
  let ready = 0;
  for (const a of addresses) {
    const c = new Ctor(a, grpc.credentials.createInsecure()) as unknown as {
      FetchX509SVID(r: object, m: grpc.Metadata): grpc.ClientReadableStream<unknown>;
    };
    const s = c.FetchX509SVID({}, md);
    let first = true;
    s.on('data', () => {
      if (first && ++ready === addresses.length) process.stdout.write('ready\n');
      first = false;
    });
    s.on('error', (e) => {
      process.stderr.write(`stream error: ${e.message}\n`);
      process.exit(1);
    });
  }
}

async function measure(store: Store, dataDir: string): Promise<Sample> {
  const { createLogger } = await import('@precinct/runtime');
  // The package's public entry, as `precinct identity-server` loads it.
  const { startIdentityServer } = await import('@precinct/identity-server');
  let pg: { url: string; close(): Promise<void> } | undefined;
  if (store === 'postgres') pg = await (await import('@precinct/testing')).startPostgres();
  // Loaded on first use by the server; part of the reference, like the other modules.
  else await import('@electric-sql/pglite');
  const baseline = await memory();
  const t0 = performance.now();
  const server = await startIdentityServer({
    ...(pg ? { databaseUrl: pg.url } : {}),
    dataDir,
    trustDomain: 'bench.example',
    admin: { host: '127.0.0.1', port: 0 },
    oidc: { host: '127.0.0.1', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    logger: createLogger('bench', 'silent'),
    verifier: {
      verify: async (token: string) => ({
        namespace: token,
        serviceAccountName: 'default',
        expiresAt: new Date(Date.now() + 3600_000),
      }),
    },
  });
  const startMs = performance.now() - t0;
  if (store === 'pglite-restart') {
    const n = server.entries.list().length;
    if (n !== ENTRIES) throw new Error(`restarted with ${n} entries, expected ${ENTRIES}`);
  } else {
    for (let i = 0; i < ENTRIES; i++) {
      await server.entries.create({
        spiffeId: `spiffe://bench.example/w/${i}`,
        selectors: [`k8s:ns:ns-${i}`, 'k8s:sa:default'],
      });
    }
  }
  const addresses: string[] = [];
  for (let i = 0; i < WORKLOADS; i++) {
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: `ns-${i}` }),
    });
    addresses.push(((await res.json()) as { address: string }).address);
  }
  const kid = spawn(process.execPath, [...self(process.argv[1]!), 'workloads'], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  kid.stdin.write(`${JSON.stringify(addresses)}\n`);
  await new Promise<void>((resolve, reject) => {
    kid.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    kid.on('exit', (code) => reject(new Error(`workloads exited ${code}`)));
  });
  const loaded = await memory();
  kid.stdin.end();
  await once(kid, 'exit');
  await server.close();
  await pg?.close();
  return { baseline, loaded, startMs };
}

async function child(script: string[], store: Store, dataDir: string): Promise<Sample> {
  const kid = spawn(process.execPath, ['--expose-gc', ...script, 'measure', store, dataDir], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  kid.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(kid, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`measuring ${store} failed (exit ${code})`);
  return JSON.parse(out) as Sample;
}

async function main(): Promise<void> {
  const script = self(FROM_SOURCE ? fileURLToPath(import.meta.url) : await bundle(import.meta.url));
  const { peerSkip } = await import('@precinct/testing');
  const stores: Store[] = ['pglite', 'pglite-restart'];
  if (!peerSkip('postgres')) stores.push('postgres');
  const how = FROM_SOURCE ? 'from source, under tsx' : 'bundled JS, plain node';
  const what = `${ENTRIES.toLocaleString('en-US')} entries + ${WORKLOADS.toLocaleString('en-US')} streaming workloads`;
  const label: Record<Store, string> = {
    pglite: 'PGlite, fresh data dir',
    'pglite-restart': 'PGlite, restart on that data dir',
    postgres: 'PostgreSQL',
  };
  const rows: Row[] = [];
  const notes: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'identity-rss-'));
  try {
    for (const store of stores) {
      // Each store in a process of its own, so one's memory does not show up in another's.
      const dataDir = join(dir, store === 'postgres' ? 'postgres' : 'pglite');
      const s = await child(script, store, dataDir);
      rows.push(
        {
          metric: `RSS, ${what} (${label[store]})`,
          ours: s.loaded.rss / MB,
          reference: s.baseline.rss / MB,
          unit: 'MB',
          target: '< 300 MB',
          met: s.loaded.rss < 300 * MB,
        },
        {
          metric: `  peak RSS (VmHWM) of that process`,
          ours: s.loaded.peak / MB,
          reference: s.baseline.peak / MB,
          unit: 'MB',
          target: 'info',
          met: true,
        },
        {
          metric: `  JS heap used`,
          ours: s.loaded.heapUsed / MB,
          reference: s.baseline.heapUsed / MB,
          unit: 'MB',
          target: 'info',
          met: true,
        },
      );
      notes.push(`${label[store]}: server started in ${Math.round(s.startMs)} ms`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  printTable(`identity server memory (${how})`, rows);
  console.log(
    '\nReference: the same process before the server started (its modules loaded).\n' +
      notes.join('\n'),
  );
  const ok = rows.every((r) => r.met);
  console.log(ok ? '\nall targets met' : '\nTARGET MISSED');
  process.exitCode = ok ? 0 : 1;
}

if (process.argv[2] === 'workloads') await workloads();
else if (process.argv[2] === 'measure') {
  const sample = await measure(process.argv[3] as Store, process.argv[4]!);
  process.stdout.write(JSON.stringify(sample));
} else await main();

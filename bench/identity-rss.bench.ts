// Memory of the identity server holding 10,000 registration entries with 1,000 attested
// workloads, each on its own socket with a connected FetchX509SVID stream. The workloads run in
// a child process so only the server's memory is measured. Reference: the same process before
// the server started (Node with the modules loaded).
//
//   npm run bench -- identity-rss
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';

const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 10_000);
const WORKLOADS = Number(process.env.BENCH_WORKLOADS ?? 1_000);
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;

async function child(): Promise<void> {
  const { SECURITY_HEADER, workloadApiDefinition } =
    await import('../services/identity-server/src/workload-api.js');
  const addresses = JSON.parse(process.argv[3]!) as string[];
  const Ctor = grpc.makeGenericClientConstructor(workloadApiDefinition(), 'SpiffeWorkloadAPI');
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
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

async function measure(store: 'pglite' | 'postgres'): Promise<{ rss: number; baseline: number }> {
  const { createLogger } = await import('@precinct/runtime');
  const { startIdentityServer } = await import('../services/identity-server/src/server.js');
  let pg: { url: string; close(): Promise<void> } | undefined;
  if (store === 'postgres') pg = await (await import('@precinct/testing')).startPostgres();
  globalThis.gc?.();
  const baseline = process.memoryUsage().rss;
  const server = await startIdentityServer({
    ...(pg ? { databaseUrl: pg.url } : {}),
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
  for (let i = 0; i < ENTRIES; i++) {
    await server.entries.create({
      spiffeId: `spiffe://bench.example/w/${i}`,
      selectors: [`k8s:ns:ns-${i}`, 'k8s:sa:default'],
    });
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
  const kid = spawn(
    process.execPath,
    [
      '--import',
      './scripts/register-source.mjs',
      fileURLToPath(import.meta.url),
      'child',
      JSON.stringify(addresses),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    kid.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    kid.on('exit', (code) => reject(new Error(`workloads exited ${code}`)));
  });
  globalThis.gc?.();
  const rss = process.memoryUsage().rss;
  kid.stdin.end();
  await server.close();
  await pg?.close();
  return { rss, baseline };
}

async function main(): Promise<void> {
  // Each store in a process of its own, so one's memory does not show up in the other's.
  const { peerSkip } = await import('@precinct/testing');
  const stores = ['pglite', ...(peerSkip('postgres') ? [] : ['postgres'])];
  const rows = [['metric', 'ours', 'reference', 'ratio', 'target']];
  let ok = true;
  for (const store of stores) {
    const kid = spawn(
      process.execPath,
      [
        '--expose-gc',
        '--import',
        './scripts/register-source.mjs',
        fileURLToPath(import.meta.url),
        'measure',
        store,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    kid.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await once(kid, 'exit')) as [number];
    if (code !== 0) throw new Error(`measuring ${store} failed`);
    const { rss, baseline } = JSON.parse(out) as { rss: number; baseline: number };
    ok &&= rss < 300 * 1024 * 1024;
    rows.push([
      `RSS, ${ENTRIES.toLocaleString('en-US')} entries + ${WORKLOADS.toLocaleString('en-US')} streaming workloads (${store})`,
      mb(rss),
      `${mb(baseline)} (idle process)`,
      `${(rss / baseline).toFixed(1)}x`,
      '< 300 MB',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join(' | '));
  console.log(ok ? '\nall targets met' : '\nTARGET MISSED');
  process.exitCode = ok ? 0 : 1;
}

if (process.argv[2] === 'child') await child();
else if (process.argv[2] === 'measure') {
  process.stdout.write(JSON.stringify(await measure(process.argv[3] as 'pglite' | 'postgres')));
} else await main();

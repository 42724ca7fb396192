// npm run bench -- kube-memory
// RSS of a process holding 100,000 verified ServiceAccount tokens (real ES256 tokens through
// the JWKS verifier, each with its own pod) and 100,000 SubjectAccessReview decisions. The
// decisions are answered in process (`review`), so the growth is the caches' own.
//
// Two processes, both started by this one:
// - `measure`, the library as it runs in production: plain JavaScript (this file bundled with
//   the workspace sources it imports by esbuild into node_modules/.cache/precinct-bench/, see
//   support/bundle.ts; third-party packages stay imports of node_modules), no tsx. It reads
//   its RSS with the library loaded and the verifier and authorizer set up (the baseline),
//   then with the caches filled. KUBE_BENCH_FROM_SOURCE=1 runs it from source under tsx
//   instead, to see what the loader costs.
// - the reference, a bare `node` (nothing imported) holding as many SHA-256 keys (base64url)
//   in a plain Map of small objects: what the simplest cache costs per entry.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundle } from './support/bundle.js';
import { settleHeap } from './support/memory.js';
import { printTable } from './table.js';

const N = Number(process.env.BENCH_ENTRIES ?? 100_000);
const FROM_SOURCE = process.env.KUBE_BENCH_FROM_SOURCE === '1';
const MB = 1024 * 1024;

interface Sample {
  baselineRss: number;
  rss: number;
  baselineHeap: number;
  heap: number;
  entries: number;
}

/** The heap settled, then RSS and heap in use. */
async function settle(): Promise<{ rss: number; heap: number }> {
  await settleHeap();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

async function measure(): Promise<Sample> {
  const { cachingVerifier, createJwksVerifier, createSubjectAccessReviewAuthorizer } =
    await import('@precinct/kube');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const dir = mkdtempSync(join(tmpdir(), 'kube-memory-'));
  const jwksPath = join(dir, 'jwks.json');
  writeFileSync(
    jwksPath,
    JSON.stringify({
      keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' }],
    }),
  );
  const issuer = 'https://kubernetes.default.svc.cluster.local';
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const header = b64({ alg: 'ES256', kid: 'k1' });
  const now = Math.floor(Date.now() / 1000);
  function token(i: number): string {
    const ns = `ns-${i % 100}`;
    const sa = `sa-${i % 1000}`;
    const payload = b64({
      iss: issuer,
      sub: `system:serviceaccount:${ns}:${sa}`,
      aud: ['precinct'],
      iat: now,
      nbf: now,
      exp: now + 3600,
      jti: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      'kubernetes.io': {
        namespace: ns,
        serviceaccount: {
          name: sa,
          uid: `11111111-0000-4000-8000-${String(i % 1000).padStart(12, '0')}`,
        },
        pod: {
          name: `${sa}-pod-${i}`,
          uid: `22222222-0000-4000-8000-${String(i).padStart(12, '0')}`,
        },
      },
    });
    const sig = sign('sha256', Buffer.from(`${header}.${payload}`), {
      key: privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    return `${header}.${payload}.${sig.toString('base64url')}`;
  }

  const verifier = cachingVerifier(
    createJwksVerifier({ issuer, audiences: ['precinct'], jwksPath }),
    { maxEntries: N },
  );
  const authz = createSubjectAccessReviewAuthorizer({
    maxEntries: N,
    review: async (spec) => ({ allowed: spec.user!.length % 2 === 0 }),
  });
  const attrs = {
    verb: 'get',
    resource: 'services',
    namespace: 'default',
    name: 'data-storage-service',
  };
  async function fill(i: number): Promise<void> {
    const id = await verifier.verify(token(i));
    await authz.authorize({ username: id.username, uid: `u-${i}`, groups: id.groups }, attrs);
  }
  // Every code path once (and the key loaded), then the token out of the cache again.
  await fill(0);
  verifier.close?.();
  const base = await settle();
  for (let i = 0; i < N; i++) await fill(i);
  const full = await settle();
  rmSync(dir, { recursive: true, force: true });
  return {
    baselineRss: base.rss,
    rss: full.rss,
    baselineHeap: base.heap,
    heap: full.heap,
    entries: verifier.size + authz.size,
  };
}

// The reference's settle(): settleHeap's own source (it imports nothing), then the figures.
const SETTLE_JS = `const settleHeap = ${settleHeap.toString()};
async function settle() {
  await settleHeap();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}`;

// The reference: bare node, nothing imported; the same number of entries as a Map of SHA-256
// (base64url) keys to small objects.
const REFERENCE = `
const { hash, createHash } = await import('node:crypto');
const sha = (s) => hash ? hash('sha256', s, 'base64url') : createHash('sha256').update(s).digest('base64url');
${SETTLE_JS}
const base = await settle();
const m = new Map();
const t = Date.now();
for (let i = 0; i < ${2 * N}; i++) m.set(sha('entry ' + i), { allowed: i % 2 === 0, expiresAt: t + i });
const full = await settle();
process.stdout.write(JSON.stringify({ baselineRss: base.rss, rss: full.rss, baselineHeap: base.heap, heap: full.heap, entries: m.size }));
`;

async function child(args: string[]): Promise<Sample> {
  const kid = spawn(process.execPath, ['--expose-gc', ...args], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  kid.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(kid, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}`);
  return JSON.parse(out) as Sample;
}

async function main(): Promise<void> {
  const ours = await child(
    FROM_SOURCE
      ? ['--import', './scripts/register-source.mjs', fileURLToPath(import.meta.url), 'measure']
      : [await bundle(import.meta.url), 'measure'],
  );
  const ref = await child(['--input-type=module', '-e', REFERENCE]);
  const perEntry = (s: Sample, what: 'rss' | 'heap') =>
    what === 'rss' ? (s.rss - s.baselineRss) / s.entries : (s.heap - s.baselineHeap) / s.entries;
  const label = `${N.toLocaleString('en-US')} tokens + ${N.toLocaleString('en-US')} decisions`;
  const how = FROM_SOURCE ? 'from source, under tsx' : 'bundled JS, plain node';
  printTable('@precinct/kube memory', [
    {
      metric: `RSS, ${label} cached (${how})`,
      ours: ours.rss / MB,
      reference: ref.rss / MB,
      unit: 'MB',
      target: '< 150 MB (ref: bare node, as many entries in a Map)',
      met: ours.rss / MB < 150,
    },
    {
      metric: 'RSS before filling: library loaded, verifier + authorizer set up (ref: bare node)',
      ours: ours.baselineRss / MB,
      reference: ref.baselineRss / MB,
      unit: 'MB',
      target: 'info',
      met: true,
    },
    {
      metric: "the caches' RSS growth",
      ours: (ours.rss - ours.baselineRss) / MB,
      reference: (ref.rss - ref.baselineRss) / MB,
      unit: 'MB',
      target: 'info',
      met: true,
    },
    {
      metric: 'bytes per entry, RSS growth',
      ours: perEntry(ours, 'rss'),
      reference: perEntry(ref, 'rss'),
      unit: 'B',
      target: 'info',
      met: true,
    },
    {
      metric: 'bytes per entry, live heap growth',
      ours: perEntry(ours, 'heap'),
      reference: perEntry(ref, 'heap'),
      unit: 'B',
      target: 'info',
      met: true,
    },
  ]);
  console.log(
    `\nEntries: ${ours.entries.toLocaleString('en-US')} (tokens + decisions). The reference holds as` +
      '\nmany SHA-256 keys in a Map of { allowed, expiresAt } objects, in bare node.',
  );
}

if (process.argv[2] === 'measure') process.stdout.write(JSON.stringify(await measure()));
else await main();

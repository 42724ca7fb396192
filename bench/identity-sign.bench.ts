// X.509-SVIDs signed per second by the identity server's CA against a bare node:crypto P-256
// signing loop over a buffer the size of an SVID's to-be-signed part, on one thread, same run.
//
//   npm run bench -- identity-sign
//
// "ours" is the whole leaf: serial, validity, SAN, extensions, DER framing and the signature.
// Workload key generation is measured separately (a workload keeps its key for the SVID's
// lifetime, and the CA signs on every rotation and every new entry).
import { generateKeyPair, generateKeyPairSync, sign } from 'node:crypto';
import { promisify } from 'node:util';
import { createLogger } from '@precinct/runtime';
import { startIdentityServer } from '@precinct/identity-server';

const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 2_000);
const genKeyPair = promisify(generateKeyPair);

function rate(fn: () => void): number {
  for (let i = 0; i < 200; i++) fn(); // warm-up
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < PHASE_MS) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

async function rateAsync(fn: () => Promise<unknown>): Promise<number> {
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < PHASE_MS) {
    await fn();
    n++;
  }
  return (n * 1000) / (performance.now() - start);
}

/** A workload's key as the Workload API makes one: P-256, SPKI and PKCS#8 DER exported once. */
async function workloadKey() {
  const { publicKey, privateKey } = await genKeyPair('ec', { namedCurve: 'P-256' });
  return {
    type: 'ec-p256' as const,
    spkiDer: publicKey.export({ type: 'spki', format: 'der' }),
    pkcs8Der: privateKey.export({ type: 'pkcs8', format: 'der' }),
  };
}

// Through the public API: a running server's CA (`server.keys`), as an embedding program sees it.
const server = await startIdentityServer({
  trustDomain: 'bench.example',
  admin: { host: '127.0.0.1', port: 0 },
  oidc: { host: '127.0.0.1', port: 0 },
  health: { host: '127.0.0.1', port: 0 },
  logger: createLogger('bench', 'silent'),
});
const km = server.keys;
const key = await workloadKey();
const params = {
  publicKey: key,
  spiffeId: 'spiffe://bench.example/ns/default/sa/api',
  dnsNames: ['api.default.svc'],
  ttlMs: 3600_000,
};
const sample = km.signX509Svid(params).chainDer[0]!;
const tbsSize = sample.length - 80; // minus the signature algorithm and the signature itself
const ref = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const data = Buffer.alloc(tbsSize, 7);

const ours = rate(() => km.signX509Svid(params));
const reference = rate(() => sign('sha256', data, ref));
const keygen = await rateAsync(() => workloadKey());
await server.close();

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const rows = [
  ['metric', 'ours', 'reference', 'ratio', 'target'],
  [
    'X.509-SVIDs signed/s vs crypto.sign P-256',
    fmt(ours),
    fmt(reference),
    `${((ours / reference) * 100).toFixed(0)}%`,
    '>= 50%',
  ],
  ['X.509-SVIDs signed/s (absolute, one core)', fmt(ours), '-', '-', '>= 2,000'],
  ['P-256 workload keys generated/s (info)', fmt(keygen), '-', '-', '-'],
];
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join(' | '));
const ok = ours / reference >= 0.5 && ours >= 2000;
console.log(ok ? '\nall targets met' : '\nTARGET MISSED');
process.exitCode = ok ? 0 : 1;

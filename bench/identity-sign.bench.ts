// X.509-SVIDs signed per second by the identity server's CA against a bare node:crypto P-256
// signing loop over a buffer the size of an SVID's to-be-signed part, on one thread, same run.
//
//   npm run bench -- identity-sign
//
// "ours" is the whole leaf: serial, validity, SAN, extensions, DER framing and the signature.
// Workload key generation is measured separately (a workload keeps its key for the SVID's
// lifetime, and the CA signs on every rotation and every new entry).
import { generateKeyPairSync, sign } from 'node:crypto';
// eslint-disable-next-line no-restricted-imports -- internals a bench measures directly (issue 10: export or drop)
import { KeyManager, generateWorkloadKey } from '../services/identity-server/src/authority.js';
// eslint-disable-next-line no-restricted-imports -- internals a bench measures directly (issue 10: export or drop)
import { systemClock } from '../services/identity-server/src/clock.js';

const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 2_000);

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

const km = await KeyManager.open({ trustDomain: 'bench.example', clock: systemClock });
const key = await generateWorkloadKey('ec-p256');
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
const keygen = await rateAsync(() => generateWorkloadKey('ec-p256'));

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

// npm run bench -- kube
import { createVerify, verify as cryptoVerify } from 'node:crypto';
import { createServer, Agent, request } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import {
  cachingVerifier,
  createJwksVerifier,
  createNodeHttpAuth,
  createSubjectAccessReviewAuthorizer,
} from '@precinct/kube';
import { Registry } from 'prom-client';
import {
  makeKey,
  projectedClaims,
  sign,
  startJwksServer,
  ISSUER,
} from '../packages/kube/test/support.js';
import { percentile, printTable, rate, type Row } from './table.js';

void createVerify;
const rows: Row[] = [];
const key = await makeKey('RS256', 'k1');
const jwks = await startJwksServer([key.jwk]);
const token = await sign(key, projectedClaims());
const verifier = createJwksVerifier({
  issuer: ISSUER,
  audiences: ['precinct'],
  jwksUrl: jwks.jwksUrl,
});
await verifier.verify(token);

// 1. Uncached offline verification vs the bare signature check on the same bytes.
const [h, p, s] = token.split('.') as [string, string, string];
const signingInput = Buffer.from(`${h}.${p}`);
const signature = Buffer.from(s, 'base64url');
// Two cores shared with other work: alternate short rounds and keep each side's best, so a
// burst of outside load does not land on one side only.
let bare = 0;
let ours = 0;
for (let round = 0; round < 4; round++) {
  bare = Math.max(
    bare,
    await rate(() => {
      if (!cryptoVerify('sha256', signingInput, key.publicKey, signature)) throw new Error('bad');
    }, 1000),
  );
  ours = Math.max(ours, await rate(() => verifier.verify(token), 1000));
}
rows.push({
  metric: 'uncached RS256 SA token verification',
  ours,
  reference: bare,
  unit: 'ops/s',
  target: '>= 70% of bare crypto.verify',
  met: ours / bare >= 0.7,
});

// 2. Cache hits.
const cached = cachingVerifier(verifier);
await cached.verify(token);
const hits = await rate(() => cached.verify(token));
rows.push({
  metric: 'verified-token cache hit',
  ours: hits,
  unit: 'ops/s',
  target: '>= 500,000/s',
  met: hits >= 500_000,
});

// 3. Added latency of the middleware with warm caches, node:http on loopback, keep-alive.
const sar = createServer((req, res) => {
  let b = '';
  req.on('data', (c) => (b += c));
  req.on('end', () => {
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...JSON.parse(b), status: { allowed: true } }));
  });
});
await new Promise<void>((r) => sar.listen(0, '127.0.0.1', r));
const sarPort = (sar.address() as { port: number }).port;
const kc = new KubeConfig();
kc.loadFromOptions({
  clusters: [{ name: 'c', server: `http://127.0.0.1:${sarPort}`, skipTLSVerify: true }],
  users: [{ name: 'u', token: 'x' }],
  contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
  currentContext: 'x',
});
const authorizer = createSubjectAccessReviewAuthorizer({ kubeConfig: kc, maxEntries: 200_000 });
const guard = createNodeHttpAuth({
  verifier: cached,
  authorizer,
  registry: new Registry(),
  authorization: { verb: 'get', resource: 'services', namespace: 'default', name: 'x' },
});
const payload = JSON.stringify({ ok: true });
const plainServer = createServer((_req, res) => res.end(payload));
const guardedServer = createServer(async (req, res) => {
  if (await guard(req, res)) res.end(payload);
});
async function port(server: ReturnType<typeof createServer>) {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}
const plainPort = await port(plainServer);
const guardedPort = await port(guardedServer);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
function once(p: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      { host: '127.0.0.1', port: p, agent, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          else resolve(performance.now() - t0);
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}
async function latencies(p: number, n: number) {
  for (let i = 0; i < 300; i++) await once(p);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await once(p));
  return out.sort((a, b) => a - b);
}
// Interleave rounds so drift on a shared machine hits both sides alike.
const plainLat: number[] = [];
const guardedLat: number[] = [];
for (let round = 0; round < 4; round++) {
  plainLat.push(...(await latencies(plainPort, 1000)));
  guardedLat.push(...(await latencies(guardedPort, 1000)));
}
plainLat.sort((a, b) => a - b);
guardedLat.sort((a, b) => a - b);
const p99Plain = percentile(plainLat, 99);
const p99Guarded = percentile(guardedLat, 99);
rows.push({
  metric: 'request p99, middleware with warm caches (ref: no middleware)',
  ours: p99Guarded,
  reference: p99Plain,
  unit: 'ms',
  target: 'added p99 < 1 ms',
  met: p99Guarded - p99Plain < 1,
  ratio: p99Guarded / p99Plain,
});
rows.push({
  metric: 'added p99 latency',
  ours: p99Guarded - p99Plain,
  unit: 'ms',
  target: '< 1 ms',
  met: p99Guarded - p99Plain < 1,
});
agent.destroy();
plainServer.close();
guardedServer.close();

sar.close();
await jwks.close();
printTable('@precinct/kube', rows);

// mTLS handshakes/s between two @precinct/spiffe peers (SPIFFE verification on both sides,
// rotation hooks, authorizers) vs plain node:tls with the same certificates, OpenSSL chain
// verification against the same CA and a reused secure context. Target: >= 90 % of plain.
import * as tls from 'node:tls';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { authorizeAny, spiffeServer, tlsClientOptions, tlsServerOptions } from '@precinct/spiffe';
import { TestCa } from '../packages/spiffe/test/support/ca.js';
import { MutableSvidSource, staticBundleSource } from '../packages/spiffe/test/support/sources.js';

const WARMUP = 200;
const COUNT = 1500;
const ROUNDS = 3;

async function listen(server: tls.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Sequential handshakes; each waits for the server's first byte (sent after its checks). */
async function run(connect: () => tls.TLSSocket, n: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const s = connect();
    await new Promise<void>((resolve, reject) => {
      s.once('data', () => {
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  return n / secs;
}

const ca = await TestCa.create('example.org');
const serverSvid = await ca.issue('/server');
const clientSvid = await ca.issue('/client');
const bundles = staticBundleSource([ca]);

// Ours.
const sOpts = tlsServerOptions(new MutableSvidSource(serverSvid), bundles, authorizeAny());
const ours = spiffeServer(
  tls.createServer(sOpts, (s) => s.end('.')),
  sOpts,
);
const oursPort = await listen(ours);
const cOpts = tlsClientOptions(new MutableSvidSource(clientSvid), bundles, authorizeAny());
const connectOurs = () => tls.connect({ ...cOpts, host: '127.0.0.1', port: oursPort });

// Reference: plain node:tls, OpenSSL verification, reused client secure context.
const plain = tls.createServer(
  {
    cert: serverSvid.certPem,
    key: serverSvid.keyPem,
    ca: ca.bundlePem(),
    requestCert: true,
    rejectUnauthorized: true,
  },
  (s) => s.end('.'),
);
const plainPort = await listen(plain);
const ctx = tls.createSecureContext({
  cert: clientSvid.certPem,
  key: clientSvid.keyPem,
  ca: ca.bundlePem(),
});
const connectPlain = () =>
  tls.connect({
    secureContext: ctx,
    host: '127.0.0.1',
    port: plainPort,
    checkServerIdentity: () => undefined,
  });

await run(connectOurs, WARMUP);
await run(connectPlain, WARMUP);
const oursRates: number[] = [];
const plainRates: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  plainRates.push(await run(connectPlain, COUNT));
  oursRates.push(await run(connectOurs, COUNT));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const o = median(oursRates);
const p = median(plainRates);
const ratio = o / p;
console.log('| metric | ours | reference | ratio | target |');
console.log('|---|---|---|---|---|');
console.log(
  `| mTLS handshakes/s (${COUNT} x ${ROUNDS}, median) | ${o.toFixed(0)} | ${p.toFixed(0)} (plain node:tls) | ${(ratio * 100).toFixed(1)} % | >= 90 % ${ratio >= 0.9 ? 'ok' : 'MISSED'} |`,
);
ours.close();
plain.close();

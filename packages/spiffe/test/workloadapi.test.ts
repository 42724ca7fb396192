import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import 'reflect-metadata';
import * as grpc from '@grpc/grpc-js';
import { KeyUsageFlags } from '@peculiar/x509';
import { WorkloadApiClient } from '../src/workloadapi/client.js';
import { X509Source, JwtSource, BundleSource } from '../src/workloadapi/sources.js';
import { TestCa, type IssuedSvid } from './support/ca.js';
import { TestWorkloadApiServer, x509Response } from './support/workload-api-server.js';

const TD = 'example.org';
const FED = 'fed.example.org';
let ca: TestCa;
let fedCa: TestCa;
let svidA: IssuedSvid;
let svidB: IssuedSvid;

/** Backoff that records computed delays and waits a few ms instead of seconds. */
function fastBackoff(delays: number[] = []) {
  return {
    jitter: 0,
    initialMs: 1000,
    maxMs: 30_000,
    sleep: (ms: number, signal: AbortSignal) => {
      delays.push(ms);
      return new Promise<void>((r) => {
        const t = setTimeout(r, 5);
        signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
      });
    },
  };
}

before(async () => {
  ca = await TestCa.create(TD);
  fedCa = await TestCa.create(FED);
  svidA = await ca.issue('/a');
  svidB = await ca.issue('/b');
  await ca.addJwtKey();
  await fedCa.addJwtKey();
});

async function setup(t: { after: (fn: () => unknown) => void }) {
  const server = await TestWorkloadApiServer.start();
  server.setX509(x509Response([svidA], ca.bundleDer()));
  server.setX509Bundles({ crl: [], bundles: { [`spiffe://${TD}`]: ca.bundleDer() } });
  server.setJwtBundles({ [`spiffe://${TD}`]: ca.jwksJson() });
  t.after(() => server.close());
  return server;
}

function until(cond: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - start > 5000) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

test('client: each RPC, with the security header on every call', async (t) => {
  const server = await setup(t);
  server.fetchJwtSvid = (req) => ({
    svids: [{ spiffe_id: `spiffe://${TD}/a`, svid: jwtFor(req.audience), hint: '' }],
  });
  let token = '';
  const jwtFor = (aud: string[]) => (token.length ? token : aud.join(','));
  token = await ca.signJwt('/a', ['aud1', 'aud2']);
  server.validateJwtSvid = (req) =>
    req.svid === token
      ? {
          spiffe_id: `spiffe://${TD}/a`,
          claims: { fields: { sub: { stringValue: `spiffe://${TD}/a` } } },
        }
      : { code: grpc.status.INVALID_ARGUMENT, details: 'bad token' };
  const client = new WorkloadApiClient({ address: server.address });
  t.after(() => client.close());

  const ctx = await client.fetchX509Context();
  assert.equal(String(ctx.svids[0]!.id), `spiffe://${TD}/a`);
  const x509Bundles = await client.fetchX509Bundles();
  assert.ok(x509Bundles);
  const jwt = await client.fetchJwtSvid({
    audience: 'aud1',
    extraAudiences: ['aud2'],
    subject: `spiffe://${TD}/a`,
  });
  assert.equal(String(jwt.id), `spiffe://${TD}/a`);
  const jwtCall = server.calls.find((c) => c.method === 'FetchJWTSVID')!;
  assert.deepEqual((jwtCall.request as { audience: string[] }).audience, ['aud1', 'aud2']);
  assert.equal((jwtCall.request as { spiffe_id: string }).spiffe_id, `spiffe://${TD}/a`);
  const jwtBundles = await client.fetchJwtBundles();
  assert.ok(jwtBundles);
  const validated = await client.validateJwtSvid(token, 'aud1');
  assert.equal(validated.spiffeId, `spiffe://${TD}/a`);
  assert.equal(validated.claims.sub, `spiffe://${TD}/a`);
  await assert.rejects(client.validateJwtSvid('x.y.z', 'aud1'), {
    code: 'ERR_WORKLOADAPI_INVALID_ARGUMENT',
  });

  const methods = new Set(server.calls.map((c) => c.method));
  assert.equal(methods.size, 5);
  assert.ok(server.calls.every((c) => c.securityHeader === 'true'));
});

test('server: a call without the security header gets InvalidArgument (positive control: with it)', async (t) => {
  const server = await setup(t);
  // Raw grpc call without metadata, bypassing our client on purpose.
  const { workloadApiClientConstructor } = await import('../src/workloadapi/proto.js');
  const Ctor = workloadApiClientConstructor();
  const raw = new Ctor(
    server.address,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    FetchJWTSVID: (
      req: unknown,
      md: grpc.Metadata,
      cb: (err: grpc.ServiceError | null) => void,
    ) => void;
  };
  t.after(() => raw.close());
  server.fetchJwtSvid = () => ({ svids: [{ spiffe_id: `spiffe://${TD}/a`, svid: 'x', hint: '' }] });
  const call = (md: grpc.Metadata) =>
    new Promise<grpc.ServiceError | null>((r) =>
      raw.FetchJWTSVID({ audience: ['a'] }, md, (e) => r(e)),
    );
  const without = await call(new grpc.Metadata());
  assert.equal(without?.code, grpc.status.INVALID_ARGUMENT);
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  assert.equal(await call(md), null);
});

test('X509Source: first update, rotation event, federated bundles added and removed', async (t) => {
  const server = await setup(t);
  server.setX509(
    x509Response([svidA, svidB], ca.bundleDer(), { [`spiffe://${FED}`]: fedCa.bundleDer() }),
  );
  const source = await X509Source.create({ address: server.address, backoff: fastBackoff() });
  t.after(() => source.close());
  assert.equal(String(source.getX509Svid().id), `spiffe://${TD}/a`, 'first SVID is the default');
  assert.ok(source.getX509BundleForTrustDomain(FED));

  const updated = source.waitUntilUpdated();
  server.setX509(x509Response([svidB, svidA], ca.bundleDer()));
  await updated;
  assert.equal(String(source.getX509Svid().id), `spiffe://${TD}/b`, 'rotation takes effect');
  assert.throws(() => source.getX509BundleForTrustDomain(FED), 'federated bundle removed');
  assert.ok(source.getX509BundleForTrustDomain(TD));
});

test('X509Source: pick selects by hint', async (t) => {
  const server = await setup(t);
  const resp = x509Response([svidA, svidB], ca.bundleDer());
  resp.svids[1]!.hint = 'external';
  server.setX509(resp);
  const source = await X509Source.create({
    address: server.address,
    pick: (svids) => svids.find((s) => (s as { hint?: string }).hint === 'external'),
  });
  t.after(() => source.close());
  assert.equal(String(source.getX509Svid().id), `spiffe://${TD}/b`);
});

test('X509Source: invalid responses are discarded and the last good one stays', async (t) => {
  const server = await setup(t);
  const source = await X509Source.create({ address: server.address, backoff: fastBackoff() });
  t.after(() => source.close());
  const errors: string[] = [];
  source.on('watchError', (e: { error: { code: string } }) => errors.push(e.error.code));
  const good = x509Response([svidA], ca.bundleDer());
  // Hardening (beyond the spec's client rules): SVIDs that would fail every peer.
  const rogue = await TestCa.create(TD);
  const HOUR = 3600_000;
  const broken: [string, IssuedSvid][] = [
    ['signed by a CA not in the bundle', await rogue.issue('/a')],
    [
      'expired',
      await ca.issue('/a', {
        notBefore: new Date(Date.now() - 2 * HOUR),
        notAfter: new Date(Date.now() - HOUR),
      }),
    ],
    ['leaf with cA=true', await ca.issue('/a', { isCa: true })],
    [
      'leaf with keyCertSign',
      await ca.issue('/a', {
        keyUsage: KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign,
      }),
    ],
    ['two URI SANs', await ca.issue('/a', { uris: [`spiffe://${TD}/a`, `spiffe://${TD}/b`] })],
    ['a non-spiffe URI SAN', await ca.issue('/a', { uris: ['https://example.org/a'] })],
  ];
  const tampered = Buffer.from(svidA.chainDer[0]!);
  tampered[tampered.length - 3]! ^= 0x01; // inside the signature
  const variants: [string, (r: ReturnType<typeof x509Response>) => void][] = [
    ...broken.map(([name, svid]): [string, (r: ReturnType<typeof x509Response>) => void] => [
      name,
      (r) => {
        r.svids[0]!.x509_svid = Buffer.concat(svid.chainDer);
        r.svids[0]!.x509_svid_key = svid.keyDer;
      },
    ]),
    [
      'invalid signature',
      (r) => (r.svids[0]!.x509_svid = Buffer.concat([tampered, ...svidA.chainDer.slice(1)])),
    ],
    ['private key of another SVID', (r) => (r.svids[0]!.x509_svid_key = svidB.keyDer)],
    ['empty svids', (r) => (r.svids = [])],
    ['empty spiffe_id', (r) => (r.svids[0]!.spiffe_id = '')],
    ['empty x509_svid', (r) => (r.svids[0]!.x509_svid = Buffer.alloc(0))],
    ['empty key', (r) => (r.svids[0]!.x509_svid_key = Buffer.alloc(0))],
    ['empty bundle', (r) => (r.svids[0]!.bundle = Buffer.alloc(0))],
    ['garbage certificate', (r) => (r.svids[0]!.x509_svid = Buffer.from('not a cert'))],
    [
      'federated bundle that does not parse',
      (r) => (r.federated_bundles = { [`spiffe://${FED}`]: Buffer.from('x') }),
    ],
    [
      'spiffe_id differs from the certificate',
      (r) => (r.svids[0]!.spiffe_id = `spiffe://${TD}/other`),
    ],
  ];
  let barrier = svidA;
  for (const [name, mutate] of variants) {
    const bad = structuredClone(good);
    mutate(bad);
    server.push('FetchX509SVID', bad);
    // Barrier: a valid update after the bad one; the stream is ordered, so once the barrier
    // is visible the bad response was processed, and it must never have been observed.
    barrier = barrier === svidA ? svidB : svidA;
    const seen: string[] = [];
    const onUpdate = () => seen.push(String(source.getX509Svid().id));
    source.on('update', onUpdate);
    const updated = source.waitUntilUpdated();
    server.setX509(x509Response([barrier], ca.bundleDer()));
    await updated;
    source.off('update', onUpdate);
    assert.deepEqual(seen, [barrier.spiffeId], name);
  }
  assert.equal(errors.length, variants.length);
  assert.ok(
    errors.every((c) => c === 'ERR_WORKLOADAPI_INVALID_RESPONSE'),
    errors.join(),
  );
});

test('X509Source: reconnects after a server restart, with the computed backoff delays', async (t) => {
  const server = await setup(t);
  const delays: number[] = [];
  const source = await X509Source.create({ address: server.address, backoff: fastBackoff(delays) });
  t.after(() => source.close());
  server.failNext.set('FetchX509SVID', [
    { code: grpc.status.UNAVAILABLE },
    { code: grpc.status.UNAVAILABLE },
  ]);
  server.failStreams({ code: grpc.status.UNAVAILABLE, details: 'restarting' });
  await until(() => server.openStreams('FetchX509SVID') === 1, 'the stream to come back');
  assert.deepEqual(delays, [1000, 2000, 4000], 'doubling while failing');
  // A good message resets the backoff.
  const updated = source.waitUntilUpdated();
  server.setX509(x509Response([svidB], ca.bundleDer()));
  await updated;
  server.failStreams({ code: grpc.status.UNAVAILABLE });
  await until(() => delays.length === 4 && server.openStreams('FetchX509SVID') === 1, 'reconnect');
  assert.equal(delays[3], 1000);

  // A real restart (socket closed and re-created), serving A from then on: the source
  // follows once the stream is back.
  await server.stop();
  server.x509 = x509Response([svidA], ca.bundleDer());
  await server.restart();
  await until(() => String(source.getX509Svid().id) === `spiffe://${TD}/a`, 'A after restart');
  assert.equal(String(source.getX509Svid().id), `spiffe://${TD}/a`);
});

test('X509Source: PermissionDenied stops SVIDs until a new good update', async (t) => {
  const server = await setup(t);
  const source = await X509Source.create({ address: server.address, backoff: fastBackoff() });
  t.after(() => source.close());
  assert.ok(source.getX509Svid());
  server.failNext.set('FetchX509SVID', [{ code: grpc.status.PERMISSION_DENIED }]);
  const errored = new Promise((r) => source.once('watchError', r));
  server.failStreams({ code: grpc.status.PERMISSION_DENIED, details: 'no entry' });
  await errored;
  assert.throws(() => source.getX509Svid(), { code: 'ERR_SOURCE_NO_SVID' });
  const usable = () => {
    try {
      return Boolean(source.getX509Svid());
    } catch {
      return false;
    }
  };
  await until(usable, 'a good update after PermissionDenied');
  // The reconnected stream delivered the stored response: usable again.
  assert.equal(String(source.getX509Svid().id), `spiffe://${TD}/a`);
});

test('watch: InvalidArgument is reported and not retried', async (t) => {
  const server = await setup(t);
  const delays: number[] = [];
  const client = new WorkloadApiClient({ address: server.address, backoff: fastBackoff(delays) });
  t.after(() => client.close());
  server.failNext.set('FetchJWTBundles', [{ code: grpc.status.INVALID_ARGUMENT }]);
  const errors: string[] = [];
  await assert.rejects(
    client.watchJwtBundles({
      onUpdate: () => assert.fail('no update expected'),
      onError: (e) => errors.push(e.code),
    }),
    { code: 'ERR_WORKLOADAPI_INVALID_ARGUMENT' },
  );
  assert.deepEqual(errors, ['ERR_WORKLOADAPI_INVALID_ARGUMENT']);
  assert.deepEqual(delays, []);
  assert.equal(server.calls.filter((c) => c.method === 'FetchJWTBundles').length, 1);
});

test('X509Source: expired SVID is never handed out; closed source throws ERR_SOURCE_CLOSED', async (t) => {
  const server = await setup(t);
  const expired = await ca.issue('/old', {
    notBefore: new Date(Date.now() - 7200_000),
    notAfter: new Date(Date.now() - 3600_000),
  });
  // A server that streams an already-expired SVID (discarded by validation or refused on use).
  server.setX509(x509Response([expired], ca.bundleDer()));
  await assert.rejects(
    X509Source.create({ address: server.address, backoff: fastBackoff(), timeoutMs: 300 }),
    { code: 'ERR_SOURCE_TIMEOUT' },
  );
  server.setX509(x509Response([svidA], ca.bundleDer()));
  const source = await X509Source.create({ address: server.address, backoff: fastBackoff() });
  assert.ok(source.getX509Svid());
  await source.close();
  await source.close();
  assert.throws(() => source.getX509Svid(), { code: 'ERR_SOURCE_CLOSED' });
  assert.throws(() => source.getX509BundleForTrustDomain(TD), { code: 'ERR_SOURCE_CLOSED' });
});

test('JwtSource and BundleSource: bundles stay current, JWT-SVIDs fetched', async (t) => {
  const server = await setup(t);
  server.fetchJwtSvid = (req) => ({
    svids: [{ spiffe_id: `spiffe://${TD}/a`, svid: tokens.get(req.audience.join(','))!, hint: '' }],
  });
  const tokens = new Map([['svc', await ca.signJwt('/a', ['svc'])]]);
  const jwt = await JwtSource.create({ address: server.address, backoff: fastBackoff() });
  t.after(() => jwt.close());
  const svid = await jwt.fetchJwtSvid({ audience: 'svc' });
  assert.equal(String(svid.id), `spiffe://${TD}/a`);
  assert.ok(jwt.getJwtBundleForTrustDomain(TD));
  assert.throws(() => jwt.getJwtBundleForTrustDomain(FED));
  const updated = jwt.waitUntilUpdated();
  server.setJwtBundles({
    [`spiffe://${TD}`]: ca.jwksJson(),
    [`spiffe://${FED}`]: fedCa.jwksJson(),
  });
  await updated;
  assert.ok(jwt.getJwtBundleForTrustDomain(FED));

  const bundles = await BundleSource.create({ address: server.address, backoff: fastBackoff() });
  t.after(() => bundles.close());
  assert.ok(bundles.getX509BundleForTrustDomain(TD));
  assert.ok(bundles.getJwtBundleForTrustDomain(FED));
});

test('X509Source: an SVID that expires after it was received is no longer handed out', async (t) => {
  const server = await setup(t);
  const shortLived = await ca.issue('/short', { notAfter: new Date(Date.now() + 1500) });
  server.setX509(x509Response([shortLived], ca.bundleDer()));
  const source = await X509Source.create({ address: server.address, backoff: fastBackoff() });
  t.after(() => source.close());
  const svid = source.getX509Svid();
  assert.equal(String(svid.id), shortLived.spiffeId);
  await until(() => Date.now() > svid.expiresAt.getTime(), 'the SVID to expire');
  assert.throws(() => source.getX509Svid(), { code: 'ERR_SOURCE_NO_SVID' });
});

test('JwtSource and BundleSource stop using bundles after PermissionDenied (WA 5.2.2, 6.2.2)', async (t) => {
  const server = await setup(t);
  const jwt = await JwtSource.create({ address: server.address, backoff: fastBackoff() });
  t.after(() => jwt.close());
  const bundles = await BundleSource.create({ address: server.address, backoff: fastBackoff() });
  t.after(() => bundles.close());
  const cases: [string, () => unknown, 'FetchJWTBundles' | 'FetchX509Bundles'][] = [
    ['JwtSource', () => jwt.getJwtBundleForTrustDomain(TD), 'FetchJWTBundles'],
    ['BundleSource JWT', () => bundles.getJwtBundleForTrustDomain(TD), 'FetchJWTBundles'],
    ['BundleSource X.509', () => bundles.getX509BundleForTrustDomain(TD), 'FetchX509Bundles'],
  ];
  const usable = (get: () => unknown) => () => {
    try {
      return Boolean(get());
    } catch {
      return false;
    }
  };
  for (const [name, get, method] of cases) {
    // Positive control (a previous case may have denied this stream too: wait it out).
    await until(usable(get), `${name}: positive control`);
    // Denied for a while: every reconnect is refused too, until the test lifts it.
    server.failNext.set(
      method,
      Array.from({ length: 1000 }, () => ({ code: grpc.status.PERMISSION_DENIED })),
    );
    server.failStreams({ code: grpc.status.PERMISSION_DENIED, details: 'no entry' }, method);
    await until(() => !usable(get)(), `${name}: bundles withdrawn`);
    assert.throws(get, { code: 'ERR_SOURCE_NO_BUNDLE', message: /denied/ }, name);
    if (name === 'BundleSource X.509') assert.deepEqual(bundles.getX509Bundles(), []);
    server.failNext.delete(method);
    await until(usable(get), `${name}: a good update after PermissionDenied`);
  }
});

test('sources over a tcp://127.0.0.1:port endpoint (Workload Endpoint 4), header on every call', async (t) => {
  const server = await TestWorkloadApiServer.start({ tcp: true });
  t.after(() => server.close());
  server.setX509(x509Response([svidA], ca.bundleDer()));
  server.setJwtBundles({ [`spiffe://${TD}`]: ca.jwksJson() });
  assert.match(server.address, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  const x509 = await X509Source.create({ address: server.address });
  t.after(() => x509.close());
  const jwt = await JwtSource.create({ address: server.address });
  t.after(() => jwt.close());
  assert.equal(String(x509.getX509Svid().id), `spiffe://${TD}/a`);
  assert.ok(jwt.getJwtBundleForTrustDomain(TD));
  assert.ok(server.calls.length >= 2);
  assert.ok(server.calls.every((c) => c.securityHeader === 'true'));
});

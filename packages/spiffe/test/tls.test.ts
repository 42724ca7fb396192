import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import * as https from 'node:https';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import { once } from 'node:events';
import { Agent, fetch as undiciFetch } from 'undici';
import Fastify from 'fastify';
import {
  authorizeAny,
  authorizeId,
  authorizeIf,
  authorizeMemberOf,
  authorizeOneOf,
  type Authorizer,
} from '../src/tls/authorizer.js';
import {
  peerSpiffeId,
  spiffeServer,
  tlsClientOptions,
  tlsClientOptionsServerAuth,
  tlsServerOptions,
  undiciConnector,
} from '../src/tls/options.js';
import { spiffeFastify } from '../src/tls/fastify.js';
import { parseSpiffeId } from '../src/tls/core.js';
import { TestCa, type IssuedSvid } from './support/ca.js';
import { MutableSvidSource, staticBundleSource } from './support/sources.js';

const TD = 'example.org';
let ca: TestCa;
let otherCa: TestCa; // another trust domain
let rogueCa: TestCa; // a second CA claiming example.org
let server1: IssuedSvid;
let client1: IssuedSvid;

before(async () => {
  ca = await TestCa.create(TD);
  otherCa = await TestCa.create('other.org');
  rogueCa = await TestCa.create(TD);
  server1 = await ca.issue('/server');
  client1 = await ca.issue('/client');
});

type Result =
  { ok: true; serverSawClient: string; clientSawServer: string } | { ok: false; error: string };

/** One mTLS exchange: server writes the client's ID; the client reads it. */
async function exchange(
  t: { after: (fn: () => unknown) => void },
  o: {
    serverSvid?: IssuedSvid;
    clientSvid?: IssuedSvid | null;
    serverTrusts?: TestCa[];
    clientTrusts?: TestCa[];
    serverAuthz?: Authorizer;
    clientAuthz?: Authorizer;
  },
): Promise<Result> {
  const serverSource = new MutableSvidSource(o.serverSvid ?? server1);
  const opts = tlsServerOptions(
    serverSource,
    staticBundleSource(o.serverTrusts ?? [ca]),
    o.serverAuthz ?? authorizeAny(),
  );
  const server = spiffeServer(
    tls.createServer(opts, (s) => {
      s.on('error', () => undefined);
      s.end(`${String(peerSpiffeId(s))}\n`);
    }),
    opts,
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const bundles = staticBundleSource(o.clientTrusts ?? [ca]);
  const clientOpts =
    o.clientSvid === null
      ? tlsClientOptionsServerAuth(bundles, o.clientAuthz ?? authorizeAny())
      : tlsClientOptions(
          new MutableSvidSource(o.clientSvid ?? client1),
          bundles,
          o.clientAuthz ?? authorizeAny(),
        );
  return new Promise<Result>((resolve) => {
    const socket = tls.connect({ ...clientOpts, host: '127.0.0.1', port });
    let data = '';
    let serverId = '';
    socket.on('secureConnect', () => (serverId = String(peerSpiffeId(socket))));
    socket.on('data', (d) => (data += d));
    socket.on('error', (err) =>
      resolve({ ok: false, error: (err as { code?: string }).code ?? err.message }),
    );
    socket.on('close', () =>
      resolve(
        data
          ? { ok: true, serverSawClient: data.trim(), clientSawServer: serverId }
          : { ok: false, error: 'closed without data' },
      ),
    );
  });
}

test('mTLS between two SDK peers: both sides see the other SPIFFE ID', async (t) => {
  const r = await exchange(t, {});
  assert.deepEqual(r, {
    ok: true,
    serverSawClient: `spiffe://${TD}/client`,
    clientSawServer: `spiffe://${TD}/server`,
  });
});

test('mTLS refusals (each with the positive control above)', async (t) => {
  const expired = await ca.issue('/client', {
    notBefore: new Date(Date.now() - 7200_000),
    notAfter: new Date(Date.now() - 3600_000),
  });
  const otherTd = await otherCa.issue('/client');
  const rogue = await rogueCa.issue('/client');
  // Right-looking SPIFFE ID of example.org, chained to other.org's CA which the server trusts.
  const crossTd = await otherCa.issue(`spiffe://${TD}/client`);
  const cases: [string, Parameters<typeof exchange>[1]][] = [
    ['client from an untrusted trust domain', { clientSvid: otherTd }],
    ['client not authorized', { serverAuthz: authorizeId(`spiffe://${TD}/someone-else`) }],
    ['no client certificate', { clientSvid: null }],
    ['expired client SVID', { clientSvid: expired }],
    ['same trust domain name, different CA', { clientSvid: rogue }],
    [
      'chained to another trust domain CA (no bundle merging)',
      { clientSvid: crossTd, serverTrusts: [ca, otherCa] },
    ],
    ['server not authorized by the client', { clientAuthz: authorizeMemberOf('other.org') }],
    [
      'server from a trust domain the client does not trust',
      { serverSvid: await otherCa.issue('/server') },
    ],
  ];
  for (const [name, o] of cases) {
    const r = await exchange(t, o);
    assert.equal(r.ok, false, `${name}: ${JSON.stringify(r)}`);
  }
  // Positive control for the federation case: the same server accepts a real other.org peer.
  const fed = await exchange(t, { clientSvid: otherTd, serverTrusts: [ca, otherCa] });
  assert.equal(fed.ok && fed.serverSawClient, 'spiffe://other.org/client');
});

test('TLS with SPIFFE server auth only: no client certificate presented', async (t) => {
  const opts = tlsServerOptions(
    new MutableSvidSource(server1),
    staticBundleSource([ca]),
    authorizeAny(),
  );
  // A plain (non-mTLS) server presenting the SVID: requestCert off.
  const server = tls.createServer({ ...opts, requestCert: false, rejectUnauthorized: false }, (s) =>
    s.end('hi\n'),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const ok = tls.connect({
    ...tlsClientOptionsServerAuth(staticBundleSource([ca]), authorizeId(`spiffe://${TD}/server`)),
    host: '127.0.0.1',
    port,
  });
  await once(ok, 'secureConnect');
  assert.equal(String(peerSpiffeId(ok)), `spiffe://${TD}/server`);
  ok.destroy();
  const bad = tls.connect({
    ...tlsClientOptionsServerAuth(staticBundleSource([ca]), authorizeId(`spiffe://${TD}/x`)),
    host: '127.0.0.1',
    port,
  });
  const [err] = await once(bad, 'error');
  assert.equal((err as { code: string }).code, 'ERR_TLS_UNAUTHORIZED');
});

test('no application byte reaches an unauthenticated peer (client and server side)', async (t) => {
  // Server side: a client the server refuses writes right away; the app never sees it.
  let appSaw = 0;
  const opts = tlsServerOptions(
    new MutableSvidSource(server1),
    staticBundleSource([ca]),
    authorizeId(`spiffe://${TD}/nobody`),
  );
  const server = spiffeServer(
    tls.createServer(opts, (s) => (appSaw++, s.on('data', () => appSaw++))),
    opts,
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const refused = new Promise((r) => server.once('spiffeError', r));
  const c = tls.connect({
    ...tlsClientOptions(new MutableSvidSource(client1), staticBundleSource([ca]), authorizeAny()),
    host: '127.0.0.1',
    port,
  });
  c.write('early application data');
  c.on('error', () => undefined);
  assert.equal(((await refused) as { code: string }).code, 'ERR_TLS_UNAUTHORIZED');
  await once(c, 'close');
  assert.equal(appSaw, 0);

  // Client side: the server fails the client's check; bytes the client queued are never sent.
  let bytesAtServer = 0;
  const plain = tls.createServer({ cert: server1.certPem, key: server1.keyPem }, (s) => {
    s.on('data', (d) => (bytesAtServer += d.length));
    s.on('error', () => undefined);
  });
  plain.listen(0, '127.0.0.1');
  await once(plain, 'listening');
  t.after(() => plain.close());
  const p2 = (plain.address() as net.AddressInfo).port;
  const c2 = tls.connect({
    ...tlsClientOptions(
      new MutableSvidSource(client1),
      staticBundleSource([ca]),
      authorizeId(`spiffe://${TD}/nobody`),
    ),
    host: '127.0.0.1',
    port: p2,
  });
  c2.write('secret request');
  const [err] = await once(c2, 'error');
  assert.equal((err as { code: string }).code, 'ERR_TLS_UNAUTHORIZED');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(bytesAtServer, 0);
});

test('https server + https.request and undici fetch clients', async (t) => {
  const opts = tlsServerOptions(
    new MutableSvidSource(server1),
    staticBundleSource([ca]),
    authorizeAny(),
  );
  const server = spiffeServer(
    https.createServer(opts, (req, res) => res.end(`hello ${String(peerSpiffeId(req.socket))}`)),
    opts,
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const clientOpts = tlsClientOptions(
    new MutableSvidSource(client1),
    staticBundleSource([ca]),
    authorizeId(`spiffe://${TD}/server`),
  );

  const get = (o: object) =>
    new Promise<string>((resolve) => {
      https
        .get({ ...o, host: '127.0.0.1', port, path: '/' }, (res) => {
          let b = '';
          res.on('data', (d) => (b += d));
          res.on('end', () => resolve(b));
        })
        .on('error', (err) => resolve(`error ${(err as { code?: string }).code}`));
    });
  const body = await get(clientOpts);
  assert.equal(await get(clientOpts), body, 'a kept-alive connection serves the same options');
  // Regression: a pooled connection verified under one authorizer must not serve a request
  // made under another (each options object has its own agent).
  const strict = tlsClientOptions(
    new MutableSvidSource(client1),
    staticBundleSource([ca]),
    authorizeId(`spiffe://${TD}/nobody`),
  );
  assert.equal(await get(strict), 'error ERR_TLS_UNAUTHORIZED');
  clientOpts.agent.destroy();
  assert.equal(body, `hello spiffe://${TD}/client`);

  for (const agent of [
    new Agent({ connect: clientOpts }),
    new Agent({ connect: undiciConnector(clientOpts) }),
  ]) {
    const res = await undiciFetch(`https://127.0.0.1:${port}/`, { dispatcher: agent });
    assert.equal(await res.text(), `hello spiffe://${TD}/client`);
    await agent.close();
  }
  // Negative: a client expecting another server ID gets no response.
  const wrong = new Agent({
    connect: tlsClientOptions(
      new MutableSvidSource(client1),
      staticBundleSource([ca]),
      authorizeId(`spiffe://${TD}/x`),
    ),
  });
  await assert.rejects(undiciFetch(`https://127.0.0.1:${port}/`, { dispatcher: wrong }));
  await wrong.close();
});

test('http2 server and client', async (t) => {
  const opts = tlsServerOptions(
    new MutableSvidSource(server1),
    staticBundleSource([ca]),
    authorizeAny(),
    { ALPNProtocols: ['h2'] },
  );
  const server = spiffeServer(http2.createSecureServer(opts), opts);
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end(String(peerSpiffeId(stream.session?.socket)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    ...tlsClientOptions(new MutableSvidSource(client1), staticBundleSource([ca]), authorizeAny(), {
      ALPNProtocols: ['h2'],
    }),
  });
  t.after(() => session.close());
  const req = session.request({ ':path': '/' });
  let body = '';
  req.on('data', (d) => (body += d));
  await once(req, 'end');
  assert.equal(body, `spiffe://${TD}/client`);
});

test('rotation: new connections see the new SVID, no restart', async (t) => {
  const source = new MutableSvidSource(server1);
  const opts = tlsServerOptions(source, staticBundleSource([ca]), authorizeAny());
  const server = spiffeServer(
    tls.createServer(opts, (s) => s.end('x')),
    opts,
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const clientSource = new MutableSvidSource(client1);
  const seen = async () => {
    const s = tls.connect({
      ...tlsClientOptions(clientSource, staticBundleSource([ca]), authorizeAny()),
      host: '127.0.0.1',
      port,
    });
    await once(s, 'secureConnect');
    const id = String(peerSpiffeId(s));
    s.destroy();
    return id;
  };
  assert.equal(await seen(), `spiffe://${TD}/server`);
  source.set(await ca.issue('/server-rotated'));
  clientSource.set(await ca.issue('/client-rotated'));
  assert.equal(await seen(), `spiffe://${TD}/server-rotated`);
  // An unusable source drops new connections rather than serving a stale SVID.
  source.fail();
  const s = tls.connect({
    ...tlsClientOptions(clientSource, staticBundleSource([ca]), authorizeAny()),
    host: '127.0.0.1',
    port,
  });
  const [err] = await once(s, 'error');
  assert.ok(err);
});

test('authorizers', () => {
  const id = parseSpiffeId(`spiffe://${TD}/a`);
  const table: [string, Authorizer, boolean][] = [
    ['any', authorizeAny(), true],
    ['id match', authorizeId(`spiffe://${TD}/a`), true],
    ['id mismatch', authorizeId(`spiffe://${TD}/b`), false],
    ['oneOf match', authorizeOneOf(`spiffe://${TD}/b`, `spiffe://${TD}/a`), true],
    ['oneOf mismatch', authorizeOneOf(`spiffe://${TD}/b`), false],
    ['memberOf match', authorizeMemberOf(TD), true],
    ['memberOf mismatch', authorizeMemberOf('other.org'), false],
    ['if true', authorizeIf(() => true), true],
    [
      'if throws',
      authorizeIf(() => {
        throw new Error('x');
      }),
      false,
    ],
  ];
  for (const [name, authz, want] of table) assert.equal(authz(id, []), want, name);
});

test('fastify plugin decorates request.spiffeId', async (t) => {
  const opts = tlsServerOptions(
    new MutableSvidSource(server1),
    staticBundleSource([ca]),
    authorizeAny(),
  );
  const app = Fastify({ https: opts });
  await app.register(spiffeFastify, { tlsOptions: opts });
  app.get('/', async (req) => ({ id: String(req.spiffeId) }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => app.close());
  const port = (app.server.address() as net.AddressInfo).port;
  const agent = new Agent({
    connect: tlsClientOptions(
      new MutableSvidSource(client1),
      staticBundleSource([ca]),
      authorizeAny(),
    ),
  });
  t.after(() => agent.close());
  const res = await undiciFetch(`https://127.0.0.1:${port}/`, { dispatcher: agent });
  assert.deepEqual(await res.json(), { id: `spiffe://${TD}/client` });
});

test('tlsServerOptions without spiffeServer() fail closed', async (t) => {
  const opts = tlsServerOptions(
    new MutableSvidSource(server1),
    staticBundleSource([ca]),
    authorizeAny(),
  );
  let appSaw = 0;
  const server = tls.createServer(opts, () => appSaw++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const c = tls.connect({
    ...tlsClientOptions(new MutableSvidSource(client1), staticBundleSource([ca]), authorizeAny()),
    host: '127.0.0.1',
    port,
  });
  c.on('error', () => undefined);
  await once(c, 'close');
  assert.equal(appSaw, 0);
  // Positive control: the same options with spiffeServer() accept the same client.
  assert.equal((await exchange(t, {})).ok, true);
});

test('a bundle changed in place: the removed CA is no longer trusted (no stale verdict)', async (t) => {
  const bundles = staticBundleSource([ca]);
  const bundle = bundles.getX509BundleForTrustDomain(parseSpiffeId(`spiffe://${TD}/x`).trustDomain);
  const [root] = bundle.x509Authorities();
  const opts = tlsServerOptions(new MutableSvidSource(server1), bundles, authorizeAny());
  const refusals: string[] = [];
  const server = spiffeServer(
    tls.createServer(opts, (s) => s.end(`${String(peerSpiffeId(s))}\n`)),
    opts,
  );
  server.on('spiffeError', (err: { code: string }) => refusals.push(err.code));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  // The client keeps trusting the server's CA through its own bundle set.
  const clientOpts = tlsClientOptions(
    new MutableSvidSource(client1),
    staticBundleSource([ca]),
    authorizeAny(),
  );
  const get = async () => {
    const s = tls.connect({ ...clientOpts, host: '127.0.0.1', port });
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('error', () => undefined);
    await once(s, 'close');
    return data;
  };
  assert.equal(await get(), `spiffe://${TD}/client\n`);
  assert.equal(await get(), `spiffe://${TD}/client\n`, 'second time from the verdict cache');
  bundle.removeX509Authority(root!);
  assert.equal(await get(), '');
  assert.equal(refusals.at(-1), 'ERR_X509SVID_UNTRUSTED');
  bundle.addX509Authority(root!);
  assert.equal(await get(), `spiffe://${TD}/client\n`);
});

test('a bundle source that cannot list its bundles still works on the server', async (t) => {
  const set = staticBundleSource([ca]);
  // Only the one-method interface: the server advertises no CA list (any), and still checks.
  const custom = {
    getX509BundleForTrustDomain: (td: Parameters<typeof set.getX509BundleForTrustDomain>[0]) =>
      set.getX509BundleForTrustDomain(td),
  };
  const opts = tlsServerOptions(new MutableSvidSource(server1), custom, authorizeAny());
  const server = spiffeServer(
    tls.createServer(opts, (s) => s.end(`${String(peerSpiffeId(s))}\n`)),
    opts,
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const get = async (svid: IssuedSvid) => {
    const s = tls.connect({
      ...tlsClientOptions(new MutableSvidSource(svid), staticBundleSource([ca]), authorizeAny()),
      host: '127.0.0.1',
      port,
    });
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('error', () => undefined);
    await once(s, 'close');
    return data;
  };
  assert.equal(await get(client1), `spiffe://${TD}/client\n`);
  assert.equal(await get(await rogueCa.issue('/client')), '');
});

// mTLS with standard TLS stacks that honour the server's list of acceptable client CAs (the
// certificate_authorities of the CertificateRequest): Go crypto/tls with a static
// certificate, curl and openssl s_client against our server; our client against
// openssl s_server -Verify and a Go crypto/tls server that requires a client certificate.
// The peers use static PEM files and standard hostname verification (the server SVID also
// carries DNS:localhost), nothing SPIFFE-aware, so they show what any TLS stack sees.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findPeer, peerSkip, requirePeer, tempDir } from '@precinct/testing';
import { authorizeId, authorizeOneOf } from '../../src/tls/authorizer.js';
import {
  peerSpiffeId,
  spiffeServer,
  tlsClientOptions,
  tlsClientOptionsServerAuth,
  tlsServerOptions,
} from '../../src/tls/options.js';
import { X509Bundle } from '../../src/bundle/x509bundle.js';
import { X509Source } from '../../src/workloadapi/sources.js';
import { TestWorkloadApiServer, x509Response } from '../support/workload-api-server.js';
import type { X509BundleSet } from '../../src/bundle/set.js';
import { TestCa, type IssuedSvid } from '../support/ca.js';
import { MutableSvidSource, staticBundleSource } from '../support/sources.js';

const GO_DIR = fileURLToPath(new URL('./go/', import.meta.url));
const TD = 'example.org';
const SERVER_ID = `spiffe://${TD}/server`;
const CLIENT_ID = `spiffe://${TD}/client`;
const VIA_INTERMEDIATE_ID = `spiffe://${TD}/via-intermediate`;
const FED_ID = 'spiffe://other.org/client';

let dir: { path: string; cleanup: () => void };
let ca: TestCa;
let otherCa: TestCa;
let bundles: X509BundleSet;
let serverSvid: IssuedSvid;
let goBin = '';
let port = 0;
let server: https.Server;
/** The codes of the refusals our server reported ('spiffeError'), in order. */
const refusals: string[] = [];

/** PEM files of an SVID: <name>.pem (chain) and <name>.key. */
type Files = { cert: string; key: string };
const files: Record<string, Files> = {};
let caFile = '';

function writeSvid(name: string, svid: IssuedSvid): Files {
  const f = { cert: join(dir.path, `${name}.pem`), key: join(dir.path, `${name}.key`) };
  writeFileSync(f.cert, svid.certPem);
  writeFileSync(f.key, svid.keyPem, { mode: 0o600 });
  return (files[name] = f);
}

before(async () => {
  dir = tempDir('precinct-tls-peers-');
  ca = await TestCa.create(TD);
  otherCa = await TestCa.create('other.org');
  const intermediate = await ca.intermediate();
  serverSvid = await ca.issue('/server', { dns: ['localhost'] });
  writeSvid('server', serverSvid);
  writeSvid('client', await ca.issue('/client'));
  writeSvid('intruder', await ca.issue('/intruder'));
  writeSvid('via-intermediate', await intermediate.issue('/via-intermediate'));
  writeSvid('other-td', await otherCa.issue('/client'));
  caFile = join(dir.path, 'ca.pem');
  writeFileSync(caFile, ca.bundlePem());
  writeFileSync(join(dir.path, 'other-ca.pem'), otherCa.bundlePem());

  bundles = staticBundleSource([ca]);
  const opts = tlsServerOptions(
    new MutableSvidSource(serverSvid),
    bundles,
    authorizeOneOf(CLIENT_ID, VIA_INTERMEDIATE_ID, FED_ID),
  );
  server = spiffeServer(
    https.createServer(opts, (req, res) => {
      res.end(`${String(peerSpiffeId(req.socket))}\n`);
    }),
    opts,
  );
  server.on('spiffeError', (err: { code?: string }) => refusals.push(err.code ?? 'unknown'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;

  if (findPeer('go')) {
    goBin = join(dir.path, 'peer');
    // Builds from the module's own requirements and the standard library (module cache).
    await promisify(execFile)(requirePeer('go'), ['build', '-o', goBin, '.'], {
      cwd: GO_DIR,
      env: { ...process.env, GOFLAGS: '-mod=mod' },
      timeout: 300_000,
    });
  }
});

after(() => {
  server?.close();
  server?.closeAllConnections();
  dir?.cleanup();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[], input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(bin, args, { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(input);
  });
}

/** Runs a client and returns what it printed plus the refusal our server recorded, if any. */
async function attempt(client: () => Promise<Run>): Promise<Run & { refusal?: string }> {
  const before = refusals.length;
  const r = await client();
  return { ...r, ...(refusals.length > before ? { refusal: refusals.at(-1) } : {}) };
}

const url = () => `https://localhost:${port}/`;

function goGet(cert?: string): Promise<Run> {
  const f = cert ? files[cert]! : undefined;
  return run(goBin, [
    'stdtls-get',
    `https://127.0.0.1:${port}/`,
    'localhost',
    caFile,
    ...(f ? [f.cert, f.key] : []),
  ]);
}

test(
  'Go crypto/tls with a static certificate against our mTLS server',
  { skip: peerSkip('go') },
  async () => {
    for (const [name, id] of [
      ['client', CLIENT_ID],
      ['via-intermediate', VIA_INTERMEDIATE_ID],
    ] as const) {
      const ok = await attempt(() => goGet(name));
      assert.equal(ok.stdout, `STATUS=200\nBODY=${id}\n`, `${name}: ${ok.stderr}`);
      assert.equal(ok.refusal, undefined);
    }
    // No certificate: the server refuses (and says why).
    const none = await attempt(() => goGet());
    assert.match(none.stdout, /^REFUSED /);
    assert.equal(none.refusal, 'ERR_TLS_NO_PEER_CERTIFICATE');
    // Another trust domain: its CA is not advertised, so Go sends nothing; refused.
    const other = await attempt(() => goGet('other-td'));
    assert.match(other.stdout, /^REFUSED /);
    assert.equal(other.refusal, 'ERR_TLS_NO_PEER_CERTIFICATE');
    // Authenticated, but the authorizer does not allow this SPIFFE ID.
    const intruder = await attempt(() => goGet('intruder'));
    assert.match(intruder.stdout, /^REFUSED /);
    assert.equal(intruder.refusal, 'ERR_TLS_UNAUTHORIZED');
  },
);

test(
  'the advertised client CAs follow bundle changes (a federated trust domain added, removed)',
  { skip: peerSkip('go') },
  async (t) => {
    const fed = X509Bundle.parse('other.org', otherCa.bundleDer());
    const [fedRoot] = fed.x509Authorities();
    t.after(() => bundles.remove(fed.trustDomain));
    const accepted = async () => {
      const r = await attempt(() => goGet('other-td'));
      assert.equal(r.stdout, `STATUS=200\nBODY=${FED_ID}\n`, r.stderr);
    };
    const refused = async () => {
      const r = await attempt(() => goGet('other-td'));
      assert.match(r.stdout, /^REFUSED /);
      // Not advertised, so Go sent no certificate at all.
      assert.equal(r.refusal, 'ERR_TLS_NO_PEER_CERTIFICATE');
    };
    await refused();
    bundles.add(fed);
    await accepted();
    // The same bundle object changed in place: its CA is no longer advertised.
    fed.removeX509Authority(fedRoot!);
    await refused();
    fed.addX509Authority(fedRoot!);
    await accepted();
    bundles.remove(fed.trustDomain);
    await refused();
  },
);

test(
  'with an X509Source: a federated bundle pushed by the Workload API is advertised, and withdrawn',
  { skip: peerSkip('go') },
  async (t) => {
    const api = await TestWorkloadApiServer.start();
    t.after(() => api.close());
    api.setX509(x509Response([serverSvid], ca.bundleDer()));
    const source = await X509Source.create({ address: api.address });
    t.after(() => source.close());
    const opts = tlsServerOptions(source, source, authorizeOneOf(CLIENT_ID, FED_ID));
    const live = spiffeServer(
      https.createServer(opts, (req, res) => res.end(`${String(peerSpiffeId(req.socket))}\n`)),
      opts,
    );
    live.listen(0, '127.0.0.1');
    await once(live, 'listening');
    t.after(() => (live.close(), live.closeAllConnections()));
    const livePort = (live.address() as AddressInfo).port;
    const get = (name: string) =>
      run(goBin, [
        'stdtls-get',
        `https://127.0.0.1:${livePort}/`,
        'localhost',
        caFile,
        files[name]!.cert,
        files[name]!.key,
      ]);
    // Positive control: a client of the local trust domain.
    assert.equal((await get('client')).stdout, `STATUS=200\nBODY=${CLIENT_ID}\n`);
    assert.match((await get('other-td')).stdout, /^REFUSED /);
    const updated = source.waitUntilUpdated();
    api.setX509(
      x509Response([serverSvid], ca.bundleDer(), { 'spiffe://other.org': otherCa.bundleDer() }),
    );
    await updated;
    assert.equal((await get('other-td')).stdout, `STATUS=200\nBODY=${FED_ID}\n`);
    const withdrawn = source.waitUntilUpdated();
    api.setX509(x509Response([serverSvid], ca.bundleDer()));
    await withdrawn;
    assert.match((await get('other-td')).stdout, /^REFUSED /);
    assert.equal((await get('client')).stdout, `STATUS=200\nBODY=${CLIENT_ID}\n`);
  },
);

function curl(cert?: string): Promise<Run> {
  const f = cert ? files[cert]! : undefined;
  return run(requirePeer('curl'), [
    '-sS',
    '--max-time',
    '20',
    '--cacert',
    caFile,
    '--resolve',
    `localhost:${port}:127.0.0.1`,
    ...(f ? ['--cert', f.cert, '--key', f.key] : []),
    url(),
  ]);
}

test('curl --cert/--key/--cacert against our mTLS server', { skip: peerSkip('curl') }, async () => {
  for (const [name, id] of [
    ['client', CLIENT_ID],
    ['via-intermediate', VIA_INTERMEDIATE_ID],
  ] as const) {
    const ok = await attempt(() => curl(name));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${id}\n`);
  }
  const cases: [string | undefined, RegExp][] = [
    [undefined, /^ERR_TLS_NO_PEER_CERTIFICATE$/],
    // curl (OpenSSL) sends its one certificate whatever the server advertised.
    ['other-td', /^ERR_X509SVID_(NO_BUNDLE|UNTRUSTED)$/],
    ['intruder', /^ERR_TLS_UNAUTHORIZED$/],
  ];
  for (const [name, code] of cases) {
    const r = await attempt(() => curl(name));
    assert.notEqual(r.code, 0, `${name ?? 'no cert'} was let in: ${r.stdout}`);
    assert.equal(r.stdout, '');
    assert.match(r.refusal ?? '', code, `${name ?? 'no cert'}`);
  }
});

function sClient(cert?: string): Promise<Run> {
  const f = cert ? files[cert]! : undefined;
  return run(
    requirePeer('openssl'),
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      'localhost',
      '-CAfile',
      caFile,
      '-verify_return_error',
      '-verify_hostname',
      'localhost',
      '-ign_eof',
      ...(f ? ['-cert', f.cert, '-key', f.key] : []),
    ],
    'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n',
  );
}

test(
  'openssl s_client -cert -key -CAfile against our mTLS server; the CA list it is offered',
  { skip: peerSkip('openssl') },
  async () => {
    const ok = await attempt(() => sClient('client'));
    // (s_client interleaves session-ticket dumps with the response, so no line anchors here.)
    assert.match(ok.stdout, /HTTP\/1\.[01] 200 /, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^${CLIENT_ID}$`, 'm'));
    assert.match(ok.stdout, /Verify return code: 0 \(ok\)/);
    // The acceptable client CA names are the bundle's anchors, not a placeholder.
    const names =
      /Acceptable client certificate CA names\n((?:.+\n)+?)(?:Requested|Client Certificate Types|---)/.exec(
        ok.stdout,
      );
    assert.ok(names, ok.stdout);
    assert.deepEqual(names[1]!.trim().split('\n'), [`CN = ${TD} test root, O = precinct-test`]);
    const cases: [string | undefined, RegExp][] = [
      [undefined, /^ERR_TLS_NO_PEER_CERTIFICATE$/],
      ['other-td', /^ERR_X509SVID_(NO_BUNDLE|UNTRUSTED)$/],
      ['intruder', /^ERR_TLS_UNAUTHORIZED$/],
    ];
    for (const [name, code] of cases) {
      const r = await attempt(() => sClient(name));
      assert.doesNotMatch(r.stdout, /HTTP\/1\.[01] /, `${name ?? 'no cert'} was let in`);
      assert.match(r.refusal ?? '', code, `${name ?? 'no cert'}`);
    }
  },
);

/** Starts a peer server that prints its port; returns the port. */
async function startPeerServer(
  t: { after: (fn: () => unknown) => void },
  bin: string,
  args: string[],
  portLine: RegExp,
): Promise<number> {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill());
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      const m = portLine.exec(line);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${bin} exited ${code}: ${stderr}`)));
  });
}

/** Our client: connects, sends `request`, returns what came back or the error code. */
function ourClient(
  peerPort: number,
  opts: tls.ConnectionOptions,
  request: string,
): Promise<{ data: string; peer?: string; error?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ ...opts, host: '127.0.0.1', port: peerPort });
    let data = '';
    let peer: string | undefined;
    let error: string | undefined;
    socket.on('secureConnect', () => {
      peer = String(peerSpiffeId(socket));
      socket.write(request);
    });
    socket.on('data', (d) => (data += d));
    socket.on('error', (err) => (error ??= (err as { code?: string }).code ?? err.message));
    socket.on('close', () =>
      resolve({ data, ...(peer ? { peer } : {}), ...(error ? { error } : {}) }),
    );
  });
}

test(
  'our client against openssl s_server -Verify (client certificate required)',
  { skip: peerSkip('openssl') },
  async (t) => {
    const sPort = await startPeerServer(
      t,
      requirePeer('openssl'),
      [
        's_server',
        '-accept',
        '127.0.0.1:0',
        '-cert',
        files.server!.cert,
        '-key',
        files.server!.key,
        '-CAfile',
        caFile,
        '-Verify',
        '2',
        '-verify_return_error',
        '-www',
      ],
      /^ACCEPT .*:(\d+)$/,
    );
    const trust = staticBundleSource([ca]);
    const get = 'GET / HTTP/1.0\r\n\r\n';
    const client = await ca.issue('/client');
    const ok = await ourClient(
      sPort,
      tlsClientOptions(new MutableSvidSource(client), trust, authorizeId(SERVER_ID)),
      get,
    );
    assert.equal(ok.peer, SERVER_ID);
    assert.match(ok.data, /^HTTP\/1\.0 200 ok/);
    assert.match(ok.data, new RegExp(`URI:${CLIENT_ID}\\b`), 's_server saw our SVID');

    // No certificate, or one from a trust domain s_server does not trust: refused by s_server.
    const none = await ourClient(
      sPort,
      tlsClientOptionsServerAuth(trust, authorizeId(SERVER_ID)),
      get,
    );
    assert.doesNotMatch(none.data, /200 ok/);
    const other = await ourClient(
      sPort,
      tlsClientOptions(
        new MutableSvidSource(await otherCa.issue('/client')),
        trust,
        authorizeId(SERVER_ID),
      ),
      get,
    );
    assert.doesNotMatch(other.data, /200 ok/);
    // Our authorizer refuses a server with another SPIFFE ID.
    const wrong = await ourClient(
      sPort,
      tlsClientOptions(new MutableSvidSource(client), trust, authorizeId(`spiffe://${TD}/other`)),
      get,
    );
    assert.equal(wrong.error, 'ERR_TLS_UNAUTHORIZED');
    assert.equal(wrong.data, '');
  },
);

test(
  'our client against a Go crypto/tls server with RequireAndVerifyClientCert',
  { skip: peerSkip('go') },
  async (t) => {
    const gPort = await startPeerServer(
      t,
      goBin,
      ['stdtls-server', caFile, files.server!.cert, files.server!.key],
      /^PORT=(\d+)$/,
    );
    const trust = staticBundleSource([ca]);
    const ok = await ourClient(
      gPort,
      tlsClientOptions(
        new MutableSvidSource(await ca.issue('/client')),
        trust,
        authorizeId(SERVER_ID),
      ),
      '',
    );
    assert.equal(ok.peer, SERVER_ID);
    assert.equal(ok.data, `${CLIENT_ID}\n`);
    const none = await ourClient(
      gPort,
      tlsClientOptionsServerAuth(trust, authorizeId(SERVER_ID)),
      '',
    );
    assert.equal(none.data, '');
  },
);

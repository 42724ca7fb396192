// Interop with go-spiffe v2: a Go program (test/interop/go) and our SDK complete mTLS in both
// directions, each getting its SVID from its own test Workload API server, and go-spiffe
// validates a JWT-SVID our side fetched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { peerSkip, requirePeer, tempDir } from '@precinct/testing';
import { X509Source, JwtSource } from '../../src/workloadapi/sources.js';
import { authorizeId } from '../../src/tls/authorizer.js';
import {
  peerSpiffeId,
  spiffeServer,
  tlsClientOptions,
  tlsServerOptions,
} from '../../src/tls/options.js';
import { TestCa } from '../support/ca.js';
import { TestWorkloadApiServer, x509Response } from '../support/workload-api-server.js';

const GO_DIR = fileURLToPath(new URL('./go/', import.meta.url));
const TD = 'example.org';
const skip = peerSkip('go');
let bin = '';
let dir: { path: string; cleanup: () => void } | undefined;
let ca: TestCa;
let goApi: TestWorkloadApiServer;
let ourApi: TestWorkloadApiServer;
let source: X509Source;

before(async () => {
  if (skip) return;
  dir = tempDir('precinct-go-interop-');
  bin = join(dir.path, 'peer');
  // GOFLAGS=-mod=mod lets go.sum be completed from the module cache; the build cache makes
  // later runs take a second.
  await promisify(execFile)(requirePeer('go'), ['build', '-o', bin, '.'], {
    cwd: GO_DIR,
    env: { ...process.env, GOFLAGS: '-mod=mod' },
    timeout: 300_000,
  });
  ca = await TestCa.create(TD);
  await ca.addJwtKey();
  goApi = await TestWorkloadApiServer.start();
  goApi.setX509(x509Response([await ca.issue('/go')], ca.bundleDer()));
  goApi.setJwtBundles({ [`spiffe://${TD}`]: ca.jwksJson() });
  ourApi = await TestWorkloadApiServer.start();
  ourApi.setX509(x509Response([await ca.issue('/node')], ca.bundleDer()));
  ourApi.setJwtBundles({ [`spiffe://${TD}`]: ca.jwksJson() });
  source = await X509Source.create({ address: ourApi.address });
});

after(async () => {
  await source?.close();
  await goApi?.close();
  await ourApi?.close();
  dir?.cleanup();
});

function runGo(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { env: { SPIFFE_ENDPOINT_SOCKET: goApi.address }, timeout: 30_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

test(
  'go-spiffe interop: Go server, our client; our server, Go client; JWT-SVID',
  { skip },
  async (t) => {
    // Go server, our client.
    const server = spawn(bin, ['server'], {
      env: { SPIFFE_ENDPOINT_SOCKET: goApi.address },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.after(() => server.kill());
    const [line] = (await once(createInterface({ input: server.stdout! }), 'line')) as [string];
    const port = Number(/^PORT=(\d+)$/.exec(line)![1]);
    const c = tls.connect({
      ...tlsClientOptions(source, source, authorizeId(`spiffe://${TD}/go`)),
      host: '127.0.0.1',
      port,
    });
    let got = '';
    c.on('data', (d) => (got += d));
    await once(c, 'secureConnect');
    assert.equal(String(peerSpiffeId(c)), `spiffe://${TD}/go`);
    await once(c, 'end');
    assert.equal(got, `spiffe://${TD}/node\n`, 'the Go server authenticated our client');
    c.destroy();

    // Our server, Go client.
    const opts = tlsServerOptions(source, source, authorizeId(`spiffe://${TD}/go`));
    const ours = spiffeServer(
      tls.createServer(opts, (s) => s.end(`${String(peerSpiffeId(s))}\n`)),
      opts,
    );
    ours.listen(0, '127.0.0.1');
    await once(ours, 'listening');
    t.after(() => ours.close());
    const out = await runGo(['client', `127.0.0.1:${(ours.address() as AddressInfo).port}`]);
    assert.match(out, new RegExp(`^PEER=spiffe://${TD}/node$`, 'm'));
    assert.match(out, new RegExp(`^LINE=spiffe://${TD}/go$`, 'm'));

    // JWT-SVID fetched by our side, validated by go-spiffe.
    const token = await ca.signJwt('/node', ['interop']);
    ourApi.fetchJwtSvid = () => ({
      svids: [{ spiffe_id: `spiffe://${TD}/node`, svid: token, hint: '' }],
    });
    const jwt = await JwtSource.create({ address: ourApi.address });
    t.after(() => jwt.close());
    const svid = await jwt.fetchJwtSvid({ audience: 'interop' });
    const validated = await runGo(['validate', 'interop'], svid.token);
    assert.equal(validated.trim(), `SUB=spiffe://${TD}/node`);
    // Negative control: the wrong audience is refused by go-spiffe.
    assert.match(await runGo(['validate', 'other'], svid.token), /^REJECTED/);
  },
);

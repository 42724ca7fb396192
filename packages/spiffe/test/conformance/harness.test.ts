// Starts the conformance harness (test/conformance/harness.ts) against the test Workload API
// server and drives it the way the SPIFFE SDK conformance suite does (harness contract v1):
// the READY handshake, the X.509 port and one positive and one negative call per endpoint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { TestCa, type IssuedSvid } from '../support/ca.js';
import { TestWorkloadApiServer, x509Response } from '../support/workload-api-server.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const TD = 'example.org';
let ca: TestCa;
let rogue: TestCa;
let server: TestWorkloadApiServer;
let harness: ChildProcess;
const stdoutLines: string[] = [];
let x509Port = 0;
let controlPort = 0;
let peer: IssuedSvid;

before(async () => {
  ca = await TestCa.create(TD);
  rogue = await TestCa.create(TD);
  await ca.addJwtKey();
  peer = await ca.issue('/peer');
  server = await TestWorkloadApiServer.start();
  server.setX509(x509Response([await ca.issue('/harness')], ca.bundleDer()));
  server.setJwtBundles({ [`spiffe://${TD}`]: ca.jwksJson() });

  harness = spawn(
    process.execPath,
    ['--import', './scripts/register-source.mjs', 'packages/spiffe/test/conformance/harness.ts'],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, SPIFFE_ENDPOINT_SOCKET: server.address },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  harness.stderr!.on('data', (d) => (stderr += d));
  const lines = createInterface({ input: harness.stdout! });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`harness not READY; stderr: ${stderr}`)),
      20_000,
    );
    lines.on('line', (line) => {
      stdoutLines.push(line);
      if (line === 'READY') {
        clearTimeout(timer);
        resolve();
      }
    });
    harness.once('exit', (code) => reject(new Error(`harness exited ${code}: ${stderr}`)));
  });
  for (const l of stdoutLines) {
    const m = /^SPIFFE_(X509|CONTROL)_PORT=(\d+)$/.exec(l);
    if (m?.[1] === 'X509') x509Port = Number(m[2]);
    if (m?.[1] === 'CONTROL') controlPort = Number(m[2]);
  }
});

after(async () => {
  if (harness && harness.exitCode === null) {
    harness.kill('SIGTERM');
    await once(harness, 'exit');
  }
  await server?.close();
});

async function call(
  path: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${controlPort}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The SPIFFE ID the X.509 port presents, or '' when the handshake fails. */
function presented(): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: x509Port,
      cert: peer.certPem,
      key: peer.keyPem,
      rejectUnauthorized: false,
    });
    s.on('secureConnect', () => {
      resolve(/URI:([^,\s]+)/.exec(s.getPeerCertificate().subjectaltname ?? '')?.[1] ?? '');
      s.destroy();
    });
    s.on('error', () => resolve(''));
  });
}

async function eventually(fn: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Connects to the X.509 port with `svid` as the client certificate; returns the line. */
function probe(svid: IssuedSvid): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: x509Port,
      cert: svid.certPem,
      key: svid.keyPem,
      rejectUnauthorized: false,
    });
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('error', () => undefined);
    s.on('close', () => resolve(data));
  });
}

test('harness: READY handshake, nothing else on stdout', () => {
  assert.deepEqual(stdoutLines.slice(0, 1), ['SPIFFE_HARNESS_VERSION=1']);
  assert.equal(stdoutLines.at(-1), 'READY');
  assert.equal(stdoutLines.length, 4);
  assert.ok(x509Port > 0 && controlPort > 0);
  assert.ok(server.calls.every((c) => c.securityHeader === 'true'));
});

test('harness: X.509 port writes the authenticated client ID, refuses an untrusted CA', async () => {
  assert.equal(await probe(peer), `spiffe://${TD}/peer\n`);
  assert.equal(await probe(await rogue.issue('/peer')), '');
});

test('harness: /v1/jwt/validate ok and rejected', async () => {
  const token = await ca.signJwt('/peer', ['conformance']);
  const ok = await call('/v1/jwt/validate', { token, audience: 'conformance' });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.spiffe_id, `spiffe://${TD}/peer`);
  const bad = await call('/v1/jwt/validate', { token, audience: 'someone-else' });
  assert.equal(bad.status, 422);
  assert.equal(bad.json.status, 'rejected');
});

test('harness: /v1/jwt/fetch ok and error', async () => {
  const token = await ca.signJwt('/harness', ['conformance']);
  server.fetchJwtSvid = () => ({
    svids: [{ spiffe_id: `spiffe://${TD}/harness`, svid: token, hint: '' }],
  });
  const ok = await call('/v1/jwt/fetch', { audience: ['conformance'], spiffe_id: '' });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json.svids, [{ spiffe_id: `spiffe://${TD}/harness`, token, hint: '' }]);
  server.fetchJwtSvid = () => ({ code: grpc.status.PERMISSION_DENIED, details: 'no' });
  const denied = await call('/v1/jwt/fetch', { audience: ['conformance'] });
  assert.notEqual(denied.status, 200);
});

test('harness: /v1/x509/dial ok and rejected', async (t) => {
  const serve = async (svid: IssuedSvid) => {
    const s = tls.createServer(
      { cert: svid.certPem, key: svid.keyPem, requestCert: true, rejectUnauthorized: false },
      (c) => c.end(),
    );
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    t.after(() => s.close());
    return `127.0.0.1:${(s.address() as AddressInfo).port}`;
  };
  const ok = await call('/v1/x509/dial', { address: await serve(await ca.issue('/server')) });
  assert.deepEqual(ok.json, { status: 'ok', spiffe_id: `spiffe://${TD}/server` });
  const bad = await call('/v1/x509/dial', { address: await serve(await rogue.issue('/server')) });
  assert.equal(bad.status, 422);
});

test('harness: the first SVID is the default and rotation needs no restart (WA-3, XS-3)', async () => {
  const a = await ca.issue('/a');
  const b = await ca.issue('/b');
  server.setX509(x509Response([b, a], ca.bundleDer()));
  await eventually(async () => (await presented()) === b.spiffeId, 'B presented');
  server.setX509(x509Response([a, b], ca.bundleDer()));
  await eventually(async () => (await presented()) === a.spiffeId, 'A presented');
});

// Last: it leaves the harness without an identity.
test('harness: PermissionDenied withdraws the SVID from the X.509 port (WA-4)', async () => {
  assert.notEqual(await presented(), '');
  server.failNext.set(
    'FetchX509SVID',
    Array.from({ length: 50 }, () => ({ code: grpc.status.PERMISSION_DENIED })),
  );
  server.failStreams({ code: grpc.status.PERMISSION_DENIED }, 'FetchX509SVID');
  await eventually(async () => (await presented()) === '', 'the SVID to be withdrawn');
});

// The conformance harness's start-up while the Workload API is not ready yet: the socket
// appears only later (EP-8), or the first calls answer Unavailable / PermissionDenied
// (EP-5, EP-6). The harness must wait and reach READY, never end silently.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { TestCa } from '../support/ca.js';
import { TestWorkloadApiServer, x509Response } from '../support/workload-api-server.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** Starts the harness; resolves at READY, rejects if it exits first. */
function startHarness(
  t: { after: (fn: () => unknown) => void },
  address: string,
): { ready: Promise<void>; stderr: () => string } {
  const harness = spawn(
    process.execPath,
    ['--import', './scripts/register-source.mjs', 'packages/spiffe/test/conformance/harness.ts'],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, SPIFFE_ENDPOINT_SOCKET: address },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.after(() => harness.kill('SIGKILL'));
  let stderr = '';
  harness.stderr!.on('data', (d) => (stderr += d));
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: harness.stdout! }).on('line', (l) => l === 'READY' && resolve());
    harness.once('exit', (code) => reject(new Error(`harness exited ${code}: ${stderr}`)));
  });
  return { ready, stderr: () => stderr };
}

async function workloadApi(t: { after: (fn: () => unknown) => void }) {
  const ca = await TestCa.create('example.org');
  await ca.addJwtKey();
  const server = await TestWorkloadApiServer.start();
  server.setX509(x509Response([await ca.issue('/harness')], ca.bundleDer()));
  server.setJwtBundles({ 'spiffe://example.org': ca.jwksJson() });
  t.after(() => server.close());
  return server;
}

test('harness waits for a Workload API socket that appears later (EP-8)', async (t) => {
  const server = await workloadApi(t);
  await server.stop();
  rmSync(server.socketPath, { force: true });
  const h = startHarness(t, server.address);
  // The harness logs every failed attempt; a few of them prove it is waiting, not gone.
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if ((h.stderr().match(/stream ended; retrying/g) ?? []).length >= 2) {
        clearInterval(timer);
        resolve();
      }
    }, 20);
    h.ready.catch((err: unknown) => (clearInterval(timer), reject(err)));
  });
  await server.restart();
  await h.ready;
  assert.ok(server.calls.some((c) => c.method === 'FetchX509SVID'));
});

for (const [name, code] of [
  ['Unavailable (EP-5)', grpc.status.UNAVAILABLE],
  ['PermissionDenied (EP-6)', grpc.status.PERMISSION_DENIED],
] as const) {
  test(`harness retries after ${name} and reaches READY`, async (t) => {
    const server = await workloadApi(t);
    server.failNext.set(
      'FetchX509SVID',
      Array.from({ length: 2 }, () => ({ code })),
    );
    const h = startHarness(t, server.address);
    await h.ready;
    // Both refusals, then the call that succeeded (the default backoff: 1 s, then 2 s).
    assert.ok(server.calls.filter((c) => c.method === 'FetchX509SVID').length >= 3);
  });
}

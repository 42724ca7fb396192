// Process lifetime of the Workload API sources, seen from a real child process
// (support/await-source.ts): a pending create() keeps the program alive through failed
// attempts until the first update, an open source keeps it alive through reconnects, and a
// closed one lets it end by itself.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { TestCa, type IssuedSvid } from './support/ca.js';
import { TestWorkloadApiServer, x509Response, type Method } from './support/workload-api-server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TD = 'example.org';
let ca: TestCa;
let svid: IssuedSvid;

before(async () => {
  ca = await TestCa.create(TD);
  await ca.addJwtKey();
  svid = await ca.issue('/workload');
});

type Kind = 'x509' | 'jwt' | 'bundles';
const METHODS: Record<Kind, Method[]> = {
  x509: ['FetchX509SVID'],
  jwt: ['FetchJWTBundles'],
  bundles: ['FetchX509Bundles', 'FetchJWTBundles'],
};
const READY: Record<Kind, string> = {
  x509: `READY spiffe://${TD}/workload`,
  jwt: `READY ${TD}`,
  bundles: `READY ${TD} ${TD}`,
};

async function serve(t: { after: (fn: () => unknown) => void }): Promise<TestWorkloadApiServer> {
  const server = await TestWorkloadApiServer.start();
  server.setX509(x509Response([svid], ca.bundleDer()));
  server.setX509Bundles({ crl: [], bundles: { [`spiffe://${TD}`]: ca.bundleDer() } });
  server.setJwtBundles({ [`spiffe://${TD}`]: ca.jwksJson() });
  t.after(() => server.close());
  return server;
}

interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or signal name) when the child ends. */
  exited: Promise<number | string>;
  /** Resolves when stderr matched `re` `count` times; rejects if the child ends first. */
  stderrCount: (re: RegExp, count: number) => Promise<void>;
  /** Resolves when stdout has the line; rejects if the child ends first. */
  line: (l: string) => Promise<void>;
}

function startChild(
  t: { after: (fn: () => unknown) => void },
  address: string,
  args: string[],
): Child {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      './scripts/register-source.mjs',
      'packages/spiffe/test/support/await-source.ts',
      ...args,
    ],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, SPIFFE_ENDPOINT_SOCKET: address },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.after(() => proc.kill('SIGKILL'));
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const poke = () => waiters.forEach((w) => w());
  proc.stdout!.on('data', (d) => ((out += d), poke()));
  proc.stderr!.on('data', (d) => ((err += d), poke()));
  const exited = new Promise<number | string>((resolve) =>
    proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const waitFor = (cond: () => boolean, what: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (cond()) {
          waiters.delete(check);
          resolve();
        }
      };
      waiters.add(check);
      check();
      void exited.then((code) => {
        // Output that arrived with the exit still counts.
        setImmediate(() => {
          if (cond()) return resolve();
          reject(new Error(`child ended (${code}) before ${what}; stdout: ${out}; stderr: ${err}`));
        });
      });
    });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    stderrCount: (re, count) =>
      waitFor(
        () => (err.match(new RegExp(re.source, 'g')) ?? []).length >= count,
        `${count} x ${re}`,
      ),
    line: (l) => waitFor(() => out.split('\n').includes(l), `stdout line "${l}"`),
  };
}

const RETRYING = /stream ended; retrying/;

for (const kind of ['x509', 'jwt', 'bundles'] as const) {
  test(`${kind}: create() keeps the program alive until the socket appears`, async (t) => {
    const server = await serve(t);
    await server.stop();
    rmSync(server.socketPath, { force: true });
    const child = startChild(t, server.address, [kind]);
    // Several failed attempts (no socket) while create() is pending; the child is still
    // there to make them.
    await child.stderrCount(RETRYING, 3 * METHODS[kind].length);
    await server.restart();
    await child.line(READY[kind]);
    assert.equal(await child.exited, 0, child.stderr());
  });

  test(`${kind}: create() keeps the program alive through Unavailable answers`, async (t) => {
    const server = await serve(t);
    for (const m of METHODS[kind]) {
      server.failNext.set(m, [
        { code: grpc.status.UNAVAILABLE, details: 'agent starting' },
        { code: grpc.status.UNAVAILABLE, details: 'agent starting' },
        { code: grpc.status.UNAVAILABLE, details: 'agent starting' },
      ]);
    }
    const child = startChild(t, server.address, [kind]);
    await child.line(READY[kind]);
    assert.equal(await child.exited, 0, child.stderr());
    for (const m of METHODS[kind]) {
      // Three refusals and the call that succeeded, at least: the retries did happen.
      assert.ok(server.calls.filter((c) => c.method === m).length >= 4, m);
    }
  });
}

test('x509: create() keeps the program alive through PermissionDenied answers', async (t) => {
  const server = await serve(t);
  server.failNext.set('FetchX509SVID', [
    { code: grpc.status.PERMISSION_DENIED, details: 'not yet attested' },
    { code: grpc.status.PERMISSION_DENIED, details: 'not yet attested' },
  ]);
  const child = startChild(t, server.address, ['x509']);
  await child.line(READY.x509);
  assert.equal(await child.exited, 0, child.stderr());
});

test('an open source keeps the program alive through reconnects; close() lets it end', async (t) => {
  const server = await serve(t);
  const child = startChild(t, server.address, ['x509', 'hold']);
  await child.line(READY.x509);
  const before = server.calls.length;
  // The agent goes away for a while: every attempt fails, the source waits between them.
  server.failNext.set(
    'FetchX509SVID',
    Array.from({ length: 1000 }, () => ({ code: grpc.status.UNAVAILABLE })),
  );
  server.failStreams({ code: grpc.status.UNAVAILABLE, details: 'agent restarting' });
  await child.stderrCount(RETRYING, 4);
  assert.ok(server.calls.length > before + 2, 'the child kept retrying');
  server.failNext.delete('FetchX509SVID');
  child.proc.kill('SIGTERM');
  await child.line('CLOSED');
  // Nothing else is left holding the loop: the program ends by itself.
  assert.equal(await child.exited, 0, child.stderr());
});

test('a create() that times out leaves nothing behind: the program ends by itself', async (t) => {
  const server = await serve(t);
  await server.stop();
  rmSync(server.socketPath, { force: true });
  const child = startChild(t, server.address, ['x509', 'timeout']);
  // A guard against hanging for ever, not a timing assertion.
  const guard = new Promise<'hung'>((resolve) => {
    const timer = setTimeout(() => resolve('hung'), 30_000);
    void child.exited.then(() => clearTimeout(timer));
  });
  assert.equal(await Promise.race([child.exited, guard]), 1, child.stderr());
  assert.match(child.stderr(), /error: \[ERR_SOURCE_TIMEOUT\]/);
  assert.equal(child.stdout(), '');
});

test('timeoutMs must be a positive number', async () => {
  const { X509Source } = await import('../src/workloadapi/sources.js');
  for (const timeoutMs of [0, -1, Number.NaN, '5' as unknown as number]) {
    await assert.rejects(
      X509Source.create({ address: 'unix:///nonexistent/agent.sock', timeoutMs }),
      TypeError,
      String(timeoutMs),
    );
  }
  // Infinity waits until the caller's signal ends it (a plain setTimeout would fire at once).
  await assert.rejects(
    X509Source.create({
      address: 'unix:///nonexistent/agent.sock',
      timeoutMs: Infinity,
      signal: AbortSignal.timeout(200),
    }),
    { name: 'TimeoutError' },
  );
  // Positive control: a valid timeout gets as far as waiting, and times out.
  await assert.rejects(
    X509Source.create({ address: 'unix:///nonexistent/agent.sock', timeoutMs: 50 }),
    { code: 'ERR_SOURCE_TIMEOUT' },
  );
});

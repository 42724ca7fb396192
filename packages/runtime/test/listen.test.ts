import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import { listen, listenOptionsFromEnv, formatHostPort } from '@precinct/runtime';

function reach(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

test('default listen is dual-stack: reachable over IPv4 and IPv6 loopback', async (t) => {
  const server = createServer((s) => s.end());
  t.after(() => server.close());
  const port = await listen(server, { host: '::', port: 0 });
  assert.ok(port > 0);
  assert.equal(await reach('127.0.0.1', port), true);
  assert.equal(await reach('::1', port), true);
});

test('an IPv4-only listen is not reachable over IPv6 (control for the dual-stack test)', async (t) => {
  const server = createServer((s) => s.end());
  t.after(() => server.close());
  const port = await listen(server, { host: '127.0.0.1', port: 0 });
  assert.equal(await reach('127.0.0.1', port), true);
  assert.equal(await reach('::1', port), false);
});

test('listen rejects a port already in use', async (t) => {
  const a = createServer();
  const b = createServer();
  t.after(() => {
    a.close();
    b.close();
  });
  const port = await listen(a, { host: '127.0.0.1', port: 0 });
  await assert.rejects(listen(b, { host: '127.0.0.1', port }), { code: 'EADDRINUSE' });
});

test('HOST and PORT override defaults; bad PORT is an error, not a silent default', () => {
  const d = { host: '::', port: 8080 };
  assert.deepEqual(listenOptionsFromEnv(d, {}), d);
  assert.deepEqual(listenOptionsFromEnv(d, { HOST: '127.0.0.1', PORT: '0' }), {
    host: '127.0.0.1',
    port: 0,
  });
  assert.deepEqual(listenOptionsFromEnv(d, { PORT: ' 9090 ' }), { host: '::', port: 9090 });
  for (const bad of ['abc', '-1', '65536', '80.5', '1e3', '123456']) {
    assert.throws(() => listenOptionsFromEnv(d, { PORT: bad }), /PORT must be a port number/);
  }
});

test('formatHostPort brackets IPv6 literals only', () => {
  assert.equal(formatHostPort('::1', 1), '[::1]:1');
  assert.equal(formatHostPort('[::1]', 1), '[::1]:1');
  assert.equal(formatHostPort('127.0.0.1', 2), '127.0.0.1:2');
  assert.equal(formatHostPort('host.containers.internal', 3), 'host.containers.internal:3');
});

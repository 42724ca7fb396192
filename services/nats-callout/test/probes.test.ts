import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import { parseDurationSeconds } from '@precinct/nats-callout';
import { createProbeServer } from '../src/probes.js';

test('probe server: aliases, the readiness report, metrics; errors are problem+json', async (t) => {
  const registry = new Registry();
  const gauge = new Gauge({
    name: 'probe_test_gauge',
    help: 'set by status()',
    registers: [registry],
  });
  let ready = false;
  const server = createProbeServer({
    status: () => {
      gauge.set(ready ? 1 : 0);
      return { ready, detail: 'x' };
    },
    registry,
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  for (const path of ['/health', '/healthz']) {
    const r = await fetch(`${base}${path}`);
    assert.deepEqual([r.status, await r.json()], [200, { status: 'ok' }], path);
  }
  for (const path of ['/ready', '/readyz']) {
    const r = await fetch(`${base}${path}`);
    assert.deepEqual([r.status, await r.json()], [503, { ready: false, detail: 'x' }], path);
  }
  ready = true;
  const r = await fetch(`${base}/ready?verbose`);
  assert.deepEqual([r.status, await r.json()], [200, { ready: true, detail: 'x' }]);
  // /metrics refreshes what status() sets before it answers.
  assert.match(await (await fetch(`${base}/metrics`)).text(), /^probe_test_gauge 1$/m);

  const missing = await fetch(`${base}/nope`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get('content-type'), 'application/problem+json');
  assert.deepEqual(await missing.json(), {
    type: 'about:blank',
    title: 'not found',
    status: 404,
    code: 'ERR_NOT_FOUND',
  });
  const post = await fetch(`${base}/health`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  assert.equal(((await post.json()) as { code: string }).code, 'ERR_METHOD_NOT_ALLOWED');
});

test('parseDurationSeconds is the runtime grammar without days', () => {
  // The runtime's grammar: units once each, largest first.
  assert.equal(parseDurationSeconds('1h30m15s'), 5415);
  assert.equal(parseDurationSeconds(' 45s '), 45);
  assert.equal(parseDurationSeconds('30m1h'), undefined);
  assert.equal(parseDurationSeconds('1m1m'), undefined);
  // ...less its day unit, which the Go reference does not have.
  assert.equal(parseDurationSeconds('2d'), undefined);
  assert.equal(parseDurationSeconds('1D'), undefined);
});

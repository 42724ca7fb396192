// The store's probes come from the service kit (/health, /ready, /metrics) with /healthz and
// /readyz kept for the chart and the CLI; all public, all answer 503 problem+json when the
// database is gone (positive control first).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPgliteDb } from '../src/db.js';
import { startAuditStore } from '../src/server.js';

test('probes: ready while the database answers, 503 problem+json once it is gone', async () => {
  const db = await createPgliteDb();
  const store = await startAuditStore({
    db,
    host: '127.0.0.1',
    port: 0,
    auth: false,
    retentionIntervalMs: 0,
    partitionIntervalMs: 0,
  });
  const get = (p: string) => fetch(new URL(p, store.url));
  try {
    for (const p of ['/health', '/ready', '/healthz', '/readyz'])
      assert.deepEqual(await (await get(p)).json(), { status: 'ok' }, p);
    const metrics = await (await get('/metrics')).text();
    assert.match(metrics, /^precinct_audit_events_written_total /m);
    await db.close();
    const ready = await get('/ready');
    assert.equal(ready.status, 503);
    assert.match(ready.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(((await ready.json()) as { detail: string }).detail, 'not ready: database');
    const readyz = await get('/readyz');
    assert.equal(readyz.status, 503);
    assert.deepEqual(await readyz.json(), {
      type: 'about:blank',
      title: 'database unreachable',
      status: 503,
      code: 'ERR_DATABASE_UNREACHABLE',
    });
    // Liveness is the process, not the database.
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/health')).status, 200);
  } finally {
    await store.close();
  }
});

// The store's URLs follow @precinct/runtime's advertisedUrl(): the advertise host wins, a
// wildcard bind advertises localhost, else the bind host; a malformed host fails start-up.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAuditStore } from '../src/server.js';

const base = { port: 0, auth: false as const, retentionIntervalMs: 0 };

test('advertised URLs: explicit host wins, wildcard is localhost, else the bind host', async () => {
  for (const [opts, host] of [
    [{ host: '127.0.0.1', advertiseHost: 'audit.example' }, 'audit.example'],
    [{ host: '::' }, 'localhost'],
    [{ host: '127.0.0.1' }, '127.0.0.1'],
  ] as const) {
    const store = await startAuditStore({ ...base, ...opts });
    try {
      assert.equal(store.url, `http://${host}:${store.port}`, JSON.stringify(opts));
      // The URL is reachable where it names the loopback (the others name hosts of the test).
      if (host !== 'audit.example') assert.equal((await fetch(`${store.url}/healthz`)).status, 200);
    } finally {
      await store.close();
    }
  }
});

test('a malformed advertise host fails start-up before anything listens', async () => {
  for (const advertiseHost of ['a b', 'host/path', 'user@host', ''])
    await assert.rejects(startAuditStore({ ...base, host: '127.0.0.1', advertiseHost }), TypeError);
});

// `--data-dir`: every file PGlite writes is 0600 and every directory 0700, after writes and
// after a restart, including a directory an earlier release left 0666/0755.
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '@precinct/testing';
import { startAuditStore } from '../src/server.js';

/** Every entry under `root` (root included) whose mode is not 0700 (dirs) / 0600 (files). */
function loose(root: string): string[] {
  const out: string[] = [];
  const stack = [root];
  let files = 0;
  while (stack.length > 0) {
    const d = stack.pop()!;
    if ((lstatSync(d).mode & 0o777) !== 0o700)
      out.push(`${d} ${(lstatSync(d).mode & 0o777).toString(8)}`);
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) stack.push(p);
      else {
        files++;
        if ((st.mode & 0o777) !== 0o600) out.push(`${p} ${(st.mode & 0o777).toString(8)}`);
      }
    }
  }
  assert.ok(files > 100, `a PostgreSQL data directory (${files} files)`);
  return out;
}

const event = {
  event_type: 'perm.check',
  event_category: 'perm',
  event_action: 'write',
  event_outcome: 'success',
  correlation_id: 'perm',
  event_data: { blob: 'x'.repeat(30_000) },
};

test(
  'PGlite data directory: files 0600, directories 0700, after writes and after restart',
  { timeout: 180_000 },
  async (t) => {
    const tmp = tempDir();
    t.after(tmp.cleanup);
    const dir = join(tmp.path, 'audit', 'db');
    const run = async (n: number) => {
      const store = await startAuditStore({
        dataDir: dir,
        host: '127.0.0.1',
        port: 0,
        auth: false,
        retentionIntervalMs: 0,
      });
      try {
        // Enough rows (and a TOAST table's worth of event_data) that PostgreSQL creates new
        // relation files, WAL and free-space maps while the store runs.
        const r = await fetch(new URL('/api/v1/audit/events/batch', store.url), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(Array.from({ length: n }, () => event)),
        });
        assert.equal(r.status, 201);
        assert.deepEqual(loose(dir), [], 'while running');
      } finally {
        await store.close();
      }
      assert.deepEqual(loose(dir), [], 'after close');
    };
    await run(200);
    // A directory as an earlier release left it: loosened, then the store restarts on it.
    chmodSync(dir, 0o755);
    const some = readdirSync(join(dir, 'base'));
    chmodSync(join(dir, 'base', some[0]!), 0o755);
    chmodSync(join(dir, 'PG_VERSION'), 0o666);
    assert.notDeepEqual(loose(dir), [], 'control: the check sees loose modes');
    await run(200);
    // The data survived the restart: both runs' events are there and their chain verifies.
    const store = await startAuditStore({
      dataDir: dir,
      host: '127.0.0.1',
      port: 0,
      auth: false,
      retentionIntervalMs: 0,
    });
    try {
      const v = await fetch(new URL('/api/v1/audit/verify-chain', store.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ correlation_id: 'perm' }),
      });
      const r = (await v.json()) as { is_valid: boolean; events_checked: number };
      assert.deepEqual({ ok: r.is_valid, n: r.events_checked }, { ok: true, n: 400 });
    } finally {
      await store.close();
    }
    assert.deepEqual(loose(dir), []);
  },
);

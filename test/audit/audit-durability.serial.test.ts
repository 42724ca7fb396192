// Durability: kill -9 of the store and a PostgreSQL restart in the middle of a load run; every
// event the client saw acknowledged is in the database afterwards and the chain is intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { peerSkip, startPostgres } from '@precinct/testing';
import { AuditClient } from '@precinct/audit-client';

const root = fileURLToPath(new URL('../../', import.meta.url));
const childScript = fileURLToPath(new URL('./support/store-child.ts', import.meta.url));
let storeLog = '';

function startChild(
  databaseUrl: string,
  port: number,
): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, ['--import', './scripts/register-source.mjs', childScript], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stderr!.on('data', (b: Buffer) => {
      err = (err + b.toString()).slice(-20_000);
      storeLog = err;
    });
    proc.stdout!.on('data', (b: Buffer) => {
      out = (out + b.toString()).slice(-20_000);
      const m = /READY (\d+)/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.once('exit', (code) => reject(new Error(`store exited ${code}: ${err.slice(-2000)}`)));
  });
}

test(
  'acknowledged events survive kill -9 of the store and a database restart',
  { skip: peerSkip('postgres'), timeout: 240_000 },
  async (t) => {
    const pgs = await startPostgres();
    t.after(() => pgs.close());
    let child = await startChild(pgs.url, 0);
    const port = child.port;
    t.after(() => {
      child.proc.kill('SIGKILL');
    });
    const client = new AuditClient({
      url: `http://127.0.0.1:${port}`,
      token: () => 'unused',
      batchSize: 25,
      bufferSize: 200,
      flushIntervalMs: 5,
      retryBaseMs: 20,
      retryMaxMs: 200,
      requestTimeoutMs: 3000,
    });
    // A watchdog: whatever goes wrong, the client stops retrying and the children die, so a
    // failing run ends instead of keeping the test process (and the suite) alive.
    const watchdog = setTimeout(() => {
      t.diagnostic(
        `watchdog: acked ${acked.size}/${N} killed=${killed} back=${back} restarted=${restarted}`,
      );
      t.diagnostic(`store log tail:\n${storeLog.slice(-4000)}`);
      t.diagnostic(`postgres log tail:\n${pgs.log().slice(-4000)}`);
      void client.close({ abort: true });
      child.proc.kill('SIGKILL');
    }, 200_000);
    watchdog.unref();
    t.after(() => clearTimeout(watchdog));
    const N = 400;
    const acked = new Set<number>();
    let killed = false;
    let restarted = false;
    let back = false;
    const disruptions: Promise<void>[] = [];
    const writes: Promise<void>[] = [];
    for (let i = 0; i < N; i++) {
      writes.push(
        client
          .write({
            event_type: 'load.tick',
            event_category: 'load',
            event_action: 'tick',
            event_outcome: 'success',
            correlation_id: i % 2 ? 'dur-a' : 'dur-b',
            event_data: { i },
          })
          .then(() => {
            acked.add(i);
            if (!killed && acked.size >= N / 4) {
              killed = true;
              const dead = child.proc;
              dead.kill('SIGKILL');
              disruptions.push(
                (async () => {
                  if (dead.exitCode === null && dead.signalCode === null)
                    await new Promise((r) => dead.once('exit', r));
                  // The port may take a moment to be free again on a busy machine.
                  for (let attempt = 1; ; attempt++) {
                    try {
                      child = await startChild(pgs.url, port);
                      back = true;
                      return;
                    } catch (err) {
                      if (attempt >= 10) {
                        // Fail the test instead of leaving the client retrying forever.
                        void client.close({ abort: true });
                        throw err;
                      }
                      await new Promise((r) => setTimeout(r, 300));
                    }
                  }
                })(),
              );
            }
            // The database restarts only once the new store is up: a store that cannot migrate at
            // start exits, which is not what this test is about.
            if (back && !restarted && acked.size >= N / 2) {
              restarted = true;
              disruptions.push(pgs.restart());
            }
          }),
      );
    }
    await Promise.allSettled(writes);
    await Promise.all(disruptions);
    await client.close();
    assert.ok(killed && restarted, 'both disruptions happened during the load');
    assert.equal(acked.size, N);

    const db = new pg.Client({ connectionString: pgs.url });
    db.on('error', () => {});
    await db.connect();
    const r = await db
      .query<{ i: string; n: string }>(
        "SELECT event_data->>'i' AS i, count(*) AS n FROM audit_events GROUP BY 1",
      )
      .finally(() => db.end());
    const counts = new Map(r.rows.map((x) => [Number(x.i), Number(x.n)]));
    const missing = [...acked].filter((i) => !counts.has(i));
    assert.deepEqual(missing, [], 'every acknowledged event is stored');
    // Once: a batch committed just before the kill and retried is replayed through its
    // Idempotency-Key, not written again.
    const dups = [...counts].filter(([, n]) => n > 1).map(([i]) => i);
    assert.deepEqual(dups, [], 'no event is stored twice');
    assert.equal(counts.size, N);

    // Chain check through a fresh store on the same database.
    const verifier = await startChild(pgs.url, 0);
    t.after(() => {
      verifier.proc.kill('SIGKILL');
    });
    for (const corr of ['dur-a', 'dur-b']) {
      const res = await fetch(`http://127.0.0.1:${verifier.port}/api/v1/audit/verify-chain`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ correlation_id: corr }),
      });
      const v = (await res.json()) as { is_valid: boolean; events_checked: number };
      assert.equal(v.is_valid, true, corr);
      assert.ok(v.events_checked >= N / 2, corr);
    }
  },
);

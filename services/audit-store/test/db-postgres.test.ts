import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { peerSkip, startPostgres, type PostgresServer } from '@precinct/testing';
import { createPgDb, type Db } from '../src/db.js';

// The store crashed ("Unhandled 'error' event ... Connection terminated unexpectedly") when
// PostgreSQL dropped a connection that a transaction held between two statements: a checked-out
// pg client has no pool listener. These tests drop the connection exactly there.
let pgs: PostgresServer;
let db: Db;
const skip = peerSkip('postgres');

before(async () => {
  if (skip) return;
  pgs = await startPostgres();
  db = createPgDb(pgs.url, { max: 2 });
});
after(async () => {
  await db?.close();
  await pgs?.close();
});

async function terminate(pid: number): Promise<void> {
  // A separate pool: the store's own might be the one being cut.
  const admin = createPgDb(pgs.url, { max: 1 });
  try {
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  } finally {
    await admin.close();
  }
}

test('a transaction commits and the pool keeps working (positive control)', { skip }, async () => {
  const r = await db.transaction(
    async (tx) => (await tx.query<{ n: number }>('SELECT 1 AS n')).rows,
  );
  assert.deepEqual(r, [{ n: 1 }]);
});

test(
  'a connection dropped between two statements of a transaction fails that transaction as unavailable, not the process',
  { skip },
  async () => {
    let crashed: unknown;
    const onUncaught = (err: unknown) => (crashed = err);
    process.on('uncaughtException', onUncaught);
    try {
      const p = db.transaction(async (tx) => {
        const { rows } = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await terminate(rows[0]!.pid);
        // Give the socket close time to arrive while no statement is running.
        await sleep(200);
        await tx.query('SELECT 1');
      });
      await assert.rejects(p, (err: { code?: string }) => err.code === 'ERR_DB_UNAVAILABLE');
      assert.equal(crashed, undefined, 'no uncaught error event');
      // The broken connection was discarded: the next transactions run on fresh ones.
      for (let i = 0; i < 3; i++) {
        const r = await db.transaction(async (tx) => (await tx.query('SELECT 1 AS n')).rows);
        assert.equal(r.length, 1);
      }
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  },
);

test(
  'a database restart fails in-flight work with 503 semantics, then the pool recovers',
  { skip },
  async () => {
    await db.query('SELECT 1');
    await pgs.stop();
    await assert.rejects(
      db.query('SELECT 1'),
      (err: { code?: string }) => err.code === 'ERR_DB_UNAVAILABLE',
    );
    await assert.rejects(
      db.transaction((tx) => tx.query('SELECT 1')),
      (err: { code?: string }) => err.code === 'ERR_DB_UNAVAILABLE',
    );
    await pgs.start();
    const r = await db.transaction(async (tx) => (await tx.query('SELECT 1 AS n')).rows);
    assert.equal(r.length, 1);
  },
);

test(
  'queryAndCommit commits with the statement, and a failing statement commits nothing',
  { skip },
  async () => {
    await db.query('CREATE TABLE qac (n integer PRIMARY KEY)');
    const r = await db.transaction(async (tx) => {
      await tx.query('INSERT INTO qac VALUES (1)');
      return (await tx.queryAndCommit<{ n: number }>('INSERT INTO qac VALUES (2) RETURNING n'))
        .rows;
    });
    assert.deepEqual(r, [{ n: 2 }]);
    // The statement fails (duplicate key): the COMMIT queued behind it becomes a rollback, and
    // the transaction's earlier insert is gone too.
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO qac VALUES (3)');
        await tx.queryAndCommit('INSERT INTO qac VALUES (1)');
      }),
      (err: { code?: string }) => err.code === 'ERR_DB',
    );
    const rows = (await db.query<{ n: number }>('SELECT n FROM qac ORDER BY n')).rows;
    assert.deepEqual(
      rows.map((x) => x.n),
      [1, 2],
    );
    // The connection is usable afterwards, in and out of transactions.
    for (let i = 0; i < 3; i++)
      assert.equal((await db.transaction((tx) => tx.query('SELECT 1'))).rows.length, 1);
  },
);

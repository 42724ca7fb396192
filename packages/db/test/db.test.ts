// The shared Db on embedded PGlite: a new data dir is made by initdb in a child process and
// renamed into place, everything in it is 0600/0700, rows survive reopening, transactions
// commit or roll back, and failures are DbErrors. (PostgreSQL is covered through the services
// that use it: services/audit-store/test/db-postgres.test.ts, identity-server's postgres test.)
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createPgliteDb, DbError, toDbError, type Db } from '@precinct/db';

/** Entries under `root` (root included) not 0700 (directories) or 0600 (files). */
function loose(root: string): string[] {
  const out: string[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const d = stack.pop()!;
    if ((lstatSync(d).mode & 0o777) !== 0o700) out.push(d);
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) stack.push(p);
      else if ((st.mode & 0o777) !== 0o600) out.push(p);
    }
  }
  return out;
}

describe('createPgliteDb with a data dir', { timeout: 300_000 }, () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'precinct-db-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('initializes a new directory without leftovers, private, and keeps rows', async () => {
    const path = join(tmp, 'nested', 'db');
    const a = await createPgliteDb(path);
    try {
      assert.equal(a.kind, 'pglite');
      await a.exec('CREATE TABLE t (v text); CREATE INDEX t_v ON t (v)');
      const r = await a.query('INSERT INTO t VALUES ($1), ($2)', ['kept', 'also']);
      assert.equal(r.rowCount, 2);
    } finally {
      await a.close();
    }
    assert.deepEqual(readdirSync(join(tmp, 'nested')), ['db']);
    assert.ok(readdirSync(path).includes('PG_VERSION'));
    assert.deepEqual(loose(path), []);
    const b = await createPgliteDb(path);
    try {
      await b.ping();
      const { rows } = await b.query<{ v: string }>('SELECT v FROM t ORDER BY v');
      assert.deepEqual(rows, [{ v: 'also' }, { v: 'kept' }]);
    } finally {
      await b.close();
    }
    assert.deepEqual(loose(path), []);
  });

  test('an empty directory is initialized in place; a stray one is refused and left alone', async () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty, { mode: 0o755 });
    const db = await createPgliteDb(empty);
    try {
      assert.deepEqual((await db.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    } finally {
      await db.close();
    }
    assert.deepEqual(loose(empty), []);

    const stray = join(tmp, 'stray');
    mkdirSync(stray);
    writeFileSync(join(stray, 'notes.txt'), 'mine');
    await assert.rejects(createPgliteDb(stray), /is not empty and holds no PGlite database/);
    assert.deepEqual(readdirSync(stray), ['notes.txt']);
    assert.deepEqual(
      readdirSync(tmp).filter((n) => n.includes('initdb')),
      [],
    );
  });
});

describe('createPgliteDb in memory', { timeout: 300_000 }, () => {
  let db: Db;
  before(async () => {
    db = await createPgliteDb();
    await db.exec('CREATE TABLE kv (k text PRIMARY KEY, v int NOT NULL)');
  });
  after(() => db?.close());

  test('a transaction commits when fn resolves', async () => {
    const out = await db.transaction(async (tx) => {
      await tx.query('INSERT INTO kv VALUES ($1, $2)', ['a', 1]);
      return (await tx.queryAndCommit('INSERT INTO kv VALUES ($1, $2)', ['b', 2])).rowCount;
    });
    assert.equal(out, 1);
    const { rows } = await db.query<{ k: string }>('SELECT k FROM kv ORDER BY k');
    assert.deepEqual(
      rows.map((r) => r.k),
      ['a', 'b'],
    );
  });

  test('what fn throws passes unchanged and nothing is kept', async () => {
    class Mine extends Error {}
    const mine = new Mine('domain rule');
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO kv VALUES ($1, $2)', ['c', 3]);
        throw mine;
      }),
      (err) => err === mine,
    );
    assert.equal((await db.query('SELECT 1 FROM kv WHERE k = $1', ['c'])).rows.length, 0);
  });

  test('a failed statement is a DbError with its SQLSTATE, and rolls the transaction back', async () => {
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO kv VALUES ($1, $2)', ['d', 4]);
        await tx.query('INSERT INTO kv VALUES ($1, $2)', ['a', 5]);
      }),
      (err) => err instanceof DbError && err.code === 'ERR_DB' && err.sqlState === '23505',
    );
    assert.equal((await db.query('SELECT 1 FROM kv WHERE k = $1', ['d'])).rows.length, 0);
    await assert.rejects(
      db.query('SELECT * FROM no_such_table'),
      (err) => err instanceof DbError && err.code === 'ERR_DB' && err.sqlState === '42P01',
    );
    // Positive control: the same table answers a valid statement.
    assert.equal((await db.query('SELECT 1 FROM kv WHERE k = $1', ['a'])).rows.length, 1);
  });
});

test('toDbError: unavailable vs other', () => {
  const table: [err: unknown, code: string][] = [
    [Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), 'ERR_DB_UNAVAILABLE'],
    [Object.assign(new Error('shutting down'), { code: '57P01' }), 'ERR_DB_UNAVAILABLE'],
    [Object.assign(new Error('too many'), { code: '53300' }), 'ERR_DB_UNAVAILABLE'],
    [Object.assign(new Error('conn'), { code: '08006' }), 'ERR_DB_UNAVAILABLE'],
    [new Error('Connection terminated unexpectedly'), 'ERR_DB_UNAVAILABLE'],
    [Object.assign(new Error('dup'), { code: '23505' }), 'ERR_DB'],
    [new Error('syntax'), 'ERR_DB'],
    ['a string', 'ERR_DB'],
  ];
  for (const [err, code] of table) {
    const e = toDbError(err);
    assert.equal(e.code, code, String(err));
    assert.equal(e.cause, err);
  }
  const already = toDbError(new Error('x'));
  assert.equal(toDbError(already), already);
  assert.equal(toDbError(Object.assign(new Error('p'), { code: 'EPIPE' })).sqlState, undefined);
});

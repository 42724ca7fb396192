// The embedded store: PGlite's initdb runs in a child process and the result is renamed into
// place; what is written survives reopening.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '@precinct/testing';
import { createPgliteDb as openPglite } from '@precinct/db';

describe('PGlite store', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('precinct-store-');
  });
  after(() => dir.cleanup());

  test('initializes a new directory, 0700, without leftovers, and keeps rows across reopening', async () => {
    const path = join(dir.path, 'nested', 'db');
    const a = await openPglite(path);
    try {
      await a.query('CREATE TABLE t (v text)');
      await a.query('INSERT INTO t VALUES ($1)', ['kept']);
    } finally {
      await a.close();
    }
    assert.equal(statSync(path).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(join(dir.path, 'nested')), ['db']);
    const b = await openPglite(path);
    try {
      assert.deepEqual((await b.query('SELECT v FROM t')).rows, [{ v: 'kept' }]);
    } finally {
      await b.close();
    }
  });

  test('an empty directory is initialized in place', async () => {
    const path = join(dir.path, 'empty');
    mkdirSync(path, { mode: 0o700 });
    const db = await openPglite(path);
    try {
      assert.deepEqual((await db.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  test('a directory with other files and no database is refused and left alone', async () => {
    const path = join(dir.path, 'stray');
    mkdirSync(path);
    writeFileSync(join(path, 'notes.txt'), 'mine');
    await assert.rejects(openPglite(path), /is not empty and holds no PGlite database/);
    assert.deepEqual(readdirSync(path), ['notes.txt']);
    assert.deepEqual(
      readdirSync(dir.path).filter((n) => n.includes('initdb')),
      [],
    );
  });
});

// The entry store on a real PostgreSQL (DATABASE_URL), as in production.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { peerSkip, startPostgres, type PostgresServer } from '@precinct/testing';
import { EntryRegistry } from '../src/entries.js';
import { IdentityServerError } from '../src/errors.js';
import type { Db as SqlClient } from '@precinct/db';
import { openPostgres } from '../src/store.js';

describe('entries on PostgreSQL', { skip: peerSkip('postgres') }, () => {
  let pg: PostgresServer;
  let db: SqlClient;
  before(async () => {
    pg = await startPostgres();
    db = await openPostgres(pg.url);
  });
  after(async () => {
    await db?.close();
    await pg?.close();
  });

  test('create, update, delete, and reload from the database', async () => {
    const reg = await EntryRegistry.open(db, 'example.org');
    const e = await reg.create({
      spiffeId: 'spiffe://example.org/pg',
      selectors: ['k8s:ns:pg'],
      dnsNames: ['pg.svc'],
    });
    await assert.rejects(
      reg.create({ spiffeId: 'spiffe://example.org/pg', selectors: ['k8s:ns:pg'] }),
      (err: unknown) => err instanceof IdentityServerError && err.code === 'ERR_ENTRY_EXISTS',
    );
    const u = await reg.update(e.id, { hint: 'pg' });
    const again = await EntryRegistry.open(db, 'example.org');
    assert.deepEqual(again.get(e.id), u);
    await again.delete(e.id);
    const third = await EntryRegistry.open(db, 'example.org');
    assert.throws(
      () => third.get(e.id),
      (err: unknown) => err instanceof IdentityServerError && err.code === 'ERR_ENTRY_NOT_FOUND',
    );
  });

  test('a bad DATABASE_URL fails at start-up', async () => {
    await assert.rejects(openPostgres('postgresql://postgres@/postgres?host=/nonexistent-dir'));
  });
});

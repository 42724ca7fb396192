import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { peerSkip, startPostgres, type PostgresServer } from '@precinct/testing';
import { createPgDb, createPgliteDb, type Db } from '../src/db.js';
import { migrate } from '../src/migrations.js';
import { AuditRepository } from '../src/store.js';
import type { AuditEventInput, Writer } from '../src/events.js';

const writer: Writer = {
  written_by: 'system:serviceaccount:ns:w',
  written_by_kind: 'serviceaccount',
  on_behalf_of: null,
};
const ev = (corr: string, extra: Partial<AuditEventInput> = {}): AuditEventInput => ({
  event_type: 'test.event',
  event_category: 'test',
  event_action: 'do',
  event_outcome: 'success',
  correlation_id: corr,
  event_data: { n: 1 },
  ...extra,
});

const backends: Array<{ name: string; skip: string | false | undefined; open: () => Promise<Db> }> =
  [];
let pgServer: PostgresServer | undefined;
backends.push({ name: 'pglite', skip: false, open: () => createPgliteDb() });
backends.push({
  name: 'postgres',
  skip: peerSkip('postgres'),
  open: async () => {
    pgServer ??= await startPostgres();
    return createPgDb(pgServer.url);
  },
});
after(async () => {
  await pgServer?.close();
});

for (const b of backends) {
  describe(`storage on ${b.name}`, { skip: b.skip }, () => {
    let db: Db;
    let repo: AuditRepository;
    before(async () => {
      db = await b.open();
      await migrate(db);
      assert.deepEqual(await migrate(db), [], 'migrations are idempotent');
      repo = new AuditRepository(db);
    });
    after(() => db.close());

    test('a written chain verifies (positive control)', async () => {
      await repo.insert([ev('c-ok'), ev('c-ok')], writer);
      await repo.insert([ev('c-ok', { event_timestamp: '2024-01-15T00:00:00Z' })], writer);
      const r = await repo.verify('c-ok');
      assert.deepEqual(
        { v: r.is_valid, n: r.events_checked, b: r.broken_links, t: r.tampered_events },
        { v: true, n: 3, b: [], t: [] },
      );
    });

    test('the trigger refuses UPDATE and DELETE', async () => {
      await repo.insert([ev('c-trig')], writer);
      await assert.rejects(
        db.query("UPDATE audit_events SET actor_id = 'x' WHERE correlation_id = 'c-trig'"),
        /append-only/,
      );
      await assert.rejects(
        db.query("DELETE FROM audit_events WHERE correlation_id = 'c-trig'"),
        /retention job/,
      );
    });

    const tamper = async (sql: string) => {
      await db.transaction(async (tx) => {
        await tx.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
        await tx.query(sql);
        await tx.query('ALTER TABLE audit_events ENABLE TRIGGER USER');
      });
    };

    test('verification detects an edited row', async () => {
      const [, second] = (await repo.insert([ev('c-edit'), ev('c-edit'), ev('c-edit')], writer))
        .events;
      await tamper(
        `UPDATE audit_events SET actor_id = 'mallory' WHERE event_id = '${second!.event_id}'`,
      );
      const r = await repo.verify('c-edit');
      assert.equal(r.is_valid, false);
      assert.deepEqual(r.tampered_events, [second!.event_id]);
    });

    test('verification detects a deleted row', async () => {
      const [, second] = (await repo.insert([ev('c-del'), ev('c-del'), ev('c-del')], writer))
        .events;
      await tamper(`DELETE FROM audit_events WHERE event_id = '${second!.event_id}'`);
      const r = await repo.verify('c-del');
      assert.equal(r.is_valid, false);
      assert.equal(r.broken_links.length, 1);
      assert.equal(r.tampered_events.length, 0);
    });

    test('verification detects the deleted last row', async () => {
      const [, last] = (await repo.insert([ev('c-dellast'), ev('c-dellast')], writer)).events;
      await tamper(`DELETE FROM audit_events WHERE event_id = '${last!.event_id}'`);
      assert.equal((await repo.verify('c-dellast')).is_valid, false);
    });

    test('verification detects a reordered pair', async () => {
      const [a, b2] = (await repo.insert([ev('c-swap'), ev('c-swap'), ev('c-swap')], writer))
        .events;
      await tamper(
        `UPDATE audit_events SET chain_seq = CASE chain_seq WHEN 1 THEN 2 ELSE 1 END WHERE event_id IN ('${a!.event_id}', '${b2!.event_id}')`,
      );
      const r = await repo.verify('c-swap');
      assert.equal(r.is_valid, false);
      assert.ok(r.tampered_events.length >= 1);
    });

    test('concurrent writers on one correlation produce one valid chain', async () => {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          repo.insert([ev('c-conc', { event_data: { i } }), ev('c-conc'), ev('c-other')], writer),
        ),
      );
      const r = await repo.verify('c-conc');
      assert.equal(r.is_valid, true);
      assert.equal(r.events_checked, 40);
      assert.equal((await repo.verify('c-other')).events_checked, 20);
    });

    test('retention deletes expired chain prefixes except under legal hold', async () => {
      const old = { event_timestamp: '2020-01-01T00:00:00Z', retention_days: 1 };
      await repo.insert([ev('c-ret', old), ev('c-ret', old), ev('c-ret')], writer);
      await repo.insert([ev('c-hold', old), ev('c-hold', old)], writer);
      await repo.placeHold('c-hold', 'litigation', 'system:serviceaccount:ns:legal');
      const deleted = await repo.applyRetention();
      assert.equal(deleted, 2);
      const ret = await repo.verify('c-ret');
      assert.deepEqual({ v: ret.is_valid, n: ret.events_checked }, { v: true, n: 1 });
      const held = await repo.verify('c-hold');
      assert.deepEqual({ v: held.is_valid, n: held.events_checked }, { v: true, n: 2 });
      // Even the retention path cannot delete a held event.
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query("SELECT set_config('precinct.audit_retention', 'on', true)");
          await tx.query("DELETE FROM audit_events WHERE correlation_id = 'c-hold'");
        }),
        /legal hold/,
      );
      assert.equal(await repo.releaseHold('c-hold'), true);
      assert.equal(await repo.applyRetention(), 2);
      assert.equal((await repo.verify('c-hold')).events_checked, 0);
    });

    test('an idempotency key makes a retried batch a replay, not a second write', async () => {
      const idem = { key: 'k-1', requestHash: 'h-1' };
      const first = await repo.insert([ev('c-idem'), ev('c-idem')], writer, new Date(), idem);
      assert.equal(first.replayed, false);
      const again = await repo.insert([ev('c-idem'), ev('c-idem')], writer, new Date(), idem);
      assert.equal(again.replayed, true);
      assert.deepEqual(again.events, first.events, 'the first response, ids and hashes');
      assert.equal((await repo.verify('c-idem')).events_checked, 2, 'stored once');
      // Control: a new key writes again.
      const other = { key: 'k-2', requestHash: 'h-1' };
      assert.equal((await repo.insert([ev('c-idem')], writer, new Date(), other)).replayed, false);
      assert.equal((await repo.verify('c-idem')).events_checked, 3);
    });

    test('an idempotency key reused for a different request is refused and writes nothing', async () => {
      await repo.insert([ev('c-idem2')], writer, new Date(), { key: 'k-x', requestHash: 'a' });
      await assert.rejects(
        repo.insert([ev('c-idem2')], writer, new Date(), { key: 'k-x', requestHash: 'b' }),
        (err: { code?: string }) => err.code === 'ERR_IDEMPOTENCY_CONFLICT',
      );
      assert.equal((await repo.verify('c-idem2')).events_checked, 1);
    });

    test('idempotency keys are scoped to the writer', async () => {
      const idem = { key: 'shared', requestHash: 'h' };
      await repo.insert([ev('c-idem3')], writer, new Date(), idem);
      const other: Writer = { ...writer, written_by: 'system:serviceaccount:ns:other' };
      const r = await repo.insert([ev('c-idem3')], other, new Date(), idem);
      assert.equal(r.replayed, false, "another writer's key neither replays nor blocks");
      assert.equal((await repo.verify('c-idem3')).events_checked, 2);
    });

    test('concurrent duplicates of one idempotent request store it once', async () => {
      const idem = { key: 'k-conc', requestHash: 'h' };
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          repo.insert([ev('c-idem4'), ev('c-idem4')], writer, new Date(), idem),
        ),
      );
      assert.equal(results.filter((r) => !r.replayed).length, 1);
      const ids = new Set(results.flatMap((r) => r.events.map((e) => e.event_id)));
      assert.equal(ids.size, 2, 'every duplicate got the same two ids');
      assert.equal((await repo.verify('c-idem4')).events_checked, 2);
    });

    test('expired idempotency keys are forgotten', async () => {
      await repo.insert([ev('c-idem5')], writer, new Date(), { key: 'k-old', requestHash: 'h' });
      assert.equal(await repo.expireIdempotencyKeys(new Date(), 60_000), 0, 'fresh keys stay');
      assert.ok((await repo.expireIdempotencyKeys(new Date(Date.now() + 120_000), 60_000)) >= 1);
      const r = await repo.insert([ev('c-idem5')], writer, new Date(), {
        key: 'k-old',
        requestHash: 'h',
      });
      assert.equal(r.replayed, false);
    });

    test('every value is stored as written, through array and scalar parameters', async () => {
      // Strings that need quoting or escaping in an array literal, nulls and the text NULL,
      // empty strings; some columns alike across the batch (scalar parameters), some not.
      const tricky = ['x"y', 'a\\b', '{,}', 'NULL', '', ' lead', 'trail ', 'é😀\u2028', '"', '\\'];
      const events = tricky.map((t, i) =>
        ev('c-values', {
          actor_id: t,
          actor_ip: i % 2 ? t : undefined,
          resource_id: `r${t}`,
          namespace: 'same',
          error_message: i === 3 ? 'NULL' : undefined,
          parent_event_id: i % 3 ? undefined : '0B7E6F5C-3D2A-4C1B-9E8F-7A6B5C4D3E2F',
          duration_ms: i % 4 ? i : undefined,
          is_sensitive: i % 2 === 0,
          event_timestamp: `2025-05-0${1 + (i % 3)}T01:02:03.${String(i).padStart(3, '0')}Z`,
          event_data: { t, nested: { '"k"': [t, null, i] }, i },
        }),
      );
      const { events: receipts } = await repo.insert(events, writer);
      const { events: stored } = await repo.query({ correlation_id: 'c-values' }, { limit: 100 });
      const byId = new Map(stored.map((e) => [e.event_id, e]));
      receipts.forEach((rc, i) => {
        const e = byId.get(rc.event_id)!;
        const want = events[i]!;
        assert.equal(e.actor_id, want.actor_id);
        assert.equal(e.actor_ip, want.actor_ip ?? null);
        assert.equal(e.resource_id, want.resource_id);
        assert.equal(e.namespace, 'same');
        assert.equal(e.error_message, want.error_message ?? null);
        assert.equal(e.parent_event_id, want.parent_event_id?.toLowerCase() ?? null);
        assert.equal(e.duration_ms, want.duration_ms ?? null);
        assert.equal(e.is_sensitive, want.is_sensitive);
        assert.equal(e.event_timestamp, want.event_timestamp);
        assert.deepEqual(e.event_data, want.event_data);
        assert.equal(e.written_by, writer.written_by);
        assert.equal(e.on_behalf_of, null);
        assert.equal(e.event_hash, rc.event_hash);
      });
      const v = await repo.verify('c-values');
      assert.deepEqual({ v: v.is_valid, n: v.events_checked }, { v: true, n: tricky.length });
      // A batch of one: every column a scalar parameter.
      await repo.insert([ev('c-values', { actor_id: 'x"y\\' })], writer);
      assert.equal((await repo.verify('c-values')).is_valid, true);
    });

    test('a chain head deleted by hand is created again, as before', async () => {
      await repo.insert([ev('c-lost'), ev('c-lost')], writer);
      await db.query("DELETE FROM audit_chain_heads WHERE correlation_id = 'c-lost'");
      // This repository remembers the head; the write must still go through.
      const r = await repo.insert([ev('c-lost')], writer);
      assert.equal(r.events[0]!.chain_seq, 1, 'a new head starts at 1, as the upsert always did');
    });

    test('two stores on one database write shared correlations without forking a chain', async () => {
      const other = new AuditRepository(db);
      const corrs = ['c-two-a', 'c-two-b', 'c-two-c', 'c-two-d'];
      const batch = (k: number) =>
        Array.from({ length: 8 }, (_, j) =>
          ev(corrs[(j * (k + 1)) % corrs.length]!, { event_data: { k, j } }),
        );
      await Promise.all(
        Array.from({ length: 12 }, (_, k) => (k % 2 ? repo : other).insert(batch(k), writer)),
      );
      let total = 0;
      for (const c of corrs) {
        const v = await repo.verify(c);
        assert.equal(v.is_valid, true, `${c}: ${JSON.stringify(v.broken_links)}`);
        total += v.events_checked;
      }
      assert.equal(total, 12 * 8);
    });

    test('query filters and keyset pagination', async () => {
      await repo.insert(
        Array.from({ length: 7 }, (_, i) =>
          ev('c-page', { event_timestamp: `2025-03-0${i + 1}T00:00:00Z` }),
        ),
        writer,
      );
      const seen: string[] = [];
      let after: { ts: string; id: string } | undefined;
      for (;;) {
        const p = await repo.query({ correlation_id: 'c-page' }, { limit: 3, after });
        seen.push(...p.events.map((e) => e.event_timestamp));
        if (!p.hasMore) break;
        const last = p.events[p.events.length - 1]!;
        after = { ts: last.event_timestamp, id: last.event_id };
      }
      assert.equal(seen.length, 7);
      assert.deepEqual(seen, [...seen].sort().reverse());
    });
  });
}

// Issue 11: delegated decisions are queryable by person, agent and txn. The events are shaped as
// the demo's document service writes them (the person and the actor chain inside event_data,
// the Transaction Token's txn as the correlation id), plus a writer that proves its person with
// a delegation token. On PGlite and on a real PostgreSQL; every negative with its positive.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  KubeAuthError,
  type Authorizer,
  type ServiceAccountIdentity,
  type TokenVerifier,
} from '@precinct/kube';
import {
  createDelegationIssuer,
  createDelegationVerifier,
  generateDelegationKey,
  type DelegationIssuer,
} from '@precinct/delegation';
import { AuditClient, type AuditEventInput } from '@precinct/audit-client';
import { peerSkip, startPostgres, type PostgresServer } from '@precinct/testing';
import { createPgDb, createPgliteDb, type Db } from '../src/db.js';
import { MIGRATIONS, migrate } from '../src/migrations.js';
import { AuditRepository } from '../src/store.js';
import { startAuditStore, type AuditStore } from '../src/server.js';

const WRITER = 'system:serviceaccount:apps:writer';
const verifier: TokenVerifier = {
  async verify(token) {
    const name = { 'tok-writer': 'writer', 'tok-reader': 'reader' }[token];
    if (!name) throw new KubeAuthError('ERR_TOKEN_SIGNATURE', 'bad token');
    return {
      username: `system:serviceaccount:apps:${name}`,
      groups: ['system:serviceaccounts'],
      namespace: 'apps',
      serviceAccountName: name,
      audiences: ['data-storage-service'],
      extra: {},
      source: 'jwks',
    } satisfies ServiceAccountIdentity;
  },
};
const authorizer: Authorizer = {
  authorize: async (user, attrs) => ({
    allowed: attrs.verb === 'get' || user.username === WRITER,
    cached: false,
  }),
};

const TD = 'spiffe://demo.test';
const alice = `${TD}/user/alice`;
const bob = `${TD}/user/bob`;
const gpt4 = `${TD}/agent/gpt4`;
const claude = `${TD}/agent/claude`;
const summarizer = `${TD}/agent/summarizer`;
const docService = `${TD}/ns/demo/sa/document-service`;

/** A decision as services/demo/src/document-service.ts writes it. */
function decision(d: {
  person?: string;
  agent?: string;
  actors?: string[];
  txn?: string;
  data?: Record<string, unknown>;
}): AuditEventInput {
  return {
    event_type: 'demo.document.access',
    event_category: 'authorization',
    event_action: 'read',
    event_outcome: 'success',
    actor_type: d.agent ? 'agent' : 'user',
    actor_id: (d.agent ?? d.person ?? docService).slice(0, 255),
    resource_type: 'document',
    resource_id: 'DOC-001',
    correlation_id: d.txn ?? `no-txn-${Math.random()}`,
    event_data: {
      decision: 'allow',
      caller: docService,
      on_behalf_of: d.person ?? null,
      agent: d.agent ?? null,
      actors: d.actors ?? [],
      token_sha256: 'ab'.repeat(32),
      ...d.data,
    },
  };
}

const long255 = `${TD}/user/${'p'.repeat(255 - `${TD}/user/`.length)}`;
const long256 = `${long255}q`;

/** A backend; `open(name)` gives an empty database of that name. */
const backends: Array<{
  name: string;
  skip: string | false | undefined;
  open: (name: string) => Promise<Db>;
}> = [{ name: 'pglite', skip: false, open: () => createPgliteDb() }];
let pgServer: PostgresServer | undefined;
backends.push({
  name: 'postgres',
  skip: peerSkip('postgres'),
  open: async (name) => {
    pgServer ??= await startPostgres();
    const admin = createPgDb(pgServer.url);
    try {
      await admin.exec(`CREATE DATABASE ${name}`);
    } finally {
      await admin.close();
    }
    const url = new URL(pgServer.url);
    url.pathname = `/${name}`;
    return createPgDb(url.toString());
  },
});
after(async () => {
  await pgServer?.close();
});

for (const b of backends) {
  describe(`delegated decisions by person, agent and txn on ${b.name}`, { skip: b.skip }, () => {
    let db: Db;
    let store: AuditStore;
    let issuer: DelegationIssuer;
    const ids: Record<string, string> = {};
    const call = (path: string, token = 'tok-reader', headers: Record<string, string> = {}) =>
      fetch(new URL(path, store.url), {
        headers: { authorization: `Bearer ${token}`, ...headers },
      });
    /** The event ids a query answers (200), sorted. */
    const found = async (query: string): Promise<string[]> => {
      const r = await call(`/api/v1/audit/events?${query}`);
      assert.equal(r.status, 200, `${query}: ${await r.clone().text()}`);
      const body = (await r.json()) as { data: Array<{ event_id: string }> };
      return body.data.map((e) => e.event_id).sort();
    };
    const idsOf = (...names: string[]) => names.map((n) => ids[n]!).sort();
    const write = async (
      name: string,
      e: AuditEventInput,
      headers: Record<string, string> = {},
    ) => {
      const r = await fetch(new URL('/api/v1/audit/events', store.url), {
        method: 'POST',
        headers: {
          authorization: 'Bearer tok-writer',
          'content-type': 'application/json',
          ...headers,
        },
        body: JSON.stringify(e),
      });
      assert.equal(r.status, 201, await r.clone().text());
      ids[name] = ((await r.json()) as { event_id: string }).event_id;
    };

    before(async () => {
      db = await b.open('delegated_current');
      issuer = createDelegationIssuer({
        issuer: 'https://idp.test',
        alg: 'EdDSA',
        ...(await generateDelegationKey('EdDSA')),
      });
      store = await startAuditStore({
        db,
        host: '127.0.0.1',
        port: 0,
        auth: { verifier, authorizer },
        authz: { namespace: 'audit' },
        delegation: createDelegationVerifier({
          issuer: 'https://idp.test',
          audience: 'audit',
          jwks: await issuer.jwks(),
        }),
        retentionIntervalMs: 0,
      });
      await write(
        'delegated',
        decision({ person: alice, agent: gpt4, actors: [gpt4], txn: 'txn-1' }),
      );
      await write('direct', decision({ person: bob, txn: 'txn-2' }));
      await write('agentOnly', decision({ agent: claude }));
      // A chain of two agents, outermost first; the txn in event_data, another correlation.
      await write(
        'chain',
        decision({
          person: alice,
          agent: summarizer,
          actors: [summarizer, gpt4],
          data: { txn: 'txn-3' },
        }),
      );
      // Values that are not names: nothing is derived from them.
      await write(
        'odd',
        decision({
          data: { on_behalf_of: 42, agent: { sub: claude }, actors: 'gpt4', txn: 'x'.repeat(256) },
        }),
      );
      await write('len255', decision({ person: long255 }));
      await write('len256', decision({ person: long256 }));
      // A writer proving its person with a delegation token: the proof wins over event_data.
      const token = await issuer.issue({ subject: 'dave', actors: [WRITER], audience: 'audit' });
      await write('proved', decision({ person: 'mallory' }), { 'precinct-delegation': token });
    });
    after(async () => {
      await store?.close();
      await db?.close();
    });

    test('by person: the event_data person, or the proved one', async () => {
      assert.deepEqual(
        await found(`person=${encodeURIComponent(alice)}`),
        idsOf('delegated', 'chain'),
      );
      assert.deepEqual(await found(`person=${encodeURIComponent(bob)}`), idsOf('direct'));
      assert.deepEqual(await found('person=dave'), idsOf('proved'));
      // The claim the proof overrides is not the person; nor is anyone unknown.
      assert.deepEqual(await found('person=mallory'), []);
      assert.deepEqual(await found(`person=${encodeURIComponent(`${TD}/user/carol`)}`), []);
      assert.deepEqual(await found('person=42'), []);
      // 255 characters are indexed; a longer value is not (and could not be asked for).
      assert.deepEqual(await found(`person=${encodeURIComponent(long255)}`), idsOf('len255'));
    });

    test('by agent: the outermost actor of the chain, else event_data.agent, else the prover', async () => {
      assert.deepEqual(await found(`agent=${encodeURIComponent(gpt4)}`), idsOf('delegated'));
      assert.deepEqual(await found(`agent=${encodeURIComponent(summarizer)}`), idsOf('chain'));
      assert.deepEqual(await found(`agent=${encodeURIComponent(claude)}`), idsOf('agentOnly'));
      assert.deepEqual(await found(`agent=${encodeURIComponent(WRITER)}`), idsOf('proved'));
      assert.deepEqual(await found('agent=gpt4'), []);
    });

    test('by txn: the correlation id or event_data.txn; filters combine', async () => {
      assert.deepEqual(await found('txn=txn-1'), idsOf('delegated'));
      assert.deepEqual(await found('txn=txn-3'), idsOf('chain'));
      assert.deepEqual(await found('txn=txn-9'), []);
      assert.deepEqual(await found(`txn=${'x'.repeat(255)}`), []);
      assert.deepEqual(
        await found(`person=${encodeURIComponent(alice)}&agent=${encodeURIComponent(gpt4)}`),
        idsOf('delegated'),
      );
      assert.deepEqual(await found(`person=${encodeURIComponent(bob)}&txn=txn-1`), []);
    });

    test('a signed export of one person, agent or txn', async () => {
      const lines = async (q: string) => {
        const r = await call(`/api/v1/audit/export?${q}`);
        assert.equal(r.status, 200, q);
        const body = await r.text();
        return body
          .split('\n')
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as { event_id: string }).event_id)
          .sort();
      };
      assert.deepEqual(
        await lines(`person=${encodeURIComponent(alice)}`),
        idsOf('delegated', 'chain'),
      );
      assert.deepEqual(await lines(`agent=${encodeURIComponent(claude)}`), idsOf('agentOnly'));
      assert.deepEqual(await lines('txn=txn-3'), idsOf('chain'));
      assert.deepEqual(await lines('person=nobody'), []);
      assert.equal((await call(`/api/v1/audit/export?person=${'a'.repeat(256)}`)).status, 400);
    });

    test('hostile filter values: 400 problem+json, nothing else; a quote is only a value', async () => {
      for (const q of [
        'person=',
        `person=${'a'.repeat(256)}`,
        'person=a&person=b',
        'agent=%ED%A0%80',
        'txn=%00',
        'person=%EF%BF%BF',
        'agent[sub]=x',
        'persons=alice',
      ]) {
        const r = await call(`/api/v1/audit/events?${q}`);
        assert.equal(r.status, 400, q);
        assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/, q);
      }
      assert.deepEqual(await found(`person=${encodeURIComponent("' OR '1'='1")}`), []);
      assert.deepEqual(await found(`txn=${encodeURIComponent("x') OR true --")}`), []);
      // Reading still needs a caller.
      assert.equal((await call('/api/v1/audit/events?person=dave', 'tok-nobody')).status, 401);
    });

    test('chains still verify: the new columns are not part of any hash', async () => {
      for (const c of ['txn-1', 'txn-2']) {
        const r = await fetch(new URL('/api/v1/audit/verify-chain', store.url), {
          method: 'POST',
          headers: { authorization: 'Bearer tok-reader', 'content-type': 'application/json' },
          body: JSON.stringify({ correlation_id: c }),
        });
        const v = (await r.json()) as { is_valid: boolean; events_checked: number };
        assert.deepEqual([v.is_valid, v.events_checked], [true, 1], c);
      }
      // The columns are filled by the database and cannot be written.
      await assert.rejects(
        db.query(
          `INSERT INTO audit_events (event_id, version, event_type, event_timestamp, event_category,
             event_action, event_outcome, correlation_id, retention_days, is_sensitive, event_data,
             written_by, written_by_kind, chain_seq, prev_hash, event_hash, person)
           VALUES (gen_random_uuid(), '1.0', 't', now(), 'c', 'a', 'success', 'forged', 1, false,
             '{}', 'w', 'k', 1, 'p', 'h', 'alice')`,
        ),
      );
    });

    test('each filter has an index the newest-first query can use', async () => {
      for (const [col, where] of [
        ['person', `person = 'x'`],
        ['agent', `agent = 'x'`],
        ['txn', `(txn = 'x' OR correlation_id = 'x')`],
      ] as const) {
        const plan = await db.transaction(async (tx) => {
          // Few rows: without this the planner would rightly scan them all.
          await tx.query('SET LOCAL enable_seqscan = off');
          const r = await tx.query<{ 'QUERY PLAN': string }>(
            `EXPLAIN SELECT event_id FROM audit_events WHERE ${where}
             ORDER BY event_timestamp DESC, event_id DESC LIMIT 51`,
          );
          return r.rows.map((x) => x['QUERY PLAN']).join('\n');
        });
        assert.match(
          plan,
          new RegExp(`Index.*Scan.* (using|on) \\w*_${col}_event_timestamp`),
          plan,
        );
      }
    });

    test('AuditClient.query filters by person, agent and txn', async () => {
      const client = new AuditClient({ url: store.url, token: () => 'tok-reader' });
      try {
        const byPerson = await client.query({ person: alice, limit: 1 });
        assert.equal(byPerson.events.length, 1);
        assert.ok(byPerson.nextCursor, 'two events for alice: a second page');
        const next = await client.query({ person: alice, limit: 1, cursor: byPerson.nextCursor! });
        assert.deepEqual(
          [byPerson.events[0]!.event_id, next.events[0]!.event_id].sort(),
          idsOf('delegated', 'chain'),
        );
        assert.equal(next.nextCursor, undefined);
        const byAgent = await client.query({ agent: gpt4, txn: 'txn-1' });
        assert.deepEqual(
          byAgent.events.map((e) => e.event_id),
          idsOf('delegated'),
        );
        await assert.rejects(client.query({ person: 'x'.repeat(256) }), {
          code: 'ERR_CLIENT_REJECTED',
        });
      } finally {
        await client.close();
      }
    });

    test('events stored before the migration are found too', async () => {
      const old = await b.open('delegated_old');
      try {
        // The schema as the previous release left it, with one delegated decision in it.
        await old.exec(`CREATE TABLE audit_schema_migrations (
          version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
        for (const m of MIGRATIONS.filter((x) => x.version < 5)) {
          await old.exec(m.sql);
          await old.query('INSERT INTO audit_schema_migrations (version, name) VALUES ($1, $2)', [
            m.version,
            m.name,
          ]);
        }
        const repo = new AuditRepository(old);
        const writer = { written_by: 'w', written_by_kind: 'serviceaccount', on_behalf_of: null };
        await repo.insert(
          [decision({ person: bob, agent: gpt4, actors: [gpt4], txn: 'old' })],
          writer,
        );
        assert.deepEqual(await migrate(old), [5]);
        const page = await repo.query({ person: bob, agent: gpt4, txn: 'old' }, { limit: 10 });
        assert.equal(page.events.length, 1);
        assert.equal((await repo.verify('old')).is_valid, true);
        assert.equal((await repo.query({ person: alice }, { limit: 10 })).events.length, 0);
      } finally {
        await old.close();
      }
    });
  });
}

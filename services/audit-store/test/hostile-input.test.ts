// The red-team findings against a running store, each reproduced: input that made another
// writer's chain verify as tampered (ill-formed Unicode), that bloated the store (a partition
// per client-chosen month), or that got a 500 (deep nesting, year 0000, NUL in a filter).
// Every one must now be a 4xx problem+json that changes nothing, next to a positive control.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Authorizer, ServiceAccountIdentity, TokenVerifier } from '@precinct/kube';
import { startAuditStore, type AuditStore } from '../src/server.js';
import { createPgliteDb, type Db } from '../src/db.js';
import { MAX_EVENT_DATA_DEPTH } from '../src/input.js';

const verifier: TokenVerifier = {
  async verify(token) {
    const name = { 'tok-a': 'writer-a', 'tok-b': 'writer-b' }[token];
    if (!name) throw Object.assign(new Error('bad'), { code: 'ERR_TOKEN_SIGNATURE' });
    return {
      username: `system:serviceaccount:apps:${name}`,
      groups: [],
      namespace: 'apps',
      serviceAccountName: name,
      audiences: ['data-storage-service'],
      extra: {},
      source: 'jwks',
    } satisfies ServiceAccountIdentity;
  },
};
const authorizer: Authorizer = { authorize: async () => ({ allowed: true, cached: false }) };

const base = {
  event_type: 'hostile.probe',
  event_category: 'hostile',
  event_action: 'probe',
  event_outcome: 'success',
  correlation_id: 'shared',
};
const DAY = 86_400_000;

describe('hostile input', () => {
  let store: AuditStore;
  let db: Db;
  const count = async () =>
    Number(
      (await db.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_events')).rows[0]!.n,
    );
  const partitions = async () =>
    Number(
      (
        await db.query<{ n: string }>(
          `SELECT count(*)::text AS n FROM pg_inherits WHERE inhparent = 'audit_events'::regclass`,
        )
      ).rows[0]!.n,
    );
  const send = async (
    path: string,
    init: { method?: string; body?: string | Uint8Array; token?: string; headers?: object } = {},
  ) => {
    const res = await fetch(new URL(path, store.url), {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: {
        authorization: `Bearer ${init.token ?? 'tok-b'}`,
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...init.headers,
      },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', text };
  };
  /** A 4xx problem+json that wrote nothing, naming `field` when given. */
  const refused = async (
    what: string,
    r: Promise<{ status: number; type: string; text: string }>,
    field?: string,
  ) => {
    const before = await count();
    const res = await r;
    assert.ok(res.status >= 400 && res.status < 500, `${what}: ${res.status} ${res.text}`);
    assert.match(res.type, /^application\/problem\+json/, what);
    if (field !== undefined) {
      const p = JSON.parse(res.text) as { errors?: Array<{ field: string }> };
      assert.ok(
        p.errors?.some((e) => e.field === field),
        `${what}: ${field} not in ${res.text}`,
      );
    }
    assert.equal(await count(), before, `${what} wrote nothing`);
  };
  const verifyShared = async () => {
    const r = await send('/api/v1/audit/verify-chain', {
      body: JSON.stringify({ correlation_id: 'shared' }),
      token: 'tok-a',
    });
    return JSON.parse(r.text) as { is_valid: boolean; events_checked: number };
  };

  before(async () => {
    db = await createPgliteDb();
    store = await startAuditStore({
      db,
      host: '127.0.0.1',
      port: 0,
      auth: { verifier, authorizer },
      authz: { namespace: 'audit' },
      retentionIntervalMs: 0,
    });
  });
  after(async () => {
    await store.close();
    await db.close();
  });

  test('ill-formed Unicode, NUL and noncharacters anywhere are 400; another writer’s chain stays valid', async () => {
    // Writer A's chain, which writer B's hostile input used to make verify as tampered.
    const a = await send('/api/v1/audit/events', { body: JSON.stringify(base), token: 'tok-a' });
    assert.equal(a.status, 201, a.text);
    const lone = '\\udbff'; // as JSON text: the escape of a lone high surrogate
    const write = (json: string | Uint8Array) => send('/api/v1/audit/events', { body: json });
    const ev = (extra: string) => `{${JSON.stringify(base).slice(1, -1)},${extra}}`;
    const cases: Array<[string, string, string]> = [
      [
        'lone surrogate in correlation_id',
        ev(`"actor_id":"x"`).replace('"shared"', `"sh${lone}"`),
        'correlation_id',
      ],
      ['lone surrogate in actor_id', ev(`"actor_id":"a${lone}"`), 'actor_id'],
      ['lone low surrogate', ev(`"actor_id":"\\udc00b"`), 'actor_id'],
      ['reversed pair', ev(`"actor_id":"\\udc00\\ud800"`), 'actor_id'],
      ['lone surrogate in an event_data value', ev(`"event_data":{"k":"${lone}"}`), 'event_data.k'],
      [
        'lone surrogate in an event_data key',
        ev(`"event_data":{"a":{"k${lone}":1}}`),
        'event_data.a["k\\udbff"]',
      ],
      [
        'lone surrogate deep in an array',
        ev(`"event_data":{"a":[1,["${lone}"]]}`),
        'event_data.a[1][0]',
      ],
      ['NUL in a field', ev(`"actor_id":"a\\u0000"`), 'actor_id'],
      ['NUL in an event_data key', ev(`"event_data":{"\\u0000":1}`), 'event_data["\\u0000"]'],
      ['noncharacter U+FFFE', ev(`"actor_id":"\\ufffe"`), 'actor_id'],
      ['noncharacter U+FDD0 (literal)', ev(`"actor_id":"\ufdd0"`), 'actor_id'],
      [
        'noncharacter U+10FFFF (escaped pair)',
        ev(`"event_data":{"k":"\\udbff\\udfff"}`),
        'event_data.k',
      ],
    ];
    for (const [what, json, field] of cases) await refused(what, write(json), field);
    await refused(
      'batch: the bad event is named',
      send('/api/v1/audit/events/batch', { body: `[${JSON.stringify(base)},${cases[1]![1]}]` }),
      '[1].actor_id',
    );
    // Bytes that are not UTF-8 are refused, not stored as U+FFFD.
    const prefix = Buffer.from(`{${JSON.stringify(base).slice(1, -1)},"actor_id":"`);
    const withBytes = (b: number[]) => Buffer.concat([prefix, Buffer.from(b), Buffer.from('"}')]);
    assert.equal((await write(withBytes([0x7a])))?.status, 201, 'control: the same bytes, valid');
    for (const b of [[0xed, 0xa0, 0x80], [0xff], [0xc0, 0xaf]])
      await refused(`bytes ${b}`, send('/api/v1/audit/events', { body: withBytes(b) }), '(body)');
    // Every other endpoint that takes strings.
    await refused(
      'verify-chain',
      send('/api/v1/audit/verify-chain', { body: `{"correlation_id":"sh${lone}"}` }),
      'correlation_id',
    );
    await refused(
      'legal hold reason',
      send('/api/v1/audit/legal-hold', { body: `{"correlation_id":"x","reason":"r\\u0000"}` }),
      'reason',
    );
    await refused(
      'query filter %00',
      send('/api/v1/audit/events?correlation_id=a%00b'),
      'correlation_id',
    );
    await refused(
      'query filter surrogate',
      send('/api/v1/audit/events?actor_id=%ED%A0%80'),
      '(query)',
    );
    await refused('query filter %FF', send('/api/v1/audit/events?actor_id=a%FFb'), '(query)');
    assert.equal((await send('/api/v1/audit/events?actor_id=%F0%9F%98%80')).status, 200, 'control');
    await refused(
      'export filter %00',
      send('/api/v1/audit/export?event_category=%00'),
      'event_category',
    );
    await refused(
      'legal hold release %00',
      send('/api/v1/audit/legal-hold/a%00b', { method: 'DELETE' }),
      'correlation_id',
    );
    await refused(
      'Idempotency-Key not visible ASCII',
      send('/api/v1/audit/events', {
        body: JSON.stringify(base),
        headers: { 'idempotency-key': 'caf\u00e9' },
      }),
      'Idempotency-Key',
    );
    // Positive controls: well-formed text the checks must not catch, stored and verified as sent.
    const fine = {
      ...base,
      actor_id: 'zoë 😀 \u00a0\t',
      event_data: { '😀': ['\ud83d\ude00', 'line\nbreak', '\u0001', 'ｆｕｌｌ'], 'k\\u0000': 'x' },
    };
    const ok = await send('/api/v1/audit/events', { body: JSON.stringify(fine) });
    assert.equal(ok.status, 201, ok.text);
    const escaped = ev(`"actor_id":"\\ud83d\\ude00"`); // a pair written as escapes
    assert.equal((await write(escaped)).status, 201);
    const q = await send('/api/v1/audit/events?correlation_id=shared&limit=10', { token: 'tok-a' });
    const stored = (JSON.parse(q.text) as { data: Array<Record<string, unknown>> }).data;
    assert.ok(stored.some((e) => e.actor_id === fine.actor_id));
    assert.ok(stored.some((e) => JSON.stringify(e.event_data) === JSON.stringify(fine.event_data)));
    const v = await verifyShared();
    assert.deepEqual({ ok: v.is_valid, n: v.events_checked }, { ok: true, n: 4 });
  });

  test('nesting: event_data deeper than the limit is 400 (10k levels too); every route survives 1M levels', async () => {
    const nest = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    const withData = (d: string) => `{${JSON.stringify(base).slice(1, -1)},"event_data":${d}}`;
    // event_data itself is level 1.
    const okDepth = await send('/api/v1/audit/events', {
      body: withData(nest(MAX_EVENT_DATA_DEPTH)),
    });
    assert.equal(okDepth.status, 201, `control: ${okDepth.text}`);
    await refused(
      'one level more',
      send('/api/v1/audit/events', { body: withData(nest(MAX_EVENT_DATA_DEPTH + 1)) }),
      'event_data',
    );
    await refused(
      '10k levels',
      send('/api/v1/audit/events', { body: withData(nest(10_000)) }),
      'event_data',
    );
    const arrays = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    await refused(
      '10k arrays in a batch',
      send('/api/v1/audit/events/batch', { body: `[${withData(`{"a":${arrays(10_000)}}`)}]` }),
      '[0].event_data',
    );
    const deep = arrays(1_000_000);
    for (const path of [
      '/api/v1/audit/events',
      '/api/v1/audit/events/batch',
      '/api/v1/audit/verify-chain',
      '/api/v1/audit/legal-hold',
    ])
      await refused(`${path} with a 1M-deep body`, send(path, { body: deep }));
    await refused(
      'deep value in an unknown field',
      send('/api/v1/audit/verify-chain', { body: `{"correlation_id":"x","y":${deep}}` }),
    );
    await refused(
      'deep event_data key',
      send('/api/v1/audit/events', { body: withData(`{"a":${deep}}`) }),
      'event_data',
    );
    assert.equal((await verifyShared()).is_valid, true);
  });

  test('timestamps: bounded to now-2555d..now+5min, year 0000 and 9999 refused, and writes never create partitions', async () => {
    const p0 = await partitions();
    const at = (ts: string, extra: object = {}) =>
      send('/api/v1/audit/events', {
        body: JSON.stringify({ ...base, correlation_id: 'ts', event_timestamp: ts, ...extra }),
      });
    for (const ts of [
      '0000-01-01T00:00:00Z',
      '0001-01-01T00:00:00+01:00',
      '1970-01-01T00:00:00Z',
      '9999-12-31T23:59:59Z',
      new Date(Date.now() + 3_600_000).toISOString(),
      new Date(Date.now() - 2556 * DAY).toISOString(),
    ])
      await refused(ts, at(ts), 'event_timestamp');
    await refused(
      'older than its own retention',
      at(new Date(Date.now() - 3 * DAY).toISOString(), { retention_days: 2 }),
      'event_timestamp',
    );
    // Controls: a minute ahead (clock skew), and one event in each of 40 past months.
    assert.equal((await at(new Date(Date.now() + 60_000).toISOString())).status, 201);
    const now = new Date();
    const months = Array.from({ length: 40 }, (_, i) => ({
      ...base,
      correlation_id: 'ts',
      event_timestamp: new Date(
        Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1 - i, 15),
      ).toISOString(),
    }));
    const b = await send('/api/v1/audit/events/batch', { body: JSON.stringify(months) });
    assert.equal(b.status, 201, b.text);
    assert.equal(await partitions(), p0, 'no partition created by a write');
    const v = await send('/api/v1/audit/verify-chain', { body: '{"correlation_id":"ts"}' });
    assert.deepEqual(JSON.parse(v.text).events_checked, 41);
    assert.equal(JSON.parse(v.text).is_valid, true);
    // Reads: since/until outside years 1..9999 (as the database takes them) are 400.
    for (const q of ['since=0000-01-01T00:00:00Z', 'until=0001-01-01T00:30:00%2B01:00'])
      await refused(q, send(`/api/v1/audit/events?${q}`), q.split('=')[0]);
    assert.equal((await send('/api/v1/audit/events?since=0001-01-01T00:00:00Z')).status, 200);
    await refused(
      'export since 0000',
      send('/api/v1/audit/export?since=0000-06-01T00:00:00Z'),
      'since',
    );
  });

  test('cursors: only what the store issued', async () => {
    const cursor = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    for (const c of [
      cursor(['2024-01-01T00:00:00.000Z', '-'.repeat(36)]),
      cursor(['0000-01-01T00:00:00.000Z', '00000000-0000-0000-0000-000000000000']),
      cursor(['Tue Jan 01 2024', '00000000-0000-0000-0000-000000000000']),
      cursor(['2024-01-01T00:00:00.000Z\u0000', '00000000-0000-0000-0000-000000000000']),
    ])
      await refused(c, send(`/api/v1/audit/events?cursor=${c}`), 'cursor');
    const ok = cursor(['2024-01-01T00:00:00.000Z', '00000000-0000-0000-0000-000000000000']);
    assert.equal((await send(`/api/v1/audit/events?cursor=${ok}`)).status, 200);
  });

  test('a store configured for a wider window takes older events, and partitions come from the job', async () => {
    const wide = await startAuditStore({
      db,
      host: '127.0.0.1',
      port: 0,
      auth: { verifier, authorizer },
      authz: { namespace: 'audit' },
      retentionIntervalMs: 0,
      maxEventAgeMs: 36500 * DAY,
      maxClockSkewMs: 40 * DAY,
    });
    try {
      const old = new Date(Date.now() - 20 * 365 * DAY).toISOString();
      const body = (ts: string) =>
        JSON.stringify({
          ...base,
          correlation_id: 'wide',
          event_timestamp: ts,
          retention_days: 36500,
        });
      const r = await fetch(new URL('/api/v1/audit/events', wide.url), {
        method: 'POST',
        headers: { authorization: 'Bearer tok-a', 'content-type': 'application/json' },
        body: body(old),
      });
      assert.equal(r.status, 201, await r.text());
      const soon = await fetch(new URL('/api/v1/audit/events', wide.url), {
        method: 'POST',
        headers: { authorization: 'Bearer tok-a', 'content-type': 'application/json' },
        body: body(new Date(Date.now() + 30 * DAY).toISOString()),
      });
      assert.equal(soon.status, 201);
      // The job made partitions up to the latest accepted timestamp: that event has one.
      const where = await db.query<{ p: string }>(
        `SELECT tableoid::regclass::text AS p FROM audit_events WHERE correlation_id = 'wide' ORDER BY event_timestamp`,
      );
      assert.equal(where.rows[0]!.p, 'audit_events_default', 'old months share the default');
      assert.match(where.rows[1]!.p, /^audit_events_p\d{6}$/);
    } finally {
      await wide.close();
    }
    // The default store still refuses what the wide one took.
    await refused(
      'default window',
      send('/api/v1/audit/events', {
        body: JSON.stringify({
          ...base,
          event_timestamp: new Date(Date.now() - 20 * 365 * DAY).toISOString(),
          retention_days: 36500,
        }),
      }),
      'event_timestamp',
    );
  });
});

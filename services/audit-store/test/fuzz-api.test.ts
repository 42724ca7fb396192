// Property-based fuzzing of every endpoint that takes input from the network (fast-check):
// random and mutated bodies, query strings and headers. Properties: the store never answers
// 5xx to bad input, every error is RFC 7807 problem+json, and a request that is not answered
// 201 writes nothing (the event count only moves by what 201 answers acknowledged).
// PRECINCT_FUZZ_RUNS sets the number of requests per property; PRECINCT_FUZZ_SEED replays one.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { Authorizer, ServiceAccountIdentity, TokenVerifier } from '@precinct/kube';
import { startAuditStore, type AuditStore } from '../src/server.js';
import { createPgliteDb, type Db } from '../src/db.js';
import { eventInputSchema } from '../src/events.js';

const RUNS = Number(process.env.PRECINCT_FUZZ_RUNS ?? 150);
const SEED = process.env.PRECINCT_FUZZ_SEED ? Number(process.env.PRECINCT_FUZZ_SEED) : undefined;

const verifier: TokenVerifier = {
  async verify(token) {
    if (token !== 'tok') throw Object.assign(new Error('bad'), { code: 'ERR_TOKEN_SIGNATURE' });
    return {
      username: 'system:serviceaccount:apps:fuzzer',
      groups: [],
      namespace: 'apps',
      serviceAccountName: 'fuzzer',
      audiences: ['data-storage-service'],
      extra: {},
      source: 'jwks',
    } satisfies ServiceAccountIdentity;
  },
};
const authorizer: Authorizer = { authorize: async () => ({ allowed: true, cached: false }) };

const valid = {
  event_type: 'fuzz.event',
  event_category: 'fuzz',
  event_action: 'poke',
  event_outcome: 'success',
  correlation_id: 'fuzz',
};

/** Any JSON value, with the strings that tend to break things over-represented. */
const nasty = fc.oneof(
  fc.constantFrom('', '\u0000', 'a\u0000b', '\ud800', '💥', ' ', 'x'.repeat(300), '1e309', '-0'),
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.constant({}),
);
const jsonValue = fc.oneof(nasty, fc.jsonValue({ maxDepth: 3 }));
const fieldName = fc.oneof(
  fc.constantFrom(
    // Every accepted field, plus attribution columns a client must not set and names that
    // poison prototypes.
    ...Object.keys(eventInputSchema.properties),
    'written_by',
    'on_behalf_of',
    '__proto__',
    'constructor',
  ),
  fc.string({ maxLength: 12 }),
);
/** A valid event with a few fields set, replaced or deleted at random. */
const mutatedEvent = fc
  .array(fc.tuple(fieldName, fc.option(jsonValue, { nil: undefined })), { maxLength: 4 })
  .map((edits) => {
    const e: Record<string, unknown> = { ...valid };
    for (const [k, v] of edits) {
      if (v === undefined) delete e[k];
      else
        Object.defineProperty(e, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
    }
    return e;
  });
const body = fc.oneof(
  mutatedEvent,
  fc.array(mutatedEvent, { maxLength: 5 }),
  jsonValue,
  fc.string({ maxLength: 60 }).map((s) => ({ raw: s })),
);

describe('fuzzing the audit store API', () => {
  let store: AuditStore;
  let db: Db;
  const count = async () =>
    Number(
      (await db.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_events')).rows[0]!.n,
    );

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

  const send = async (
    path: string,
    method: string,
    payload: unknown,
    headers: Record<string, string> = {},
  ) => {
    const raw =
      payload !== null && typeof payload === 'object' && 'raw' in (payload as object)
        ? String((payload as { raw: unknown }).raw)
        : JSON.stringify(payload);
    const res = await fetch(new URL(path, store.url), {
      method,
      headers: { 'content-type': 'application/json', authorization: 'Bearer tok', ...headers },
      ...(method === 'GET' || method === 'DELETE' ? {} : { body: raw }),
    });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', text };
  };

  const checkAnswer = (r: { status: number; type: string; text: string }, what: string) => {
    assert.ok(r.status < 500, `${what}: ${r.status} ${r.text.slice(0, 300)}`);
    if (r.status >= 400) {
      assert.match(r.type, /^application\/problem\+json/, what);
      const p = JSON.parse(r.text) as { status: number; title: string };
      assert.equal(p.status, r.status, what);
      assert.equal(typeof p.title, 'string', what);
    }
  };

  test('positive control: the unmutated event is accepted and counted', async () => {
    const before = await count();
    const r = await send('/api/v1/audit/events', 'POST', valid);
    assert.equal(r.status, 201, r.text);
    assert.equal(await count(), before + 1);
  });

  test('write routes: no 5xx, problem+json errors, and nothing stored unless 201', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/api/v1/audit/events', '/api/v1/audit/events/batch'),
        body,
        fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
        async (path, payload, idem) => {
          const before = await count();
          const headers: Record<string, string> = {};
          // Header values must be ByteStrings to be sent at all.
          if (idem !== undefined && /^[\x20-\x7e]*$/.test(idem)) headers['idempotency-key'] = idem;
          const r = await send(path, 'POST', payload, headers);
          checkAnswer(r, `${path} ${JSON.stringify(payload).slice(0, 200)}`);
          const after = await count();
          if (r.status === 201) {
            const n = path.endsWith('batch')
              ? (JSON.parse(r.text) as { event_ids: string[] }).event_ids.length
              : 1;
            // A replayed idempotent request acknowledges events stored earlier.
            assert.ok(after - before === n || after === before, `${after - before} vs ${n}`);
          } else {
            assert.equal(after, before, `status ${r.status} wrote ${after - before} events`);
          }
        },
      ),
      { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) },
    );
  });

  test('read and control routes: no 5xx and problem+json errors for any input', async () => {
    const query = fc
      .array(
        fc.tuple(
          fc.oneof(
            fc.constantFrom(
              'limit',
              'offset',
              'cursor',
              'since',
              'until',
              'correlation_id',
              'event_type',
              'written_by',
              'severity',
            ),
            fc.string({ maxLength: 8 }),
          ),
          fc.oneof(
            fc.string({ maxLength: 30 }),
            fc.constantFrom('-1', '0', '1001', '99999999999', 'NaN', '2024-13-45', 'e30'),
          ),
        ),
        { maxLength: 4 },
      )
      .map((pairs) => new URLSearchParams(pairs).toString());
    const before = await count();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          query.map((q) => ['GET', `/api/v1/audit/events?${q}`, undefined] as const),
          query.map((q) => ['GET', `/api/v1/audit/export?${q}`, undefined] as const),
          body.map((b) => ['POST', '/api/v1/audit/verify-chain', b] as const),
          body.map((b) => ['POST', '/api/v1/audit/legal-hold', b] as const),
          fc
            .string({ maxLength: 30 })
            .map(
              (s) =>
                ['DELETE', `/api/v1/audit/legal-hold/${encodeURIComponent(s)}`, undefined] as const,
            ),
        ),
        async ([method, path, payload]) => {
          const r = await send(path, method, payload);
          checkAnswer(r, `${method} ${path}`);
        },
      ),
      { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) },
    );
    assert.equal(await count(), before, 'reads and holds never add events');
  });
});

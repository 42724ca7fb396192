// Property-based fuzzing of every endpoint that takes input from the network (fast-check):
// random and mutated bodies, query strings and headers, with the red team's hostile classes
// over-represented: ill-formed UTF-16 (lone surrogates), NUL, noncharacters, bytes that are not
// UTF-8, deep nesting, extreme dates, huge sizes and duplicate keys. Properties: the store
// never answers 5xx to bad input, every error is RFC 7807 problem+json, a request that is not
// answered 201 writes nothing (the event count only moves by what 201 answers acknowledged),
// and whatever was accepted verifies: no input makes a valid chain report tampering.
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

/** Strings of arbitrary UTF-16 code units: lone and reversed surrogates, NUL, noncharacters. */
const codeUnits = fc
  .array(
    fc.oneof(
      fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
      fc.constantFrom('\ud800', '\udbff', '\udc00', '\udfff', '\ud83d\ude00', '\u0000', '\ufffe'),
      fc.constantFrom('\uffff', '\ufdd0', '\u{10ffff}', '\u{1fffe}', 'a', '"', '\\', '\\u0000'),
    ),
    { maxLength: 12 },
  )
  .map((a) => a.join(''));
/**
 * Percent-encoding of every UTF-16 code unit as the UTF-8 of its value, lone surrogates too
 * (the CESU-8 bytes a hostile client can send, which encodeURIComponent refuses to make).
 */
const pctEncode = (s: string) =>
  Array.from({ length: s.length }, (_, i) => {
    const c = s.charCodeAt(i);
    const bytes =
      c < 0x80
        ? [c]
        : c < 0x800
          ? [0xc0 | (c >> 6), 0x80 | (c & 63)]
          : [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)];
    return bytes.map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  }).join('');

/** Dates far outside what a store keeps, and strings that look like dates. */
const extremeDate = fc.oneof(
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc
    .integer({ min: -86_400_000 * 3000, max: 86_400_000 * 3000 })
    .map((ms) => new Date(Date.now() + ms).toISOString()),
  fc.constantFrom(
    '0000-01-01T00:00:00Z',
    '0001-01-01T00:00:00+01:00',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999Z',
    '1969-12-31T23:59:59Z',
    '2024-02-30T00:00:00Z',
    '2024-12-31T23:59:60Z',
    '2024-01-01t00:00:00z',
    '2024-01-01T00:00:00.123456789+14:00',
  ),
);
/** A value nested `depth` levels (objects or arrays); shown by its depth in fast-check reports. */
// Deeper values go as text (deepText): this process's JSON.stringify runs out of stack first.
const nested = fc.tuple(fc.integer({ min: 1, max: 2000 }), fc.boolean()).map(([depth, arrays]) => {
  const v = JSON.parse(
    arrays
      ? `${'['.repeat(depth)}${']'.repeat(depth)}`
      : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
  ) as object;
  // fast-check's own printer recurses: without this a failure deep down overflows the stack.
  Object.defineProperty(v, fc.toStringMethod, {
    value: () => `nested(${depth}, ${arrays ? 'arrays' : 'objects'})`,
  });
  return v;
});
/** Sizes around every limit: 255/4096-character fields, 64 KiB event_data, and beyond. */
const huge = fc
  .constantFrom(255, 256, 4096, 4097, 65_536, 70_000, 300_000)
  .map((n) => 'x'.repeat(n));

/** Any JSON value, with the strings that tend to break things over-represented. */
const nasty = fc.oneof(
  fc.constantFrom('', '\u0000', 'a\u0000b', '\ud800', '💥', ' ', 'x'.repeat(300), '1e309', '-0'),
  fc.string({ maxLength: 40 }),
  codeUnits,
  extremeDate,
  nested,
  huge,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.constant({}),
);
const jsonValue = fc.oneof(
  nasty,
  fc.jsonValue({ maxDepth: 3 }),
  // Objects whose keys are hostile too (event_data keys are hashed and stored).
  fc.dictionary(codeUnits, nasty, { maxKeys: 3 }),
);
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
/**
 * A valid event's JSON text with members repeated (JSON.parse keeps the last one; the store
 * must store and hash that one, whatever a duplicate held).
 */
const duplicateKeys = fc
  .array(fc.tuple(fieldName, jsonValue), { minLength: 1, maxLength: 3 })
  .map((dups) => ({
    raw: `{${JSON.stringify(valid).slice(1, -1)}${dups
      .map(([k, v]) => `,${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`)
      .join('')}}`,
  }));
/** A valid event with one member nested up to 500,000 levels deep, as JSON text. */
const deepText = fc
  .tuple(
    fc.integer({ min: 1000, max: 500_000 }),
    fc.constantFrom('event_data', 'version', 'correlation_id', 'x', ''),
    fc.boolean(),
  )
  .map(([depth, field, arrays]) => ({
    raw: `{${JSON.stringify(valid).slice(1, -1)},"${field}":${
      arrays
        ? `${'['.repeat(depth)}${']'.repeat(depth)}`
        : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
    }}`,
    [fc.toStringMethod]: () => `deepText(${depth}, ${field}, ${arrays ? 'arrays' : 'objects'})`,
  }));
/** Request bytes that are not UTF-8 inside an otherwise valid event. */
const badBytes = fc
  .constantFrom([0xff], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80])
  .map((b) => ({
    bytes: Buffer.concat([
      Buffer.from(`{${JSON.stringify(valid).slice(1, -1)},"actor_id":"`),
      Buffer.from(b),
      Buffer.from('"}'),
    ]),
  }));
const body = fc.oneof(
  mutatedEvent,
  fc.array(mutatedEvent, { maxLength: 5 }),
  jsonValue,
  fc.string({ maxLength: 60 }).map((s) => ({ raw: s })),
  duplicateKeys,
  badBytes,
  deepText,
  // A batch over the limit, and a body over 8 MiB.
  fc.constant({ raw: JSON.stringify(Array.from({ length: 1001 }, () => valid)) }),
  fc.constant({ raw: `[${'"x",'.repeat(2_200_000)}"x"]` }),
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
      payload !== null && typeof payload === 'object' && 'bytes' in (payload as object)
        ? (payload as { bytes: Buffer }).bytes
        : payload !== null && typeof payload === 'object' && 'raw' in (payload as object)
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
        fc.option(
          fc.oneof(
            fc.string({ maxLength: 20 }),
            fc.string({ unit: 'binary', maxLength: 20 }),
            fc.constantFrom('k'.repeat(255), 'k'.repeat(256), '"quoted"', '"', 'caf\u00e9'),
          ),
          { nil: undefined },
        ),
        async (path, payload, idem) => {
          const before = await count();
          const headers: Record<string, string> = {};
          // Header values must be ByteStrings to be sent at all (latin1 beyond ASCII is).
          if (idem !== undefined && /^[\x20-\x7e\x80-\xff]*$/.test(idem))
            headers['idempotency-key'] = idem;
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

  test('every chain the fuzzing wrote verifies: no input makes a valid chain report tampering', async () => {
    const corrs = (
      await db.query<{ c: string }>('SELECT DISTINCT correlation_id AS c FROM audit_events')
    ).rows.map((r) => r.c);
    assert.ok(corrs.includes('fuzz'), 'control: the fuzzing wrote events');
    for (const c of corrs) {
      const r = await send('/api/v1/audit/verify-chain', 'POST', { correlation_id: c });
      assert.equal(r.status, 200, r.text);
      const v = JSON.parse(r.text) as { is_valid: boolean; events_checked: number };
      assert.ok(v.is_valid && v.events_checked > 0, `${JSON.stringify(c)}: ${r.text}`);
    }
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
            codeUnits,
            extremeDate,
            fc.constantFrom('-1', '0', '1001', '99999999999', 'NaN', '2024-13-45', 'e30', '\u0000'),
            fc.constantFrom('x'.repeat(256), 'x'.repeat(100_000)),
          ),
        ),
        { maxLength: 4 },
      )
      .chain((pairs) =>
        fc.oneof(
          fc.constant(new URLSearchParams(pairs).toString()),
          // The same pairs percent-encoded code unit by code unit (lone surrogates included),
          // and percent signs that decode to nothing.
          fc.constant(pairs.map(([k, v]) => `${pctEncode(k)}=${pctEncode(v)}`).join('&')),
          fc.constantFrom('correlation_id=%', 'actor_id=%zz', 'written_by=%FF', 'namespace=%C0%AF'),
        ),
      );
    const before = await count();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          query.map((q) => ['GET', `/api/v1/audit/events?${q}`, undefined] as const),
          query.map((q) => ['GET', `/api/v1/audit/export?${q}`, undefined] as const),
          body.map((b) => ['POST', '/api/v1/audit/verify-chain', b] as const),
          body.map((b) => ['POST', '/api/v1/audit/legal-hold', b] as const),
          fc
            .oneof(fc.string({ maxLength: 30 }), codeUnits, huge)
            .map((s) => ['DELETE', `/api/v1/audit/legal-hold/${pctEncode(s)}`, undefined] as const),
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

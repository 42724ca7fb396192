import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  KubeAuthError,
  KubeUnavailableError,
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
import { AuditClient, verifyExport } from '@precinct/audit-client';
import { startAuditStore, type AuditStore } from '../src/server.js';

// A stand-in verifier/authorizer behind the real @precinct/kube Fastify plugin; the kube-dev
// end-to-end test is still to come.
const ids: Record<string, string> = { 'tok-writer': 'writer', 'tok-reader': 'reader' };
let kubeDown = false;
const verifier: TokenVerifier = {
  async verify(token) {
    if (kubeDown) throw new KubeUnavailableError('down');
    const name = ids[token];
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
  async authorize(user, attrs) {
    const verb = attrs.verb;
    const ok =
      'resource' in attrs &&
      attrs.resource === 'services' &&
      attrs.name === 'data-storage-service' &&
      attrs.namespace === 'audit' &&
      (verb === 'get' || user.username.endsWith(':writer'));
    return { allowed: ok, cached: false };
  },
};

const event = {
  event_type: 'gateway.request',
  event_category: 'gateway',
  event_action: 'proxy',
  event_outcome: 'success' as const,
  correlation_id: 'corr-api',
  actor_type: 'user',
  actor_id: 'alice',
  event_data: { path: '/x' },
};

describe('audit store API', () => {
  let store: AuditStore;
  const call = (path: string, init: RequestInit & { token?: string; json?: unknown } = {}) =>
    fetch(new URL(path, store.url), {
      ...init,
      headers: {
        ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        ...(init.headers as Record<string, string>),
      },
      body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
    });
  let issuer: DelegationIssuer;
  before(async () => {
    issuer = createDelegationIssuer({
      issuer: 'https://idp.test',
      alg: 'EdDSA',
      ...(await generateDelegationKey('EdDSA')),
    });
    store = await startAuditStore({
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
  });
  after(() => store.close());

  test('round trip: write, batch, query with cursor, verify', async () => {
    const r = await call('/api/v1/audit/events', {
      method: 'POST',
      token: 'tok-writer',
      json: event,
    });
    assert.equal(r.status, 201);
    const one = (await r.json()) as { event_id: string; written_by: string };
    assert.equal(one.written_by, 'system:serviceaccount:apps:writer');
    const b = await call('/api/v1/audit/events/batch', {
      method: 'POST',
      token: 'tok-writer',
      json: Array.from({ length: 5 }, () => event),
    });
    assert.equal(b.status, 201);
    assert.equal(((await b.json()) as { event_ids: string[] }).event_ids.length, 5);
    const ids: string[] = [];
    let cursor = '';
    for (;;) {
      const q = await call(
        `/api/v1/audit/events?correlation_id=corr-api&limit=4${cursor ? `&cursor=${cursor}` : ''}`,
        {
          token: 'tok-reader',
        },
      );
      assert.equal(q.status, 200);
      const page = (await q.json()) as {
        data: Array<{ event_id: string }>;
        pagination: { next_cursor: string | null };
      };
      ids.push(...page.data.map((e) => e.event_id));
      if (!page.pagination.next_cursor) break;
      cursor = page.pagination.next_cursor;
    }
    assert.equal(new Set(ids).size, 6);
    assert.ok(ids.includes(one.event_id));
    const v = await call('/api/v1/audit/verify-chain', {
      method: 'POST',
      token: 'tok-reader',
      json: { correlation_id: 'corr-api' },
    });
    const vr = (await v.json()) as { is_valid: boolean; events_checked: number };
    assert.deepEqual(
      { s: v.status, ok: vr.is_valid, n: vr.events_checked },
      { s: 200, ok: true, n: 6 },
    );
  });

  test('attribution cannot be spoofed through the body or headers', async () => {
    const bodySpoof = await call('/api/v1/audit/events', {
      method: 'POST',
      token: 'tok-writer',
      json: {
        ...event,
        correlation_id: 'corr-spoof',
        written_by: 'system:serviceaccount:kube-system:admin',
      },
    });
    assert.equal(bodySpoof.status, 400, 'attribution fields are not accepted in the body');
    const r = await call('/api/v1/audit/events', {
      method: 'POST',
      token: 'tok-writer',
      headers: {
        'x-remote-user': 'admin',
        'x-auth-request-user': 'admin',
        'impersonate-user': 'admin',
        'x-spiffe-id': 'spiffe://evil/admin',
      },
      json: { ...event, correlation_id: 'corr-spoof', actor_id: 'admin' },
    });
    assert.equal(r.status, 201);
    const q = await call('/api/v1/audit/events?correlation_id=corr-spoof', { token: 'tok-reader' });
    const [stored] = ((await q.json()) as { data: Array<Record<string, unknown>> }).data;
    assert.equal(stored!.written_by, 'system:serviceaccount:apps:writer');
    assert.equal(stored!.written_by_kind, 'serviceaccount');
    assert.equal(stored!.actor_id, 'admin', "the body's actor is kept as the writer's claim");
  });

  test('delegation over a bearer-token caller: on_behalf_of from a verified token only', async () => {
    const WRITER = 'system:serviceaccount:apps:writer';
    const write = (corr: string, headers: Record<string, string>) =>
      call('/api/v1/audit/events', {
        method: 'POST',
        token: 'tok-writer',
        headers,
        json: { ...event, correlation_id: corr },
      });
    const read = async (corr: string) => {
      const q = await call(`/api/v1/audit/events?correlation_id=${corr}`, { token: 'tok-reader' });
      return ((await q.json()) as { data: Array<Record<string, unknown>> }).data;
    };
    const good = await issuer.issue({ subject: 'carol', actors: [WRITER], audience: 'audit' });
    const ok = await write('corr-dlg', { 'precinct-delegation': good });
    assert.equal(ok.status, 201);
    const [e] = await read('corr-dlg');
    assert.deepEqual(
      { by: e!.written_by, kind: e!.written_by_kind, obo: e!.on_behalf_of },
      { by: WRITER, kind: 'serviceaccount', obo: 'carol' },
    );
    // The reader holds a token naming the writer: presenting it does not make it the writer.
    const stolen = await call('/api/v1/audit/verify-chain', {
      method: 'POST',
      token: 'tok-reader',
      headers: { 'precinct-delegation': good },
      json: { correlation_id: 'corr-dlg' },
    });
    assert.equal(stolen.status, 401);
    const bad = await write('corr-dlg-bad', { 'precinct-delegation': `${good}x` });
    assert.equal(bad.status, 401);
    assert.equal((await read('corr-dlg-bad')).length, 0);
    // No header: no on_behalf_of (control for the header being what sets it).
    await write('corr-dlg-none', {});
    assert.equal((await read('corr-dlg-none'))[0]!.on_behalf_of, null);
    // Public routes ignore the header.
    assert.equal((await call('/healthz', { headers: { 'precinct-delegation': 'x' } })).status, 200);
  });

  test('a delegation header on a store without a delegation verifier is refused, not ignored', async () => {
    const plain = await startAuditStore({
      host: '127.0.0.1',
      port: 0,
      auth: { verifier, authorizer },
      authz: { namespace: 'audit' },
      retentionIntervalMs: 0,
    });
    try {
      const post = (headers: Record<string, string>) =>
        fetch(new URL('/api/v1/audit/events', plain.url), {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer tok-writer',
            ...headers,
          },
          body: JSON.stringify(event),
        });
      assert.equal((await post({ 'precinct-delegation': 'a.b.c' })).status, 401);
      assert.equal((await post({})).status, 201);
    } finally {
      await plain.close();
    }
  });

  test('401 / 403 / 503', async () => {
    const cases: Array<[string, string | undefined, number]> = [
      ['no token', undefined, 401],
      ['bad token', 'nope', 401],
      ['reader cannot write', 'tok-reader', 403],
      ['writer can write (control)', 'tok-writer', 201],
    ];
    for (const [name, token, status] of cases) {
      const r = await call('/api/v1/audit/events', {
        method: 'POST',
        token,
        json: { ...event, correlation_id: 'corr-authz' },
      });
      assert.equal(r.status, status, name);
      if (status >= 400)
        assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/, name);
    }
    const hold = await call('/api/v1/audit/legal-hold', {
      method: 'POST',
      token: 'tok-reader',
      json: { correlation_id: 'x', reason: 'r' },
    });
    assert.equal(hold.status, 403);
    kubeDown = true;
    try {
      const r = await call('/api/v1/audit/events', {
        method: 'POST',
        token: 'tok-writer',
        json: event,
      });
      assert.equal(r.status, 503);
    } finally {
      kubeDown = false;
    }
  });

  test('malformed input: 400 listing each bad field, 413 for oversized bodies', async () => {
    const cases: Array<[string, unknown, string[]]> = [
      [
        'missing required',
        { event_type: 'x' },
        ['event_category', 'event_action', 'event_outcome', 'correlation_id'],
      ],
      [
        'bad enum and type',
        { ...event, event_outcome: 'maybe', duration_ms: -1 },
        ['event_outcome', 'duration_ms'],
      ],
      [
        'bad uuid and timestamp',
        { ...event, parent_event_id: 'x', event_timestamp: 'yesterday' },
        ['parent_event_id', 'event_timestamp'],
      ],
      ['unknown field', { ...event, on_behalf_of: 'x' }, ['on_behalf_of']],
      ['event_data too big', { ...event, event_data: { a: 'x'.repeat(70_000) } }, ['event_data']],
    ];
    for (const [name, body, fields] of cases) {
      const r = await call('/api/v1/audit/events', {
        method: 'POST',
        token: 'tok-writer',
        json: body,
      });
      assert.equal(r.status, 400, name);
      const p = (await r.json()) as { errors: Array<{ field: string }> };
      assert.deepEqual(p.errors.map((x) => x.field).sort(), [...fields].sort(), name);
    }
    const empty = await call('/api/v1/audit/events/batch', {
      method: 'POST',
      token: 'tok-writer',
      json: [],
    });
    assert.equal(empty.status, 400);
    const atomic = await call('/api/v1/audit/events/batch', {
      method: 'POST',
      token: 'tok-writer',
      json: [
        { ...event, correlation_id: 'corr-atomic' },
        { ...event, event_outcome: 'bad' },
      ],
    });
    assert.equal(atomic.status, 400);
    const q = await call('/api/v1/audit/events?correlation_id=corr-atomic', {
      token: 'tok-reader',
    });
    assert.equal(
      ((await q.json()) as { data: unknown[] }).data.length,
      0,
      'batch is all-or-nothing',
    );
    const big = await call('/api/v1/audit/events/batch', {
      method: 'POST',
      token: 'tok-writer',
      headers: { 'content-type': 'application/json' },
      body: `[${'"x",'.repeat(2_200_000)}"x"]`,
    });
    assert.equal(big.status, 413);
  });

  test('export signature verifies and fails when one byte changes', async () => {
    const r = await call('/api/v1/audit/export?correlation_id=corr-api', { token: 'tok-reader' });
    assert.equal(r.status, 200);
    const body = Buffer.from(await r.arrayBuffer());
    const sig = r.headers.get('x-audit-export-signature')!;
    assert.equal(body.toString().trim().split('\n').length, 6);
    verifyExport(body, sig, store.publicKeyPem);
    const changed = Buffer.from(body);
    changed[10] = changed[10]! ^ 1;
    assert.throws(() => verifyExport(changed, sig, store.publicKeyPem), {
      code: 'ERR_EXPORT_SIGNATURE',
    });
  });

  test('legal hold API', async () => {
    const p = await call('/api/v1/audit/legal-hold', {
      method: 'POST',
      token: 'tok-writer',
      json: { correlation_id: 'corr-api', reason: 'case 7' },
    });
    assert.equal(p.status, 201);
    const l = await call('/api/v1/audit/legal-hold', { token: 'tok-reader' });
    assert.deepEqual(
      ((await l.json()) as { holds: Array<{ correlation_id: string }> }).holds.map(
        (h) => h.correlation_id,
      ),
      ['corr-api'],
    );
    assert.equal(
      (await call('/api/v1/audit/legal-hold/corr-api', { method: 'DELETE', token: 'tok-writer' }))
        .status,
      204,
    );
    assert.equal(
      (await call('/api/v1/audit/legal-hold/corr-api', { method: 'DELETE', token: 'tok-writer' }))
        .status,
      404,
    );
  });

  test('client batches, retries, and resolves each write once committed', async () => {
    const client = new AuditClient({
      url: store.url,
      token: () => 'tok-writer',
      batchSize: 7,
      bufferSize: 10,
      flushIntervalMs: 5,
    });
    await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        client.write({ ...event, correlation_id: 'corr-client', event_data: { i } }),
      ),
    );
    await client.close();
    const v = await call('/api/v1/audit/verify-chain', {
      method: 'POST',
      token: 'tok-reader',
      json: { correlation_id: 'corr-client' },
    });
    const vr = (await v.json()) as { is_valid: boolean; events_checked: number };
    assert.deepEqual({ ok: vr.is_valid, n: vr.events_checked }, { ok: true, n: 25 });
    const bad = new AuditClient({ url: store.url, token: () => 'tok-reader' });
    await assert.rejects(bad.write(event), { code: 'ERR_CLIENT_REJECTED' });
    await bad.close();
  });

  test('Idempotency-Key: a retry replays the first 201, a different body is 422, a bad key 400', async () => {
    const count = async (corr: string) => {
      const r = await call(`/api/v1/audit/events?correlation_id=${corr}`, { token: 'tok-reader' });
      return ((await r.json()) as { data: unknown[] }).data.length;
    };
    const batch = [
      { ...event, correlation_id: 'corr-idem' },
      { ...event, correlation_id: 'corr-idem' },
    ];
    const send = (key: string | undefined, body: unknown, path = '/api/v1/audit/events/batch') =>
      call(path, {
        method: 'POST',
        token: 'tok-writer',
        json: body,
        headers: key === undefined ? {} : { 'idempotency-key': key },
      });
    const first = await send('"batch-1"', batch);
    assert.equal(first.status, 201);
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const firstBody = await first.json();
    const again = await send('"batch-1"', batch);
    assert.equal(again.status, 201);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await again.json(), firstBody);
    assert.equal(await count('corr-idem'), 2, 'stored once');
    // Control: without a key, the same body is written again.
    assert.equal((await send(undefined, batch)).status, 201);
    assert.equal(await count('corr-idem'), 4);
    const conflict = await send('"batch-1"', [batch[0]]);
    assert.equal(conflict.status, 422);
    assert.equal(conflict.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.equal(await count('corr-idem'), 4, 'a conflicting reuse writes nothing');
    // The same key on the single-event route is a different request, not a replay.
    assert.equal((await send('"batch-1"', batch[0], '/api/v1/audit/events')).status, 422);
    const single = await send('single-1', batch[0], '/api/v1/audit/events');
    assert.equal(single.status, 201);
    const singleBody = (await single.json()) as { event_id: string };
    const singleAgain = await send('single-1', batch[0], '/api/v1/audit/events');
    assert.deepEqual(
      ((await singleAgain.json()) as { event_id: string }).event_id,
      singleBody.event_id,
    );
    for (const bad of ['', '""', 'a b', 'x'.repeat(256), '"unterminated', 'caf\u00e9']) {
      const r = await send(bad, batch);
      assert.equal(r.status, 400, JSON.stringify(bad));
      await r.arrayBuffer();
    }
    assert.equal(await count('corr-idem'), 5);
  });

  test('Idempotency-Key binds the person too: the same key and body for another person is 422', async () => {
    const WRITER = 'system:serviceaccount:apps:writer';
    const corr = 'corr-idem-person';
    const body = { ...event, correlation_id: corr };
    const as = async (subject: string | undefined, key: string) =>
      call('/api/v1/audit/events', {
        method: 'POST',
        token: 'tok-writer',
        json: body,
        headers: {
          'idempotency-key': key,
          ...(subject
            ? {
                'precinct-delegation': await issuer.issue({
                  subject,
                  actors: [WRITER],
                  audience: 'audit',
                }),
              }
            : {}),
        },
      });
    const people = async () => {
      const q = await call(`/api/v1/audit/events?correlation_id=${corr}&limit=100`, {
        token: 'tok-reader',
      });
      return ((await q.json()) as { data: Array<{ on_behalf_of: string | null }> }).data
        .map((e) => e.on_behalf_of)
        .sort();
    };
    const alice = await as('alice', 'k-person');
    assert.equal(alice.status, 201);
    const aliceReceipt = await alice.json();
    // Positive control: the same person, key and body again is a replay of the first receipt
    // (a fresh delegation token for the same person: the token is not part of the binding).
    const replay = await as('alice', 'k-person');
    assert.equal(replay.status, 201);
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await replay.json(), aliceReceipt);
    // Another person, or none, with the same key and body: a conflict, never alice's receipt.
    for (const other of ['bob', undefined]) {
      const r = await as(other, 'k-person');
      assert.equal(r.status, 422, String(other));
      assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
      await r.arrayBuffer();
    }
    assert.deepEqual(await people(), ['alice'], 'nothing written by the conflicts');
    // ... and bob's event is written under a key of its own; keys without a person still
    // replay among themselves.
    assert.equal((await as('bob', 'k-person-bob')).status, 201);
    assert.equal((await as(undefined, 'k-nobody')).status, 201);
    const again = await as(undefined, 'k-nobody');
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal((await as('carol', 'k-nobody')).status, 422);
    assert.deepEqual(await people(), ['alice', 'bob', null].sort());
  });

  test('a batch whose 201 is lost is retried by the client and stored once', async () => {
    let lose = 1;
    const client = new AuditClient({
      url: store.url,
      token: () => 'tok-writer',
      batchSize: 3,
      flushIntervalMs: 5,
      retryBaseMs: 5,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (lose > 0 && res.status === 201) {
          lose -= 1;
          await res.arrayBuffer();
          throw new TypeError('fetch failed: socket hang up (simulated after the commit)');
        }
        return res;
      },
    });
    await Promise.all(
      [1, 2, 3].map((i) =>
        client.write({ ...event, correlation_id: 'corr-lost', event_data: { i } }),
      ),
    );
    await client.close();
    assert.equal(lose, 0, 'the first response was lost');
    const r = await call('/api/v1/audit/events?correlation_id=corr-lost', { token: 'tok-reader' });
    const data = ((await r.json()) as { data: Array<{ event_data: { i: number } }> }).data;
    assert.deepEqual(data.map((e) => e.event_data.i).sort(), [1, 2, 3]);
  });

  test('every operation in the checked-in OpenAPI document is served', async () => {
    const doc = (await (await call('/openapi.json')).json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    assert.equal(doc.openapi, '3.1.0');
    let n = 0;
    for (const [path, ops] of Object.entries(doc.paths))
      for (const method of Object.keys(ops)) {
        const r = await call(path.replace('{correlation_id}', 'x'), {
          method: method.toUpperCase(),
        });
        // Unauthenticated: protected routes answer 401, public ones 200; never 404.
        assert.ok([200, 401].includes(r.status), `${method} ${path}: ${r.status}`);
        await r.arrayBuffer();
        n += 1;
      }
    assert.equal(n, 13);
  });

  test('health, readiness, metrics', async () => {
    assert.equal((await call('/healthz')).status, 200);
    assert.equal((await call('/readyz')).status, 200);
    assert.match(await (await call('/metrics')).text(), /precinct_audit_events_written_total/);
  });
});

// The platform API's own guard and input checks, on a bare Fastify (the dashboard's session
// guard is not here): with no user on the request every route refuses, with one it answers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { MemoryConsentStore } from '@precinct/token-service';
import { platformApi, type PlatformBackends } from '@precinct/dashboard';

const GPT4 = 'spiffe://td.example/agent/gpt4';
const ROUTES: Array<['GET' | 'POST', string, unknown?]> = [
  ['GET', '/api/platform/capabilities'],
  ['GET', '/api/platform/workloads'],
  ['GET', '/api/platform/audit/events'],
  ['POST', '/api/platform/audit/verify', { correlation_id: 'txn-1' }],
  ['GET', '/api/platform/audit/export'],
  ['GET', '/api/platform/kube/serviceaccounts'],
  ['GET', '/api/platform/nats/clients'],
  ['GET', '/api/platform/consent'],
  ['POST', '/api/platform/consent', { agent: GPT4, granted: true }],
];

type Rotation = Parameters<NonNullable<PlatformBackends['workloads']>['onRotation']>[0];
const rotations = new Set<Rotation>();

const AUDITORS = new Set(['bob']);

async function app(user: string | undefined, consent = new MemoryConsentStore()) {
  const backends: PlatformBackends = {
    workloads: {
      // A backend handing over more than the view needs (here a key) must not leak it.
      list: async () => [
        Object.assign(
          { spiffeId: 'spiffe://td.example/w', serial: '01', notAfter: new Date(0).toISOString() },
          { privateKey: 'PRIVATE-KEY-MATERIAL' },
        ),
      ],
      onRotation: (cb) => {
        rotations.add(cb);
        return () => rotations.delete(cb);
      },
      trust: async () => ({ trustDomain: 'td.example', authorities: [], federation: [] }),
    },
    audit: {
      list: async () => [],
      verifyChain: async (id) => ({
        correlation_id: id,
        is_valid: true,
        events_checked: 0,
        broken_links: [],
        tampered_events: [],
      }),
      export: async () => ({ ndjson: '' }),
    },
    kube: { serviceAccounts: async () => [] },
    nats: { clients: async () => [] },
    consent: { store: consent, agents: async () => [GPT4] },
  };
  const a: FastifyInstance = Fastify();
  a.addHook('onRequest', async (req) => {
    if (user) (req as { user?: string }).user = user;
  });
  await a.register(platformApi, {
    backends,
    personId: (u) => `spiffe://td.example/user/${u}`,
    isAuditor: (req) => AUDITORS.has((req as { user?: string }).user ?? ''),
  });
  return a;
}

describe('platform API', () => {
  test('without a session user every route refuses; with one every route answers', async () => {
    const anon = await app(undefined);
    const bob = await app('bob');
    for (const [method, url, payload] of ROUTES) {
      const opts = { method, url, ...(payload ? { payload: payload as object } : {}) };
      assert.equal((await anon.inject(opts)).statusCode, 401, `${method} ${url} anonymous`);
      assert.equal((await bob.inject(opts)).statusCode, 200, `${method} ${url} as bob (auditor)`);
    }
    await anon.close();
    await bob.close();
  });

  test('the audit routes need the auditor role (control: the auditor is answered)', async () => {
    const alice = await app('alice');
    const bob = await app('bob');
    for (const [method, url, payload] of ROUTES.filter(([, u]) => u.includes('/audit/'))) {
      const opts = { method, url, ...(payload ? { payload: payload as object } : {}) };
      const refused = await alice.inject(opts);
      assert.equal(refused.statusCode, 403, `${method} ${url} as alice`);
      assert.match(refused.headers['content-type'] as string, /^application\/problem\+json/);
      assert.equal((await bob.inject(opts)).statusCode, 200, `${method} ${url} as bob`);
    }
    // The rest stays open to every person.
    const caps = await alice.inject({ method: 'GET', url: '/api/platform/capabilities' });
    assert.equal(caps.statusCode, 200);
    assert.equal(caps.json().audit, false);
    assert.equal(
      (await bob.inject({ method: 'GET', url: '/api/platform/capabilities' })).json().audit,
      true,
    );
    await alice.close();
    await bob.close();
  });

  test('consent is the session person’s; bad bodies and unknown agents are refused', async () => {
    const consent = new MemoryConsentStore();
    const a = await app('alice', consent);
    const post = (payload: object) =>
      a.inject({ method: 'POST', url: '/api/platform/consent', payload });
    assert.equal((await post({ agent: GPT4, granted: true })).statusCode, 200);
    assert.equal(await consent.mayAct('spiffe://td.example/user/alice', GPT4), true);
    assert.equal(await consent.mayAct('spiffe://td.example/user/bob', GPT4), false);
    for (const bad of [
      { agent: GPT4 },
      { agent: GPT4, granted: 'yes' },
      { agent: 'spiffe://td.example/agent/other', granted: true },
      { agent: 'https://evil.example', granted: true },
      { agent: GPT4, granted: true, person: 'spiffe://td.example/user/bob' },
    ]) {
      assert.equal((await post(bad)).statusCode, 400, JSON.stringify(bad));
    }
    assert.equal(await consent.mayAct('spiffe://td.example/user/bob', GPT4), false);
    assert.equal((await post({ agent: GPT4, granted: false })).statusCode, 200);
    assert.equal(await consent.mayAct('spiffe://td.example/user/alice', GPT4), false);
    await a.close();
  });

  test('audit filters are checked before reaching the backend', async () => {
    const a = await app('bob');
    const get = (q: string) => a.inject({ method: 'GET', url: `/api/platform/audit/events?${q}` });
    assert.equal(
      (await get('outcome=success&actor=spiffe://td.example/agent/gpt4')).statusCode,
      200,
    );
    for (const q of ['outcome=maybe', 'actor=%20x', 'correlation_id=' + 'x'.repeat(300)]) {
      assert.equal((await get(q)).statusCode, 400, q);
    }
    await a.close();
  });

  test('rotations reach the browser over SSE, and the subscription ends with the stream', async () => {
    const a = await app('alice');
    const url = await a.listen({ host: '127.0.0.1', port: 0 });
    const ac = new AbortController();
    const res = await fetch(`${url}/api/platform/workloads/rotations`, { signal: ac.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    assert.match(text, /: connected/);
    assert.equal(rotations.size, 1);
    const w = {
      spiffeId: 'spiffe://td.example/w',
      serial: '02',
      notAfter: new Date(0).toISOString(),
    };
    for (const cb of rotations) cb(w);
    while (!text.includes('event: rotation'))
      text += new TextDecoder().decode((await reader.read()).value);
    assert.match(text, /"serial":"02"/);
    // Closing the dashboard with the stream still open ends it and unsubscribes.
    await a.close();
    assert.equal(rotations.size, 0);
    assert.equal((await reader.read()).done, true);
    ac.abort();
  });

  test('only the declared fields reach the browser', async () => {
    const a = await app('alice');
    const r = await a.inject({ method: 'GET', url: '/api/platform/workloads' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().workloads[0].spiffeId, 'spiffe://td.example/w');
    assert.doesNotMatch(r.body, /PRIVATE-KEY/);
    await a.close();
  });
});

// People's third-party tokens through the dashboard (issue 13), against real Vault, the real
// egress broker and token service: a person stores a token with PUT /api/secrets/github, an
// agent acting for them calls the stand-in API through the broker, which injects it. The token
// never comes back through the BFF; another person cannot use it; an agent without delegation
// is refused. Every refusal has its positive control.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { peerSkip } from '@precinct/testing';
import { startBrowserWorld, type BrowserWorld } from './world.js';
import { startPeopleTokensRig, type PeopleTokensRig } from './people-tokens.js';

const skip = peerSkip('vault');
const ALICE_TOKEN = `ghp_alice_${randomBytes(12).toString('hex')}`;

describe("people's third-party tokens through the dashboard", { skip }, () => {
  let w: BrowserWorld;
  let rig: PeopleTokensRig;
  let base: string;
  /** Every body the BFF sent in this test, to show the token never came back. */
  const bodies: string[] = [];

  before(async () => {
    w = await startBrowserWorld(async (world) => {
      const r = await startPeopleTokensRig(world);
      rig = r.rig;
      return r.dashboard;
    });
    base = w.dashboard.url;
  });
  after(async () => {
    await w?.close();
    await rig?.close();
  });

  async function login(user: string): Promise<string> {
    const res = await fetch(`${base}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: base },
      body: JSON.stringify({ username: user, password: w.world.passwords[user] }),
    });
    assert.equal(res.status, 200);
    return res.headers.getSetCookie()[0]!.split(';')[0]!;
  }

  async function api(cookie: string, method: string, path: string, body?: unknown, origin = base) {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        cookie,
        origin,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    bodies.push(text, JSON.stringify([...res.headers]));
    return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  }

  test('alice stores her token; the BFF answers metadata only; Vault holds it under her path', async () => {
    const alice = await login('alice');
    const before = await api(alice, 'GET', '/api/secrets');
    assert.equal(before.status, 200);
    assert.deepEqual(before.json(), {
      connected: true,
      providers: [{ provider: 'github', stored: false }],
    });
    const put = await api(alice, 'PUT', '/api/secrets/github', { token: ALICE_TOKEN });
    assert.equal(put.status, 200, put.text);
    const shown = put.json();
    assert.equal(shown.stored, true);
    assert.ok(!Number.isNaN(Date.parse(String(shown.updated_at))));
    assert.deepEqual(Object.keys(shown).sort(), ['provider', 'stored', 'updated_at']);
    const got = await api(alice, 'GET', '/api/secrets/github');
    assert.equal(got.json().stored, true);
    const kv = await rig.admin.request('GET', 'secret/data/people/alice/github');
    assert.equal((kv.data as { data: { token: string } }).data.token, ALICE_TOKEN);
    // The person's own store was audited by the broker under its txn.
    assert.ok(
      rig.audits.some(
        (e) => e.action === 'store' && e.outcome === 'stored' && e.person === 'alice',
      ),
    );
  });

  test('an agent acting for alice calls the API with her token, never seeing it', async () => {
    const before = rig.seen.length;
    const r = await rig.agentCall('gpt4', 'alice');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { login: 'octocat', path: '/user' });
    assert.equal(rig.seen.length, before + 1);
    assert.equal(rig.seen.at(-1), `Bearer ${ALICE_TOKEN}`);
    assert.ok(!r.body.includes(ALICE_TOKEN));
    const e = rig.audits.at(-1)!;
    assert.equal(e.outcome, 'released');
    assert.equal(e.agent, 'spiffe://demo.example.com/agent/gpt4');
  });

  test('without delegation the agent is refused (control above: with it, released)', async () => {
    const before = rig.seen.length;
    const r = await rig.agentCallWithoutDelegation('gpt4', 'alice');
    assert.equal(r.status, 403);
    assert.equal(rig.seen.length, before, 'the API was not called');
    assert.equal(rig.audits.at(-1)?.reason, 'no_delegation');
    // An agent alice never allowed cannot even get a delegated token.
    await assert.rejects(rig.agentCall('claude', 'alice'), /token service answered 400/);
    assert.equal(rig.seen.length, before);
  });

  test("bob cannot see or use alice's token (control: alice's is stored and used above)", async () => {
    const bob = await login('bob');
    const st = await api(bob, 'GET', '/api/secrets/github');
    assert.equal(st.status, 200);
    assert.equal(st.json().stored, false, "bob's view is his own");
    const before = rig.seen.length;
    const r = await rig.agentCall('gpt4', 'bob');
    assert.equal(r.status, 403, 'bob stored nothing: nothing is released for him');
    assert.equal(rig.seen.length, before);
    // Removing: bob's DELETE touches his own path only.
    assert.equal((await api(bob, 'DELETE', '/api/secrets/github')).status, 200);
    assert.equal(
      (await rig.agentCall('gpt4', 'alice')).status,
      200,
      "alice's token is still there",
    );
  });

  test('bad input and cross-site requests change nothing (control: the valid request above)', async () => {
    const alice = await login('alice');
    const cases: Array<[string, string, unknown, number, string?]> = [
      ['PUT', '/api/secrets/github', { token: '' }, 400],
      ['PUT', '/api/secrets/github', { token: 'has space' }, 400],
      ['PUT', '/api/secrets/github', { token: 'x', person: 'bob' }, 400],
      ['PUT', '/api/secrets/github', { token: 'x'.repeat(9000) }, 413],
      ['PUT', '/api/secrets/gitlab', { token: 'glpat-x' }, 404],
      ['PUT', '/api/secrets/github', { token: 'ghp_evil' }, 403, 'https://evil.example'],
      ['DELETE', '/api/secrets/github', undefined, 403, 'https://evil.example'],
    ];
    for (const [method, path, body, status, origin] of cases) {
      const r = await api(alice, method, path, body, origin);
      assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)?.slice(0, 40)}`);
      assert.match(JSON.stringify(r.json()), /"status":/, 'problem+json');
    }
    const none = await fetch(`${base}/api/secrets/github`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', origin: base },
      body: JSON.stringify({ token: 'ghp_anon' }),
    });
    assert.equal(none.status, 401, 'no session');
    const kv = await rig.admin.request('GET', 'secret/data/people/alice/github');
    assert.equal((kv.data as { data: { token: string } }).data.token, ALICE_TOKEN);
  });

  test('alice removes her token: the next agent call is refused (control: it was released before)', async () => {
    const alice = await login('alice');
    const del = await api(alice, 'DELETE', '/api/secrets/github');
    assert.equal(del.status, 200);
    assert.deepEqual(del.json(), { provider: 'github', stored: false });
    assert.equal((await api(alice, 'GET', '/api/secrets/github')).json().stored, false);
    assert.equal((await rig.agentCall('gpt4', 'alice')).status, 403);
  });

  test('no answer of the BFF ever carried the token', () => {
    assert.ok(bodies.length > 10);
    for (const b of bodies) assert.ok(!b.includes(ALICE_TOKEN));
  });
});

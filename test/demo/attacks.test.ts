// Attacks on the demo, each with its positive control in the same setup: forged identity
// headers, Transaction Tokens from elsewhere, stale or for another document, agents acting
// without or against the person, callers off the allow-list or from another trust domain, the
// policy down, a widening replacement, sessions and CSRF at the dashboard. Then the audit trail.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID, sign } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { TXN_TOKEN_TYP, TXN_TOKEN_TYPE } from '@precinct/delegation';
import { Writable } from 'node:stream';
import { opaServerPolicy, wasmPolicy } from '@precinct/policy';
import { createLogger } from '@precinct/runtime';
import { startDashboard } from '@precinct/dashboard';
import { DEMO_PORTS, MtlsClient, demoPolicyData, pickSvid } from '@precinct/demo';
import { startDemo } from '../../cli/src/demo.js';
import {
  Browser,
  agentId,
  attestAddress,
  clientAs,
  quiet,
  sid,
  startWorld,
  userId,
  TD,
  type World,
} from './support.js';

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';

let world: World;
const clients: MtlsClient[] = [];
const browsers = new Map<string, Browser>();

before(async () => {
  world = await startWorld();
  for (const u of ['alice', 'bob', 'carol']) {
    const b = new Browser(world.demo.urls.dashboard);
    await b.login(u, world.passwords[u]!);
    browsers.set(u, b);
  }
});
after(async () => {
  for (const c of clients) await c.close();
  await world?.close();
});

const client = (c: MtlsClient) => (clients.push(c), c);
const as = (sa: keyof World['sources'], serverId: string) =>
  client(clientAs(world.sources[sa], serverId));
const asAgent = (agent: string, serverId: string) =>
  client(
    new MtlsClient(
      pickSvid(world.sources['agent-service'], agentId(agent)),
      world.sources['agent-service'],
      serverId,
    ),
  );

async function exchange(c: MtlsClient, params: Record<string, string>) {
  const res = await request(`${world.tokenService.url}/token`, {
    dispatcher: c.dispatcher,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: EXCHANGE,
      requested_token_type: TXN_TOKEN_TYPE,
      audience: TD,
      ...params,
    }).toString(),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, string> };
}

/** The person's real Transaction Token, as the dashboard would get it. */
async function personToken(user: string, docs: string[]): Promise<string> {
  const r = await exchange(as('dashboard', world.tokenService.issuer), {
    scope: docs.map((d) => `documents:read:${d}`).join(' '),
    subject_token: world.idp.mint(userId(user)),
    subject_token_type: ID_TOKEN,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.access_token!;
}

/** A token signed with the token service's real current key, with chosen claims. */
async function signed(over: Record<string, unknown>): Promise<string> {
  const key = world.tokenService.keys.current();
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: world.tokenService.issuer,
    sub: userId('alice'),
    aud: TD,
    txn: randomUUID(),
    scope: 'documents:read:DOC-001',
    req_wl: sid('dashboard'),
    iat: now,
    exp: now + 60,
    ...over,
  };
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'ES256', kid: key.kid, typ: TXN_TOKEN_TYP })}.${b64(claims)}`;
  const signature = sign('sha256', Buffer.from(input), {
    key: key.privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${input}.${signature.toString('base64url')}`;
}

const docAccess = (c: MtlsClient, token: string | undefined, doc = 'DOC-001') =>
  c.json(`${world.demo.urls.documentService}/access`, {
    ...(token ? { headers: { 'txn-token': token } } : {}),
    body: { document_id: doc },
  });
const userAccess = (
  token: string | undefined,
  doc = 'DOC-001',
  headers: Record<string, string> = {},
) =>
  as('dashboard', world.demo.spiffeIds.userService).json(`${world.demo.urls.userService}/access`, {
    headers: { ...(token ? { 'txn-token': token } : {}), ...headers },
    body: { document_id: doc },
  });
const body = (r: { body: unknown }) => r.body as Record<string, unknown>;

describe('forged identity headers', () => {
  test('a person header at the dashboard changes nothing: the session decides', async () => {
    const alice = browsers.get('alice')!;
    const forged = await alice.request(
      'POST',
      '/api/access-direct',
      { document_id: 'DOC-003' },
      {
        'x-spiffe-id': userId('bob'),
        'x-remote-user': 'bob',
        'x-auth-request-user': 'bob',
        'impersonate-user': 'bob',
      },
    );
    assert.equal(forged.status, 403);
    assert.equal(forged.body.user, userId('alice'));
    assert.equal(forged.body.reason, 'person_lacks_department');
    // Control: bob himself reads DOC-003.
    const real = await browsers.get('bob')!.request('POST', '/api/access-direct', {
      document_id: 'DOC-003',
    });
    assert.equal(real.status, 200);
    assert.equal(real.body.user, userId('bob'));
  });

  test('a person header at the user service is no token', async () => {
    const r = await userAccess(undefined, 'DOC-001', { 'x-spiffe-id': userId('alice') });
    assert.equal(r.status, 401);
    assert.equal(body(r).title, 'authentication failed');
    const ok = await userAccess(await personToken('alice', ['DOC-001']));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});

describe('Transaction Tokens that do not fit', () => {
  test('a token for another trust domain, or expired, is refused; the same forge fitting is accepted', async () => {
    const userSvc = as('user-service', world.demo.spiffeIds.documentService);
    const now = Math.floor(Date.now() / 1000);
    for (const [name, over] of [
      ['another trust domain', { aud: 'other.example' }],
      ['expired', { iat: now - 400, exp: now - 100 }],
      ['another issuer', { iss: 'spiffe://demo.example.com/ns/demo/sa/intruder' }],
    ] as const) {
      const r = await docAccess(userSvc, await signed(over));
      assert.equal(r.status, 401, name);
      assert.equal(body(r).granted, false, name);
    }
    const ok = await docAccess(userSvc, await signed({}));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });

  test('a token scoped to one document does not open another', async () => {
    const token = await personToken('alice', ['DOC-001']);
    const other = await userAccess(token, 'DOC-002');
    assert.equal(other.status, 401, 'alice may read DOC-002, but not with this token');
    const atDocs = await docAccess(
      as('user-service', world.demo.spiffeIds.documentService),
      token,
      'DOC-002',
    );
    assert.equal(atDocs.status, 401);
    assert.equal(body(atDocs).reason, 'txn_token_scope');
    assert.equal((await userAccess(token, 'DOC-001')).status, 200);
  });
});

describe('agents', () => {
  test('an agent with the person’s own token (no delegation) is refused; through the exchange it works', async () => {
    const token = await personToken('alice', ['DOC-001']);
    const r = await docAccess(asAgent('gpt4', world.demo.spiffeIds.documentService), token);
    assert.equal(r.status, 403);
    assert.equal(body(r).reason, 'actor_not_caller');
    // A delegated token for gpt4 presented by claude is refused just the same.
    const delegated = await exchange(asAgent('gpt4', world.tokenService.issuer), {
      scope: 'documents:read:DOC-001',
      subject_token: token,
      subject_token_type: TXN_TOKEN_TYPE,
    });
    assert.equal(delegated.status, 200);
    const stolen = await docAccess(
      asAgent('claude', world.demo.spiffeIds.documentService),
      delegated.body.access_token,
    );
    assert.equal(stolen.status, 403);
    assert.equal(body(stolen).reason, 'actor_not_caller');
    const own = await docAccess(
      asAgent('gpt4', world.demo.spiffeIds.documentService),
      delegated.body.access_token,
    );
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.equal(body(own).agent, agentId('gpt4'));
  });

  test('an agent the person did not consent to cannot act; a consented one can', async () => {
    const carol = browsers.get('carol')!;
    const r = await carol.request('POST', '/api/access-delegated', {
      agent_id: 'summarizer',
      document_id: 'DOC-004',
    });
    assert.equal(r.status, 403);
    assert.equal(r.body.granted, false);
    assert.equal(r.body.reason, 'delegation_refused');
    const ok = await carol.request('POST', '/api/access-delegated', {
      agent_id: 'claude',
      document_id: 'DOC-004',
    });
    assert.equal(ok.status, 200);
    // Consent withdrawn takes effect on the next request, and granting it again restores it.
    world.consent.withdraw(userId('carol'), agentId('claude'));
    const withdrawn = await carol.request('POST', '/api/access-delegated', {
      agent_id: 'claude',
      document_id: 'DOC-004',
    });
    assert.equal(withdrawn.body.reason, 'delegation_refused');
    world.consent.grant(userId('carol'), [agentId('claude')]);
  });

  test('a replacement that widens the scope is refused; the same scope is granted', async () => {
    const token = await personToken('alice', ['DOC-001']);
    const gpt4 = asAgent('gpt4', world.tokenService.issuer);
    const wide = await exchange(gpt4, {
      scope: 'documents:read:DOC-001 documents:read:DOC-002',
      subject_token: token,
      subject_token_type: TXN_TOKEN_TYPE,
    });
    assert.equal(wide.status, 400);
    assert.equal(wide.body.error, 'invalid_scope');
    const same = await exchange(gpt4, {
      scope: 'documents:read:DOC-001',
      subject_token: token,
      subject_token_type: TXN_TOKEN_TYPE,
    });
    assert.equal(same.status, 200);
  });
});

describe('callers', () => {
  test('workloads off the document service’s allow-list are refused; the user service is not', async () => {
    const token = await personToken('alice', ['DOC-001']);
    for (const sa of ['dashboard', 'policy-service', 'intruder'] as const) {
      const r = await docAccess(as(sa, world.demo.spiffeIds.documentService), token);
      assert.equal(r.status, 403, sa);
      assert.equal(body(r).title, 'authorization failed', sa);
    }
    // The policy service answers the document service only.
    const p = await as('user-service', world.demo.spiffeIds.policyService).json(
      `${world.demo.urls.policyService}/v1/data/demo/authorization/decision`,
      { body: { input: { person: userId('alice'), document: 'DOC-001', action: 'read' } } },
    );
    assert.equal(p.status, 403);
    const ok = await docAccess(as('user-service', world.demo.spiffeIds.documentService), token);
    assert.equal(ok.status, 200);
  });

  test('the agent and user services accept the dashboard only', async () => {
    const token = await personToken('alice', ['DOC-001']);
    const viaIntruder = await as('intruder', world.demo.spiffeIds.agentService).json(
      `${world.demo.urls.agentService}/agents/gpt4/access`,
      { headers: { 'txn-token': token }, body: { document_id: 'DOC-001' } },
    );
    assert.equal(viaIntruder.status, 403);
    const viaDashboard = await as('dashboard', world.demo.spiffeIds.agentService).json(
      `${world.demo.urls.agentService}/agents/gpt4/access`,
      { headers: { 'txn-token': token }, body: { document_id: 'DOC-001' } },
    );
    assert.equal(viaDashboard.status, 200, JSON.stringify(viaDashboard.body));
  });

  test('an SVID of a foreign trust domain gets no connection; ours does', async () => {
    const token = await personToken('alice', ['DOC-001']);
    // Its own SVID, our bundle to check the server: the handshake is refused by the server.
    const foreign = client(
      new MtlsClient(
        world.foreign,
        world.sources['user-service'],
        world.demo.spiffeIds.documentService,
      ),
    );
    await assert.rejects(docAccess(foreign, token));
    const ours = await docAccess(as('user-service', world.demo.spiffeIds.documentService), token);
    assert.equal(ours.status, 200);
  });
});

describe('policy unavailable', () => {
  test('an unreachable policy engine is a deny with 503; the working demo allows the same request', async () => {
    const down = await world.startDemoWith(
      opaServerPolicy({ url: 'http://127.0.0.1:9', timeoutMs: 500 }),
    );
    const b = new Browser(down.urls.dashboard);
    await b.login('alice', world.passwords.alice!);
    const r = await b.request('POST', '/api/access-direct', { document_id: 'DOC-001' });
    assert.equal(r.status, 503);
    assert.equal(r.body.granted, false);
    assert.equal(r.body.reason, 'policy_unavailable');
    const ok = await browsers.get('alice')!.request('POST', '/api/access-direct', {
      document_id: 'DOC-001',
    });
    assert.equal(ok.status, 200);
    await down.close();
  });
});

describe('dashboard sessions and CSRF', () => {
  test('no cookie, a forged cookie, a logged-out cookie: 401; a live session: 200', async () => {
    const anon = new Browser(world.demo.urls.dashboard);
    assert.equal(
      (await anon.request('POST', '/api/access-direct', { document_id: 'DOC-001' })).status,
      401,
    );
    anon.cookie = `precinct_session=${randomBytes(32).toString('base64url')}`;
    assert.equal(
      (await anon.request('POST', '/api/access-direct', { document_id: 'DOC-001' })).status,
      401,
    );
    assert.equal((await anon.request('GET', '/api/auth/me')).status, 401);
    const wrongPw = await anon.request('POST', '/api/auth/login', {
      username: 'alice',
      password: 'guess-guess-guess',
    });
    assert.equal(wrongPw.status, 401);
    assert.equal(wrongPw.headers.get('set-cookie'), null);
    const unknown = await anon.request('POST', '/api/auth/login', {
      username: 'mallory',
      password: 'x',
    });
    assert.equal(unknown.status, 401);

    const b = new Browser(world.demo.urls.dashboard);
    const login = await b.request('POST', '/api/auth/login', {
      username: 'alice',
      password: world.passwords.alice,
    });
    assert.equal(login.status, 200);
    const set = login.headers.get('set-cookie')!;
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
    assert.equal((await b.request('GET', '/api/auth/me')).body.user, 'alice');
    assert.equal(
      (await b.request('POST', '/api/access-direct', { document_id: 'DOC-001' })).status,
      200,
    );
    const old = b.cookie;
    assert.equal((await b.request('POST', '/api/auth/logout')).status, 204);
    b.cookie = old;
    assert.equal(
      (await b.request('POST', '/api/access-direct', { document_id: 'DOC-001' })).status,
      401,
    );
  });

  test('cross-origin POSTs are refused; same-origin ones work', async () => {
    const alice = browsers.get('alice')!;
    const evil = await alice.request(
      'POST',
      '/api/access-direct',
      { document_id: 'DOC-001' },
      {
        origin: 'https://evil.example',
      },
    );
    assert.equal(evil.status, 403);
    // No Origin: only a browser's Sec-Fetch-Site: same-origin is enough.
    const res = async (headers: Record<string, string>) =>
      (
        await fetch(new URL('/api/access-direct', world.demo.urls.dashboard), {
          method: 'POST',
          headers: { 'content-type': 'application/json', cookie: alice.cookie!, ...headers },
          body: JSON.stringify({ document_id: 'DOC-001' }),
        })
      ).status;
    assert.equal(await res({ 'sec-fetch-site': 'cross-site' }), 403);
    assert.equal(await res({}), 403);
    assert.equal(await res({ 'sec-fetch-site': 'same-origin' }), 200);
    // DNS rebinding: a page whose own name resolves here sends a matching Host and Origin.
    const port = new URL(world.demo.urls.dashboard).port;
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        new URL('/api/access-direct', world.demo.urls.dashboard),
        {
          method: 'POST',
          headers: {
            host: `evil.example:${port}`,
            origin: `http://evil.example:${port}`,
            'content-type': 'application/json',
            cookie: alice.cookie!,
          },
        },
        (r) => {
          r.resume();
          resolve(r.statusCode!);
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ document_id: 'DOC-001' }));
    });
    assert.equal(rebound, 403);
    // Login is state-changing too.
    const b = new Browser(world.demo.urls.dashboard);
    const crossLogin = await b.request(
      'POST',
      '/api/auth/login',
      { username: 'alice', password: world.passwords.alice },
      { origin: 'https://evil.example' },
    );
    assert.equal(crossLogin.status, 403);
    assert.equal(
      (await alice.request('POST', '/api/access-direct', { document_id: 'DOC-001' })).status,
      200,
    );
  });

  test('a user_id in the body is refused (400), never believed', async () => {
    const alice = browsers.get('alice')!;
    for (const field of ['user_id', 'user', 'user_spiffe_id']) {
      const r = await alice.request('POST', '/api/access-direct', {
        document_id: 'DOC-003',
        [field]: 'bob',
      });
      assert.equal(r.status, 400, field);
    }
    const r = await alice.request('POST', '/api/access-delegated', {
      agent_id: 'claude',
      document_id: 'DOC-003',
      user_id: 'bob',
    });
    assert.equal(r.status, 400);
    assert.equal(
      (await alice.request('POST', '/api/access-direct', { document_id: 'DOC-001' })).status,
      200,
    );
  });

  test('bad input gets a 4xx problem, never a 500', async () => {
    const alice = browsers.get('alice')!;
    for (const payload of [
      {},
      { document_id: '../../etc' },
      { document_id: 5 },
      { document_id: 'x'.repeat(500) },
    ]) {
      const r = await alice.request('POST', '/api/access-direct', payload);
      assert.equal(r.status, 400, JSON.stringify(payload));
    }
    const agent = await alice.request('POST', '/api/access-delegated', {
      agent_id: 'nobody',
      document_id: 'DOC-001',
    });
    assert.equal(agent.status, 404);
  });
});

describe('the audit trail', () => {
  const query = async (q: string) => {
    const c = as('auditor', sid('audit-store'));
    const r = await c.json(`${world.store.url}/api/v1/audit/events?${q}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return (r.body as { data: Array<Record<string, unknown>> }).data;
  };

  test('every decision, allow and deny, is queryable by txn, person and agent, with token hashes only', async () => {
    const bob = browsers.get('bob')!;
    const allowed = await bob.request('POST', '/api/access-delegated', {
      agent_id: 'claude',
      document_id: 'DOC-003',
    });
    assert.equal(allowed.status, 200);
    const denied = await bob.request('POST', '/api/access-delegated', {
      agent_id: 'gpt4',
      document_id: 'DOC-003',
    });
    assert.equal(denied.status, 403);
    const direct = await bob.request('POST', '/api/access-direct', { document_id: 'DOC-002' });
    assert.equal(direct.status, 200);
    await world.demo.flushAudit();

    const [byTxn] = await query(`correlation_id=${allowed.body.txn as string}`);
    assert.ok(byTxn, 'the delegated decision is found by its txn');
    assert.equal(byTxn.written_by, sid('document-service'));
    assert.equal(byTxn.event_outcome, 'success');
    assert.equal(byTxn.actor_id, agentId('claude'));
    assert.equal(byTxn.resource_id, 'DOC-003');
    const data = byTxn.event_data as Record<string, unknown>;
    assert.equal(data.on_behalf_of, userId('bob'));
    assert.deepEqual(data.actors, [agentId('claude')]);
    assert.equal(data.caller, agentId('claude'));
    assert.match(String(data.token_sha256), /^[0-9a-f]{64}$/);
    assert.doesNotMatch(JSON.stringify(byTxn), /eyJ/, 'no raw token in the audit event');

    const byAgent = await query(
      `actor_id=${encodeURIComponent(agentId('gpt4'))}&resource_id=DOC-003`,
    );
    const deny = byAgent.find((e) => e.correlation_id === denied.body.txn);
    assert.ok(deny, 'the denied decision is found by its agent');
    assert.equal(deny.event_outcome, 'failure');
    assert.equal(deny.error_code, 'agent_lacks_capability');

    const byPerson = await query(
      `actor_id=${encodeURIComponent(userId('bob'))}&resource_id=DOC-002`,
    );
    assert.ok(
      byPerson.some((e) => e.correlation_id === direct.body.txn),
      'direct decisions by person',
    );

    const forged = await docAccess(
      as('user-service', world.demo.spiffeIds.documentService),
      await signed({ aud: 'other.example', sub: userId('carol') }),
    );
    assert.equal(forged.status, 401);
    await world.demo.flushAudit();
    const refusals = await query(
      `actor_id=${encodeURIComponent(sid('user-service'))}&event_outcome=failure`,
    );
    assert.ok(
      refusals.some((e) => e.error_code === 'txn_token_audience'),
      'refused tokens are recorded too',
    );
  });
});

describe('operations', () => {
  test('probes answer on the plain ports; the mTLS ports refuse a client without an SVID', async () => {
    for (const [name, url] of Object.entries(world.demo.healthUrls)) {
      for (const p of ['/health', '/ready']) {
        const r = await fetch(new URL(p, url));
        assert.equal(r.status, 200, `${name} ${p}`);
      }
      assert.match(await (await fetch(new URL('/metrics', url))).text(), /process_cpu/, name);
    }
    await assert.rejects(
      fetch(new URL('/documents', world.demo.urls.documentService)),
      'no certificate, no answer',
    );
    const withSvid = await as('user-service', world.demo.spiffeIds.documentService).json(
      `${world.demo.urls.documentService}/documents`,
    );
    assert.equal(withSvid.status, 200);
    assert.equal((withSvid.body as unknown[]).length, 7);
  });

  test('/api/status, /api/users, /api/agents, /api/documents', async () => {
    const alice = browsers.get('alice')!;
    const status = await alice.request('GET', '/api/status');
    assert.deepEqual(status.body.services, {
      'user-service': 'up',
      'agent-service': 'up',
      'document-service': 'up',
      'policy-service': 'up',
    });
    const users = await alice.request('GET', '/api/users');
    assert.equal(users.status, 200);
    assert.deepEqual(
      (users.body as unknown as Array<{ id: string }>).map((u) => u.id),
      ['alice', 'bob', 'carol'],
    );
    const agents = await alice.request('GET', '/api/agents');
    assert.deepEqual(
      (agents.body as unknown as Array<{ spiffe_id: string }>).map((a) => a.spiffe_id),
      ['gpt4', 'claude', 'summarizer'].map(agentId),
    );
    const docs = await alice.request('GET', '/api/documents');
    assert.equal((docs.body as unknown as unknown[]).length, 7);
    assert.equal(
      (await new Browser(world.demo.urls.dashboard).request('GET', '/api/users')).status,
      401,
    );
  });

  test('/events streams the logged-in person’s own decisions', async () => {
    const ac = new AbortController();
    const res = await fetch(new URL('/events', world.demo.urls.dashboard), {
      headers: { cookie: browsers.get('carol')!.cookie! },
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /text\/event-stream/);
    const reader = res.body!.getReader();
    // Alice's decision must not reach carol's stream; carol's own does.
    await browsers.get('alice')!.request('POST', '/api/access-direct', { document_id: 'DOC-001' });
    await browsers.get('carol')!.request('POST', '/api/access-direct', { document_id: 'DOC-004' });
    let text = '';
    while (!text.includes('DOC-004')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    assert.match(text, /"user":"carol"/);
    assert.doesNotMatch(text, /"user":"alice"/);
    assert.equal((await fetch(new URL('/events', world.demo.urls.dashboard))).status, 401);
    // At most 8 streams per person: the 9th is refused, and closing one makes room.
    const streams: AbortController[] = [];
    const open = async () => {
      const c = new AbortController();
      const r = await fetch(new URL('/events', world.demo.urls.dashboard), {
        headers: { cookie: browsers.get('bob')!.cookie! },
        signal: c.signal,
      });
      if (r.status === 200) streams.push(c);
      else await r.body?.cancel();
      return r.status;
    };
    for (let i = 0; i < 8; i++) assert.equal(await open(), 200);
    assert.equal(await open(), 429);
    streams.shift()!.abort();
    let again = 429;
    for (let i = 0; i < 50 && again === 429; i++) {
      await new Promise((r) => setTimeout(r, 20));
      again = await open();
    }
    assert.equal(again, 200);
    for (const c of streams) c.abort();
  });

  test('logs carry token hashes, never tokens or passwords', async () => {
    const chunks: string[] = [];
    const logger = createLogger(
      'demo-logs',
      'debug',
      new Writable({
        write(c, _e, cb) {
          chunks.push(String(c));
          cb();
        },
      }),
    );
    const d = await world.startDemoWith(await wasmPolicy(), { audit: false, logger });
    const b = new Browser(d.urls.dashboard);
    await b.login('bob', world.passwords.bob!);
    assert.equal(
      (
        await b.request('POST', '/api/access-delegated', {
          agent_id: 'claude',
          document_id: 'DOC-003',
        })
      ).status,
      200,
    );
    assert.equal(
      (await b.request('POST', '/api/access-direct', { document_id: 'DOC-002' })).status,
      200,
    );
    await d.close();
    const text = chunks.join('');
    assert.match(text, /token_sha256/);
    assert.match(text, /document access decision/);
    assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}\./, 'no JWT in the logs');
    assert.ok(!text.includes(world.passwords.bob!), 'no password in the logs');
    assert.ok(!text.includes(b.cookie!.split('=')[1]!), 'no session cookie in the logs');
  });
});

describe('bad input at the mTLS services', () => {
  test('wrong media type, oversized or malformed bodies and garbage tokens get 4xx, never 500', async () => {
    const c = as('user-service', world.demo.spiffeIds.documentService);
    const url = `${world.demo.urls.documentService}/access`;
    const raw = async (body: string, headers: Record<string, string>) => {
      const r = await request(url, { dispatcher: c.dispatcher, method: 'POST', headers, body });
      await r.body.dump();
      return r.statusCode;
    };
    assert.equal(await raw('<a/>', { 'content-type': 'application/xml' }), 415);
    assert.equal(await raw('{"document_id":"DOC-001"}', { 'content-type': 'text/plain' }), 400);
    assert.equal(await raw('{"document_id":', { 'content-type': 'application/json' }), 400);
    assert.equal(
      await raw(JSON.stringify({ document_id: 'DOC-001', pad: 'x'.repeat(20_000) }), {
        'content-type': 'application/json',
      }),
      413,
    );
    for (const token of ['garbage', 'a.b.c', 'x'.repeat(12_000)]) {
      const r = await docAccess(c, token);
      assert.equal(r.status, 401, token.slice(0, 10));
    }
    const twice = await raw('{"document_id":"DOC-001"}', {
      'content-type': 'application/json',
      'txn-token': await personToken('alice', ['DOC-001']),
      'x-pad': 'y',
    });
    assert.equal(twice, 200, 'control: a valid request in the same shape');
  });
});

describe('dashboard over HTTPS', () => {
  test('the session cookie is Secure, and the HTTPS origin may POST', async () => {
    const { certs, key } = world.sources.dashboard.getX509Svid().marshal();
    const dash = await startDashboard({
      svidSource: world.sources.dashboard,
      bundleSource: world.sources.dashboard,
      trustDomain: TD,
      tokenService: { url: world.tokenService.url, spiffeId: world.tokenService.issuer },
      userService: { url: world.demo.urls.userService, spiffeId: world.demo.spiffeIds.userService },
      agentService: {
        url: world.demo.urls.agentService,
        spiffeId: world.demo.spiffeIds.agentService,
      },
      idp: world.idp,
      demoUsersFile: world.usersFile,
      tls: { cert: certs, key },
      host: '127.0.0.1',
      logger: quiet(),
    });
    // The SVID names no DNS host: this client skips server verification (the server is ours).
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      assert.match(dash.url, /^https:\/\//);
      const origin = new URL(dash.url).origin;
      const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
        request(`${dash.url}${path}`, {
          dispatcher: insecure,
          method: 'POST',
          headers: { 'content-type': 'application/json', origin, ...headers },
          body: JSON.stringify(body),
        });
      const login = await post('/api/auth/login', {
        username: 'carol',
        password: world.passwords.carol,
      });
      await login.body.dump();
      assert.equal(login.statusCode, 200);
      const setCookie = String(login.headers['set-cookie']);
      assert.match(setCookie, /; Secure/);
      const cookie = setCookie.split(';')[0]!;
      const ok = await post('/api/access-direct', { document_id: 'DOC-004' }, { cookie });
      assert.equal(ok.statusCode, 200, await ok.body.text());
      const cross = await post(
        '/api/access-direct',
        { document_id: 'DOC-004' },
        { cookie, origin: origin.replace('https:', 'http:') },
      );
      await cross.body.dump();
      assert.equal(cross.statusCode, 403, 'the http: origin is another origin');
    } finally {
      await insecure.close();
      await dash.close();
    }
  });
});

describe('startDemo with Workload API addresses', () => {
  test('opens its own sources, serves the chain, and closes them', async () => {
    const address = (sa: string) => attestAddress(world.identity, sa);
    const d = await startDemo({
      trustDomain: TD,
      workloadApi: {
        dashboard: await address('dashboard'),
        userService: await address('user-service'),
        agentService: await address('agent-service'),
        documentService: await address('document-service'),
        policyService: await address('policy-service'),
      },
      tokenService: { url: world.tokenService.url, spiffeId: world.tokenService.issuer },
      idp: world.idp,
      policy: await wasmPolicy(),
      demoUsersFile: world.usersFile,
      ports: Object.fromEntries(Object.keys(DEMO_PORTS).map((k) => [k, 0])),
      host: '127.0.0.1',
      logger: quiet(),
    });
    try {
      assert.equal(d.spiffeIds.agentService, sid('agent-service'));
      const b = new Browser(d.urls.dashboard);
      await b.login('bob', world.passwords.bob!);
      const r = await b.request('POST', '/api/access-delegated', {
        agent_id: 'claude',
        document_id: 'DOC-003',
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.agent, agentId('claude'));
    } finally {
      await d.close();
    }
    await assert.rejects(fetch(new URL('/health', d.healthUrls.dashboard)), 'closed');
  });

  test('a trust domain other than the data’s is refused at start-up', async () => {
    await assert.rejects(
      startDemo({
        trustDomain: 'other.example',
        workloadApi: {
          dashboard: world.sources.dashboard,
          userService: world.sources['user-service'],
          agentService: world.sources['agent-service'],
          documentService: world.sources['document-service'],
          policyService: world.sources['policy-service'],
        },
        tokenService: { url: world.tokenService.url, spiffeId: world.tokenService.issuer },
        idp: world.idp,
        policy: await wasmPolicy(),
        data: demoPolicyData(TD),
        demoUsersFile: world.usersFile,
        logger: quiet(),
      }),
      /trust domain/,
    );
  });
});

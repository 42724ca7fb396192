// The egress broker: a person's third-party token lives in Vault (KV v2 people/<person>/<provider>),
// an agent acting for the person (its JWT-SVID + a Transaction Token naming it) calls a local
// stand-in for the third-party API through the broker, which injects the token. Real Vault,
// real identity server, real Transaction Token verification; every refusal has its control.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { peerSkip, type VaultServer } from '@precinct/testing';
import { createTxnTokenVerifier } from '@precinct/delegation';
import {
  SecretsError,
  VaultSession,
  createEgressBroker,
  jwtSvidCaller,
  workloadPolicy,
  type EgressAuditEvent,
  type VaultAdmin,
} from '@precinct/secrets';
import {
  AUDIENCE,
  TD,
  captureLogger,
  spiffeId,
  startIdentity,
  startVaultWithJwtAuth,
} from './support.js';

const skip = peerSkip('vault');
const BROKER_AUDIENCE = 'egress-broker';
let idp: Awaited<ReturnType<typeof startIdentity>>;
let vault: VaultServer;
let admin: VaultAdmin;
let brokerSession: VaultSession;
let broker: { url: string; close(): Promise<void> };
let api: Server;
let apiUrl: string;
let signingKey: CryptoKey;
let otherKey: CryptoKey;
const seen: string[] = []; // credentials the stand-in API received
const audits: EgressAuditEvent[] = [];
let auditDown = false;
const { lines, logger } = captureLogger();
const ALICE_TOKEN = `ghp_alice_${randomBytes(12).toString('hex')}`;
const BOB_TOKEN = `ghp_bob_${randomBytes(12).toString('hex')}`;

async function txnToken(
  claims: { sub: string; act?: string; scope?: string; exp?: number },
  key = signingKey,
) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    txn: randomUUID(),
    scope: claims.scope ?? 'github:read',
    req_wl: spiffeId('webapp'),
    ...(claims.act ? { act: { sub: claims.act } } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'txntoken+jwt', kid: 'k1' })
    .setSubject(claims.sub)
    .setAudience(TD)
    .setIssuedAt(claims.exp ? claims.exp - 60 : now)
    .setExpirationTime(claims.exp ?? now + 60)
    .sign(key);
}

/** A request to the broker as workload `sa` (its JWT-SVID for the broker), with a txn token. */
async function asWorkload(
  sa: string | undefined,
  path: string,
  txn?: string,
  init: RequestInit = {},
) {
  const headers = new Headers(init.headers);
  if (sa) {
    const svid = await idp.sources.get(sa)!.fetchJwtSvid({ audience: BROKER_AUDIENCE });
    headers.set('authorization', `Bearer ${svid.token}`);
  }
  if (txn) headers.set('txn-token', txn);
  const res = await fetch(`${broker.url}${path}`, { ...init, headers });
  return { status: res.status, text: await res.text() };
}

const store = async (person: string, token: string, act?: string) =>
  asWorkload(
    'webapp',
    '/v1/people/github/token',
    await txnToken({ sub: person, act, scope: 'github:store' }),
    {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    },
  );

const callApi = async (sa: string | undefined, claims: Parameters<typeof txnToken>[0] | string) =>
  asWorkload(
    sa,
    '/v1/egress/github/user?x=1',
    typeof claims === 'string' ? claims : await txnToken(claims),
  );

before(async () => {
  if (skip) return;
  idp = await startIdentity(['broker', 'webapp', 'agent', 'other-agent']);
  ({ vault, admin } = await startVaultWithJwtAuth(idp.identity));
  await admin.writePolicy(
    'broker',
    'path "secret/data/people/*" {\n  capabilities = ["create", "update", "read"]\n}',
  );
  await admin.writeWorkloadRole({
    role: 'broker',
    spiffeId: spiffeId('broker'),
    audience: AUDIENCE,
    policies: ['broker'],
  });
  await admin.writePolicy('agent', workloadPolicy({ kvPaths: ['apps/agent/*'] }));
  await admin.writeWorkloadRole({
    role: 'agent',
    spiffeId: spiffeId('agent'),
    audience: AUDIENCE,
    policies: ['agent'],
  });
  brokerSession = await VaultSession.login({
    address: vault.url,
    role: 'broker',
    audience: AUDIENCE,
    jwtSource: idp.sources.get('broker')!,
    logger,
  });
  api = createServer((req, res) => {
    seen.push(req.headers.authorization ?? '');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ login: 'octocat', path: req.url }));
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  const pair = await generateKeyPair('ES256');
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('ES256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const brokerJwt = idp.sources.get('broker')!;
  broker = await createEgressBroker({
    session: brokerSession,
    providers: { github: { baseUrl: apiUrl } },
    txnTokens: createTxnTokenVerifier({ trustDomain: TD, jwks: { keys: [jwk] } }),
    authenticateCaller: jwtSvidCaller({ bundles: brokerJwt, audience: BROKER_AUDIENCE }),
    authorize: (r) =>
      r.action === 'store'
        ? r.scope.includes('github:store')
        : r.scope.includes(`${r.provider}:read`) && r.method === 'GET',
    audit: (e) => {
      if (auditDown) throw new Error('audit store down');
      audits.push(e);
    },
    logger,
  }).listen();
  assert.equal((await store('alice', ALICE_TOKEN)).status, 204);
  assert.equal((await store('bob', BOB_TOKEN)).status, 204);
});

after(async () => {
  await broker?.close();
  await new Promise((r) => (api ? api.close(r) : r(undefined)));
  await brokerSession?.close();
  await vault?.close();
  await idp?.close();
});

describe('egress broker', { skip }, () => {
  test("an agent acting for alice calls the API with alice's token and never sees it; audited under the txn", async () => {
    const txn = await txnToken({ sub: 'alice', act: spiffeId('agent') });
    const r = await callApi('agent', txn);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(JSON.parse(r.text), { login: 'octocat', path: '/user?x=1' });
    assert.equal(seen.at(-1), `Bearer ${ALICE_TOKEN}`);
    assert.ok(!r.text.includes(ALICE_TOKEN));
    const e = audits.at(-1)!;
    assert.equal(e.outcome, 'released');
    assert.equal(e.person, 'alice');
    assert.equal(e.agent, spiffeId('agent'));
    assert.equal(e.txn, JSON.parse(Buffer.from(txn.split('.')[1]!, 'base64url').toString()).txn);
  });

  test("the token is stored in Vault under the person's path and never returned by the store call", async () => {
    const r = await store('alice', ALICE_TOKEN);
    assert.equal(r.status, 204);
    assert.equal(r.text, '');
    const kv = await admin.request('GET', 'secret/data/people/alice/github');
    assert.equal((kv.data as { data: { token: string } }).data.token, ALICE_TOKEN);
  });

  test("bob's agent gets bob's token, never alice's (another person cannot use it)", async () => {
    const r = await callApi('agent', { sub: 'bob', act: spiffeId('agent') });
    assert.equal(r.status, 200);
    assert.equal(seen.at(-1), `Bearer ${BOB_TOKEN}`);
    const carol = await callApi('agent', { sub: 'carol', act: spiffeId('agent') });
    assert.equal(carol.status, 403, 'carol stored nothing');
  });

  test('an agent without delegation is refused (control: with it, accepted)', async () => {
    const before = seen.length;
    assert.equal((await callApi('agent', { sub: 'alice' })).status, 403, 'no act');
    assert.equal(
      (await callApi('agent', { sub: 'alice', act: spiffeId('other-agent') })).status,
      403,
      'names another agent',
    );
    assert.equal(
      (await callApi('other-agent', { sub: 'alice', act: spiffeId('agent') })).status,
      403,
      "another agent's token",
    );
    assert.equal(seen.length, before, 'the API was never called');
    assert.ok(audits.some((a) => a.outcome === 'denied' && a.reason === 'actor_mismatch'));
    assert.equal((await callApi('agent', { sub: 'alice', act: spiffeId('agent') })).status, 200);
  });

  test('no, forged or expired Transaction Token, or no caller SVID: 401 (control: valid, 200)', async () => {
    const before = seen.length;
    const act = spiffeId('agent');
    assert.equal((await asWorkload('agent', '/v1/egress/github/user')).status, 401);
    assert.equal(
      (await callApi('agent', await txnToken({ sub: 'alice', act }, otherKey))).status,
      401,
    );
    const past = Math.floor(Date.now() / 1000) - 120;
    assert.equal((await callApi('agent', { sub: 'alice', act, exp: past })).status, 401);
    assert.equal((await callApi(undefined, { sub: 'alice', act })).status, 401);
    assert.equal(seen.length, before);
    assert.equal((await callApi('agent', { sub: 'alice', act })).status, 200);
  });

  test('the policy check refuses a scope without github:read (control above)', async () => {
    const r = await callApi('agent', { sub: 'alice', act: spiffeId('agent'), scope: 'docs:read' });
    assert.equal(r.status, 403);
    assert.deepEqual(JSON.parse(r.text), {
      type: 'about:blank',
      title: 'authorization failed',
      status: 403,
    });
  });

  test('an agent cannot store or overwrite a person’s token (control: the person can)', async () => {
    assert.equal((await store('alice', 'ghp_evil', spiffeId('agent'))).status, 403);
    const kv = await admin.request('GET', 'secret/data/people/alice/github');
    assert.equal((kv.data as { data: { token: string } }).data.token, ALICE_TOKEN);
  });

  test("a workload's own Vault token cannot read people's tokens (control: the broker's can)", async () => {
    const s = await VaultSession.login({
      address: vault.url,
      role: 'agent',
      audience: AUDIENCE,
      jwtSource: idp.sources.get('agent')!,
    });
    try {
      const err = await s.readKv('people/alice/github').then(
        () => assert.fail('must be denied'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof SecretsError);
      assert.equal(err.code, 'ERR_SECRETS_DENIED');
      assert.ok(!String(err).includes(ALICE_TOKEN));
    } finally {
      await s.close();
    }
    assert.equal((await brokerSession.readKv('people/alice/github')).data.token, ALICE_TOKEN);
  });

  test('audit sink down: nothing is released (control: back up, released)', async () => {
    const before = seen.length;
    auditDown = true;
    try {
      assert.equal((await callApi('agent', { sub: 'alice', act: spiffeId('agent') })).status, 503);
    } finally {
      auditDown = false;
    }
    assert.equal(seen.length, before);
    assert.equal((await callApi('agent', { sub: 'alice', act: spiffeId('agent') })).status, 200);
  });

  test('people named by SPIFFE ID (as the token service names them): one path each', async () => {
    const alice = `spiffe://${TD}/user/alice`;
    const token = `ghp_spiffe_${randomBytes(8).toString('hex')}`;
    assert.equal((await store(alice, token)).status, 204);
    const kv = await admin.request('GET', `secret/data/people/spiffe~${TD}~user~alice/github`);
    assert.equal((kv.data as { data: { token: string } }).data.token, token);
    const r = await callApi('agent', { sub: alice, act: spiffeId('agent') });
    assert.equal(r.status, 200, r.text);
    assert.equal(seen.at(-1), `Bearer ${token}`);
    assert.equal(audits.at(-1)!.person, alice);
    // Another SPIFFE person has no token; plain `alice` keeps hers.
    const bob = await callApi('agent', { sub: `spiffe://${TD}/user/bob`, act: spiffeId('agent') });
    assert.equal(bob.status, 403);
    await callApi('agent', { sub: 'alice', act: spiffeId('agent') });
    assert.equal(seen.at(-1), `Bearer ${ALICE_TOKEN}`);
  });

  test("hostile subjects store and read only their own path, never another person's", async () => {
    for (const sub of ['../bob', 'x/../../bob', '..', '%2e%2e%2fbob', 'bob/..', 'b\u00f6b']) {
      const own = `ghp_h_${randomBytes(6).toString('hex')}`;
      assert.equal((await store(sub, own)).status, 204, sub);
      const r = await callApi('agent', { sub, act: spiffeId('agent') });
      assert.equal(r.status, 200, sub);
      assert.equal(seen.at(-1), `Bearer ${own}`, sub);
      // Bob's token is untouched, and still his (control).
      const b = await callApi('agent', { sub: 'bob', act: spiffeId('agent') });
      assert.equal(b.status, 200);
      assert.equal(seen.at(-1), `Bearer ${BOB_TOKEN}`, sub);
    }
    // A subject no path can hold is refused before Vault is asked (control: above, accepted).
    const before = seen.length;
    assert.equal(
      (await callApi('agent', { sub: 'x'.repeat(600), act: spiffeId('agent') })).status,
      403,
    );
    assert.equal((await store('a\uD800', 'ghp_x')).status, 403);
    assert.equal(seen.length, before);
  });

  test("no person's token reaches the broker's logs", () => {
    const text = lines.join('\n');
    assert.ok(text.includes('third-party call released'));
    assert.ok(!text.includes(ALICE_TOKEN) && !text.includes(BOB_TOKEN));
  });
});

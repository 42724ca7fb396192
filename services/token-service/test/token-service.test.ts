// The token service end to end: real mTLS with X.509-SVIDs from a test CA, real HTTP, an
// OpenID Provider stand-in with a real JWKS endpoint, and services verifying the issued
// Transaction Tokens with @precinct/delegation against the JWKS fetched over mTLS. Each attack
// has its positive control in the same setup.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import {
  TXN_TOKEN_TYP,
  TXN_TOKEN_TYPE,
  TxnTokenError,
  createTxnTokenVerifier,
} from '@precinct/delegation';
import {
  ID_TOKEN_TYPE,
  MemoryConsentStore,
  TOKEN_EXCHANGE_GRANT_TYPE,
  createOidcPersonAuthenticator,
  startTokenService,
  tokenHash,
  type ExchangeDecision,
  type GrantScope,
  type TokenService,
} from '../src/index.js';
import {
  CLIENT_ID,
  IDP_ISSUER,
  MutableSvidSource,
  TestCa,
  TestIdp,
  captureLogger,
  mtlsFetch,
  staticBundleSource,
  type IssuedSvid,
} from './support.js';

const TD = 'precinct.test';
const SERVICE_ID = `spiffe://${TD}/token-service`;
const AGENT_ID = `spiffe://${TD}/agents/summarizer`;
const ROGUE_AGENT_ID = `spiffe://${TD}/agents/rogue`;
const GATEWAY_ID = `spiffe://${TD}/gateway`;
const DOCS_ID = `spiffe://${TD}/docs`;
const ALICE = 'alice';

// Policy stand-in: the person's permissions ∩ the agent's.
const PEOPLE: Record<string, string[]> = { alice: ['docs.read', 'docs.list', 'docs.write'] };
const AGENTS: Record<string, string[]> = {
  [AGENT_ID]: ['docs.read', 'docs.list', 'mail.send'],
  [ROGUE_AGENT_ID]: ['docs.read', 'docs.list', 'docs.write'],
};
const grantScope: GrantScope = async ({ person, agent, requested }) => {
  const mine = new Set(PEOPLE[person] ?? []);
  const theirs = agent === undefined ? mine : new Set(AGENTS[agent] ?? []);
  return requested.filter((s) => mine.has(s) && theirs.has(s));
};

describe('token service over mTLS', () => {
  let ca: TestCa;
  let foreignCa: TestCa;
  let idp: TestIdp;
  let service: TokenService;
  const consent = new MemoryConsentStore();
  const logs = captureLogger();
  const decisions: ExchangeDecision[] = [];
  const svids: Record<string, IssuedSvid> = {};
  const clients: Array<{ close: () => Promise<void> }> = [];

  before(async () => {
    ca = await TestCa.create(TD);
    foreignCa = await TestCa.create('foreign.test');
    idp = await new TestIdp().start();
    for (const id of [SERVICE_ID, AGENT_ID, ROGUE_AGENT_ID, GATEWAY_ID, DOCS_ID]) {
      svids[id] = await ca.issue(id);
    }
    svids.foreign = await foreignCa.issue('/agents/summarizer');
    consent.grant(ALICE, [AGENT_ID]);
    service = await startTokenService({
      svidSource: new MutableSvidSource(svids[SERVICE_ID]!),
      // Federated with foreign.test: its SVIDs verify, so refusing them is the authorizer's job.
      bundleSource: staticBundleSource([ca, foreignCa]),
      persons: [
        createOidcPersonAuthenticator({
          issuer: IDP_ISSUER,
          clientId: CLIENT_ID,
          jwks: idp.jwksUrl,
        }),
      ],
      consent,
      grantScope,
      isAgent: (id) => id.startsWith(`spiffe://${TD}/agents/`),
      host: '127.0.0.1',
      logger: logs.logger,
      onDecision: (d) => void decisions.push(d),
    });
  });
  after(async () => {
    for (const c of clients) await c.close();
    await service?.close();
    idp?.close();
  });

  function client(id: string, trusts: TestCa[] = [ca]) {
    const c = mtlsFetch(svids[id]!, trusts, SERVICE_ID);
    clients.push(c);
    return c.fetch;
  }

  async function post(id: string, body: string | Record<string, string>, type?: string) {
    const res = await client(id)(service.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': type ?? 'application/x-www-form-urlencoded' },
      body: typeof body === 'string' ? body : new URLSearchParams(body).toString(),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      json: JSON.parse(text) as {
        access_token: string;
        error?: string;
        error_description?: string;
        [k: string]: unknown;
      },
    };
  }

  async function exchangeForm(over: Record<string, string | undefined> = {}) {
    const form: Record<string, string> = {
      grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
      requested_token_type: TXN_TOKEN_TYPE,
      audience: TD,
      scope: 'docs.read docs.list',
      subject_token: await idp.idToken(ALICE),
      subject_token_type: ID_TOKEN_TYPE,
    };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) delete form[k];
      else form[k] = v;
    }
    return form;
  }

  /** A service of the trust domain verifying tokens with the JWKS fetched over mTLS. */
  function verifierFor(trustDomain: string, clock?: () => number) {
    return createTxnTokenVerifier({
      trustDomain,
      issuer: SERVICE_ID,
      jwks: new URL(service.jwksUrl),
      fetch: client(DOCS_ID) as unknown as typeof globalThis.fetch,
      ...(clock ? { clock } : {}),
    });
  }

  test('agent acting for a consenting person: a Transaction Token with sub, act, narrowed scope', async () => {
    const form = await exchangeForm({ scope: 'docs.read docs.write mail.send' });
    const res = await post(AGENT_ID, form);
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.json.token_type, 'N_A');
    assert.equal(res.json.issued_token_type, TXN_TOKEN_TYPE);
    assert.equal(res.json.refresh_token, undefined);
    // person ∩ agent: docs.write is not the agent's, mail.send not the person's.
    assert.equal(res.json.scope, 'docs.read');
    const token = res.json.access_token as string;
    assert.equal(decodeProtectedHeader(token).typ, TXN_TOKEN_TYP);
    const t = await verifierFor(TD).verify(token);
    assert.equal(t.subject, ALICE);
    assert.equal(t.actor, AGENT_ID);
    assert.deepEqual(t.actors, [AGENT_ID]);
    assert.equal(t.requestingWorkload, AGENT_ID);
    assert.deepEqual(t.scope, ['docs.read']);
    assert.equal(t.audience, TD);
    assert.ok(t.expiresAt.getTime() - t.issuedAt.getTime() <= 300_000);
    assert.deepEqual(t.rctx, { amr: ['pwd', 'otp'] });
    // The log has the token's hash, never the token or the ID token.
    assert.ok(logs.text().includes(tokenHash(token)));
    assert.ok(!logs.text().includes(token));
    assert.ok(!logs.text().includes(token.split('.')[2]!));
    assert.ok(!logs.text().includes(form.subject_token!.split('.')[2]!), 'nor the ID token');
  });

  test('a gateway (not an agent) gets a token without act; request_details become tctx', async () => {
    const res = await post(
      GATEWAY_ID,
      await exchangeForm({ request_details: JSON.stringify({ doc: 'q3-report' }) }),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const t = await verifierFor(TD).verify(res.json.access_token);
    assert.equal(t.actor, undefined);
    assert.equal(t.requestingWorkload, GATEWAY_ID);
    assert.deepEqual(t.tctx, { doc: 'q3-report' });
    assert.deepEqual(t.scope, ['docs.read', 'docs.list']);
  });

  test('attack: token replayed to another trust domain is refused (aud); control accepts', async () => {
    const res = await post(AGENT_ID, await exchangeForm());
    await assert.rejects(verifierFor('other.test').verify(res.json.access_token), (e: unknown) => {
      assert.ok(e instanceof TxnTokenError);
      assert.equal(e.reason, 'audience');
      return true;
    });
    assert.equal((await verifierFor(TD).verify(res.json.access_token)).subject, ALICE);
  });

  test('attack: token used after expiry is refused; control just before expiry', async () => {
    const res = await post(AGENT_ID, await exchangeForm());
    const exp = decodeJwt(res.json.access_token).exp as number;
    const late = verifierFor(TD, () => (exp + 6) * 1000);
    await assert.rejects(late.verify(res.json.access_token), (e: unknown) => {
      assert.ok(e instanceof TxnTokenError);
      assert.equal(e.reason, 'expired');
      return true;
    });
    const justBefore = verifierFor(TD, () => (exp - 1) * 1000);
    assert.equal((await justBefore.verify(res.json.access_token)).subject, ALICE);
  });

  test('attack: replacement that widens scope is refused; narrowing keeps txn, sub, aud', async () => {
    const first = await post(AGENT_ID, await exchangeForm({ scope: 'docs.read docs.list' }));
    const old = decodeJwt(first.json.access_token);
    const replace = (scope: string, who = DOCS_ID) =>
      post(who, {
        grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
        requested_token_type: TXN_TOKEN_TYPE,
        audience: TD,
        scope,
        subject_token: first.json.access_token,
        subject_token_type: TXN_TOKEN_TYPE,
      });
    const wider = await replace('docs.read docs.list docs.write');
    assert.equal(wider.status, 400);
    assert.equal(wider.json.error, 'invalid_scope');
    const narrower = await replace('docs.read');
    assert.equal(narrower.status, 200, JSON.stringify(narrower.json));
    const t = await verifierFor(TD).verify(narrower.json.access_token);
    assert.equal(t.txn, old.txn);
    assert.equal(t.subject, old.sub);
    assert.equal(t.audience, old.aud);
    assert.deepEqual(t.scope, ['docs.read']);
    assert.equal(t.actor, AGENT_ID, 'a non-agent replacing keeps the actor');
    assert.equal(t.requestingWorkload, DOCS_ID);
    assert.deepEqual(t.rctx?.req_wl_chain, [AGENT_ID]);
    assert.ok(t.expiresAt.getTime() <= (old.exp as number) * 1000, 'lifetime never extended');
  });

  test('attack: an agent the person did not consent to is refused; withdrawal applies to the next exchange', async () => {
    const rogue = await post(ROGUE_AGENT_ID, await exchangeForm());
    assert.equal(rogue.status, 400);
    assert.equal(rogue.json.error, 'invalid_grant');
    const ok = await post(AGENT_ID, await exchangeForm());
    assert.equal(ok.status, 200);
    consent.withdraw(ALICE, AGENT_ID);
    try {
      const after = await post(AGENT_ID, await exchangeForm());
      assert.equal(after.status, 400);
      assert.equal(after.json.error, 'invalid_grant');
      // A replacement of the token issued before the withdrawal is refused too.
      const replaced = await post(GATEWAY_ID, {
        grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
        requested_token_type: TXN_TOKEN_TYPE,
        audience: TD,
        scope: 'docs.read',
        subject_token: ok.json.access_token,
        subject_token_type: TXN_TOKEN_TYPE,
      });
      assert.equal(replaced.status, 400);
      assert.equal(replaced.json.error, 'invalid_grant');
    } finally {
      consent.grant(ALICE, [AGENT_ID]);
    }
    assert.equal((await post(AGENT_ID, await exchangeForm())).status, 200);
  });

  test('every exchange reaches onDecision, allow and deny; a refusal on the wire stays generic', async () => {
    decisions.length = 0;
    const denied = await post(AGENT_ID, await exchangeForm({ scope: 'docs.write' }));
    assert.equal(denied.status, 400);
    assert.deepEqual(Object.keys(denied.json).sort(), ['error', 'error_description']);
    const ok = await post(AGENT_ID, await exchangeForm());
    assert.equal(ok.status, 200);
    assert.deepEqual(
      decisions.map((d) => [d.decision, d.reason, d.caller, d.person, d.agent]),
      [
        ['deny', 'scope_not_granted', AGENT_ID, ALICE, AGENT_ID],
        ['allow', 'granted', AGENT_ID, ALICE, AGENT_ID],
      ],
    );
    assert.equal(decisions[1]!.issuedTokenSha256, tokenHash(ok.json.access_token));
  });

  test('attack: a caller SVID from a foreign trust domain cannot connect; control from ours can', async () => {
    const foreign = mtlsFetch(svids.foreign!, [ca], SERVICE_ID);
    clients.push(foreign);
    await assert.rejects(
      foreign.fetch(service.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(await exchangeForm()).toString(),
      }),
    );
    assert.equal((await post(AGENT_ID, await exchangeForm())).status, 200);
  });

  test('attack: missing or forged person proof is refused; control with a real ID token', async () => {
    const forger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const cases: Array<[string, Record<string, string | undefined>, string]> = [
      ['missing subject_token', { subject_token: undefined }, 'invalid_request'],
      [
        'forged signature',
        { subject_token: await idp.idToken(ALICE, {}, forger) },
        'invalid_grant',
      ],
      [
        'wrong audience',
        { subject_token: await idp.idToken(ALICE, { aud: 'other-client' }) },
        'invalid_grant',
      ],
      [
        'wrong issuer',
        { subject_token: await idp.idToken(ALICE, { iss: 'https://evil.test' }) },
        'invalid_grant',
      ],
      [
        'expired',
        {
          subject_token: await idp.idToken(ALICE, {
            iat: Math.floor(Date.now() / 1000) - 7200,
            exp: Math.floor(Date.now() / 1000) - 3600,
          }),
        },
        'invalid_grant',
      ],
      ['not a JWT', { subject_token: 'alice' }, 'invalid_grant'],
      [
        'unsupported type',
        { subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' },
        'invalid_request',
      ],
    ];
    for (const [name, over, error] of cases) {
      const res = await post(AGENT_ID, await exchangeForm(over));
      assert.equal(res.status, 400, name);
      assert.equal(res.json.error, error, name);
      assert.equal(typeof res.json.error_description, 'string', name);
    }
    assert.equal((await post(AGENT_ID, await exchangeForm())).status, 200);
  });

  test('bad input gets 400 with an RFC 6749 error body, never 500', async () => {
    const good = new URLSearchParams(await exchangeForm()).toString();
    const cases: Array<[string, string, string, string?]> = [
      ['oversized form', `${good}&pad=${'x'.repeat(20_000)}`, 'invalid_request'],
      ['ill-formed UTF-8 escape', `${good}&request_context=%C3%28`, 'invalid_request'],
      ['lone surrogate escape', `${good}&x=%ED%A0%80`, 'invalid_request'],
      ['broken escape', `${good}&x=%G1`, 'invalid_request'],
      ['duplicate parameter', `${good}&audience=${TD}`, 'invalid_request'],
      ['duplicate empty parameter', `grant_type=&${good}`, 'invalid_request'],
      [
        'unknown grant',
        good.replace(/grant_type=[^&]*/, 'grant_type=password'),
        'unsupported_grant_type',
      ],
      ['missing grant', good.replace(/grant_type=[^&]*&/, ''), 'invalid_request'],
      ['wrong audience', good.replace(/audience=[^&]*/, 'audience=other.test'), 'invalid_target'],
      ['bad scope syntax', good.replace(/scope=[^&]*/, 'scope=a%22b'), 'invalid_scope'],
      ['request_context not JSON', `${good}&request_context=nope`, 'invalid_request'],
      ['JSON body', JSON.stringify({ grant_type: 'x' }), 'invalid_request', 'application/json'],
      ['empty body', '', 'invalid_request'],
    ];
    for (const [name, body, error, type] of cases) {
      const res = await post(AGENT_ID, body, type);
      assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.error, error, name);
    }
    // Control: the same good form is accepted.
    assert.equal((await post(AGENT_ID, good)).status, 200);
  });

  test('probes and metrics on the plain port; JWKS only over mTLS', async () => {
    const health = await fetch(`${service.healthUrl}/health`);
    assert.equal(health.status, 200);
    const ready = await fetch(`${service.healthUrl}/ready`);
    assert.equal(ready.status, 200);
    const metrics = await (await fetch(`${service.healthUrl}/metrics`)).text();
    assert.match(metrics, /precinct_txn_tokens_issued_total\{kind="initial"\} [1-9]/);
    assert.match(
      metrics,
      /precinct_token_exchange_refused_total\{error="invalid_grant",reason="no_consent"\} [1-9]/,
    );
    const jwks = (await (await client(DOCS_ID)(service.jwksUrl)).json()) as {
      keys: Record<string, unknown>[];
    };
    assert.ok(jwks.keys.length >= 2, 'current and next key');
    assert.ok(jwks.keys.every((k) => k.kty === 'EC' && k.alg === 'ES256' && !('d' in k)));
    // Plain HTTP to the mTLS port gets no JWKS.
    await assert.rejects(fetch(service.jwksUrl.replace('https:', 'http:')));
  });
});

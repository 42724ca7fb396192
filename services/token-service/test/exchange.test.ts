// The exchange logic and the key ring on a frozen clock: lifetimes, replacement rules, actor
// chains, policy and consent failures, key rotation and the verified-ID-token cache. Every
// refusal has its accepted counterpart in the same setup.
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader, exportJWK, SignJWT } from 'jose';
import { TXN_TOKEN_TYPE, createTxnTokenVerifier } from '@precinct/delegation';
import {
  ID_TOKEN_TYPE,
  MemoryConsentStore,
  SigningKeyRing,
  TOKEN_EXCHANGE_GRANT_TYPE,
  TokenExchangeError,
  TokenServiceConfigError,
  createOidcPersonAuthenticator,
  createTokenExchange,
  type GrantScope,
  type OAuthErrorCode,
  type TokenExchange,
} from '../src/index.js';

const TD = 'frozen.test';
const ISS = `spiffe://${TD}/token-service`;
const AGENT = `spiffe://${TD}/agents/a`;
const AGENT2 = `spiffe://${TD}/agents/b`;
const SVC = `spiffe://${TD}/svc`;
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);

const idp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const idpJwk = { ...(await exportJWK(idp.publicKey)), kid: 'idp', alg: 'ES256' };

let now = T0;
const clock = () => now;
let consent: MemoryConsentStore;
let keys: SigningKeyRing;
let policy: GrantScope;
let tts: TokenExchange;

async function idToken(sub: string, lifetime = 600): Promise<string> {
  const iat = Math.floor(now / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'idp' })
    .setIssuer('https://idp.frozen.test')
    .setAudience('tts')
    .setSubject(sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + lifetime)
    .sign(idp.privateKey);
}

function form(over: Record<string, string | undefined>): Map<string, string> {
  const m = new Map<string, string>([
    ['grant_type', TOKEN_EXCHANGE_GRANT_TYPE],
    ['requested_token_type', TXN_TOKEN_TYPE],
    ['audience', TD],
    ['scope', 'docs.read docs.list'],
    ['subject_token_type', ID_TOKEN_TYPE],
  ]);
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) m.delete(k);
    else m.set(k, v);
  }
  return m;
}

const replaceForm = (token: string, scope = 'docs.read') =>
  form({ subject_token: token, subject_token_type: TXN_TOKEN_TYPE, scope });

const as = (id: string) => ({ id, trustDomain: TD });

async function refused(p: Promise<unknown>, error: OAuthErrorCode, reason: string) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TokenExchangeError, String(e));
    assert.equal(e.error, error);
    assert.equal(e.reason, reason);
    return true;
  });
}

const verifier = () =>
  createTxnTokenVerifier({ trustDomain: TD, issuer: ISS, jwks: keys.jwks(), clock });

beforeEach(() => {
  now = T0;
  consent = new MemoryConsentStore();
  consent.grant('alice', [AGENT, AGENT2]);
  keys = new SigningKeyRing({ maxTokenLifetimeSeconds: 300, rotationSeconds: 3600, clock });
  policy = async ({ requested }) => requested.filter((s) => s.startsWith('docs.'));
  tts = createTokenExchange({
    trustDomain: TD,
    issuer: ISS,
    keys,
    persons: [
      createOidcPersonAuthenticator({
        issuer: 'https://idp.frozen.test',
        clientId: 'tts',
        jwks: { keys: [idpJwk] },
        clock,
      }),
    ],
    consent,
    grantScope: (r) => policy(r),
    isAgent: (id) => id.startsWith(`spiffe://${TD}/agents/`),
    clock,
  });
});

describe('issuing', () => {
  test('lifetime is 300 s, header typed, claims as specified', async () => {
    const out = await tts.exchange(form({ subject_token: await idToken('alice') }), as(AGENT));
    const token = out.response.access_token;
    const c = decodeJwt(token);
    assert.equal(decodeProtectedHeader(token).typ, 'txntoken+jwt');
    assert.equal(c.iat, T0 / 1000);
    assert.equal(c.exp, T0 / 1000 + 300);
    assert.equal(out.response.expires_in, 300);
    assert.equal(c.aud, TD);
    assert.equal(c.iss, ISS);
    assert.deepEqual(c.act, { sub: AGENT });
    assert.equal(c.req_wl, AGENT);
    assert.equal(typeof c.txn, 'string');
  });

  test('request_context cannot plant service-asserted rctx keys (amr, req_wl_chain)', async () => {
    const ctx = { req_ip: '192.0.2.9', amr: ['face'], req_wl_chain: [`spiffe://${TD}/admin`] };
    const out = await tts.exchange(
      form({ subject_token: await idToken('alice'), request_context: JSON.stringify(ctx) }),
      as(AGENT),
    );
    assert.deepEqual(decodeJwt(out.response.access_token).rctx, { req_ip: '192.0.2.9' });
    const r = await tts.exchange(replaceForm(out.response.access_token), as(SVC));
    assert.deepEqual(decodeJwt(r.response.access_token).rctx, {
      req_ip: '192.0.2.9',
      req_wl_chain: [AGENT],
    });
  });

  test('a policy that answers more than was asked cannot widen the token', async () => {
    policy = async () => ['docs.read', 'docs.list', 'admin.everything'];
    const out = await tts.exchange(
      form({ subject_token: await idToken('alice'), scope: 'docs.read' }),
      as(AGENT),
    );
    assert.equal(out.response.scope, 'docs.read');
  });

  test('nothing granted: invalid_scope; control with a granted scope', async () => {
    await refused(
      tts.exchange(form({ subject_token: await idToken('alice'), scope: 'mail.send' }), as(AGENT)),
      'invalid_scope',
      'scope_not_granted',
    );
    await tts.exchange(form({ subject_token: await idToken('alice') }), as(AGENT));
  });

  test('policy down: temporarily_unavailable (503), never a token; control when it is back', async () => {
    policy = async () => {
      throw new Error('opa unreachable');
    };
    const p = tts.exchange(form({ subject_token: await idToken('alice') }), as(AGENT));
    await refused(p, 'temporarily_unavailable', 'policy_unavailable');
    await p.catch((e: TokenExchangeError) => assert.equal(e.status, 503));
    policy = async ({ requested }) => requested;
    await tts.exchange(form({ subject_token: await idToken('alice') }), as(AGENT));
  });

  test('a caller from another trust domain: invalid_client; control from ours', async () => {
    const f = form({ subject_token: await idToken('alice') });
    await refused(
      tts.exchange(f, { id: 'spiffe://other.test/agents/a', trustDomain: 'other.test' }),
      'invalid_client',
      'caller_trust_domain',
    );
    await tts.exchange(f, as(AGENT));
  });

  test('actor_token is refused: the actor is the authenticated client', async () => {
    await refused(
      tts.exchange(
        form({ subject_token: await idToken('alice'), actor_token: 'x', actor_token_type: 'y' }),
        as(AGENT),
      ),
      'invalid_request',
      'actor_token',
    );
  });

  test('ttlSeconds above 300 fails construction', () => {
    assert.throws(
      () =>
        createTokenExchange({
          trustDomain: TD,
          issuer: ISS,
          keys,
          persons: [],
          consent,
          grantScope: policy,
          isAgent: () => false,
          ttlSeconds: 301,
        }),
      TokenServiceConfigError,
    );
  });
});

describe('replacement', () => {
  async function first(caller = AGENT) {
    const out = await tts.exchange(form({ subject_token: await idToken('alice') }), as(caller));
    return out.response.access_token;
  }

  test('never extends the lifetime; refused once the old token expired (control: just before)', async () => {
    const old = await first();
    now += 200_000;
    const r = await tts.exchange(replaceForm(old), as(SVC));
    assert.equal(decodeJwt(r.response.access_token).exp, T0 / 1000 + 300);
    assert.equal(r.response.expires_in, 100);
    now = T0 + 304_000; // within the verifier's 5 s skew: still replaceable
    await tts.exchange(replaceForm(old), as(SVC));
    now = T0 + 306_000;
    await refused(tts.exchange(replaceForm(old), as(SVC)), 'invalid_grant', 'subject_txn_token');
  });

  test('another consented agent is pushed onto the act chain; the outermost is the new one', async () => {
    const old = await first(AGENT);
    const r = await tts.exchange(replaceForm(old), as(AGENT2));
    const t = await verifier().verify(r.response.access_token);
    assert.deepEqual(t.actors, [AGENT2, AGENT]);
    assert.equal(t.actor, AGENT2);
    consent.withdraw('alice', AGENT2);
    await refused(tts.exchange(replaceForm(old), as(AGENT2)), 'invalid_grant', 'no_consent');
  });

  test('the same agent replacing keeps the chain as it was', async () => {
    const old = await first(AGENT);
    const r = await tts.exchange(replaceForm(old), as(AGENT));
    assert.deepEqual(decodeJwt(r.response.access_token).act, { sub: AGENT });
  });

  test('request_details on a replacement is refused (tctx is immutable); control without', async () => {
    const old = await first();
    await refused(
      tts.exchange(new Map([...replaceForm(old), ['request_details', '{"a":1}']]), as(SVC)),
      'invalid_request',
      'replacement_context',
    );
    await tts.exchange(replaceForm(old), as(SVC));
  });

  test('a token signed by another service with our kid is not replaceable', async () => {
    const forger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const good = await first();
    const header = decodeProtectedHeader(good);
    const forged = await new SignJWT(decodeJwt(good))
      .setProtectedHeader({ alg: 'ES256', kid: header.kid!, typ: 'txntoken+jwt' })
      .sign(forger);
    await refused(tts.exchange(replaceForm(forged), as(SVC)), 'invalid_grant', 'subject_txn_token');
    await tts.exchange(replaceForm(good), as(SVC));
  });
});

describe('signing keys', () => {
  test('rotation: next key published before it signs; retired key kept until its tokens expire', async () => {
    const before = keys.jwks().keys.map((k) => k.kid);
    assert.equal(before.length, 2, 'current and next');
    const old = await tts.exchange(form({ subject_token: await idToken('alice') }), as(AGENT));
    const oldKid = decodeProtectedHeader(old.response.access_token).kid;
    assert.equal(oldKid, before[0]);
    now += 3600_000 - 100_000; // 100 s before rotation: the old token is long expired, sign again
    const late = await tts.exchange(form({ subject_token: await idToken('alice') }), as(AGENT));
    now += 100_000; // rotation is due
    const fresh = await tts.exchange(form({ subject_token: await idToken('alice') }), as(AGENT));
    assert.equal(decodeProtectedHeader(fresh.response.access_token).kid, before[1]);
    const during = keys.jwks().keys.map((k) => k.kid);
    assert.ok(during.includes(before[0]!), 'retired key still published');
    // A token the retired key signed 100 s ago still verifies.
    assert.equal((await verifier().verify(late.response.access_token)).subject, 'alice');
    now += (300 + 30 + 1) * 1000; // past that token's expiry plus skew
    assert.ok(!keys.jwks().keys.some((k) => k.kid === before[0]), 'retired key withdrawn');
    assert.ok(keys.jwks().keys.every((k) => !('d' in k)));
  });
});

describe('verified ID token cache', () => {
  test('a remembered ID token is never honoured past its exp; control just before', async () => {
    const token = await idToken('alice', 40);
    await tts.exchange(form({ subject_token: token }), as(AGENT)); // verified and remembered
    now += 39_000;
    await tts.exchange(form({ subject_token: token }), as(AGENT));
    now += 32_000; // 31 s past exp: beyond the 30 s skew of the full check too
    await refused(
      tts.exchange(form({ subject_token: token }), as(AGENT)),
      'invalid_grant',
      'person_proof',
    );
  });
});

describe('OpenID Provider keys unavailable', () => {
  test('503 temporarily_unavailable, one JWKS fetch per cool-down, then tokens again', async (t) => {
    let up = false;
    let fetches = 0;
    const server = createServer((_req, res) => {
      fetches++;
      if (!up) return void res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [idpJwk] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const remote = createTokenExchange({
      trustDomain: TD,
      issuer: ISS,
      keys,
      persons: [
        createOidcPersonAuthenticator({
          issuer: 'https://idp.frozen.test',
          clientId: 'tts',
          jwks: new URL(`http://127.0.0.1:${port}/jwks`),
          clock,
        }),
      ],
      consent,
      grantScope: (r) => policy(r),
      isAgent: (id) => id.startsWith(`spiffe://${TD}/agents/`),
      clock,
    });
    const f = form({ subject_token: await idToken('alice') });
    for (let i = 0; i < 5; i++) {
      await refused(remote.exchange(f, as(AGENT)), 'temporarily_unavailable', 'person_unavailable');
    }
    assert.equal(fetches, 1);
    up = true;
    now += 31_000;
    const out = await remote.exchange(f, as(AGENT));
    assert.equal(decodeJwt(out.response.access_token).sub, 'alice');
    assert.equal(fetches, 2);
  });
});

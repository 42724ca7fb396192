import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import {
  DelegationConfigError,
  TXN_TOKEN_TYP,
  TxnTokenError,
  createTxnTokenVerifier,
  type TxnTokenFailureReason,
  type TxnTokenVerifierOptions,
} from '@precinct/delegation';
import { b64json, makeKey, type TestKey } from './support.js';

const TD = 'precinct.test';
const PERSON = 'alice@example.com';
const AGENT = 'spiffe://precinct.test/agents/summarizer';
const EARLIER = 'spiffe://precinct.test/agents/planner';
const GATEWAY = 'spiffe://precinct.test/gateway';
// A frozen clock: every time check below is relative to it, never to the wall clock.
const NOW_MS = Date.UTC(2026, 0, 1, 12, 0, 0);
const NOW = NOW_MS / 1000;

let key: TestKey;
let other: TestKey; // same kid, a different key: not trusted
let ed: TestKey;

before(async () => {
  key = await makeKey('ES256', 'tts-1');
  other = await makeKey('ES256', 'tts-1');
  ed = await makeKey('EdDSA', 'tts-ed');
});

function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    iss: 'spiffe://precinct.test/token-service',
    aud: TD,
    sub: PERSON,
    iat: NOW - 10,
    exp: NOW + 290,
    txn: '97053963-771d-49cc-a4e3-20aad399c312',
    scope: 'docs.read docs.list',
    req_wl: GATEWAY,
    act: { sub: AGENT, act: { sub: EARLIER } },
    tctx: { action: 'summarize' },
    rctx: { req_ip: '192.0.2.1' },
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base;
}

async function sign(
  c: Record<string, unknown> = claims(),
  header: Record<string, unknown> = {},
  k: TestKey = key,
): Promise<string> {
  const h: Record<string, unknown> = { alg: k.alg, kid: k.kid, typ: TXN_TOKEN_TYP, ...header };
  for (const [name, v] of Object.entries(header)) if (v === undefined) delete h[name];
  return new SignJWT(c).setProtectedHeader(h as never).sign(k.privateKey);
}

function verifier(over: Partial<TxnTokenVerifierOptions> = {}) {
  return createTxnTokenVerifier({
    trustDomain: TD,
    jwks: { keys: [key.jwk, ed.jwk] },
    clock: () => NOW_MS,
    ...over,
  });
}

async function rejectsWith(p: Promise<unknown>, reason: TxnTokenFailureReason) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof TxnTokenError, `expected TxnTokenError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_TXN_TOKEN');
    assert.equal(err.reason, reason);
    return true;
  });
}

function hs256(c: Record<string, unknown>): string {
  const head = b64json({ alg: 'HS256', kid: 'tts-1', typ: TXN_TOKEN_TYP });
  const body = b64json(c);
  const mac = createHmac('sha256', 'secret').update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${mac}`;
}

describe('Transaction Token verifier', () => {
  test('valid token (positive control): typed claims', async () => {
    const t = await verifier().verify(await sign());
    assert.equal(t.subject, PERSON);
    assert.equal(t.txn, '97053963-771d-49cc-a4e3-20aad399c312');
    assert.deepEqual(t.scope, ['docs.read', 'docs.list']);
    assert.equal(t.requestingWorkload, GATEWAY);
    assert.equal(t.actor, AGENT, 'only the outermost actor counts');
    assert.deepEqual(t.actors, [AGENT, EARLIER]);
    assert.equal(t.audience, TD);
    assert.equal(t.issuer, 'spiffe://precinct.test/token-service');
    assert.equal(t.expiresAt.getTime(), (NOW + 290) * 1000);
    assert.deepEqual(t.tctx, { action: 'summarize' });
    assert.deepEqual(t.rctx, { req_ip: '192.0.2.1' });
  });

  test('no act: no actor (a workload-initiated transaction)', async () => {
    const t = await verifier().verify(await sign(claims({ act: undefined })));
    assert.equal(t.actor, undefined);
    assert.deepEqual(t.actors, []);
  });

  // Each row: a bad token, and the nearest good token the same verifier accepts.
  const cases: Array<{
    name: string;
    reason: TxnTokenFailureReason;
    bad: () => Promise<string>;
    good: () => Promise<string>;
    opts?: Partial<TxnTokenVerifierOptions>;
  }> = [
    {
      name: 'wrong typ (a plain JWT)',
      reason: 'type',
      bad: () => sign(claims(), { typ: 'JWT' }),
      good: () => sign(),
    },
    {
      name: 'typ with the application/ prefix is not the exact value',
      reason: 'type',
      bad: () => sign(claims(), { typ: 'application/txntoken+jwt' }),
      good: () => sign(),
    },
    {
      name: 'no typ',
      reason: 'type',
      bad: () => sign(claims(), { typ: undefined }),
      good: () => sign(),
    },
    {
      name: 'alg none',
      reason: 'algorithm',
      bad: async () => `${b64json({ alg: 'none', typ: TXN_TOKEN_TYP })}.${b64json(claims())}.`,
      good: () => sign(),
    },
    {
      name: 'alg HS256 (a shared secret proves nothing)',
      reason: 'algorithm',
      bad: async () => hs256(claims()),
      good: () => sign(),
    },
    {
      name: 'EdDSA when only ES256 is allowed',
      reason: 'algorithm',
      bad: () => sign(claims(), {}, ed),
      good: () => sign(),
    },
    {
      name: 'signed by an untrusted key with a trusted kid',
      reason: 'signature',
      bad: () => sign(claims(), {}, other),
      good: () => sign(),
    },
    {
      name: 'unknown kid',
      reason: 'unknown_key',
      bad: () => sign(claims(), { kid: 'nope' }),
      good: () => sign(),
    },
    {
      name: 'no kid',
      reason: 'unknown_key',
      bad: () => sign(claims(), { kid: undefined }),
      good: () => sign(),
    },
    {
      name: 'wrong aud (another trust domain)',
      reason: 'audience',
      bad: () => sign(claims({ aud: 'other.test' })),
      good: () => sign(claims({ aud: TD })),
    },
    {
      name: 'aud as an array, even one naming us',
      reason: 'audience',
      bad: () => sign(claims({ aud: [TD, 'other.test'] })),
      good: () => sign(claims({ aud: TD })),
    },
    {
      name: 'wrong iss when an issuer is configured',
      reason: 'issuer',
      bad: () => sign(claims({ iss: 'spiffe://precinct.test/rogue' })),
      good: () => sign(),
      opts: { issuer: 'spiffe://precinct.test/token-service' },
    },
    {
      name: 'expired (beyond the 5 s skew)',
      reason: 'expired',
      bad: () => sign(claims({ iat: NOW - 300, exp: NOW - 6 })),
      good: () => sign(claims({ iat: NOW - 300, exp: NOW - 4 })),
    },
    {
      name: 'issued in the future (beyond the skew)',
      reason: 'not_yet_valid',
      bad: () => sign(claims({ iat: NOW + 6, exp: NOW + 200 })),
      good: () => sign(claims({ iat: NOW + 4, exp: NOW + 200 })),
    },
    {
      name: 'too long-lived (exp - iat > 300 s)',
      reason: 'lifetime',
      bad: () => sign(claims({ iat: NOW - 10, exp: NOW - 10 + 301 })),
      good: () => sign(claims({ iat: NOW - 10, exp: NOW - 10 + 300 })),
    },
    {
      name: 'missing txn',
      reason: 'claims',
      bad: () => sign(claims({ txn: undefined })),
      good: () => sign(claims({ txn: 't-1' })),
    },
    {
      name: 'empty txn',
      reason: 'claims',
      bad: () => sign(claims({ txn: '' })),
      good: () => sign(claims({ txn: 't-1' })),
    },
    {
      name: 'missing sub',
      reason: 'claims',
      bad: () => sign(claims({ sub: undefined })),
      good: () => sign(claims({ sub: PERSON })),
    },
    {
      name: 'missing req_wl',
      reason: 'claims',
      bad: () => sign(claims({ req_wl: undefined })),
      good: () => sign(claims({ req_wl: GATEWAY })),
    },
    {
      name: 'scope not a scope-token list',
      reason: 'claims',
      bad: () => sign(claims({ scope: 'docs.read  docs.list' })),
      good: () => sign(claims({ scope: 'docs.read docs.list' })),
    },
    {
      name: 'tctx not an object',
      reason: 'claims',
      bad: () => sign(claims({ tctx: ['x'] })),
      good: () => sign(claims({ tctx: { x: 1 } })),
    },
    {
      name: 'malformed act (a string)',
      reason: 'actor',
      bad: () => sign(claims({ act: AGENT })),
      good: () => sign(claims({ act: { sub: AGENT } })),
    },
    {
      name: 'malformed act (nested link without sub)',
      reason: 'actor',
      bad: () => sign(claims({ act: { sub: AGENT, act: { iss: 'x' } } })),
      good: () => sign(claims({ act: { sub: AGENT, act: { sub: EARLIER } } })),
    },
    {
      name: 'act chain deeper than allowed',
      reason: 'actor',
      bad: () => sign(claims({ act: { sub: 'a', act: { sub: 'b', act: { sub: 'c' } } } })),
      good: () => sign(claims({ act: { sub: 'a', act: { sub: 'b' } } })),
      opts: { maxActorDepth: 2 },
    },
    {
      name: 'oversized token',
      reason: 'too_large',
      bad: () => sign(claims({ tctx: { pad: 'x'.repeat(9000) } })),
      good: () => sign(claims({ tctx: { pad: 'x'.repeat(5000) } })),
    },
    {
      name: 'not a compact JWS',
      reason: 'malformed',
      bad: async () => 'a.b',
      good: () => sign(),
    },
  ];

  for (const c of cases) {
    test(`refuses: ${c.name} (and accepts its control)`, async () => {
      const v = verifier(c.opts);
      await rejectsWith(v.verify(await c.bad()), c.reason);
      const ok = await v.verify(await c.good());
      assert.equal(ok.subject, PERSON);
    });
  }

  test('errors never carry the token or its claims', async () => {
    const token = await sign(claims({ aud: 'other.test' }));
    const err = await verifier()
      .verify(token)
      .catch((e: unknown) => e as Error);
    assert.ok(err instanceof TxnTokenError);
    assert.doesNotMatch(`${err.message} ${err.stack}`, /alice|other\.test/);
    assert.equal(err.cause, undefined);
  });
});

describe('configuration', () => {
  test('none, HMAC and unknown algorithms fail construction; an asymmetric list is fine', () => {
    for (const alg of ['none', 'HS256', 'HS512', 'nope']) {
      assert.throws(() => verifier({ algorithms: [alg] }), DelegationConfigError, alg);
    }
    assert.doesNotThrow(() => verifier({ algorithms: ['ES256', 'EdDSA'] }));
  });

  test('a private or symmetric key in the JWKS fails construction', () => {
    const priv = { ...key.jwk, d: 'AAAA' };
    assert.throws(() => verifier({ jwks: { keys: [priv] } }), DelegationConfigError);
    assert.throws(
      () => verifier({ jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }),
      DelegationConfigError,
    );
    assert.doesNotThrow(() => verifier({ jwks: { keys: [key.jwk] } }));
  });

  test('trust domain is required', () => {
    assert.throws(() => verifier({ trustDomain: '' }), DelegationConfigError);
  });
});

describe('remote JWKS: bounded fetches', () => {
  let url: URL;
  let fetches = 0;
  let available = true;
  const server = createServer((req, res) => {
    fetches++;
    if (!available) {
      res.writeHead(500).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [key.jwk] }));
  });
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`);
  });
  after(() => server.close());

  test('one fetch serves many tokens; unknown kids refetch at most once per cooldown', async () => {
    fetches = 0;
    const v = verifier({ jwks: url, jwksCooldownSeconds: 3600 });
    for (let i = 0; i < 5; i++) assert.equal((await v.verify(await sign())).subject, PERSON);
    assert.equal(fetches, 1);
    for (let i = 0; i < 20; i++) {
      await rejectsWith(v.verify(await sign(claims(), { kid: `unknown-${i}` })), 'unknown_key');
    }
    assert.equal(fetches, 1, 'no refetch inside the cooldown');
    // Garbage never reaches the key set at all.
    await rejectsWith(v.verify('x.y.z'), 'malformed');
    assert.equal(fetches, 1);
  });

  test('JWKS endpoint failing: jwks_unavailable (fail closed), one fetch per cool-down, then recovers', async () => {
    available = false;
    fetches = 0;
    let now = NOW_MS;
    const v = verifier({ jwks: url, jwksCooldownSeconds: 30, clock: () => now });
    for (let i = 0; i < 10; i++) await rejectsWith(v.verify(await sign()), 'jwks_unavailable');
    assert.equal(fetches, 1, 'a failing endpoint is not asked again inside the cool-down');
    available = true;
    await rejectsWith(v.verify(await sign()), 'jwks_unavailable');
    now += 31_000;
    assert.equal((await v.verify(await sign())).subject, PERSON);
    assert.equal(fetches, 2);
  });
});

import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import { SignJWT } from 'jose';
import {
  createDelegationVerifier,
  DelegationConfigError,
  type DelegationFailureReason,
  type DelegationVerifier,
  type DelegationVerifierOptions,
} from '@precinct/delegation';
import {
  AGENT,
  AUDIENCE,
  EARLIER,
  ISSUER,
  PERSON,
  b64json,
  chain,
  makeKey,
  rejectsWith,
  sign,
  signRaw,
  startJwksServer,
  validClaims,
  type TestKey,
} from './support.js';

let es: TestKey;
let ed: TestKey;
let rsa: TestKey;
let stranger: TestKey; // not in the trusted set

before(async () => {
  es = await makeKey('ES256', 'es-1');
  ed = await makeKey('EdDSA', 'ed-1');
  rsa = await makeKey('RS256', 'rsa-1');
  stranger = await makeKey('ES256', 'es-1'); // same kid as a trusted key, different key
});

const verifier = (over: Partial<DelegationVerifierOptions> = {}): DelegationVerifier =>
  createDelegationVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: [es.jwk, ed.jwk, rsa.jwk] },
    ...over,
  });

describe('valid delegation tokens (positive controls)', () => {
  for (const which of ['ES256', 'EdDSA', 'RS256'] as const) {
    test(`${which}: maps the person, the actor chain and the audience`, async () => {
      const key = which === 'ES256' ? es : which === 'EdDSA' ? ed : rsa;
      const token = await sign(key);
      const d = await verifier().verify(token, { actor: AGENT });
      assert.equal(d.subject, PERSON);
      assert.equal(d.actor, AGENT);
      assert.deepEqual(d.actors, [AGENT, EARLIER]);
      assert.equal(d.issuer, ISSUER);
      assert.deepEqual(d.audience, [AUDIENCE]);
      assert.ok(d.expiresAt instanceof Date);
      assert.equal(d.expiresAt.getTime(), (d.claims.exp as number) * 1000);
      assert.equal(d.claims.jti, validClaims().jti);
    });
  }

  test('accepts one of several audiences, an array aud, and a single actor', async () => {
    const token = await sign(es, validClaims({ aud: ['other', AUDIENCE], act: { sub: AGENT } }));
    const d = await verifier({ audience: ['nope', AUDIENCE] }).verify(token, { actor: AGENT });
    assert.deepEqual(d.audience, ['other', AUDIENCE]);
    assert.deepEqual(d.actors, [AGENT]);
  });

  test('boundaries hold: lifetime exactly max, chain exactly maxActorDepth, tolerance', async () => {
    const now = Math.floor(Date.now() / 1000);
    const v = verifier();
    await v.verify(await sign(es, validClaims({ iat: now, exp: now + 3600 })), { actor: AGENT });
    await v.verify(await sign(es, validClaims({ act: chain(5) })), { actor: 'agent-0' });
    await v.verify(await sign(es, validClaims({ nbf: now + 20 })), { actor: AGENT });
    await v.verify(await sign(es, validClaims({ iat: now - 400, exp: now - 10 })), {
      actor: AGENT,
    });
  });

  test('a token without kid is tried against every fitting key (rotation)', async () => {
    const next = await makeKey('ES256', 'es-2');
    const v = verifier({ jwks: { keys: [es.jwk, next.jwk] } });
    const d = await v.verify(await sign(next, validClaims(), { kid: undefined }), {
      actor: AGENT,
    });
    assert.equal(d.subject, PERSON);
    const forged = await sign(stranger, validClaims(), { kid: undefined });
    await rejectsWith(v.verify(forged, { actor: AGENT }), 'signature', forged);
  });
});

interface Negative {
  name: string;
  token: () => Promise<string>;
  reason: DelegationFailureReason;
  actor?: string;
  verifier?: () => DelegationVerifier;
}

describe('each single change to a valid token is refused with its reason', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const negatives: Negative[] = [
    {
      name: 'wrong issuer',
      token: () => sign(es, validClaims({ iss: 'https://evil.test' })),
      reason: 'issuer',
    },
    {
      name: 'issuer differing only in case',
      token: () => sign(es, validClaims({ iss: ISSUER.toUpperCase() })),
      reason: 'issuer',
    },
    {
      name: 'wrong audience',
      token: () => sign(es, validClaims({ aud: 'billing' })),
      reason: 'audience',
    },
    {
      name: 'expired',
      token: () => sign(es, validClaims({ iat: now() - 600, exp: now() - 300 })),
      reason: 'expired',
    },
    {
      name: 'nbf in the future',
      token: () => sign(es, validClaims({ nbf: now() + 120 })),
      reason: 'not_yet_valid',
    },
    {
      name: 'iat in the future',
      token: () => sign(es, validClaims({ iat: now() + 120, exp: now() + 300 })),
      reason: 'not_yet_valid',
    },
    {
      name: 'lifetime too long',
      token: () => sign(es, validClaims({ iat: now(), exp: now() + 3601 })),
      reason: 'lifetime',
    },
    { name: 'no iat', token: () => sign(es, validClaims({ iat: undefined })), reason: 'claims' },
    { name: 'no exp', token: () => sign(es, validClaims({ exp: undefined })), reason: 'claims' },
    {
      name: 'exp not a number',
      token: () => sign(es, validClaims({ exp: String(now() + 300) })),
      reason: 'claims',
    },
    {
      name: 'missing act',
      token: () => sign(es, validClaims({ act: undefined })),
      reason: 'claims',
    },
    {
      name: 'actor is the nested, earlier actor instead of the outermost',
      token: () => sign(es),
      actor: EARLIER,
      reason: 'actor_mismatch',
    },
    {
      name: 'actor differing only in case',
      token: () => sign(es),
      actor: AGENT.toUpperCase(),
      reason: 'actor_mismatch',
    },
    {
      name: 'actor differing only by whitespace',
      token: () => sign(es),
      actor: ` ${AGENT}`,
      reason: 'actor_mismatch',
    },
    {
      name: 'act is a string',
      token: () => sign(es, validClaims({ act: AGENT })),
      reason: 'claims',
    },
    {
      name: 'act is an array',
      token: () => sign(es, validClaims({ act: [{ sub: AGENT }] })),
      reason: 'claims',
    },
    { name: 'act is null', token: () => sign(es, validClaims({ act: null })), reason: 'claims' },
    {
      name: 'act.sub is empty',
      token: () => sign(es, validClaims({ act: { sub: '' } })),
      reason: 'claims',
    },
    {
      name: 'act.sub is not a string',
      token: () => sign(es, validClaims({ act: { sub: 42 } })),
      reason: 'claims',
    },
    {
      name: 'a nested act is not an object',
      token: () => sign(es, validClaims({ act: { sub: AGENT, act: 'x' } })),
      reason: 'claims',
    },
    { name: 'sub empty', token: () => sign(es, validClaims({ sub: '' })), reason: 'claims' },
    {
      name: 'sub missing',
      token: () => sign(es, validClaims({ sub: undefined })),
      reason: 'claims',
    },
    {
      name: 'actor chain one deeper than maxActorDepth',
      token: () => sign(es, validClaims({ act: chain(6) })),
      actor: 'agent-0',
      reason: 'claims',
    },
    {
      name: 'alg none (hand-crafted)',
      token: async () => `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(validClaims())}.`,
      reason: 'algorithm',
    },
    {
      name: 'HS256 signed with the public key bytes as the secret',
      token: () =>
        new SignJWT(validClaims())
          .setProtectedHeader({ alg: 'HS256', kid: es.kid })
          .sign(
            new TextEncoder().encode(
              es.publicKey.export({ type: 'spki', format: 'pem' }) as string,
            ),
          ),
      reason: 'algorithm',
    },
    {
      name: 'an algorithm outside the allow-list (ES512 not configured)',
      token: async () => {
        const [, p, s] = (await sign(es)).split('.');
        return `${b64json({ alg: 'ES512', kid: es.kid })}.${p}.${s}`;
      },
      reason: 'algorithm',
    },
    {
      name: 'unknown kid',
      token: () => sign(es, validClaims(), { kid: 'es-unknown' }),
      reason: 'unknown_key',
    },
    {
      name: 'signed by another key under a trusted kid',
      token: () => sign(stranger),
      reason: 'signature',
    },
    {
      name: 'signature byte flipped',
      token: async () => {
        const [h, p, s] = (await sign(es)).split('.') as [string, string, string];
        const sig = Buffer.from(s, 'base64url');
        sig[10]! ^= 0x01;
        return `${h}.${p}.${sig.toString('base64url')}`;
      },
      reason: 'signature',
    },
    {
      name: 'payload swapped under a valid signature',
      token: async () => {
        const [h, , s] = (await sign(es)).split('.');
        return `${h}.${b64json(validClaims({ sub: 'mallory@example.com' }))}.${s}`;
      },
      reason: 'signature',
    },
    {
      name: 'unknown critical header',
      token: async () =>
        signRaw(
          es,
          { alg: 'ES256', kid: es.kid, crit: ['x-precinct'], 'x-precinct': 1 },
          validClaims(),
        ),
      reason: 'malformed',
    },
    {
      name: 'token over maxTokenBytes',
      token: () => sign(es, validClaims({ pad: 'x'.repeat(9000) })),
      reason: 'too_large',
    },
    {
      name: 'non-canonical base64url (padding) in the signature',
      token: async () => `${await sign(es)}=`,
      reason: 'malformed',
    },
  ];

  test('positive control: the unchanged token verifies with the same verifier', async () => {
    const d = await verifier().verify(await sign(es), { actor: AGENT });
    assert.equal(d.actor, AGENT);
  });

  for (const n of negatives) {
    test(n.name, async () => {
      const token = await n.token();
      const v = n.verifier?.() ?? verifier();
      await rejectsWith(v.verify(token, { actor: n.actor ?? AGENT }), n.reason, token);
    });
  }

  test('the large token alone is acceptable to a verifier allowing its size', async () => {
    const token = await sign(es, validClaims({ pad: 'x'.repeat(9000) }));
    await verifier({ maxTokenBytes: 65536 }).verify(token, { actor: AGENT });
  });

  test('a chain within a raised maxActorDepth is accepted', async () => {
    const token = await sign(es, validClaims({ act: chain(6) }));
    await verifier({ maxActorDepth: 6 }).verify(token, { actor: 'agent-0' });
  });

  test('a lifetime within a raised maxLifetimeSeconds is accepted', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await sign(es, validClaims({ iat: now, exp: now + 3601 }));
    await verifier({ maxLifetimeSeconds: 7200 }).verify(token, { actor: AGENT });
  });

  test('garbage is refused as malformed (or too large), never with another error', async () => {
    const garbage: unknown[] = [
      '',
      'a',
      '.',
      '..',
      '...',
      'a.b',
      'a.b.c',
      'a.b.c.d',
      'Bearer abc',
      ' ',
      '\u0000',
      '🦀.🦀.🦀',
      '{"alg":"ES256"}',
      `${b64json('string')}.${b64json({})}.AAAA`,
      `${b64json({ alg: 'ES256' })}..AAAA`,
      `${b64json({ alg: 'ES256', kid: 7 })}.${b64json({})}.AAAA`,
      `${b64json(null)}.${b64json({})}.AAAA`,
      `${b64json([])}.${b64json({})}.AAAA`,
      `${b64json({ alg: 'ES256' })}.${b64json({})}.`,
      `${b64json({ alg: 'ES256' })}.not base64.AAAA`,
      undefined,
      null,
      42,
      { token: 'x' },
    ];
    const v = verifier();
    for (const g of garbage) {
      await rejectsWith(v.verify(g as string, { actor: AGENT }), 'malformed', g);
    }
    await rejectsWith(v.verify('a'.repeat(8193), { actor: AGENT }), 'too_large');
    // 3000 two-byte characters: short in UTF-16 units, over the limit in UTF-8 bytes.
    await rejectsWith(v.verify('é'.repeat(5000), { actor: AGENT }), 'too_large');
  });

  test('a missing expected actor is a programming error, not a pass', async () => {
    const token = await sign(es);
    for (const expect of [{ actor: '' }, {}, undefined]) {
      await assert.rejects(
        verifier().verify(token, expect as { actor: string }),
        (err: unknown) => err instanceof TypeError,
      );
    }
  });
});

describe('remote JWKS', () => {
  test('verifies against a JWKS served over HTTP, fetching it once', async (t) => {
    const server = await startJwksServer([es.jwk, ed.jwk]);
    t.after(server.close);
    const v = verifier({ jwks: server.url });
    const d = await v.verify(await sign(es), { actor: AGENT });
    assert.equal(d.subject, PERSON);
    await v.verify(await sign(ed), { actor: AGENT });
    assert.equal(server.requests, 1);
  });

  test('garbage and disallowed algorithms never reach the JWKS endpoint', async (t) => {
    const server = await startJwksServer([es.jwk]);
    t.after(server.close);
    const v = verifier({ jwks: server.url });
    await rejectsWith(v.verify('a.b.c', { actor: AGENT }), 'malformed');
    await rejectsWith(
      v.verify(`${b64json({ alg: 'none' })}.${b64json(validClaims())}.`, { actor: AGENT }),
      'algorithm',
    );
    assert.equal(server.requests, 0);
  });

  test('the same server down: jwks_unavailable (fail closed)', async () => {
    const server = await startJwksServer([es.jwk]);
    const url = server.url;
    await server.close();
    const token = await sign(es);
    await rejectsWith(verifier({ jwks: url }).verify(token, { actor: AGENT }), 'jwks_unavailable');
  });

  test('a JWKS endpoint answering 404 or non-JSON: jwks_unavailable', async (t) => {
    const server = await startJwksServer([es.jwk]);
    t.after(server.close);
    const token = await sign(es);
    const missing = new URL('/missing', server.url);
    await rejectsWith(
      verifier({ jwks: missing }).verify(token, { actor: AGENT }),
      'jwks_unavailable',
    );
  });
});

/** A JWKS endpoint whose keys can change and which can fail, counting its requests. */
async function startSwitchableJwks(initial: JWK[]) {
  let keys = initial;
  let failing = false;
  let requests = 0;
  const server = createServer((_req, res) => {
    requests++;
    if (failing) res.writeHead(503).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`),
    get requests() {
      return requests;
    },
    setKeys: (k: JWK[]) => void (keys = k),
    setFailing: (f: boolean) => void (failing = f),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('remote JWKS fetches are rate-limited in every state', () => {
  test('300 tokens cost a bounded number of fetches; a rotation is picked up after the cool-down', async (t) => {
    const next = await makeKey('ES256', 'es-next');
    const server = await startSwitchableJwks([es.jwk]);
    t.after(server.close);
    let clock = Date.now();
    const v = verifier({ jwks: server.url, jwksCooldownSeconds: 30, now: () => clock });
    const good = await sign(es);
    const storm = async (token: string, reason: DelegationFailureReason) => {
      const all = await Promise.allSettled(
        Array.from({ length: 150 }, () => v.verify(token, { actor: AGENT })),
      );
      for (const r of all) assert.equal(r.status, 'rejected');
      for (const r of all)
        await rejectsWith(Promise.reject((r as PromiseRejectedResult).reason), reason);
      for (let i = 0; i < 150; i++) await rejectsWith(v.verify(token, { actor: AGENT }), reason);
    };

    // 1. No keys yet, the endpoint failing: one fetch for 300 tokens.
    server.setFailing(true);
    await storm(good, 'jwks_unavailable');
    assert.equal(server.requests, 1);
    // Positive control: after the cool-down the endpoint is asked again and the keys load.
    server.setFailing(false);
    clock += 31_000;
    assert.equal((await v.verify(good, { actor: AGENT })).subject, PERSON);
    assert.equal(server.requests, 2);

    // 2. Unknown kids: one refetch, then unknown_key without fetching.
    clock += 31_000;
    const forged = await sign({ ...stranger, kid: 'forged' });
    await storm(forged, 'unknown_key');
    assert.equal(server.requests, 3);

    // 3. An unknown kid while the endpoint fails: one fetch; undecidable, so unavailable.
    clock += 31_000;
    server.setFailing(true);
    await storm(forged, 'jwks_unavailable');
    assert.equal(server.requests, 4);
    assert.equal((await v.verify(good, { actor: AGENT })).subject, PERSON, 'known keys kept');
    assert.equal(server.requests, 4);

    // Positive control: a rotated-in key is picked up once the cool-down has passed.
    server.setFailing(false);
    server.setKeys([es.jwk, next.jwk]);
    const rotated = await sign(next);
    await rejectsWith(v.verify(rotated, { actor: AGENT }), 'jwks_unavailable');
    assert.equal(server.requests, 4);
    clock += 31_000;
    assert.equal((await v.verify(rotated, { actor: AGENT })).subject, PERSON);
    assert.equal(server.requests, 5);
  });

  test('concurrent first use shares one fetch', async (t) => {
    const server = await startSwitchableJwks([es.jwk]);
    t.after(server.close);
    const v = verifier({ jwks: server.url });
    const token = await sign(es);
    const all = await Promise.all(
      Array.from({ length: 300 }, () => v.verify(token, { actor: AGENT })),
    );
    assert.equal(all.length, 300);
    assert.equal(server.requests, 1);
  });

  test('a served private or symmetric key is never used to verify', async (t) => {
    const priv = { ...(await import('jose').then((j) => j.exportJWK(es.privateKey))), kid: 'es-1' };
    const server = await startSwitchableJwks([priv as JWK]);
    t.after(server.close);
    await rejectsWith(
      verifier({ jwks: server.url }).verify(await sign(es), { actor: AGENT }),
      'unknown_key',
    );
  });
});

describe('configuration is checked at construction', () => {
  const bad: Array<[string, Partial<DelegationVerifierOptions>]> = [
    ['alg none', { algorithms: ['none'] }],
    ['HS256', { algorithms: ['HS256'] }],
    ['HS512 next to ES256', { algorithms: ['ES256', 'HS512'] }],
    ['unknown algorithm', { algorithms: ['XY999'] }],
    ['empty algorithm list', { algorithms: [] }],
    ['empty issuer', { issuer: '' }],
    ['empty audience', { audience: '' }],
    ['empty audience list', { audience: [] }],
    ['file: JWKS URL', { jwks: new URL('file:///etc/jwks.json') }],
    ['JWKS without keys', { jwks: {} as { keys: [] } }],
    ['negative lifetime', { maxLifetimeSeconds: -1 }],
    ['zero token size', { maxTokenBytes: 0 }],
    ['NaN tolerance', { clockToleranceSeconds: Number.NaN }],
    ['zero actor depth', { maxActorDepth: 0 }],
  ];
  for (const [name, over] of bad) {
    test(name, () => {
      assert.throws(() => verifier(over), DelegationConfigError);
    });
  }

  test('a private or symmetric key in a local JWKS', async () => {
    const { exportJWK } = await import('jose');
    const priv = { ...(await exportJWK(es.privateKey)), kid: 'p' };
    assert.throws(() => verifier({ jwks: { keys: [priv] } }), DelegationConfigError);
    const oct = { kty: 'oct', k: 'c2VjcmV0', kid: 'o' };
    assert.throws(() => verifier({ jwks: { keys: [oct] } }), DelegationConfigError);
  });

  test('the positive control: defaults construct', () => {
    assert.ok(verifier());
  });
});

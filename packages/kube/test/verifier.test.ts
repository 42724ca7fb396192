import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportSPKI, base64url } from 'jose';
import { createJwksVerifier, KubeAuthError, KubeUnavailableError } from '@precinct/kube';
import { tempDir } from '@precinct/testing';
import {
  ISSUER,
  makeKey,
  projectedClaims,
  sign,
  startJwksServer,
  type TestKey,
} from './support.js';

let rsa: TestKey;
let ec: TestKey;
let other: TestKey;
let jwks: Awaited<ReturnType<typeof startJwksServer>>;

before(async () => {
  rsa = await makeKey('RS256', 'rsa-1');
  ec = await makeKey('ES256', 'ec-1');
  other = await makeKey('RS256', 'rsa-1'); // same kid, another cluster's key
  jwks = await startJwksServer([rsa.jwk, ec.jwk]);
});
after(() => jwks.close());

const verifier = () =>
  createJwksVerifier({ issuer: ISSUER, audiences: ['precinct'], jwksUrl: jwks.jwksUrl });

describe('offline ServiceAccount token verification', () => {
  test('accepts a projected RS256 token and maps every Kubernetes claim', async () => {
    const id = await verifier().verify(await sign(rsa, projectedClaims()));
    assert.equal(id.username, 'system:serviceaccount:team-a:builder');
    assert.equal(id.namespace, 'team-a');
    assert.equal(id.serviceAccountName, 'builder');
    assert.equal(id.uid, '11111111-2222-4333-8444-555555555555');
    assert.deepEqual(id.groups, [
      'system:serviceaccounts',
      'system:serviceaccounts:team-a',
      'system:authenticated',
    ]);
    assert.deepEqual(id.pod, { name: 'builder-7d9f', uid: '99999999-2222-4333-8444-555555555555' });
    assert.equal(id.node?.name, 'node-1');
    assert.deepEqual(id.audiences, ['precinct']);
    assert.deepEqual(id.extra['authentication.kubernetes.io/pod-name'], ['builder-7d9f']);
    assert.deepEqual(id.extra['authentication.kubernetes.io/credential-id'], [
      'JTI=c0ffee00-0000-4000-8000-000000000001',
    ]);
    assert.ok(id.expiresAt instanceof Date);
    assert.equal(id.source, 'jwks');
  });

  test('accepts ES256 and the legacy secret-token claim shape', async () => {
    const legacy = projectedClaims({
      'kubernetes.io': undefined,
      'kubernetes.io/serviceaccount/namespace': 'ops',
      'kubernetes.io/serviceaccount/service-account.name': 'deployer',
      'kubernetes.io/serviceaccount/service-account.uid': 'abc',
      sub: 'system:serviceaccount:ops:deployer',
    });
    delete legacy['kubernetes.io'];
    const id = await verifier().verify(await sign(ec, legacy));
    assert.equal(id.username, 'system:serviceaccount:ops:deployer');
    assert.equal(id.uid, 'abc');
    assert.equal(id.pod, undefined);
  });

  test('accepts a JWKS from a file and OIDC discovery', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const path = join(dir.path, 'jwks.json');
    writeFileSync(path, JSON.stringify({ keys: [rsa.jwk] }));
    const token = await sign(rsa, projectedClaims());
    const fromFile = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksPath: path,
    });
    assert.equal((await fromFile.verify(token)).namespace, 'team-a');
    const discovered = createJwksVerifier({ issuer: jwks.url, audiences: ['precinct'] });
    const t2 = await sign(rsa, projectedClaims({ iss: jwks.url }));
    assert.equal((await discovered.verify(t2)).serviceAccountName, 'builder');
  });

  test('rejects bad tokens with a precise code (table)', async () => {
    const v = verifier();
    const now = Math.floor(Date.now() / 1000);
    const good = await sign(rsa, projectedClaims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
    const hs256WithPublicKey = await new SignJWT(projectedClaims())
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .sign(new TextEncoder().encode(await exportSPKI(rsa.publicKey)));
    const cases: Array<[string, string | Promise<string>, string]> = [
      ['empty', '', 'ERR_TOKEN_MISSING'],
      ['two parts', `${h}.${p}`, 'ERR_TOKEN_MALFORMED'],
      ['four parts', `${good}.x`, 'ERR_TOKEN_MALFORMED'],
      ['bad base64url', `${h}.${p}!.${s}`, 'ERR_TOKEN_MALFORMED'],
      ['header not JSON', `${base64url.encode('nope')}.${p}.${s}`, 'ERR_TOKEN_MALFORMED'],
      ['header JSON array', `${enc([1])}.${p}.${s}`, 'ERR_TOKEN_MALFORMED'],
      ['payload not JSON', `${h}.${base64url.encode('{')}.${s}`, 'ERR_TOKEN_MALFORMED'],
      ['over 16 KiB', `${h}.${'A'.repeat(17 * 1024)}.${s}`, 'ERR_TOKEN_TOO_LARGE'],
      [
        'JWS JSON serialization',
        JSON.stringify({ payload: p, protected: h, signature: s }),
        'ERR_TOKEN_MALFORMED',
      ],
      ['alg none', `${enc({ alg: 'none', kid: 'rsa-1' })}.${p}.`, 'ERR_TOKEN_ALG'],
      ['HS256 signed with the public key', hs256WithPublicKey, 'ERR_TOKEN_ALG'],
      [
        'RS256 header on an EC key',
        `${enc({ alg: 'RS256', kid: 'ec-1' })}.${p}.${s}`,
        'ERR_TOKEN_ALG',
      ],
      [
        'unknown crit',
        `${enc({ alg: 'RS256', kid: 'rsa-1', crit: ['exp-x'], 'exp-x': 1 })}.${p}.${s}`,
        'ERR_TOKEN_CRIT',
      ],
      ['unknown kid', sign({ ...rsa, kid: 'nope' }, projectedClaims()), 'ERR_TOKEN_KID'],
      ['another cluster key', sign(other, projectedClaims()), 'ERR_TOKEN_SIGNATURE'],
      [
        'tampered payload',
        `${h}.${enc(projectedClaims({ sub: 'system:serviceaccount:kube-system:admin' }))}.${s}`,
        'ERR_TOKEN_SIGNATURE',
      ],
      ['wrong issuer', sign(rsa, projectedClaims({ iss: 'https://evil' })), 'ERR_TOKEN_ISSUER'],
      ['wrong audience', sign(rsa, projectedClaims({ aud: ['nats'] })), 'ERR_TOKEN_AUDIENCE'],
      [
        'expired',
        sign(rsa, projectedClaims({ exp: now - 120, iat: now - 4000, nbf: now - 4000 })),
        'ERR_TOKEN_EXPIRED',
      ],
      [
        'nbf in the future',
        sign(rsa, projectedClaims({ nbf: now + 600 })),
        'ERR_TOKEN_NOT_YET_VALID',
      ],
      [
        'iat in the future',
        sign(rsa, projectedClaims({ iat: now + 600, nbf: now })),
        'ERR_TOKEN_ISSUED_IN_FUTURE',
      ],
      ['no exp', sign(rsa, { ...projectedClaims(), exp: undefined }), 'ERR_TOKEN_CLAIMS'],
      [
        'sub disagrees with claims',
        sign(rsa, projectedClaims({ sub: 'system:serviceaccount:team-a:other' })),
        'ERR_TOKEN_CLAIMS',
      ],
      [
        'no kubernetes claims',
        sign(rsa, { ...projectedClaims(), 'kubernetes.io': undefined }),
        'ERR_TOKEN_CLAIMS',
      ],
    ];
    for (const [name, tokenP, code] of cases) {
      const token = await tokenP;
      await assert.rejects(v.verify(token), (err: unknown) => {
        assert.ok(err instanceof KubeAuthError, `${name}: ${String(err)}`);
        assert.equal(err.code, code, `${name}: got ${err.code} (${err.message})`);
        return true;
      });
    }
    // Positive control: the same verifier still accepts the good token after all of that.
    assert.equal((await v.verify(good)).namespace, 'team-a');
  });

  test('structurally bad tokens never reach the JWKS endpoint (rejected before key lookup)', async (t) => {
    const fresh = await startJwksServer([rsa.jwk]);
    t.after(() => fresh.close());
    const v = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksUrl: fresh.jwksUrl,
    });
    const good = await sign(rsa, projectedClaims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
    const bad = [
      `${h}.${p}`,
      `${h}.${p}!.${s}`,
      `${h}.${'A'.repeat(17 * 1024)}.${s}`,
      JSON.stringify({ payload: p, protected: h, signature: s }),
      `${enc({ alg: 'none' })}.${p}.`,
      `${enc({ alg: 'HS256', kid: 'rsa-1' })}.${p}.${s}`,
      `${enc({ alg: 'RS256', kid: 'rsa-1', crit: ['x'], x: 1 })}.${p}.${s}`,
    ];
    for (const token of bad) {
      await assert.rejects(v.verify(token), KubeAuthError);
    }
    assert.equal(fresh.hits, 0, 'no JWKS request for structurally bad tokens');
    // Positive control: a good token does load the keys.
    assert.equal((await v.verify(good)).serviceAccountName, 'builder');
    assert.ok(fresh.hits > 0);
  });

  test('within the clock skew a just-expired token is accepted; beyond it, not', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await sign(
      rsa,
      projectedClaims({ exp: now - 30, iat: now - 100, nbf: now - 100 }),
    );
    assert.ok(await verifier().verify(token));
    const strict = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksUrl: jwks.jwksUrl,
      clockToleranceSeconds: 0,
    });
    await assert.rejects(strict.verify(token), { code: 'ERR_TOKEN_EXPIRED' });
  });

  test('refuses unsafe configuration', () => {
    const base = { issuer: ISSUER, audiences: ['a'] };
    assert.throws(() => createJwksVerifier({ ...base, algorithms: ['HS256'] }), TypeError);
    assert.throws(() => createJwksVerifier({ ...base, algorithms: ['none'] }), TypeError);
    assert.throws(() => createJwksVerifier({ ...base, audiences: [] }), TypeError);
    assert.throws(() => createJwksVerifier({ ...base, clockToleranceSeconds: 3600 }), TypeError);
    assert.throws(
      () => createJwksVerifier({ ...base, jwksUrl: 'http://a', jwksPath: '/b' }),
      TypeError,
    );
  });

  test('an algorithm outside a narrowed allow-list is refused before crypto', async () => {
    const rsOnly = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksUrl: jwks.jwksUrl,
      algorithms: ['RS256'],
    });
    await assert.rejects(rsOnly.verify(await sign(ec, projectedClaims())), {
      code: 'ERR_TOKEN_ALG',
    });
    assert.ok(await rsOnly.verify(await sign(rsa, projectedClaims())));
  });
});

describe('JWKS handling', () => {
  test('an unknown kid triggers one rate-limited refresh that picks up a rotated key', async (t) => {
    const k1 = await makeKey('RS256', 'k1');
    const k2 = await makeKey('RS256', 'k2');
    const server = await startJwksServer([k1.jwk]);
    t.after(() => server.close());
    let clock = Date.now();
    const v = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksUrl: server.jwksUrl,
      now: () => clock,
    });
    await v.verify(await sign(k1, projectedClaims()));
    assert.equal(server.hits, 1);
    // A forged kid: one refresh (once the interval since the first load passed), then the
    // rate limit holds.
    clock += 11_000;
    const forged = await sign({ ...k1, kid: 'forged' }, projectedClaims());
    await assert.rejects(v.verify(forged), { code: 'ERR_TOKEN_KID' });
    await assert.rejects(v.verify(forged), { code: 'ERR_TOKEN_KID' });
    assert.equal(server.hits, 2);
    // The cluster rotates to k2; once the interval passed, the next unknown kid refreshes.
    server.setKeys([k1.jwk, k2.jwk]);
    clock += 11_000;
    const id = await v.verify(await sign(k2, projectedClaims()));
    assert.equal(id.serviceAccountName, 'builder');
    assert.equal(server.hits, 3);
  });

  test('keys survive an outage of the JWKS endpoint; unknown kids then fail closed (503)', async (t) => {
    const k1 = await makeKey('ES256', 'k1');
    const server = await startJwksServer([k1.jwk]);
    t.after(() => server.close());
    let clock = Date.now();
    const v = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksUrl: server.jwksUrl,
      now: () => clock,
    });
    const token = await sign(k1, projectedClaims());
    await v.verify(token);
    server.setFailing(true);
    clock += 600_000; // past max age: a background refresh fails
    assert.ok(await v.verify(token));
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(await v.verify(token), 'known key still trusted during the outage');
    const unknown = await sign({ ...k1, kid: 'new' }, projectedClaims());
    clock += 11_000;
    await assert.rejects(v.verify(unknown), (e) => e instanceof KubeUnavailableError);
  });

  test('an unreachable JWKS at first use is unavailable (503), not a bad token', async () => {
    const v = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksUrl: 'http://127.0.0.1:1/jwks',
    });
    await assert.rejects(v.verify(await sign(rsa, projectedClaims())), {
      code: 'ERR_KUBE_UNAVAILABLE',
    });
  });

  test('fetch storms: 300 tokens cost a bounded number of JWKS fetches in every state', async (t) => {
    const k1 = await makeKey('RS256', 'k1');
    const k2 = await makeKey('RS256', 'k2');
    const server = await startJwksServer([k1.jwk]);
    t.after(() => server.close());
    let clock = Date.now();
    const v = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksUrl: server.jwksUrl,
      now: () => clock,
    });
    const good = await sign(k1, projectedClaims());
    // 150 at once, then 150 one after the other.
    const storm = async (token: string, expect: (e: unknown) => boolean) => {
      const results = await Promise.allSettled(Array.from({ length: 150 }, () => v.verify(token)));
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        assert.ok(
          expect((r as PromiseRejectedResult).reason),
          String((r as PromiseRejectedResult).reason),
        );
      }
      for (let i = 0; i < 150; i++) await assert.rejects(v.verify(token), expect);
    };
    const unavailable = (e: unknown) => e instanceof KubeUnavailableError;

    // 1. No keys yet, the endpoint failing: one fetch, every token 503.
    server.setFailing(true);
    await storm(good, unavailable);
    assert.equal(server.hits, 1);
    // Positive control: after the interval the endpoint is tried again and the keys load.
    server.setFailing(false);
    clock += 11_000;
    assert.ok(await v.verify(good));
    assert.equal(server.hits, 2);

    // 2. Unknown kids (forged, distinct): one refresh, then 401 without fetching.
    clock += 11_000;
    const forged = await Promise.all(
      Array.from({ length: 300 }, (_, i) => sign({ ...k1, kid: `forged-${i}` }, projectedClaims())),
    );
    const outcomes = await Promise.allSettled(forged.map((f) => v.verify(f)));
    for (const o of outcomes) {
      assert.equal(o.status, 'rejected');
      assert.equal((o as PromiseRejectedResult).reason.code, 'ERR_TOKEN_KID');
    }
    assert.equal(server.hits, 3);

    // 3. Unknown kid while the endpoint fails: one fetch, 503 (it may be a new key).
    clock += 11_000;
    server.setFailing(true);
    await storm(forged[0]!, unavailable);
    assert.equal(server.hits, 4);
    assert.ok(await v.verify(good), 'known keys are still trusted');
    assert.equal(server.hits, 4);

    // Positive control: a rotation (new kid) is picked up once the interval has passed.
    server.setFailing(false);
    server.setKeys([k1.jwk, k2.jwk]);
    const rotated = await sign(k2, projectedClaims());
    await assert.rejects(v.verify(rotated), unavailable, 'still within the interval');
    assert.equal(server.hits, 4);
    clock += 11_000;
    assert.equal((await v.verify(rotated)).serviceAccountName, 'builder');
    assert.equal(server.hits, 5);
  });

  test('concurrent first use shares one fetch', async (t) => {
    const k1 = await makeKey('ES256', 'k1');
    const server = await startJwksServer([k1.jwk]);
    t.after(() => server.close());
    const v = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksUrl: server.jwksUrl,
    });
    const token = await sign(k1, projectedClaims());
    const ids = await Promise.all(Array.from({ length: 300 }, () => v.verify(token)));
    assert.equal(ids.length, 300);
    assert.equal(server.hits, 1);
    assert.equal(v.jwks.status().keys, 1);
    assert.equal(v.jwks.status().failing, false);
  });

  test('a JWKS with private or unusable keys keeps only the usable public ones', async (t) => {
    const k1 = await makeKey('RS256', 'k1');
    const server = await startJwksServer([
      { kty: 'oct', k: 'c2VjcmV0', kid: 'sym' },
      { kty: 'RSA', kid: 'broken', n: 'AQAB', e: 'AQAB', alg: 'RS256' },
      { kty: 'OKP', crv: 'Ed25519', x: 'AA', kid: 'ed' },
      k1.jwk,
    ]);
    t.after(() => server.close());
    const v = createJwksVerifier({
      issuer: ISSUER,
      audiences: ['precinct'],
      jwksUrl: server.jwksUrl,
    });
    assert.ok(await v.verify(await sign(k1, projectedClaims())));
  });
});

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, createHmac, sign as cryptoSign, type KeyObject } from 'node:crypto';
import {
  JwtBundle,
  JwtBundleSet,
  SpiffeError,
  TrustDomain,
  parseAndValidateJwtSvid,
  parseInsecureJwtSvid,
} from '@precinct/spiffe';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

interface Key {
  kid: string;
  alg: string;
  priv: KeyObject;
  pub: KeyObject;
}

function key(alg: string, kid: string): Key {
  const kp = alg.startsWith('ES')
    ? generateKeyPairSync('ec', {
        namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg]!,
      })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg, priv: kp.privateKey, pub: kp.publicKey };
}

function signRaw(k: Key, header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const input = `${b64(header)}.${b64(claims)}`;
  const hash = `sha${header.alg?.toString().slice(2) ?? '256'}`;
  const alg = String(header.alg);
  const sig = alg.startsWith('ES')
    ? cryptoSign(hash, Buffer.from(input), { key: k.priv, dsaEncoding: 'ieee-p1363' })
    : alg.startsWith('PS')
      ? cryptoSign(hash, Buffer.from(input), { key: k.priv, padding: 6, saltLength: -1 })
      : cryptoSign(hash, Buffer.from(input), k.priv);
  return `${input}.${sig.toString('base64url')}`;
}

const now = () => Math.floor(Date.now() / 1000);
const claims = (over: Record<string, unknown> = {}) => ({
  sub: 'spiffe://example.org/workload',
  aud: ['svc'],
  exp: now() + 300,
  iat: now(),
  ...over,
});

let keys: Record<string, Key>;
let bundles: JwtBundleSet;
let otherTd: Key;

before(() => {
  keys = {};
  for (const alg of [
    'RS256',
    'RS384',
    'RS512',
    'PS256',
    'PS384',
    'PS512',
    'ES256',
    'ES384',
    'ES512',
  ]) {
    keys[alg] = key(alg, `k-${alg}`);
  }
  const td = new JwtBundle(
    TrustDomain.parse('example.org'),
    new Map(Object.values(keys).map((k) => [k.kid, k.pub])),
  );
  otherTd = key('ES256', 'k-other');
  bundles = new JwtBundleSet([
    td,
    new JwtBundle(TrustDomain.parse('other.org'), new Map([[otherTd.kid, otherTd.pub]])),
  ]);
});

const sign = (alg: string, c = claims(), extraHeader: Record<string, unknown> = {}) =>
  signRaw(keys[alg]!, { alg, kid: keys[alg]!.kid, typ: 'JWT', ...extraHeader }, c);

test('every allowed algorithm validates; result carries id, audience, expiry', () => {
  for (const alg of Object.keys(keys)) {
    const svid = parseAndValidateJwtSvid(sign(alg), bundles, ['svc']);
    assert.equal(svid.id.toString(), 'spiffe://example.org/workload', alg);
    assert.deepEqual(svid.audience, ['svc']);
    assert.ok(svid.expiry instanceof Date);
  }
});

test('typ absent/JOSE, aud as a string, kid absent (try each key), nbf in the past: accepted', () => {
  const k = keys.ES256!;
  for (const token of [
    signRaw(k, { alg: 'ES256', kid: k.kid }, claims()),
    signRaw(k, { alg: 'ES256', kid: k.kid, typ: 'JOSE' }, claims()),
    signRaw(k, { alg: 'ES256', kid: k.kid }, claims({ aud: 'svc' })),
    signRaw(k, { alg: 'ES256' }, claims()),
    signRaw(k, { alg: 'ES256', kid: k.kid }, claims({ nbf: now() - 10 })),
  ]) {
    assert.equal(parseAndValidateJwtSvid(token, bundles, ['svc']).id.path, '/workload');
  }
  assert.ok(
    parseAndValidateJwtSvid(sign('ES256', claims({ aud: ['a', 'svc'] })), bundles, ['x', 'svc']),
  );
});

test('every JWT-SVID rule is enforced (table)', () => {
  const k = keys.ES256!;
  const good = sign('ES256');
  const [h, p, s] = good.split('.') as [string, string, string];
  const hmac = (() => {
    const input = `${b64({ alg: 'HS256', kid: k.kid })}.${b64(claims())}`;
    const pubPem = k.pub.export({ format: 'pem', type: 'spki' });
    return `${input}.${createHmac('sha256', pubPem).update(input).digest('base64url')}`;
  })();
  const cases: Array<[string, string, string]> = [
    ['empty', '', 'ERR_JWTSVID_MALFORMED'],
    ['two parts', `${h}.${p}`, 'ERR_JWTSVID_MALFORMED'],
    [
      'JSON serialization',
      JSON.stringify({ protected: h, payload: p, signature: s }),
      'ERR_JWTSVID_SERIALIZATION',
    ],
    ['bad base64', `${h}.${p}*.${s}`, 'ERR_JWTSVID_MALFORMED'],
    [
      'header not JSON',
      `${Buffer.from('x').toString('base64url')}.${p}.${s}`,
      'ERR_JWTSVID_MALFORMED',
    ],
    ['alg none', `${b64({ alg: 'none' })}.${p}.`, 'ERR_JWTSVID_ALG'],
    ['HS256 with the public key as secret', hmac, 'ERR_JWTSVID_ALG'],
    ['EdDSA', `${b64({ alg: 'EdDSA', kid: k.kid })}.${p}.${s}`, 'ERR_JWTSVID_ALG'],
    [
      'RS256 header on an EC key',
      `${b64({ alg: 'RS256', kid: k.kid })}.${p}.${s}`,
      'ERR_JWTSVID_ALG_KEY_MISMATCH',
    ],
    [
      'ES384 header on a P-256 key',
      `${b64({ alg: 'ES384', kid: k.kid })}.${p}.${s}`,
      'ERR_JWTSVID_ALG_KEY_MISMATCH',
    ],
    ['typ JWS', sign('ES256', claims(), { typ: 'JWS' }), 'ERR_JWTSVID_TYP'],
    ['unknown crit', sign('ES256', claims(), { crit: ['x'], x: 1 }), 'ERR_JWTSVID_CRIT'],
    [
      'jku header',
      sign('ES256', claims(), { jku: 'https://evil.example/jwks' }),
      'ERR_JWTSVID_HEADER',
    ],
    ['jwk header', sign('ES256', claims(), { jwk: { kty: 'EC' } }), 'ERR_JWTSVID_HEADER'],
    ['private header', sign('ES256', claims(), { foo: 1 }), 'ERR_JWTSVID_HEADER'],
    ['no sub', sign('ES256', claims({ sub: undefined })), 'ERR_JWTSVID_SUB'],
    [
      'sub not a SPIFFE ID',
      sign('ES256', claims({ sub: 'https://example.org/w' })),
      'ERR_JWTSVID_SUB',
    ],
    ['no aud', sign('ES256', claims({ aud: undefined })), 'ERR_JWTSVID_AUD'],
    ['empty aud', sign('ES256', claims({ aud: [] })), 'ERR_JWTSVID_AUD'],
    ['wrong aud', sign('ES256', claims({ aud: ['other'] })), 'ERR_JWTSVID_AUDIENCE'],
    ['no exp', sign('ES256', claims({ exp: undefined })), 'ERR_JWTSVID_EXP'],
    ['expired', sign('ES256', claims({ exp: now() - 5 })), 'ERR_JWTSVID_EXPIRED'],
    ['nbf in the future', sign('ES256', claims({ nbf: now() + 60 })), 'ERR_JWTSVID_NOT_YET_VALID'],
    [
      'unknown kid',
      signRaw({ ...k, kid: 'nope' }, { alg: 'ES256', kid: 'nope' }, claims()),
      'ERR_JWTSVID_KID',
    ],
    [
      'no bundle for trust domain',
      sign('ES256', claims({ sub: 'spiffe://third.org/w' })),
      'ERR_JWTSVID_NO_BUNDLE',
    ],
    // signed by other.org's key but claiming example.org, kid of the other key
    [
      'other trust domain key',
      signRaw(otherTd, { alg: 'ES256', kid: otherTd.kid }, claims()),
      'ERR_JWTSVID_KID',
    ],
    [
      'other trust domain key, no kid',
      signRaw(otherTd, { alg: 'ES256' }, claims()),
      'ERR_JWTSVID_SIGNATURE',
    ],
    [
      'tampered claims',
      `${h}.${b64(claims({ sub: 'spiffe://example.org/admin' }))}.${s}`,
      'ERR_JWTSVID_SIGNATURE',
    ],
    ['too large', `${h}.${'A'.repeat(17000)}.${s}`, 'ERR_JWTSVID_TOO_LARGE'],
  ];
  for (const [name, token, code] of cases) {
    assert.throws(
      () => parseAndValidateJwtSvid(token, bundles, ['svc']),
      (e: unknown) =>
        e instanceof SpiffeError && e.code === code && e.message.startsWith('jwtsvid: '),
      `${name}: expected ${code}`,
    );
  }
  assert.ok(parseAndValidateJwtSvid(good, bundles, ['svc']));
  assert.equal(
    parseAndValidateJwtSvid(
      signRaw(otherTd, { alg: 'ES256', kid: otherTd.kid }, claims({ sub: 'spiffe://other.org/w' })),
      bundles,
      ['svc'],
    ).id.trustDomain.name,
    'other.org',
  );
});

test('random mutations of a valid token never validate and only throw SpiffeError', () => {
  const good = sign('ES256');
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.{}"=+/ ';
  for (let i = 0; i < 2000; i++) {
    const chars = good.split('');
    const edits = 1 + rnd(3);
    for (let e = 0; e < edits; e++) chars[rnd(chars.length)] = alphabet[rnd(alphabet.length)]!;
    const mutated = chars.join('');
    if (mutated === good) continue;
    try {
      parseAndValidateJwtSvid(mutated, bundles, ['svc']);
      // base64url has slack bits in the last character of a part: the decoded bytes may be
      // identical. Only then may a mutation validate.
      const same = mutated
        .split('.')
        .every((part, j) =>
          Buffer.from(part, 'base64url').equals(Buffer.from(good.split('.')[j]!, 'base64url')),
        );
      assert.ok(same, `mutation validated: ${mutated}`);
    } catch (err) {
      assert.ok(err instanceof SpiffeError, `unexpected ${String(err)}`);
    }
  }
});

test('parseInsecure checks structure, subject, exp and audience but not the signature', () => {
  const good = sign('ES256');
  const [h, p] = good.split('.');
  const unsigned = `${h}.${p}.AAAA`;
  assert.equal(parseInsecureJwtSvid(unsigned, ['svc']).id.path, '/workload');
  assert.throws(() => parseAndValidateJwtSvid(unsigned, bundles, ['svc']), {
    code: 'ERR_JWTSVID_SIGNATURE',
  });
  assert.throws(() => parseInsecureJwtSvid(unsigned, ['nope']), { code: 'ERR_JWTSVID_AUDIENCE' });
});

test('algorithms narrows the allow-list; only a non-empty subset of the spec set is accepted', () => {
  const es256 = sign('ES256');
  const rs256 = sign('RS256');
  const ps256 = sign('PS256');
  const algorithms = ['ES256', 'RS256'] as const;
  // Positive control: the narrowed set still validates what it names, by both entry points.
  assert.equal(
    parseAndValidateJwtSvid(es256, bundles, ['svc'], { algorithms }).id.path,
    '/workload',
  );
  assert.equal(
    parseAndValidateJwtSvid(rs256, bundles, ['svc'], { algorithms }).id.path,
    '/workload',
  );
  assert.equal(parseInsecureJwtSvid(es256, ['svc'], { algorithms }).id.path, '/workload');
  // The same PS256 token validates by default and is refused once narrowed, before any key use.
  assert.equal(parseAndValidateJwtSvid(ps256, bundles, ['svc']).id.path, '/workload');
  for (const validate of [
    () => parseAndValidateJwtSvid(ps256, bundles, ['svc'], { algorithms }),
    () => parseInsecureJwtSvid(ps256, ['svc'], { algorithms }),
  ]) {
    assert.throws(validate, (err: unknown) => {
      assert.ok(err instanceof SpiffeError);
      assert.equal(err.code, 'ERR_JWTSVID_ALG');
      return true;
    });
  }
  // Caller misuse is a TypeError, never a silent widening or an accept-nothing validator.
  for (const bad of [[], ['HS256'], ['none'], ['ES256', 'EdDSA'], ['es256'], 'ES256', [256]]) {
    assert.throws(
      () =>
        parseAndValidateJwtSvid(es256, bundles, ['svc'], {
          algorithms: bad as unknown as readonly string[],
        }),
      TypeError,
      `algorithms=${JSON.stringify(bad)}`,
    );
  }
});

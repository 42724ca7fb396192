import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import {
  JwtBundle,
  JwtBundleSet,
  SpiffeBundle,
  SpiffeError,
  TrustDomain,
  X509Bundle,
  X509BundleSet,
} from '@precinct/spiffe';
import { TestCa } from './support/ca.js';

let ca: TestCa;
let ca2: TestCa;
before(async () => {
  ca = await TestCa.create('example.org');
  ca2 = await TestCa.create('example.org');
});

const td = TrustDomain.parse('example.org');
const ecJwk = (): JsonWebKey =>
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });

test('X.509 bundles parse concatenated PEM and DER; empty input trusts nothing', () => {
  const pem = X509Bundle.parse(td, ca.bundlePem() + ca2.bundlePem());
  assert.equal(pem.x509Authorities().length, 2);
  const der = X509Bundle.parse(td, Buffer.concat([ca.bundleDer(), ca2.bundleDer()]));
  assert.ok(der.equals(pem));
  assert.equal(X509Bundle.parse(td, '').empty, true);
  assert.ok(X509Bundle.parse(td, pem.marshal()).equals(pem));
  for (const bad of [
    Buffer.from([0x30, 0x05, 0x01]),
    Buffer.from('garbage'),
    Buffer.from([0x31, 0x00]),
  ]) {
    assert.throws(() => X509Bundle.parse(td, bad), { code: 'ERR_X509BUNDLE_CERTIFICATES' });
  }
});

test('JWT bundles: jwt-svid keys count, others and unknown kty are skipped, kid required', () => {
  const jwks = JSON.stringify({
    keys: [
      { ...ecJwk(), kid: 'a', use: 'jwt-svid' },
      { ...ecJwk(), kid: 'b' },
      { ...ecJwk(), kid: 'x509', use: 'x509-svid' },
      { kty: 'FANCY', kid: 'f', use: 'jwt-svid' },
    ],
  });
  const b = JwtBundle.parse(td, jwks);
  assert.deepEqual([...b.jwtAuthorities().keys()].sort(), ['a', 'b']);
  assert.equal(JwtBundle.parse(td, '{"keys":[]}').empty, true);
  const round = JwtBundle.parse(td, b.marshal());
  assert.deepEqual([...round.jwtAuthorities().keys()].sort(), ['a', 'b']);
  const cases: Array<[string, string]> = [
    ['not json', 'ERR_BUNDLE_JSON'],
    ['[]', 'ERR_BUNDLE_JSON'],
    ['{"keys": {}}', 'ERR_BUNDLE_JSON'],
    [JSON.stringify({ keys: [{ ...ecJwk(), use: 'jwt-svid' }] }), 'ERR_BUNDLE_KID'],
    [
      JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', kid: 'z' }] }),
      'ERR_BUNDLE_KEY',
    ],
    [
      JSON.stringify({
        keys: [
          {
            ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
              format: 'jwk',
            }),
            kid: 'p',
          },
        ],
      }),
      'ERR_BUNDLE_PRIVATE_KEY',
    ],
    [' '.repeat(1024 * 1024 + 1), 'ERR_BUNDLE_TOO_LARGE'],
  ];
  for (const [input, code] of cases) {
    assert.throws(
      () => JwtBundle.parse(td, input),
      (e: unknown) => e instanceof SpiffeError && e.code === code,
      code,
    );
  }
});

test('SPIFFE bundle format round trip with sequence and refresh hint', () => {
  const doc = {
    keys: [
      {
        ...(ca.cert.publicKey ? {} : {}),
        kty: 'EC',
        use: 'x509-svid',
        x5c: [ca.bundleDer().toString('base64')],
      },
      { ...ecJwk(), kid: 'j1', use: 'jwt-svid' },
      { ...ecJwk(), kid: 'ignored', use: 'something-else' },
    ],
    spiffe_sequence: 7,
    spiffe_refresh_hint: 300,
  };
  const b = SpiffeBundle.parse(td, JSON.stringify(doc));
  assert.equal(b.x509.x509Authorities().length, 1);
  assert.deepEqual([...b.jwt.jwtAuthorities().keys()], ['j1']);
  assert.equal(b.sequenceNumber, 7);
  assert.equal(b.refreshHint, 300);
  const again = SpiffeBundle.parse(td, b.marshal());
  assert.ok(again.x509.equals(b.x509));
  assert.equal(again.sequenceNumber, 7);
  const bad: Array<[unknown, string]> = [
    [{ keys: [{ kty: 'EC', use: 'x509-svid', x5c: ['a', 'b'] }] }, 'ERR_BUNDLE_X5C'],
    [{ keys: [{ kty: 'EC', use: 'x509-svid', x5c: [7] }] }, 'ERR_BUNDLE_X5C'],
    [{ keys: [{ kty: 'EC', use: 'x509-svid', x5c: ['bm90IGEgY2VydA=='] }] }, 'ERR_BUNDLE_X5C'],
    [{ keys: [{ ...ecJwk(), use: 'jwt-svid' }] }, 'ERR_BUNDLE_KID'],
    [{ keys: [], spiffe_refresh_hint: -1 }, 'ERR_BUNDLE_REFRESH_HINT'],
    [{ keys: [], spiffe_sequence: 'x' }, 'ERR_BUNDLE_SEQUENCE'],
    [{}, 'ERR_BUNDLE_JSON'],
  ];
  for (const [input, code] of bad) {
    assert.throws(() => SpiffeBundle.parse(td, JSON.stringify(input)), { code }, code);
  }
});

test('SPIFFE bundle format: which x509-svid entries count (X509-SVID 6.2, TB 4.1.3, 4.2.1)', () => {
  const root = ca.bundleDer().toString('base64');
  const entry = (extra: Record<string, unknown>) => ({ kty: 'EC', use: 'x509-svid', ...extra });
  const anchors = (keys: unknown[]) =>
    SpiffeBundle.parse(td, JSON.stringify({ keys })).x509.x509Authorities().length;
  // Positive control: one well-formed entry is one anchor.
  assert.equal(anchors([entry({ x5c: [root] })]), 1);
  const cases: [string, unknown[], number][] = [
    ['x5c missing: entry ignored', [entry({}), entry({ x5c: [root] })], 1],
    ['x5c empty: entry ignored', [entry({ x5c: [] })], 0],
    ['several x5c values: only the first counts', [entry({ x5c: [root, 'not used'] })], 1],
    ['unknown kty: entry ignored', [entry({ kty: 'FANCY', x5c: [root] })], 0],
    ['no use: entry ignored', [{ kty: 'EC', x5c: [root] }], 0],
    ['another use: entry ignored', [entry({ use: 'wit-svid', x5c: [root] })], 0],
    ['use is case sensitive', [entry({ use: 'X509-SVID', x5c: [root] })], 0],
  ];
  for (const [name, keys, want] of cases) assert.equal(anchors(keys), want, name);
});

test('bundle sets keep trust domains apart', () => {
  const other = TrustDomain.parse('other.org');
  const set = new X509BundleSet([X509Bundle.parse(td, ca.bundlePem())]);
  assert.ok(set.getX509BundleForTrustDomain(td));
  assert.throws(() => set.getX509BundleForTrustDomain(other), { code: 'ERR_BUNDLE_NOT_FOUND' });
  const jset = new JwtBundleSet([JwtBundle.parse(td, '{"keys":[]}')]);
  assert.throws(() => jset.getJwtBundleForTrustDomain(other), { code: 'ERR_BUNDLE_NOT_FOUND' });
  set.remove(td);
  assert.equal(set.size, 0);
});

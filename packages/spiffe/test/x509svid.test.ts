import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { SpiffeError, X509Bundle, X509BundleSet, X509Svid, verifyX509Svid } from '@precinct/spiffe';
import { TestCa } from './support/ca.js';

let ca: TestCa;
let other: TestCa;
let bundles: X509BundleSet;

before(async () => {
  ca = await TestCa.create('example.org');
  other = await TestCa.create('other.org');
  bundles = new X509BundleSet([
    X509Bundle.parse('example.org', ca.bundlePem()),
    X509Bundle.parse('other.org', other.bundlePem()),
  ]);
});

const KU = x509.KeyUsageFlags;
const HOUR = 3600_000;

test('a valid SVID parses (PEM and DER) and verifies against its own trust domain', async () => {
  const s = await ca.issue('/workload');
  const svid = X509Svid.parse(s.certPem, s.keyPem);
  assert.equal(svid.id.toString(), 'spiffe://example.org/workload');
  const fromDer = X509Svid.parse(Buffer.concat(s.chainDer), s.keyDer);
  assert.ok(fromDer.id.equals(svid.id));
  const r = verifyX509Svid(svid.certificates, bundles);
  assert.equal(r.id.toString(), 'spiffe://example.org/workload');
  assert.equal(r.verifiedChain.length, 2);
  assert.match(svid.marshal().certs, /BEGIN CERTIFICATE/);
});

test('chains through intermediates; DNS SANs, empty subjects and critical SANs are fine', async () => {
  const mid = await ca.intermediate();
  const viaMid = await mid.issue('/deep');
  assert.equal(verifyX509Svid(viaMid.chainDer, bundles).verifiedChain.length, 3);
  const dns = await ca.issue('/dns', { dns: ['web.example.org'] });
  assert.ok(verifyX509Svid(dns.chainDer, bundles));
  const empty = await ca.issue('/empty', { emptySubject: true });
  assert.ok(verifyX509Svid(empty.chainDer, bundles));
  assert.ok(X509Svid.parse(empty.certPem, empty.keyPem));
});

test('every X.509-SVID rule is enforced (table)', async () => {
  const now = Date.now();
  const mid = await ca.intermediate();
  const midSvid = await mid.issue('/deep');
  const cases: Array<[string, Promise<Buffer[]> | Buffer[], string]> = [
    [
      'leaf is a CA',
      ca.issue('/ca', { isCa: true }).then((s) => s.chainDer),
      'ERR_X509SVID_LEAF_CA',
    ],
    [
      'keyCertSign',
      ca.issue('/k', { keyUsage: KU.digitalSignature | KU.keyCertSign }).then((s) => s.chainDer),
      'ERR_X509SVID_LEAF_KEY_CERT_SIGN',
    ],
    [
      'cRLSign',
      ca.issue('/c', { keyUsage: KU.digitalSignature | KU.cRLSign }).then((s) => s.chainDer),
      'ERR_X509SVID_LEAF_CRL_SIGN',
    ],
    [
      'no digitalSignature',
      ca.issue('/d', { keyUsage: KU.keyEncipherment }).then((s) => s.chainDer),
      'ERR_X509SVID_LEAF_DIGITAL_SIGNATURE',
    ],
    [
      'no URI SAN',
      ca.issue('/n', { uris: [], dns: ['a.example.org'] }).then((s) => s.chainDer),
      'ERR_X509SVID_NO_URI_SAN',
    ],
    [
      'two URI SANs',
      ca
        .issue('/t', { uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] })
        .then((s) => s.chainDer),
      'ERR_X509SVID_MULTIPLE_URI_SAN',
    ],
    [
      'non-SPIFFE URI',
      ca.issue('/h', { uris: ['https://example.org/a'] }).then((s) => s.chainDer),
      'ERR_X509SVID_BAD_ID',
    ],
    ['root ID', ca.issue('spiffe://example.org').then((s) => s.chainDer), 'ERR_X509SVID_ROOT_ID'],
    [
      'expired',
      ca
        .issue('/e', { notBefore: new Date(now - 2 * HOUR), notAfter: new Date(now - HOUR) })
        .then((s) => s.chainDer),
      'ERR_X509SVID_VALIDITY',
    ],
    [
      'not yet valid',
      ca
        .issue('/f', { notBefore: new Date(now + HOUR), notAfter: new Date(now + 2 * HOUR) })
        .then((s) => s.chainDer),
      'ERR_X509SVID_VALIDITY',
    ],
    [
      'no bundle for its trust domain',
      ca.issue('spiffe://third.org/w').then((s) => s.chainDer),
      'ERR_X509SVID_NO_BUNDLE',
    ],
    // other.org's CA signs an SVID that claims example.org: valid under other.org's bundle,
    // but bundles are never merged, so it must fail.
    [
      'signed by another trust domain CA',
      other.issue('spiffe://example.org/impostor').then((s) => s.chainDer),
      'ERR_X509SVID_UNTRUSTED',
    ],
    ['intermediate missing', [midSvid.chainDer[0]!], 'ERR_X509SVID_UNTRUSTED'],
    ['empty chain', [], 'ERR_X509SVID_EMPTY'],
  ];
  for (const [name, chainP, code] of cases) {
    const chain = await chainP;
    assert.throws(
      () => verifyX509Svid(chain, bundles),
      (e: unknown) => e instanceof SpiffeError && e.code === code,
      `${name}: expected ${code}`,
    );
  }
  // Broken signature: flip a byte in the signature at the end of the leaf.
  const good = await ca.issue('/sig');
  const bad = Buffer.from(good.chainDer[0]!);
  bad[bad.length - 3]! ^= 0xff;
  assert.throws(() => verifyX509Svid([bad], bundles), SpiffeError);
  // Positive controls with the same bundles.
  assert.ok(verifyX509Svid(good.chainDer, bundles));
  assert.ok(verifyX509Svid(midSvid.chainDer, bundles));
  assert.ok(verifyX509Svid((await other.issue('/ok')).chainDer, bundles));
});

test('verification at a given time', async () => {
  const s = await ca.issue('/t');
  assert.ok(verifyX509Svid(s.chainDer, bundles, { now: new Date() }));
  assert.throws(
    () => verifyX509Svid(s.chainDer, bundles, { now: new Date(Date.now() + 48 * HOUR) }),
    {
      code: 'ERR_X509SVID_VALIDITY',
    },
  );
});

test('parse rejects a key that is not the leaf key, garbage, and oversized input', async () => {
  const a = await ca.issue('/a');
  const b = await ca.issue('/b');
  assert.throws(() => X509Svid.parse(a.certPem, b.keyPem), { code: 'ERR_X509SVID_KEY_MISMATCH' });
  assert.throws(() => X509Svid.parse('not a cert', a.keyPem), SpiffeError);
  assert.throws(() => X509Svid.parse(Buffer.from([0x30, 0x82, 0xff]), a.keyPem), {
    code: 'ERR_X509SVID_CERTIFICATES',
  });
  assert.throws(() => X509Svid.parse(a.certPem, 'garbage'), { code: 'ERR_X509SVID_KEY' });
  assert.throws(() => X509Svid.parse(Buffer.alloc(5 * 1024 * 1024, 0x30), a.keyPem), {
    code: 'ERR_X509SVID_TOO_LARGE',
  });
  assert.ok(X509Svid.parse(a.certPem, a.keyPem));
});

test('RFC 5280 path rules: path length, name constraints, unknown critical extensions', async () => {
  const verify = (chain: Buffer[], root: TestCa) =>
    verifyX509Svid(chain, new X509BundleSet([X509Bundle.parse('example.org', root.bundlePem())]));
  const codeOf = (fn: () => unknown) => {
    try {
      fn();
      return 'accepted';
    } catch (err) {
      assert.ok(err instanceof SpiffeError, String(err));
      return err.code;
    }
  };
  const unknownCritical = new x509.Extension('1.3.6.1.4.1.55555.1', true, Buffer.from([5, 0]));
  const unknownNonCritical = new x509.Extension('1.3.6.1.4.1.55555.1', false, Buffer.from([5, 0]));

  // Path length: the root allows one intermediate below it; two are one too many.
  const root1 = await TestCa.create('example.org', { pathLen: 1 });
  const mid1 = await root1.intermediate({ pathLen: null });
  const mid2 = await mid1.intermediate();
  // Name constraints on the root and on an intermediate.
  const onlyTd = { permitted: [{ type: 'uri' as const, value: 'example.org' }] };
  const rootNc = await TestCa.create('example.org', { nameConstraints: onlyTd });
  const midNc = await ca.intermediate({
    nameConstraints: {
      permitted: [{ type: 'uri', value: 'example.org' }],
      excluded: [{ type: 'dns', value: 'bad.example.net' }],
    },
  });
  const ipNc = await ca.intermediate({
    nameConstraints: { permitted: [{ type: 'ip', value: '7f000001ffffffff' }] },
  });

  const cases: [string, () => Promise<[Buffer[], TestCa]>, string][] = [
    [
      'one intermediate under pathLen 1',
      async () => [(await mid1.issue('/a')).chainDer, root1],
      'accepted',
    ],
    [
      'two intermediates under pathLen 1',
      async () => [(await mid2.issue('/a')).chainDer, root1],
      'ERR_X509SVID_PATH_LEN',
    ],
    [
      'an intermediate with pathLen 0 issuing a CA that issues',
      async () => {
        const deep = await (await ca.intermediate({ pathLen: 0 })).intermediate();
        return [(await deep.issue('/a')).chainDer, ca];
      },
      'ERR_X509SVID_PATH_LEN',
    ],
    [
      'leaf inside the root URI constraint',
      async () => [(await rootNc.issue('/a')).chainDer, rootNc],
      'accepted',
    ],
    [
      'intermediate constraint: inside',
      async () => [(await midNc.issue('/a', { dns: ['ok.example.net'] })).chainDer, ca],
      'accepted',
    ],
    [
      'intermediate constraint: excluded DNS SAN',
      async () => [(await midNc.issue('/a', { dns: ['x.bad.example.net'] })).chainDer, ca],
      'ERR_X509SVID_NAME_CONSTRAINTS',
    ],
    [
      'constraint of a type we do not process (IP)',
      async () => [(await ipNc.issue('/a')).chainDer, ca],
      'ERR_X509SVID_NAME_CONSTRAINTS',
    ],
    [
      'unknown critical extension on the leaf',
      async () => [(await ca.issue('/a', { extensions: [unknownCritical] })).chainDer, ca],
      'ERR_X509SVID_CRITICAL_EXTENSION',
    ],
    [
      'unknown non-critical extension on the leaf',
      async () => [(await ca.issue('/a', { extensions: [unknownNonCritical] })).chainDer, ca],
      'accepted',
    ],
  ];
  for (const [name, make, want] of cases) {
    const [chain, root] = await make();
    assert.equal(
      codeOf(() => verify(chain, root)),
      want,
      name,
    );
  }

  // A URI constraint for another trust domain: an example.org leaf under it is refused.
  const foreign = await ca.intermediate({
    nameConstraints: { permitted: [{ type: 'uri', value: 'other.org' }] },
  });
  const outside = await foreign.issue('/a');
  assert.equal(
    codeOf(() => verify(outside.chainDer, ca)),
    'ERR_X509SVID_NAME_CONSTRAINTS',
  );
  // Subdomain form: ".example.org" does not match example.org itself.
  const sub = await ca.intermediate({
    nameConstraints: { permitted: [{ type: 'uri', value: '.example.org' }] },
  });
  const subLeaf = await sub.issue('/a');
  assert.equal(
    codeOf(() => verify(subLeaf.chainDer, ca)),
    'ERR_X509SVID_NAME_CONSTRAINTS',
  );
});

test('SPIFFE ID rules apply to the URI SAN: edge cases accepted, invalid IDs refused', async () => {
  const prefix = 'spiffe://example.org/';
  const longest = `${prefix}${'a'.repeat(2048 - prefix.length)}`;
  for (const id of [longest, 'spiffe://example.org/Mixed.Case-Path_9']) {
    const s = await ca.issue(id);
    assert.equal(verifyX509Svid(s.chainDer, bundles).id.toString(), id);
  }
  for (const uri of [
    'spiffe://example.org:8080/a',
    'spiffe://u@example.org/a',
    'spiffe://example.org/a?x=1',
    'spiffe://example.org/a#f',
    'spiffe://example.org/%41',
    'spiffe://example.org/a//b',
    'spiffe://example.org/a/./b',
    'spiffe://example.org/a/../b',
    'spiffe://example.org/a/',
    'spiffe://example.org/a!b',
    'spiffe://t$d/a',
    'spiffe:///a',
  ]) {
    const s = await ca.issue('/x', { uris: [uri] });
    assert.throws(() => verifyX509Svid(s.chainDer, bundles), { code: 'ERR_X509SVID_BAD_ID' }, uri);
  }
});

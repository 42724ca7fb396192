import 'reflect-metadata';
import assert from 'node:assert/strict';
import { X509Certificate as NodeX509, webcrypto } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { X509Bundle, X509Svid, verifyX509Svid } from '@precinct/spiffe';
import { tempDir } from '@precinct/testing';
import { KeyManager } from '../src/authority.js';
import { generateWorkloadKey } from '../src/keys.js';
import { time } from '../src/der.js';
import { IdentityServerError } from '../src/errors.js';
import { refreshTime } from '../src/workload-api.js';
import { ManualClock } from './support.js';

const HOUR = 3600_000;

test('X.509-SVID shape: one URI SAN, leaf, digitalSignature, server+client auth, chains to the CA', async () => {
  const clock = new ManualClock();
  const km = await KeyManager.open({ trustDomain: 'example.org', clock });
  for (const type of ['ec-p256', 'rsa-2048'] as const) {
    const key = await generateWorkloadKey(type);
    const s = km.signX509Svid({
      publicKey: key,
      spiffeId: 'spiffe://example.org/ns/a/sa/b',
      dnsNames: ['api.example.org'],
      ttlMs: HOUR,
    });
    const cert = new x509.X509Certificate(s.chainDer[0]!);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
    const uris = san.names.items.filter((n) => n.type === 'url').map((n) => n.value);
    assert.deepEqual(uris, ['spiffe://example.org/ns/a/sa/b']);
    assert.deepEqual(
      san.names.items.filter((n) => n.type === 'dns').map((n) => n.value),
      ['api.example.org'],
    );
    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    assert.equal(bc.ca, false);
    assert.equal(bc.critical, true);
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    const want =
      x509.KeyUsageFlags.digitalSignature |
      (type === 'rsa-2048' ? x509.KeyUsageFlags.keyEncipherment : 0);
    assert.equal(ku.usages, want, type);
    assert.equal(ku.critical, true);
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension)!;
    assert.deepEqual(
      [...eku.usages].sort(),
      [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth].sort(),
    );
    const ca = km.x509Authorities()[0]!;
    assert.equal(cert.issuer, ca.cert.subject);
    assert.equal(
      await cert.verify({ publicKey: ca.cert.publicKey, date: new Date(clock.now()) }),
      true,
    );
    // The SDK's X509Svid rules and chain verification accept it.
    const sdk = X509Svid.parse(s.chainDer[0]!, key.pkcs8Der);
    assert.equal(sdk.id.toString(), 'spiffe://example.org/ns/a/sa/b');
    const res = verifyX509Svid(
      sdk.certificates,
      X509Bundle.parse('example.org', km.x509BundleDer()),
      {
        now: new Date(clock.now()),
      },
    );
    assert.equal(res.verifiedChain.length, 2);
    // node:crypto's own parser agrees (a second, independent DER reader).
    const n = new NodeX509(s.chainDer[0]!);
    assert.equal(n.verify(new NodeX509(ca.der).publicKey), true);
    assert.equal(n.ca, false);
    assert.equal(s.notAfter - s.notBefore, HOUR + 10_000, 'ttl plus the 10 s backdate');
    assert.equal(cert.notAfter.getTime(), Math.floor(s.notAfter / 1000) * 1000);
    // The private key handed to the workload matches the certificate.
    const imported = await crypto.subtle.importKey(
      'pkcs8',
      key.pkcs8Der,
      type === 'rsa-2048'
        ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
        : { name: 'ECDSA', namedCurve: 'P-256' },
      true,
      ['sign'],
    );
    assert.ok(imported);
  }
});

test('CA certificate: CA:true, keyCertSign+cRLSign, trust domain URI SAN', async () => {
  const km = await KeyManager.open({ trustDomain: 'example.org', clock: new ManualClock() });
  const ca = km.x509Authorities()[0]!.cert;
  const bc = ca.getExtension(x509.BasicConstraintsExtension)!;
  assert.equal(bc.ca, true);
  assert.equal(bc.critical, true);
  assert.equal(
    ca.getExtension(x509.KeyUsagesExtension)!.usages,
    x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
  );
  const uris = ca
    .getExtension(x509.SubjectAlternativeNameExtension)!
    .names.items.map((n) => n.value);
  assert.deepEqual(uris, ['spiffe://example.org']);
  assert.equal(await ca.isSelfSigned(), true);
});

test('CA rotation: prepare at 1/2, activate at 5/6, publish the old CA until it expires', async () => {
  const clock = new ManualClock();
  const caTtlMs = 12 * HOUR;
  const km = await KeyManager.open({
    trustDomain: 'example.org',
    clock,
    caTtlMs,
    jwtKeyTtlMs: caTtlMs,
  });
  const key = await generateWorkloadKey('ec-p256');
  const first = km.x509Authorities()[0]!;
  const firstKid = km.jwks().keys[0]!.kid;
  assert.equal(km.x509Authorities().length, 1);
  assert.equal(km.jwks().keys.length, 1);

  await clock.advance(5 * HOUR);
  assert.deepEqual(await km.rotate(), []);
  await clock.advance(1 * HOUR); // half of 12 h (the CA is backdated 10 s)
  assert.deepEqual(await km.rotate(), ['x509_prepared', 'jwt_prepared']);
  assert.equal(km.x509Authorities().length, 2, 'the next CA is published before it signs');
  const before = km.version;
  // Still signed by the first CA until activation.
  assert.equal(
    km.signX509Svid({ publicKey: key, spiffeId: 'spiffe://example.org/w', ttlMs: HOUR }).authority,
    first,
  );

  await clock.advance(4 * HOUR); // 10 h = 5/6 of 12 h
  assert.deepEqual(await km.rotate(), ['x509_activated', 'jwt_activated']);
  assert.ok(km.version > before);
  const s = km.signX509Svid({
    publicKey: key,
    spiffeId: 'spiffe://example.org/w',
    ttlMs: 4 * HOUR,
  });
  assert.notEqual(s.authority, first);
  assert.deepEqual(km.x509Authorities().includes(first), true, 'the old CA is still published');
  assert.equal(km.x509Authorities().length, 2);

  await clock.advance(2 * HOUR); // past the first CA's notAfter
  const ev = await km.rotate();
  assert.ok(ev.includes('x509_expired'));
  assert.equal(km.x509Authorities().includes(first), false);
  assert.equal(
    km.jwks().keys.some((k) => k.kid === firstKid),
    false,
  );
});

test('SVID lifetime is capped to the signing CA', async () => {
  const clock = new ManualClock();
  const km = await KeyManager.open({ trustDomain: 'example.org', clock, caTtlMs: 2 * HOUR });
  const s = km.signX509Svid({
    publicKey: await generateWorkloadKey('ec-p256'),
    spiffeId: 'spiffe://example.org/w',
    ttlMs: 24 * HOUR,
  });
  assert.equal(s.notAfter, s.authority.notAfter);
});

test('keys persist in data-dir/keys.json with mode 0600 and reload unchanged', async (t) => {
  const dir = tempDir('precinct-id-keys-');
  t.after(dir.cleanup);
  const clock = new ManualClock();
  const a = await KeyManager.open({ trustDomain: 'example.org', clock, dataDir: dir.path });
  const file = join(dir.path, 'keys.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const b = await KeyManager.open({ trustDomain: 'example.org', clock, dataDir: dir.path });
  assert.deepEqual(b.x509BundleDer(), a.x509BundleDer());
  assert.deepEqual(b.jwks(), a.jwks());
  // The reloaded CA signs SVIDs that verify against the original certificate.
  const s = b.signX509Svid({
    publicKey: await generateWorkloadKey('ec-p256'),
    spiffeId: 'spiffe://example.org/w',
    ttlMs: HOUR,
  });
  assert.equal(
    new NodeX509(s.chainDer[0]!).verify(new NodeX509(a.x509BundleDer()).publicKey),
    true,
  );
});

test('refresh at half the lifetime, within ±10% of that half', () => {
  assert.equal(
    refreshTime(0, 1000, () => 0.5),
    500,
  );
  assert.equal(
    refreshTime(0, 1000, () => 0),
    450,
  );
  assert.ok(Math.abs(refreshTime(0, 1000, () => 0.999999) - 550) < 0.001);
});

test('validity times: UTCTime through 2049, GeneralizedTime from 2050', () => {
  assert.equal(
    time(Date.UTC(2049, 11, 31, 23, 59, 59)).toString('latin1'),
    '\x17\x0d491231235959Z',
  );
  assert.equal(time(Date.UTC(2050, 0, 1)).toString('latin1'), '\x18\x0f20500101000000Z');
});

async function upstreamRoot(): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=Upstream Root',
    keys,
    signingAlgorithm: alg,
    notBefore: new Date(Date.UTC(2029, 0, 1)),
    notAfter: new Date(Date.UTC(2040, 0, 1)),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString(
    'base64',
  );
  return {
    certPem: cert.toString('pem'),
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`,
  };
}

test('upstream CA: intermediates signed by the root, bundle holds the root, chains carry the intermediate', async (t) => {
  const dir = tempDir('precinct-id-upstream-');
  t.after(dir.cleanup);
  const clock = new ManualClock();
  const upstream = await upstreamRoot();
  const km = await KeyManager.open({
    trustDomain: 'example.org',
    clock,
    upstream,
    dataDir: dir.path,
  });
  const root = new NodeX509(upstream.certPem);
  assert.deepEqual(km.x509BundleDer(), root.raw);
  const s = km.signX509Svid({
    publicKey: await generateWorkloadKey('ec-p256'),
    spiffeId: 'spiffe://example.org/w',
    ttlMs: HOUR,
  });
  assert.equal(s.chainDer.length, 2);
  const chain = verifyX509Svid(s.chainDer, X509Bundle.parse('example.org', km.x509BundleDer()), {
    now: new Date(clock.now()),
  });
  assert.equal(chain.verifiedChain.length, 3, 'leaf, intermediate, upstream root');
  const [leaf, intermediate] = s.chainDer.map((d) => new NodeX509(d));
  assert.equal(leaf!.verify(intermediate!.publicKey), true);
  assert.equal(intermediate!.verify(root.publicKey), true);
  assert.equal(intermediate!.ca, true);
  assert.match(intermediate!.subjectAltName!, /URI:spiffe:\/\/example\.org/);
  // A rotation changes the intermediate, never the bundle.
  await clock.advance(20 * HOUR);
  await km.rotate();
  assert.deepEqual(km.x509BundleDer(), root.raw);
  // Restarting with the same upstream keeps the intermediates; without it they are dropped.
  const again = await KeyManager.open({
    trustDomain: 'example.org',
    clock,
    upstream,
    dataDir: dir.path,
  });
  assert.deepEqual(
    again.x509Authorities().map((a) => a.der),
    km.x509Authorities().map((a) => a.der),
  );
  const selfSigned = await KeyManager.open({
    trustDomain: 'example.org',
    clock,
    dataDir: dir.path,
  });
  assert.equal(
    selfSigned.x509Authorities().every((a) => a.chainDer.length === 0),
    true,
  );
});

test('upstream CA: a key that does not match, or a leaf certificate, is refused', async () => {
  const a = await upstreamRoot();
  const b = await upstreamRoot();
  const leafPem = new x509.X509Certificate(
    (await KeyManager.open({ trustDomain: 'example.org', clock: new ManualClock() })).signX509Svid({
      publicKey: await generateWorkloadKey('ec-p256'),
      spiffeId: 'spiffe://example.org/w',
      ttlMs: HOUR,
    }).chainDer[0]!,
  ).toString('pem');
  for (const [name, upstream] of [
    ['mismatched key', { certPem: a.certPem, keyPem: b.keyPem }],
    ['not a CA', { certPem: leafPem, keyPem: a.keyPem }],
    ['garbage', { certPem: 'nope', keyPem: a.keyPem }],
  ] as const) {
    await assert.rejects(
      KeyManager.open({ trustDomain: 'example.org', clock: new ManualClock(), upstream }),
      (e: unknown) => e instanceof IdentityServerError && e.code === 'ERR_CONFIG_INVALID',
      name,
    );
  }
  // Positive control: the matching pair is accepted.
  await KeyManager.open({ trustDomain: 'example.org', clock: new ManualClock(), upstream: a });
});

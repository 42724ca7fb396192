import 'reflect-metadata';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { SpiffeBundle } from '@precinct/spiffe';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import {
  FederatedBundles,
  parseBundleDocument,
  type SpiffeBundleDocument,
} from '../src/federation.js';
import { IdentityServerError } from '../src/errors.js';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import {
  ManualClock,
  fakeVerifier,
  md,
  quietLogger,
  rawClient,
  reader,
  unary,
  type RawClient,
} from './support.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** A web-PKI stand-in: a CA and a serving certificate for 127.0.0.1. */
async function webPki(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKeys = (await webcrypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=Test Web CA',
    keys: caKeys,
    signingAlgorithm: alg,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86400_000 * 3650),
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'CN=127.0.0.1',
    issuer: ca.subject,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: alg,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86400_000 * 3650),
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString(
    'base64',
  );
  return {
    caPem: ca.toString('pem'),
    certPem: cert.toString('pem'),
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`,
  };
}

type CryptoKeyPair = webcrypto.CryptoKeyPair;

function getHttps(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, { ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    })
      .on('error', reject)
      .end();
  });
}

describe('federation', () => {
  const clock = new ManualClock(Date.now());
  const listen = { host: '127.0.0.1', port: 0 };
  let pki: Awaited<ReturnType<typeof webPki>>;
  let a: IdentityServer;
  let b: IdentityServer;
  const clients: RawClient[] = [];
  const attest = async (server: IdentityServer, token: string) => {
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    assert.equal(res.status, 200);
    const c = rawClient(((await res.json()) as { address: string }).address);
    clients.push(c);
    return c;
  };

  before(async () => {
    pki = await webPki();
    b = await startIdentityServer({
      trustDomain: 'b.org',
      oidcTls: { certPem: pki.certPem, keyPem: pki.keyPem },
      admin: listen,
      oidc: listen,
      health: listen,
      advertiseHost: '127.0.0.1',
      bundleEndpoint: { listen, certPem: pki.certPem, keyPem: pki.keyPem, refreshHintSeconds: 60 },
      caTtlMs: 3600_000,
      jwtKeyTtlMs: 3600_000,
      verifier: fakeVerifier(clock, { peer: { namespace: 'peer', serviceAccountName: 'default' } }),
      clock,
      logger: quietLogger(),
    });
    a = await startIdentityServer({
      trustDomain: 'a.org',
      admin: listen,
      oidc: listen,
      health: listen,
      advertiseHost: '127.0.0.1',
      federation: [{ trustDomain: 'b.org', url: b.bundleEndpointUrl!, caPem: pki.caPem }],
      verifier: fakeVerifier(clock, {
        fed: { namespace: 'fed', serviceAccountName: 'default' },
        local: { namespace: 'local', serviceAccountName: 'default' },
      }),
      clock,
      logger: quietLogger(),
    });
    await a.entries.create({
      spiffeId: 'spiffe://a.org/fed',
      selectors: ['k8s:ns:fed'],
      federatesWith: ['b.org'],
    });
    await a.entries.create({ spiffeId: 'spiffe://a.org/local', selectors: ['k8s:ns:local'] });
    await b.entries.create({ spiffeId: 'spiffe://b.org/peer', selectors: ['k8s:ns:peer'] });
  });
  after(async () => {
    for (const c of clients) c.close();
    await a?.close();
    await b?.close();
  });

  test('OIDC discovery over HTTPS: an https issuer whose keys verify a JWT-SVID', async () => {
    assert.match(b.issuer, /^https:\/\/127\.0\.0\.1:\d+$/);
    const conf = JSON.parse(
      await getHttps(`${b.issuer}/.well-known/openid-configuration`, pki.caPem),
    ) as {
      issuer: string;
      jwks_uri: string;
    };
    assert.equal(conf.issuer, b.issuer);
    const jwks = JSON.parse(await getHttps(conf.jwks_uri, pki.caPem)) as JSONWebKeySet;
    const peer = await attest(b, 'peer');
    const r = await unary<{ svids: { svid: string }[] }>((cb) =>
      peer.FetchJWTSVID({ audience: ['cloud'] }, md(), cb),
    );
    const { payload } = await jwtVerify(r.svids[0]!.svid, createLocalJWKSet(jwks), {
      issuer: conf.issuer,
      audience: 'cloud',
      currentDate: new Date(clock.now()),
    });
    assert.equal(payload.sub, 'spiffe://b.org/peer');
  });

  test('the bundle endpoint serves a SPIFFE bundle over https_web', async () => {
    const doc = JSON.parse(await getHttps(b.bundleEndpointUrl!, pki.caPem)) as SpiffeBundleDocument;
    assert.equal(doc.spiffe_refresh_hint, 60);
    assert.equal(typeof doc.spiffe_sequence, 'number');
    // The SDK parses it as a SPIFFE bundle.
    const sdk = SpiffeBundle.parse('b.org', JSON.stringify(doc));
    assert.equal(sdk.x509.x509Authorities().length, b.keys.x509Authorities().length);
    assert.equal(sdk.jwt.jwtAuthorities().size, b.keys.jwks().keys.length);
    assert.equal(sdk.refreshHint, 60);
    const x = doc.keys.filter((k) => k.use === 'x509-svid');
    assert.deepEqual(
      Buffer.concat(x.map((k) => Buffer.from(k.x5c![0]!, 'base64'))),
      b.keys.x509BundleDer(),
    );
    const j = doc.keys.filter((k) => k.use === 'jwt-svid');
    assert.deepEqual(
      j.map((k) => k.kid),
      b.keys.jwks().keys.map((k) => k.kid),
    );
  });

  test('an entry that federates with b.org gets its bundle; one that does not, does not', async () => {
    const fed = await attest(a, 'fed');
    const s = reader(fed.FetchX509SVID({}, md()));
    const m = await s.next();
    s.cancel();
    assert.deepEqual(Object.keys(m.federated_bundles), ['spiffe://b.org']);
    assert.deepEqual(m.federated_bundles['spiffe://b.org'], b.keys.x509BundleDer());
    const xb = reader(fed.FetchX509Bundles({}, md()));
    assert.deepEqual(Object.keys((await xb.next()).bundles).sort(), [
      'spiffe://a.org',
      'spiffe://b.org',
    ]);
    xb.cancel();
    const jb = reader(fed.FetchJWTBundles({}, md()));
    const jwks = JSON.parse((await jb.next()).bundles['spiffe://b.org']!.toString()) as {
      keys: { kid: string }[];
    };
    jb.cancel();
    assert.deepEqual(
      jwks.keys.map((k) => k.kid),
      b.keys.jwks().keys.map((k) => k.kid),
    );

    const local = await attest(a, 'local');
    const ls = reader(local.FetchX509SVID({}, md()));
    const lm = await ls.next();
    ls.cancel();
    assert.deepEqual(lm.federated_bundles, {});
  });

  test("a.org validates b.org's JWT-SVIDs; a token signed by an unknown key is refused", async () => {
    const peer = await attest(b, 'peer');
    const r = await unary<{ svids: { svid: string }[] }>((cb) =>
      peer.FetchJWTSVID({ audience: ['a-service'] }, md(), cb),
    );
    const token = r.svids[0]!.svid;
    const fed = await attest(a, 'fed');
    const v = await unary<{ spiffe_id: string }>((cb) =>
      fed.ValidateJWTSVID({ audience: 'a-service', svid: token }, md(), cb),
    );
    assert.equal(v.spiffe_id, 'spiffe://b.org/peer');
    // a.org's own JWT-SVID claiming to be from b.org is not accepted.
    const own = await unary<{ svids: { svid: string }[] }>((cb) =>
      fed.FetchJWTSVID({ audience: ['a-service'] }, md(), cb),
    );
    const [h, , sig] = own.svids[0]!.svid.split('.');
    const forgedPayload = Buffer.from(
      JSON.stringify({ sub: 'spiffe://b.org/peer', aud: ['a-service'], exp: 9999999999 }),
    ).toString('base64url');
    await assert.rejects(
      unary((cb) =>
        fed.ValidateJWTSVID(
          { audience: 'a-service', svid: `${h}.${forgedPayload}.${sig}` },
          md(),
          cb,
        ),
      ),
      { code: 3 },
    );
  });

  test(
    "b.org's rotation reaches a.org's workloads at the refresh hint",
    { timeout: 30_000 },
    async () => {
      const fed = await attest(a, 'fed');
      const s = reader(fed.FetchX509SVID({}, md()));
      const first = await s.next();
      assert.equal(
        first.federated_bundles['spiffe://b.org']!.length,
        b.keys.x509BundleDer().length,
      );
      // b.org's CA (1 h) prepares its successor at 30 min.
      await clock.advance(31 * 60_000);
      await b.rotate();
      assert.equal(b.keys.x509Authorities().length, 2);
      // a.org refetches within the 60 s hint and pushes the new federated bundle.
      await clock.advance(61_000);
      let m = await s.next();
      while (!m.federated_bundles['spiffe://b.org']!.equals(b.keys.x509BundleDer()))
        m = await s.next();
      s.cancel();
    },
  );

  test('a peer whose TLS certificate is not trusted is not fetched', async () => {
    const untrusted = new FederatedBundles(
      [{ trustDomain: 'b.org', url: b.bundleEndpointUrl! }],
      clock,
      quietLogger(),
      'c.org',
    );
    const trusted = new FederatedBundles(
      [{ trustDomain: 'b.org', url: b.bundleEndpointUrl!, caPem: pki.caPem }],
      clock,
      quietLogger(),
      'c.org',
    );
    try {
      await untrusted.start();
      await trusted.start();
      assert.equal(untrusted.get('b.org'), undefined);
      assert.ok(trusted.get('b.org'));
    } finally {
      untrusted.close();
      trusted.close();
    }
  });

  test('bundle documents: bad input is refused', () => {
    const caDer = b.keys.x509Authorities()[0]!.der.toString('base64');
    const cases: [string, string][] = [
      ['not JSON', '{'],
      ['no keys', '{}'],
      ['x509 key without x5c', JSON.stringify({ keys: [{ kty: 'EC', use: 'x509-svid' }] })],
      [
        'x509 key with two certs',
        JSON.stringify({ keys: [{ kty: 'EC', use: 'x509-svid', x5c: [caDer, caDer] }] }),
      ],
      [
        'x509 key with garbage',
        JSON.stringify({ keys: [{ kty: 'EC', use: 'x509-svid', x5c: ['AAAA'] }] }),
      ],
      ['jwt key without kid', JSON.stringify({ keys: [{ kty: 'EC', use: 'jwt-svid' }] })],
      [
        'too many keys',
        JSON.stringify({ keys: Array.from({ length: 257 }, () => ({ kty: 'EC', use: 'other' })) }),
      ],
    ];
    for (const [name, text] of cases) {
      assert.throws(
        () => parseBundleDocument('b.org', text, 0),
        (e: unknown) => e instanceof IdentityServerError,
        name,
      );
    }
    const ok = parseBundleDocument(
      'b.org',
      JSON.stringify({
        keys: [{ kty: 'EC', use: 'x509-svid', x5c: [caDer] }],
        spiffe_refresh_hint: 5,
      }),
      0,
    );
    assert.equal(ok.refreshHintSeconds, 5);
  });
});

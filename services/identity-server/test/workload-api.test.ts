import 'reflect-metadata';
import assert from 'node:assert/strict';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { statSync } from 'node:fs';
import { Writable } from 'node:stream';
import { dirname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { createLogger } from '@precinct/runtime';
import {
  JwtBundle,
  X509Bundle,
  X509Svid,
  parseAndValidateJwtSvid,
  verifyX509Svid,
} from '@precinct/spiffe';
import { WorkloadApiClient } from '@precinct/spiffe/workloadapi';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import type { Entry } from '../src/entries.js';
import {
  ManualClock,
  fakeVerifier,
  md,
  rawClient,
  reader,
  settle,
  unary,
  type RawClient,
} from './support.js';

const TD = 'example.org';
const apiIdentity = {
  namespace: 'team-a',
  serviceAccountName: 'api',
  pod: { name: 'api-1', uid: 'uid-api-1' },
};
const otherIdentity = {
  namespace: 'team-b',
  serviceAccountName: 'worker',
  pod: { name: 'worker-1', uid: 'uid-worker-1' },
};

describe('Workload API', () => {
  const clock = new ManualClock(Date.now());
  const verifier = fakeVerifier(clock, {
    'token-api': apiIdentity,
    'token-other': otherIdentity,
    'token-wrong-audience': { error: 'ERR_TOKEN_AUDIENCE' },
    'token-kube-down': { error: 'ERR_KUBE_UNAVAILABLE' },
  });
  let server: IdentityServer;
  let apiEntry: Entry;
  const logs: string[] = [];
  const logger = createLogger(
    'identity-server-test',
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    }),
  );
  const clients: RawClient[] = [];
  const client = (address: string) => {
    const c = rawClient(address);
    clients.push(c);
    return c;
  };
  const attest = async (token: string) => {
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    return {
      status: res.status,
      body: (await res.json()) as { address: string; socketPath: string; selectors: string[] },
    };
  };

  before(async () => {
    server = await startIdentityServer({
      trustDomain: TD,
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      verifier,
      clock,
      random: () => 0.5,
      logger,
    });
    apiEntry = await server.entries.create({
      spiffeId: 'spiffe://example.org/ns/team-a/sa/api',
      selectors: ['k8s:ns:team-a', 'k8s:sa:api'],
      dnsNames: ['api.team-a.svc'],
      hint: 'api',
    });
    // Needs a selector the api workload lacks: must never reach it.
    await server.entries.create({
      spiffeId: 'spiffe://example.org/ns/team-a/sa/api/admin',
      selectors: ['k8s:ns:team-a', 'k8s:sa:admin'],
    });
    await server.entries.create({
      spiffeId: 'spiffe://example.org/worker',
      selectors: ['k8s:ns:team-b'],
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.close();
  });

  test('attestation: a verified token gets its own socket, 0600 in a 0700 directory', async () => {
    const r = await attest('token-api');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.selectors, [
      'k8s:ns:team-a',
      'k8s:sa:api',
      'k8s:pod-name:api-1',
      'k8s:pod-uid:uid-api-1',
    ]);
    assert.equal(statSync(r.body.socketPath).mode & 0o777, 0o600);
    assert.equal(statSync(dirname(r.body.socketPath)).mode & 0o777, 0o700);
    assert.equal(statSync(dirname(dirname(r.body.socketPath))).mode & 0o777, 0o700);
    const again = await attest('token-api');
    assert.equal(
      again.body.socketPath,
      r.body.socketPath,
      're-attesting the same pod keeps its socket',
    );
  });

  test('attestation refused: bad signature, wrong audience (401), Kubernetes down (503)', async () => {
    const failures = () => server.metrics.attestationFailures.get();
    for (const [token, status, reason] of [
      ['token-forged', 401, 'ERR_TOKEN_SIGNATURE'],
      ['token-wrong-audience', 401, 'ERR_TOKEN_AUDIENCE'],
      ['token-kube-down', 503, 'ERR_KUBE_UNAVAILABLE'],
    ] as const) {
      const r = await attest(token);
      assert.equal(r.status, status, token);
      // The client gets the generic code of the status, never the specific reason.
      const { code, ...rest } = r.body as unknown as { code: string };
      assert.equal(code, status === 401 ? 'ERR_AUTHENTICATION_FAILED' : 'ERR_UNAVAILABLE');
      assert.equal(
        JSON.stringify(rest).includes('ERR_'),
        false,
        'the client gets a generic answer',
      );
      const m = (await failures()).values.find((v) => v.labels.reason === reason);
      assert.equal(m?.value, 1, reason);
    }
    assert.equal((await attest('')).status, 400);
  });

  test("the SDK's WorkloadApiClient on an attested socket: every RPC", async () => {
    const { body } = await attest('token-api');
    const sdk = new WorkloadApiClient({ address: body.address });
    try {
      const ctx = await sdk.fetchX509Context();
      assert.deepEqual(
        ctx.svids.map((s) => s.id.toString()),
        [apiEntry.spiffeId],
      );
      const td = ctx.svids[0]!.id.trustDomain;
      const verified = verifyX509Svid(ctx.svids[0]!.certificates, ctx.bundles, {
        now: new Date(clock.now()),
      });
      assert.equal(verified.id.toString(), apiEntry.spiffeId);
      assert.equal(
        (await sdk.fetchX509Bundles()).getX509BundleForTrustDomain(td).x509Authorities().length,
        1,
      );
      const jwt = await sdk.fetchJwtSvid({ audience: 'sdk-audience' });
      assert.equal(jwt.id.toString(), apiEntry.spiffeId);
      const bundles = await sdk.fetchJwtBundles();
      assert.equal(
        parseAndValidateJwtSvid(jwt.token, bundles, ['sdk-audience'], {
          now: new Date(clock.now()),
        }).id.toString(),
        apiEntry.spiffeId,
      );
      const v = await sdk.validateJwtSvid(jwt.token, 'sdk-audience');
      assert.equal(v.spiffeId, apiEntry.spiffeId);
      await assert.rejects(sdk.validateJwtSvid(jwt.token, 'another-audience'), {
        code: 'ERR_WORKLOADAPI_INVALID_ARGUMENT',
      });
    } finally {
      sdk.close();
    }
    // The same client on the shared socket: nothing attested there, no identity.
    const shared = new WorkloadApiClient({ address: server.workloadApiAddress });
    try {
      await assert.rejects(shared.fetchX509Context(), {
        code: 'ERR_WORKLOADAPI_PERMISSION_DENIED',
      });
    } finally {
      shared.close();
    }
  });

  test('FetchX509SVID on an attested socket: that entry only, verifiable, with key and bundle', async () => {
    const { body } = await attest('token-api');
    const r = reader(client(body.address).FetchX509SVID({}, md()));
    const msg = await r.next();
    r.cancel();
    assert.deepEqual(
      msg.svids.map((s) => s.spiffe_id),
      [apiEntry.spiffeId],
    );
    const s = msg.svids[0]!;
    assert.equal(s.hint, 'api');
    const leaf = new x509.X509Certificate(s.x509_svid);
    const bundle = new x509.X509Certificate(s.bundle);
    assert.equal(
      await leaf.verify({ publicKey: bundle.publicKey, date: new Date(clock.now()) }),
      true,
    );
    const uris = leaf
      .getExtension(x509.SubjectAlternativeNameExtension)!
      .names.items.filter((n) => n.type === 'url');
    assert.deepEqual(
      uris.map((u) => u.value),
      [apiEntry.spiffeId],
    );
    // The SDK agrees: a valid SVID whose key matches, verifying against the bundle.
    const sdkSvid = X509Svid.parse(s.x509_svid, s.x509_svid_key, s.hint);
    assert.equal(sdkSvid.id.toString(), apiEntry.spiffeId);
    const verified = verifyX509Svid(
      sdkSvid.certificates,
      X509Bundle.parse('example.org', s.bundle),
      {
        now: new Date(clock.now()),
      },
    );
    assert.equal(verified.id.toString(), apiEntry.spiffeId);
    // The key is the certificate's.
    const key = await crypto.subtle.importKey(
      'pkcs8',
      s.x509_svid_key,
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['sign'],
    );
    const data = Buffer.from('proof');
    const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, data);
    assert.equal(
      await crypto.subtle.verify(
        { name: 'ECDSA', hash: 'SHA-256' },
        await leaf.publicKey.export(),
        sig,
        data,
      ),
      true,
    );
  });

  test("another ServiceAccount's socket never gets the api entry's SVID", async () => {
    const { body } = await attest('token-other');
    const r = reader(client(body.address).FetchX509SVID({}, md()));
    const msg = await r.next();
    r.cancel();
    assert.deepEqual(
      msg.svids.map((s) => s.spiffe_id),
      ['spiffe://example.org/worker'],
    );
  });

  test('the shared socket without attestation: PermissionDenied on every RPC', async () => {
    const c = client(server.workloadApiAddress);
    await assert.rejects(reader(c.FetchX509SVID({}, md())).next(), {
      code: grpc.status.PERMISSION_DENIED,
    });
    await assert.rejects(reader(c.FetchX509Bundles({}, md())).next(), {
      code: grpc.status.PERMISSION_DENIED,
    });
    await assert.rejects(reader(c.FetchJWTBundles({}, md())).next(), {
      code: grpc.status.PERMISSION_DENIED,
    });
    await assert.rejects(
      unary((cb) => c.FetchJWTSVID({ audience: ['x'] }, md(), cb)),
      { code: grpc.status.PERMISSION_DENIED },
    );
    await assert.rejects(
      unary((cb) => c.ValidateJWTSVID({ audience: 'x', svid: 'a.b.c' }, md(), cb)),
      { code: grpc.status.PERMISSION_DENIED },
    );
  });

  test('missing workload.spiffe.io header: InvalidArgument on every RPC (attested socket)', async () => {
    const { body } = await attest('token-api');
    const c = client(body.address);
    await assert.rejects(reader(c.FetchX509SVID({}, md(false))).next(), {
      code: grpc.status.INVALID_ARGUMENT,
    });
    await assert.rejects(reader(c.FetchX509Bundles({}, md(false))).next(), {
      code: grpc.status.INVALID_ARGUMENT,
    });
    await assert.rejects(reader(c.FetchJWTBundles({}, md(false))).next(), {
      code: grpc.status.INVALID_ARGUMENT,
    });
    await assert.rejects(
      unary((cb) => c.FetchJWTSVID({ audience: ['x'] }, md(false), cb)),
      { code: grpc.status.INVALID_ARGUMENT },
    );
    await assert.rejects(
      unary((cb) => c.ValidateJWTSVID({ audience: 'x', svid: 'a.b.c' }, md(false), cb)),
      { code: grpc.status.INVALID_ARGUMENT },
    );
  });

  test('FetchX509Bundles and FetchJWTBundles', async () => {
    const { body } = await attest('token-api');
    const c = client(body.address);
    const xb = reader(c.FetchX509Bundles({}, md()));
    const x = await xb.next();
    xb.cancel();
    assert.deepEqual(Object.keys(x.bundles), ['spiffe://example.org']);
    assert.deepEqual(x.bundles['spiffe://example.org'], server.keys.x509BundleDer());
    const jb = reader(c.FetchJWTBundles({}, md()));
    const j = await jb.next();
    jb.cancel();
    const jwks = JSON.parse(j.bundles['spiffe://example.org']!.toString()) as {
      keys: { kid: string; kty: string }[];
    };
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]!.kty, 'EC');
  });

  test('FetchJWTSVID, ValidateJWTSVID and the OIDC discovery keys', async () => {
    const { body } = await attest('token-api');
    const c = client(body.address);
    await assert.rejects(
      unary((cb) => c.FetchJWTSVID({ audience: [] }, md(), cb)),
      { code: grpc.status.INVALID_ARGUMENT },
    );
    await assert.rejects(
      unary((cb) =>
        c.FetchJWTSVID({ audience: ['nats'], spiffe_id: 'spiffe://example.org/worker' }, md(), cb),
      ),
      { code: grpc.status.PERMISSION_DENIED },
    );
    const res = await unary<{ svids: { spiffe_id: string; svid: string; hint: string }[] }>((cb) =>
      c.FetchJWTSVID({ audience: ['nats', 'vault'] }, md(), cb),
    );
    assert.deepEqual(
      res.svids.map((s) => s.spiffe_id),
      [apiEntry.spiffeId],
    );
    const token = res.svids[0]!.svid;
    const claims = decodeJwt(token);
    assert.equal(claims.sub, apiEntry.spiffeId);
    assert.deepEqual(claims.aud, ['nats', 'vault']);
    assert.equal(claims.exp! - claims.iat!, 300);
    assert.equal(claims.iss, server.issuer);

    // The SDK validates it against the JWT bundle from FetchJWTBundles.
    const jb = reader(c.FetchJWTBundles({}, md()));
    const jwtBundle = JwtBundle.parse(
      'example.org',
      (await jb.next()).bundles['spiffe://example.org']!,
    );
    jb.cancel();
    const sdkJwt = parseAndValidateJwtSvid(token, jwtBundle, ['vault'], {
      now: new Date(clock.now()),
    });
    assert.equal(sdkJwt.id.toString(), apiEntry.spiffeId);

    const v = await unary<{ spiffe_id: string; claims: { fields: Record<string, unknown> } }>(
      (cb) => c.ValidateJWTSVID({ audience: 'vault', svid: token }, md(), cb),
    );
    assert.equal(v.spiffe_id, apiEntry.spiffeId);
    assert.ok(v.claims.fields.sub);
    await assert.rejects(
      unary((cb) => c.ValidateJWTSVID({ audience: 'other', svid: token }, md(), cb)),
      { code: grpc.status.INVALID_ARGUMENT },
    );
    const tampered = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    await assert.rejects(
      unary((cb) => c.ValidateJWTSVID({ audience: 'vault', svid: tampered }, md(), cb)),
      { code: grpc.status.INVALID_ARGUMENT },
    );

    // A relying party that knows only the issuer URL.
    const conf = (await (
      await fetch(`${server.issuer}/.well-known/openid-configuration`)
    ).json()) as { issuer: string; jwks_uri: string };
    assert.equal(conf.issuer, server.issuer);
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(conf.jwks_uri)), {
      issuer: conf.issuer,
      audience: 'nats',
      algorithms: ['ES256'],
      currentDate: new Date(clock.now()),
    });
    assert.equal(payload.sub, apiEntry.spiffeId);
  });

  test(
    'a connected FetchX509SVID stream gets pushes: entry change, half-life refresh, CA rotation',
    { timeout: 30_000 },
    async () => {
      const { body } = await attest('token-api');
      const r = reader(client(body.address).FetchX509SVID({}, md()));
      const first = await r.next();
      assert.equal(first.svids.length, 1);
      const leaf = (m: typeof first) => new NodeX509(m.svids[0]!.x509_svid);
      // 1. An entry update (new DNS name) is pushed at once.
      await server.entries.update(apiEntry.id, { dnsNames: ['api.team-a.svc', 'api.example.org'] });
      const second = await r.next();
      assert.match(leaf(second).subjectAltName!, /DNS:api\.example\.org/);
      // 2. Nothing is pushed before half the lifetime...
      const issued = new Date(leaf(second).validFrom).getTime() + 10_000;
      await clock.advance(issued + 1800_000 - clock.now() - 60_000);
      await settle();
      assert.equal(r.buffered, 0);
      // ...and a new SVID arrives at half (random() = 0.5 means no jitter).
      await clock.advance(120_000);
      const third = await r.next();
      assert.notEqual(leaf(third).serialNumber, leaf(second).serialNumber);
      // 3. A CA rotation step (next CA prepared at half of the 24 h CA lifetime) re-sends with the
      // new bundle. The workload renews its token as a kubelet would, every 30 min.
      const caStart = server.keys.x509Authorities()[0]!.notBefore;
      while (clock.now() < caStart + 12 * 3600_000 + 60_000) {
        assert.equal((await attest('token-api')).status, 200);
        await clock.advance(30 * 60_000);
      }
      await server.rotate(); // waits for the timer's rotation step to finish
      let m = await r.next();
      while (x509BundleCount(m.svids[0]!.bundle) < 2) m = await r.next();
      const certsInBundle = x509BundleCount(m.svids[0]!.bundle);
      assert.equal(certsInBundle, server.keys.x509Authorities().length);
      assert.equal(certsInBundle, 2, 'the prepared CA is published');
      // 4. When the token expires without renewal, the binding ends: PermissionDenied, socket gone.
      await clock.advance(2 * 3600_000);
      await assert.rejects(
        async () => {
          for (;;) await r.next();
        },
        { code: grpc.status.PERMISSION_DENIED },
      );
      await settle(20);
      assert.throws(() => statSync(body.socketPath), { code: 'ENOENT' });
      r.cancel();
      const rotations = (await server.metrics.rotations.get()).values;
      assert.ok(rotations.some((v) => v.labels.event === 'x509_prepared'));
    },
  );

  test('two entries with the same hint: only the older one is served', async () => {
    const dup = await server.entries.create({
      spiffeId: 'spiffe://example.org/ns/team-a/sa/api/dup',
      selectors: ['k8s:ns:team-a'],
      hint: 'api',
    });
    const other = await server.entries.create({
      spiffeId: 'spiffe://example.org/ns/team-a/other',
      selectors: ['k8s:ns:team-a'],
      hint: 'other',
    });
    try {
      const { body } = await attest('token-api');
      const r = reader(client(body.address).FetchX509SVID({}, md()));
      let m = await r.next();
      while (m.svids.length < 2) m = await r.next();
      r.cancel();
      assert.deepEqual(
        m.svids.map((s) => [s.spiffe_id, s.hint]),
        [
          ['spiffe://example.org/ns/team-a/other', 'other'],
          [apiEntry.spiffeId, 'api'],
        ],
      );
    } finally {
      await server.entries.delete(dup.id);
      await server.entries.delete(other.id);
    }
  });

  test('no token, key or JWT-SVID reaches the logs', () => {
    const all = logs.join('');
    assert.match(all, /attestation refused/, 'the logs were captured');
    for (const secret of [
      'token-api',
      'token-other',
      'token-wrong-audience',
      'token-forged',
      server.adminToken,
      'PRIVATE KEY',
      'eyJ',
    ]) {
      assert.equal(all.includes(secret), false, secret);
    }
  });

  test('/health, /ready, /metrics on the plain port', async () => {
    assert.equal((await fetch(`${server.healthUrl}/health`)).status, 200);
    assert.equal((await fetch(`${server.healthUrl}/ready`)).status, 200);
    const text = await (await fetch(`${server.healthUrl}/metrics`)).text();
    assert.match(text, /precinct_identity_x509_svids_issued_total \d+/);
    assert.match(
      text,
      /precinct_identity_attestation_failures_total\{reason="ERR_TOKEN_AUDIENCE"\} 1/,
    );
  });
});

function x509BundleCount(der: Buffer): number {
  let n = 0;
  for (let i = 0; i < der.length; n++) {
    // SEQUENCE with a two-byte (0x82) length: every certificate here is 256..65535 bytes.
    assert.equal(der[i], 0x30);
    assert.equal(der[i + 1], 0x82);
    i += 4 + der.readUInt16BE(i + 2);
  }
  return n;
}

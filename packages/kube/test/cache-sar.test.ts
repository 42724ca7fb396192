import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import {
  bearerToken,
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  KubeAuthError,
  loadKubeConfig,
  stripIdentityHeaders,
  type ServiceAccountIdentity,
  type TokenVerifier,
} from '@precinct/kube';
import { tempDir } from '@precinct/testing';

const identity = (exp: number): ServiceAccountIdentity => ({
  username: 'system:serviceaccount:a:b',
  groups: [],
  namespace: 'a',
  serviceAccountName: 'b',
  audiences: ['x'],
  expiresAt: new Date(exp),
  extra: {},
  source: 'jwks',
});

test('cachingVerifier: hits skip the inner verifier, never outlive exp, failures are not cached', async () => {
  let clock = 1_000_000;
  let calls = 0;
  let fail = false;
  const inner: TokenVerifier = {
    async verify(token) {
      calls++;
      if (fail) throw new KubeAuthError('ERR_TOKEN_SIGNATURE', 'no');
      return identity(token === 'short' ? clock + 5_000 : clock + 3_600_000);
    },
  };
  const v = cachingVerifier(inner, { ttlSeconds: 60, now: () => clock });
  await v.verify('long');
  await v.verify('long');
  assert.equal(calls, 1);
  await v.verify('short');
  clock += 6_000; // past the short token's exp, within the 60 s ttl
  await v.verify('short');
  assert.equal(calls, 3, 'an entry never outlives its token');
  clock += 60_000;
  await v.verify('long');
  assert.equal(calls, 4, 'ttl bounds entries too');
  fail = true;
  await assert.rejects(v.verify('bad'));
  await assert.rejects(v.verify('bad'));
  assert.equal(calls, 6, 'failures are asked again');
});

test('cachingVerifier stays within maxEntries', async () => {
  const v = cachingVerifier({ verify: async () => identity(Date.now() + 1e6) }, { maxEntries: 3 });
  for (let i = 0; i < 10; i++) await v.verify(`t${i}`);
  assert.equal(v.size, 3);
});

/** A SubjectAccessReview endpoint that counts requests and answers slowly. */
async function sarServer(decide: (spec: Record<string, unknown>) => boolean | 'error') {
  let requests = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests++;
      const review = JSON.parse(body);
      const d = decide(review.spec);
      setTimeout(() => {
        if (d === 'error') {
          res.writeHead(500, { 'content-type': 'application/json' }).end('{}');
          return;
        }
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ...review, status: { allowed: d } }));
      }, 30);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'c',
        server: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'u', token: 'x' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return {
    kc,
    get requests() {
      return requests;
    },
    close: () => server.close(),
  };
}

test('SAR: identical concurrent questions collapse into one request; TTLs per decision', async (t) => {
  let mode: boolean | 'error' = true;
  const s = await sarServer(() => mode);
  t.after(() => s.close());
  let clock = 0;
  const authz = createSubjectAccessReviewAuthorizer({ kubeConfig: s.kc, now: () => clock });
  const user = { username: 'u', groups: ['g2', 'g1'] };
  const attrs = { verb: 'get', resource: 'pods', namespace: 'n' };
  const answers = await Promise.all(Array.from({ length: 20 }, () => authz.authorize(user, attrs)));
  assert.ok(answers.every((a) => a.allowed));
  assert.equal(s.requests, 1);
  // Group order does not change the question.
  assert.equal(
    (await authz.authorize({ username: 'u', groups: ['g1', 'g2'] }, attrs)).cached,
    true,
  );
  // A different question is asked.
  mode = false;
  assert.equal((await authz.authorize(user, { ...attrs, verb: 'delete' })).allowed, false);
  assert.equal(s.requests, 2);
  // Denied lives 30 s, allowed 5 min.
  clock += 31_000;
  await authz.authorize(user, { ...attrs, verb: 'delete' });
  assert.equal(s.requests, 3);
  assert.equal((await authz.authorize(user, attrs)).cached, true);
  clock += 300_000;
  mode = 'error';
  await assert.rejects(authz.authorize(user, attrs), { code: 'ERR_KUBE_UNAVAILABLE' });
  await assert.rejects(authz.authorize(user, attrs), { code: 'ERR_KUBE_UNAVAILABLE' });
  assert.equal(s.requests, 5, 'errors are never cached');
  mode = true;
  assert.equal((await authz.authorize(user, attrs)).allowed, true);
});

test('SAR passes non-resource attributes and extra through', async (t) => {
  let seen: Record<string, unknown> = {};
  const s = await sarServer((spec) => {
    seen = spec;
    return true;
  });
  t.after(() => s.close());
  const authz = createSubjectAccessReviewAuthorizer({ kubeConfig: s.kc });
  await authz.authorize(
    { username: 'u', uid: 'id1', groups: ['g'], extra: { scopes: ['a'] } },
    { verb: 'get', path: '/metrics' },
  );
  assert.deepEqual(seen.nonResourceAttributes, { verb: 'get', path: '/metrics' });
  assert.equal(seen.uid, 'id1');
  assert.deepEqual(seen.extra, { scopes: ['a'] });
});

test('bearerToken parsing (table)', () => {
  const cases: Array<[string | string[] | undefined, string]> = [
    [undefined, 'ERR_TOKEN_MISSING'],
    ['', 'ERR_TOKEN_MISSING'],
    ['Basic abc', 'ERR_TOKEN_MALFORMED'],
    ['Bearer', 'ERR_TOKEN_MALFORMED'],
    ['Bearer a b', 'ERR_TOKEN_MALFORMED'],
    ['Bearer a\u0000b', 'ERR_TOKEN_MALFORMED'],
    [['Bearer a', 'Bearer b'], 'ERR_TOKEN_MALFORMED'],
    [`Bearer ${'a'.repeat(20000)}`, 'ERR_TOKEN_TOO_LARGE'],
  ];
  for (const [h, reason] of cases) assert.deepEqual(bearerToken(h), { reason }, String(h));
  assert.deepEqual(bearerToken('Bearer abc.def.ghi'), { token: 'abc.def.ghi' });
  assert.deepEqual(bearerToken('bearer abc.def.ghi'), { token: 'abc.def.ghi' });
});

test('stripIdentityHeaders removes every identity header and nothing else', () => {
  const h: Record<string, string> = {
    'x-remote-user': 'a',
    'x-remote-group': 'b',
    'x-remote-extra-scopes': 'c',
    'impersonate-user': 'd',
    'impersonate-group': 'e',
    'impersonate-extra-foo': 'f',
    'x-spiffe-id': 'g',
    'x-auth-request-user': 'h',
    'x-forwarded-user': 'i',
    authorization: 'Bearer x',
    'x-request-id': 'keep',
  };
  stripIdentityHeaders(h);
  assert.deepEqual(Object.keys(h).sort(), ['authorization', 'x-request-id']);
});

test('loadKubeConfig: KUBECONFIG first, then in-cluster, else a clear error', (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const kcPath = join(dir.path, 'config');
  writeFileSync(
    kcPath,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443' } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  assert.equal(
    loadKubeConfig({ KUBECONFIG: `/nope:${kcPath}` }).getCurrentCluster()?.server,
    'https://10.0.0.1:6443',
  );
  assert.throws(() => loadKubeConfig({ KUBECONFIG: '/nope' }), { code: 'ERR_KUBE_CONFIG' });
  const sa = join(dir.path, 'var/run/secrets/kubernetes.io/serviceaccount');
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), 'tok');
  writeFileSync(join(sa, 'ca.crt'), 'ca');
  writeFileSync(join(sa, 'namespace'), 'ns1');
  const inCluster = loadKubeConfig(
    { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
    dir.path,
  );
  assert.equal(inCluster.getCurrentCluster()?.server, 'https://10.96.0.1:443');
  assert.throws(() => loadKubeConfig({}, dir.path), /no Kubernetes credentials/);
});

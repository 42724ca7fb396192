// @precinct/kube against the real local Kubernetes auth API (kube-dev), driven through
// @kubernetes/client-node exactly as against a cluster.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { Writable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import Fastify from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import {
  cachingVerifier,
  createJwksVerifier,
  createNodeHttpAuth,
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  kubeAuthFastifyPlugin,
  loadKubeConfig,
  KubeAuthError,
} from '@precinct/kube';

let kd: KubeDev;
let kc: KubeConfig;
let core: CoreV1Api;
const NS = 'team-a';

async function token(sa: string, audiences = ['precinct'], ns = NS): Promise<string> {
  const r = await core.createNamespacedServiceAccountToken({
    name: sa,
    namespace: ns,
    body: { spec: { audiences, expirationSeconds: 3600 } },
  });
  return r.status!.token;
}

before(async () => {
  kd = await startKubeDev({
    listen: { host: '127.0.0.1', port: 0 },
    advertiseHost: '127.0.0.1',
    anonymousIssuerDiscovery: true, // the JWKS verifier below fetches discovery without a token
  });
  kc = loadKubeConfig({ KUBECONFIG: kd.kubeconfigPath });
  core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  for (const name of ['reader', 'nobody', 'doomed']) {
    await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name } } });
  }
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace: NS,
    body: {
      metadata: { name: 'read-pods' },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: NS,
    body: {
      metadata: { name: 'reader-reads-pods' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-pods' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: NS }],
    },
  });
});
after(() => kd?.close());

describe('verifiers against kube-dev', () => {
  test('JWKS verifier via OIDC discovery verifies a TokenRequest token offline', async () => {
    const v = createJwksVerifier({ issuer: kd.issuer, audiences: ['precinct'], ca: kd.caPem });
    const id = await v.verify(await token('reader'));
    assert.equal(id.username, `system:serviceaccount:${NS}:reader`);
    assert.ok(id.uid);
    // Negative: a token minted for another audience.
    await assert.rejects(v.verify(await token('reader', ['nats'])), { code: 'ERR_TOKEN_AUDIENCE' });
  });

  test('TokenReview verifier: valid, wrong audience, and a deleted ServiceAccount', async () => {
    const v = createTokenReviewVerifier({ kubeConfig: kc, audiences: ['precinct'] });
    const t = await token('doomed');
    const id = await v.verify(t);
    assert.equal(id.serviceAccountName, 'doomed');
    assert.equal(id.source, 'tokenreview');
    assert.ok(id.groups.includes('system:serviceaccounts:team-a'));
    await assert.rejects(v.verify(await token('doomed', ['nats'])), { code: 'ERR_TOKEN_REJECTED' });
    await core.deleteNamespacedServiceAccount({ name: 'doomed', namespace: NS });
    await assert.rejects(
      v.verify(t),
      (e) => e instanceof KubeAuthError && e.code === 'ERR_TOKEN_REJECTED',
    );
  });

  test('SubjectAccessReview authorizer follows real RBAC and caches the answer', async () => {
    const authz = createSubjectAccessReviewAuthorizer({ kubeConfig: kc });
    const reader = {
      username: `system:serviceaccount:${NS}:reader`,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
    };
    const attrs = { verb: 'get', resource: 'pods', namespace: NS };
    const first = await authz.authorize(reader, attrs);
    assert.deepEqual([first.allowed, first.cached], [true, false]);
    assert.equal((await authz.authorize(reader, attrs)).cached, true);
    assert.equal((await authz.authorize(reader, { ...attrs, verb: 'delete' })).allowed, false);
    assert.equal(
      (await authz.authorize(reader, { ...attrs, namespace: 'default' })).allowed,
      false,
    );
    const nobody = { ...reader, username: `system:serviceaccount:${NS}:nobody` };
    assert.equal((await authz.authorize(nobody, attrs)).allowed, false);
  });
});

function listen(server: Server): Promise<number> {
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      r(typeof a === 'object' && a ? a.port : 0);
    }),
  );
}

function get(port: number, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; type: string | undefined; body: string }>(
    (resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }),
        );
      });
      req.on('error', reject);
      req.end();
    },
  );
}

describe('middleware end to end', () => {
  test('node:http: 401, 403, 200 with spoofed headers stripped, 503 when the API is gone', async (t) => {
    const logLines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(c, _e, cb) {
          logLines.push(String(c));
          cb();
        },
      }),
    );
    const registry = new Registry();
    const own = await startKubeDev({
      listen: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      anonymousIssuerDiscovery: true,
    });
    t.after(() => own.close());
    const okc = loadKubeConfig({ KUBECONFIG: own.kubeconfigPath });
    const ocore = okc.makeApiClient(CoreV1Api);
    for (const name of ['reader', 'nobody']) {
      await ocore.createNamespacedServiceAccount({
        namespace: 'default',
        body: { metadata: { name } },
      });
    }
    await okc.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: 'reader-view' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'read-things',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: 'default' }],
      },
    });
    await okc.makeApiClient(RbacAuthorizationV1Api).createClusterRole({
      body: {
        metadata: { name: 'read-things' },
        rules: [{ apiGroups: [''], resources: ['services'], verbs: ['get'] }],
      },
    });
    const tok = async (name: string) =>
      (
        await ocore.createNamespacedServiceAccountToken({
          name,
          namespace: 'default',
          body: { spec: { audiences: ['precinct'] } },
        })
      ).status!.token;
    const guard = createNodeHttpAuth({
      verifier: cachingVerifier(
        createJwksVerifier({ issuer: own.issuer, audiences: ['precinct'], ca: own.caPem }),
      ),
      authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig: okc }),
      logger,
      registry,
      authorization: (req) => ({
        verb: 'get',
        resource: 'services',
        namespace: 'default',
        name: req.url === '/other' ? 'other' : 'data-storage-service',
      }),
    });
    const server = createServer(async (req, res) => {
      const id = await guard(req, res);
      if (!id) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ user: id.username, headers: req.headers }));
    });
    t.after(() => server.close());
    const port = await listen(server);

    const none = await get(port, '/');
    assert.equal(none.status, 401);
    assert.equal(none.type, 'application/problem+json');
    assert.deepEqual(JSON.parse(none.body), {
      type: 'about:blank',
      title: 'authentication failed',
      status: 401,
    });
    assert.equal((await get(port, '/', { authorization: 'Bearer not.a.jwt' })).status, 401);
    assert.equal((await get(port, '/', { authorization: 'Basic Zm9vOmJhcg==' })).status, 401);

    const nobody = await tok('nobody');
    const denied = await get(port, '/', { authorization: `Bearer ${nobody}` });
    assert.equal(denied.status, 403);
    assert.equal(JSON.parse(denied.body).title, 'authorization failed');

    const reader = await tok('reader');
    const ok = await get(port, '/', {
      authorization: `Bearer ${reader}`,
      'x-remote-user': 'system:admin',
      'impersonate-user': 'system:admin',
      'x-spiffe-id': 'spiffe://evil/admin',
      'x-auth-request-user': 'root',
      'x-custom': 'kept',
    });
    assert.equal(ok.status, 200);
    const body = JSON.parse(ok.body);
    assert.equal(body.user, 'system:serviceaccount:default:reader');
    for (const h of ['x-remote-user', 'impersonate-user', 'x-spiffe-id', 'x-auth-request-user']) {
      assert.equal(body.headers[h], undefined, `${h} must be stripped`);
    }
    assert.equal(body.headers['x-custom'], 'kept');

    // The API goes away: a question not in the cache cannot be answered -> 503, not 200/403.
    await own.close();
    const down = await get(port, '/other', { authorization: `Bearer ${reader}` });
    assert.equal(down.status, 503);
    assert.equal(JSON.parse(down.body).title, 'authorization unavailable');
    // ...while the cached decision still serves.
    assert.equal((await get(port, '/', { authorization: `Bearer ${reader}` })).status, 200);

    const logs = logLines.join('');
    assert.match(logs, /ERR_RBAC_DENIED/);
    assert.match(logs, /ERR_TOKEN_MISSING/);
    assert.match(logs, /ERR_KUBE_UNAVAILABLE/);
    for (const secret of [reader, nobody]) {
      assert.ok(!logs.includes(secret.split('.')[2]!), 'no token signature in the logs');
      assert.ok(!logs.includes(secret.split('.')[1]!), 'no token payload in the logs');
    }
    const metrics = await registry.metrics();
    assert.match(
      metrics,
      /precinct_kube_auth_requests_total\{result="denied",reason="ERR_RBAC_DENIED"\} 1/,
    );
    assert.match(metrics, /precinct_kube_auth_requests_total\{result="allowed",reason="ok"\} 2/);
    assert.match(metrics, /result="unavailable",reason="ERR_KUBE_UNAVAILABLE"\} 1/);
  });

  test('Fastify plugin: per-route attributes, request.identity, public routes', async (t) => {
    const app = Fastify();
    t.after(() => app.close());
    await app.register(kubeAuthFastifyPlugin, {
      verifier: createTokenReviewVerifier({ kubeConfig: kc, audiences: ['precinct'] }),
      authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig: kc }),
      registry: new Registry(),
    });
    app.get(
      '/pods',
      { config: { kubeAuth: { verb: 'list', resource: 'pods', namespace: NS } } },
      async (req) => ({ user: req.identity?.username }),
    );
    app.get(
      '/secrets',
      { config: { kubeAuth: { verb: 'get', resource: 'secrets', namespace: NS } } },
      async () => ({ secret: true }),
    );
    app.get('/health', { config: { kubeAuth: false } }, async (req) => ({
      spoof: req.headers['x-remote-user'] ?? null,
    }));
    const reader = await token('reader');
    const pods = await app.inject({ url: '/pods', headers: { authorization: `Bearer ${reader}` } });
    assert.equal(pods.statusCode, 200);
    assert.equal(pods.json().user, `system:serviceaccount:${NS}:reader`);
    const secrets = await app.inject({
      url: '/secrets',
      headers: { authorization: `Bearer ${reader}` },
    });
    assert.equal(secrets.statusCode, 403);
    assert.equal(secrets.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.equal((await app.inject({ url: '/pods' })).statusCode, 401);
    const health = await app.inject({ url: '/health', headers: { 'x-remote-user': 'admin' } });
    assert.deepEqual(health.json(), { spoof: null });
  });
});

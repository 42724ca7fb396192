// kubeAuthFastifyPlugin's two ways to authenticate a caller, against a real kube-apiserver
// (TokenReview, SubjectAccessReview, RBAC) and real mTLS (@precinct/spiffe): a ServiceAccount
// bearer token (the default), and the mTLS peer's SPIFFE ID as an RBAC User.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import * as k8s from '@kubernetes/client-node';
import {
  X509Bundle,
  X509BundleSet,
  X509Svid,
  authorizeAny,
  authorizeMemberOf,
  tlsClientOptions,
  tlsServerOptions,
} from '@precinct/spiffe';
import { spiffeFastify } from '@precinct/spiffe/fastify';
import { peerSkip, startKubeApiserver, type KubeApiserver } from '@precinct/testing';
import {
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  kubeAuthFastifyPlugin,
  spiffeUser,
  type Authorizer,
  type KubeAuthFastifyOptions,
} from '@precinct/kube';
// The SPIFFE SDK's own test CA: X.509-SVIDs for a trust domain, made in the test.
import { TestCa, type IssuedSvid } from '../../spiffe/test/support/ca.js';

const skip = peerSkip('kube-apiserver') || peerSkip('etcd');
const NS = 'team-a';
const TD = 'example.org';
const AUD = 'precinct';
const PODS = { verb: 'list', resource: 'pods', namespace: NS } as const;
const SECRETS = { verb: 'get', resource: 'secrets', namespace: NS } as const;

describe('kubeAuthFastifyPlugin: caller authentication (real kube-apiserver)', { skip }, () => {
  let api: KubeApiserver;
  let kc: k8s.KubeConfig;
  let ca: TestCa;
  let bundles: X509BundleSet;
  let serverSvid: IssuedSvid;
  let reader: IssuedSvid;
  let nobody: IssuedSvid;
  let readerToken: string;
  const apps: FastifyInstance[] = [];

  before(async () => {
    api = await startKubeApiserver({ controllers: false });
    kc = new k8s.KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 'sa' } },
    });
    await rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: 'pod-reader' },
        rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }],
      },
    });
    // One workload by its SPIFFE ID, one ServiceAccount: both may list pods, neither secrets.
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: 'pod-readers' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
        subjects: [
          { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: `spiffe://${TD}/reader` },
          { kind: 'ServiceAccount', name: 'sa', namespace: NS },
        ],
      },
    });
    readerToken = (
      await core.createNamespacedServiceAccountToken({
        namespace: NS,
        name: 'sa',
        body: { spec: { audiences: [AUD], expirationSeconds: 600 } },
      })
    ).status!.token;

    ca = await TestCa.create(TD);
    bundles = new X509BundleSet([X509Bundle.parse(TD, ca.bundleDer())]);
    serverSvid = await ca.issue('/server');
    reader = await ca.issue('/reader');
    nobody = await ca.issue('/nobody');
  });
  after(async () => {
    for (const app of apps) await app.close();
    await api?.close();
  });

  const authorizer = (): Authorizer => createSubjectAccessReviewAuthorizer({ kubeConfig: kc });
  const svid = (s: IssuedSvid) => {
    const parsed = X509Svid.parse(Buffer.concat(s.chainDer), s.keyDer);
    return { getX509Svid: () => parsed };
  };

  /** An app with /pods (RBAC: list pods), /secrets (get secrets) and a public /health. */
  async function app(
    opts: KubeAuthFastifyOptions,
    tls: boolean,
    registry = new Registry(),
  ): Promise<FastifyInstance> {
    const tlsOptions = tlsServerOptions(svid(serverSvid), bundles, authorizeMemberOf(TD));
    // One type for both (the https server is what spiffeFastify installs its checks on).
    const a = (tls ? Fastify({ https: tlsOptions }) : Fastify()) as unknown as FastifyInstance;
    apps.push(a);
    if (tls) await a.register(spiffeFastify, { tlsOptions });
    await a.register(kubeAuthFastifyPlugin, { ...opts, registry });
    const who = async (req: { identity?: { username: string }; spiffeId?: unknown }) => ({
      sa: req.identity?.username ?? null,
      spiffe: req.spiffeId ? String(req.spiffeId) : null,
    });
    a.get('/pods', { config: { kubeAuth: PODS } }, who);
    a.get('/secrets', { config: { kubeAuth: SECRETS } }, who);
    a.get('/health', { config: { kubeAuth: false } }, async (req) => ({
      spoof: req.headers['x-remote-user'] ?? null,
    }));
    if (tls) await a.listen({ host: '127.0.0.1', port: 0 });
    return a;
  }

  /** GET over mTLS presenting `client`'s SVID. */
  function get(
    a: FastifyInstance,
    path: string,
    client: IssuedSvid,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; headers: Record<string, unknown>; body: Record<string, unknown> }> {
    const port = (a.server.address() as AddressInfo).port;
    const tls = tlsClientOptions(svid(client), bundles, authorizeAny());
    return new Promise((resolve, reject) => {
      const req = request(
        { ...tls, host: '127.0.0.1', port, path, headers, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  test('default (ServiceAccount token): RBAC per route, request.identity, 401 with a Bearer challenge', async () => {
    const a = await app(
      {
        verifier: createTokenReviewVerifier({ kubeConfig: kc, audiences: [AUD] }),
        authorizer: authorizer(),
      },
      false,
    );
    const bearer = { authorization: `Bearer ${readerToken}` };
    const pods = await a.inject({ url: '/pods', headers: bearer });
    assert.equal(pods.statusCode, 200, pods.body);
    assert.deepEqual(pods.json(), { sa: `system:serviceaccount:${NS}:sa`, spiffe: null });

    const secrets = await a.inject({ url: '/secrets', headers: bearer });
    assert.equal(secrets.statusCode, 403);
    assert.equal(secrets.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.deepEqual(secrets.json(), {
      type: 'about:blank',
      title: 'authorization failed',
      status: 403,
      code: 'ERR_AUTHORIZATION_FAILED',
    });
    const none = await a.inject({ url: '/pods' });
    assert.equal(none.statusCode, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    assert.equal(none.json().title, 'authentication failed');
    assert.equal(
      (await a.inject({ url: '/pods', headers: { authorization: 'Bearer x.y.z' } })).statusCode,
      401,
    );
    const health = await a.inject({ url: '/health', headers: { 'x-remote-user': 'admin' } });
    assert.deepEqual(health.json(), { spoof: null });
  });

  test('caller spiffe + rbac: the peer is User <SPIFFE ID>; a token does not count', async () => {
    const registry = new Registry();
    const a = await app({ caller: 'spiffe', rbac: true, authorizer: authorizer() }, true, registry);
    // Positive control: the bound SPIFFE ID may list pods.
    const pods = await get(a, '/pods', reader, { 'x-remote-user': 'system:admin' });
    assert.equal(pods.status, 200, JSON.stringify(pods.body));
    assert.deepEqual(pods.body, { sa: null, spiffe: `spiffe://${TD}/reader` });
    // ...but not get secrets, which RBAC does not grant it.
    const secrets = await get(a, '/secrets', reader);
    assert.equal(secrets.status, 403);
    assert.equal(secrets.body.code, 'ERR_AUTHORIZATION_FAILED');
    // Another peer of the same trust domain is not bound, even carrying the bound SA's token.
    const other = await get(a, '/pods', nobody, { authorization: `Bearer ${readerToken}` });
    assert.equal(other.status, 403);
    assert.equal(other.headers['www-authenticate'], undefined);
    // Public routes need no RBAC and still lose client-claimed identity headers.
    const health = await get(a, '/health', nobody, { 'x-remote-user': 'admin' });
    assert.deepEqual([health.status, health.body], [200, { spoof: null }]);
    const metrics = await registry.metrics();
    assert.match(metrics, /result="denied",reason="ERR_RBAC_DENIED"\} 2/);
    assert.match(metrics, /result="allowed",reason="ok"\} 1/);
  });

  test('caller spiffe without an authenticated peer (no TLS): 401, no Bearer challenge', async () => {
    const registry = new Registry();
    const a = Fastify();
    apps.push(a);
    // The decorator exists (as on an mTLS server) but this request has no TLS peer at all.
    a.decorateRequest('spiffeId', undefined);
    await a.register(kubeAuthFastifyPlugin, { caller: 'spiffe', rbac: false, registry });
    a.get('/pods', { config: { kubeAuth: PODS } }, async () => ({ ok: true }));
    const res = await a.inject({
      url: '/pods',
      headers: { authorization: `Bearer ${readerToken}` },
    });
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers['www-authenticate'], undefined);
    assert.equal(res.json().code, 'ERR_AUTHENTICATION_FAILED');
    assert.match(await registry.metrics(), /reason="ERR_NO_SPIFFE_ID"\} 1/);
  });

  test('caller spiffe, rbac false: the TLS authorizer is the only authorization', async () => {
    const a = await app({ caller: 'spiffe', rbac: false }, true);
    const secrets = await get(a, '/secrets', nobody);
    assert.equal(secrets.status, 200, JSON.stringify(secrets.body));
    assert.deepEqual(secrets.body, { sa: null, spiffe: `spiffe://${TD}/nobody` });
  });

  test('caller spiffe + rbac: RBAC that cannot be asked fails closed with 503', async () => {
    // A real SubjectAccessReview client aimed at a port where no API server listens.
    const gone = new k8s.KubeConfig();
    gone.loadFromOptions({
      clusters: [{ name: 'gone', server: 'https://127.0.0.1:9', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'unused' }],
      contexts: [{ name: 'gone', cluster: 'gone', user: 'u' }],
      currentContext: 'gone',
    });
    const down = createSubjectAccessReviewAuthorizer({ kubeConfig: gone });
    const unavailable = await app({ caller: 'spiffe', rbac: true, authorizer: down }, true);
    const res = await get(unavailable, '/pods', reader);
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, {
      type: 'about:blank',
      title: 'authorization unavailable',
      status: 503,
      code: 'ERR_AUTHORIZATION_UNAVAILABLE',
    });
  });

  test('spiffeUser: User <SPIFFE ID> in Group <trust domain ID>', () => {
    const user = spiffeUser({
      toString: () => `spiffe://${TD}/ns/a/sa/b`,
      trustDomain: { idString: () => `spiffe://${TD}` },
    });
    assert.deepEqual(user, { username: `spiffe://${TD}/ns/a/sa/b`, groups: [`spiffe://${TD}`] });
  });

  test('bad options fail registration with a TypeError; a good one registers', async () => {
    const verifier = createTokenReviewVerifier({ kubeConfig: kc, audiences: [AUD] });
    const withSpiffe = async () => {
      const a = Fastify();
      apps.push(a);
      a.decorateRequest('spiffeId', undefined);
      return a;
    };
    const bad: Array<[string, () => Promise<FastifyInstance>, unknown]> = [
      ['no verifier', async () => Fastify(), {}],
      ['unknown caller', withSpiffe, { caller: 'bearer', verifier }],
      ['spiffe without spiffeFastify', async () => Fastify(), { caller: 'spiffe', rbac: false }],
      ['spiffe without rbac', withSpiffe, { caller: 'spiffe' }],
      ['rbac without authorizer', withSpiffe, { caller: 'spiffe', rbac: true }],
      [
        'authorizer never asked',
        withSpiffe,
        { caller: 'spiffe', rbac: false, authorizer: authorizer() },
      ],
      ['spiffe with a verifier', withSpiffe, { caller: 'spiffe', rbac: false, verifier }],
    ];
    for (const [name, make, opts] of bad) {
      const a = await make();
      await assert.rejects(
        async () => {
          await a.register(kubeAuthFastifyPlugin, opts as KubeAuthFastifyOptions);
          await a.ready();
        },
        TypeError,
        name,
      );
    }
    const good = await withSpiffe();
    await good.register(kubeAuthFastifyPlugin, {
      caller: 'spiffe',
      rbac: false,
      registry: new Registry(),
    });
    await good.ready();
  });
});

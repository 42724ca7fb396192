import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AuthenticationV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  makeInformer,
  setHeaderOptions,
  type V1ServiceAccount,
  type V1TokenRequestSpec,
} from '@kubernetes/client-node';
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JSONWebKeySet,
} from 'jose';
import type { KubeDev } from '@precinct/kube-dev';
import { call, eventually, startTestKubeDev } from './helpers.js';

let kd: KubeDev;
let kc: KubeConfig;
let core: CoreV1Api;
let authn: AuthenticationV1Api;
let authz: AuthorizationV1Api;
let rbac: RbacAuthorizationV1Api;
const NS = 'client-node';

before(async () => {
  kd = await startTestKubeDev();
  kc = new KubeConfig();
  kc.loadFromFile(kd.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  authn = kc.makeApiClient(AuthenticationV1Api);
  authz = kc.makeApiClient(AuthorizationV1Api);
  rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
});

after(() => kd.close());

const statusOf = async (
  p: Promise<unknown>,
): Promise<{ code: number; body: Record<string, unknown> }> => {
  try {
    await p;
  } catch (err) {
    const e = err as { code?: number; body?: unknown };
    const body = typeof e.body === 'string' ? (JSON.parse(e.body) as Record<string, unknown>) : {};
    return { code: e.code ?? 0, body };
  }
  throw new Error('expected the call to fail');
};

async function tokenFor(name: string, spec: Partial<V1TokenRequestSpec> = {}) {
  const tr = await core.createNamespacedServiceAccountToken({
    name,
    namespace: NS,
    body: { spec: { audiences: [], ...spec } },
  });
  return tr.status!.token;
}

async function review(token: string, audiences?: string[]) {
  const r = await authn.createTokenReview({
    body: { spec: { token, ...(audiences ? { audiences } : {}) } },
  });
  return r.status!;
}

describe('ServiceAccounts with @kubernetes/client-node', () => {
  test('the namespace got a default ServiceAccount', async () => {
    const sa = await core.readNamespacedServiceAccount({ name: 'default', namespace: NS });
    assert.equal(sa.metadata?.namespace, NS);
    assert.match(sa.metadata?.uid ?? '', /^[0-9a-f-]{36}$/);
  });

  test('create, read, list, annotate (merge patch), update, delete', async () => {
    const created = await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 'crud' } },
    });
    assert.equal(created.metadata?.name, 'crud');
    assert.ok(created.metadata?.creationTimestamp);
    const dup = await statusOf(
      core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'crud' } } }),
    );
    assert.equal(dup.code, 409);
    assert.equal(dup.body.reason, 'AlreadyExists');

    const list = await core.listNamespacedServiceAccount({ namespace: NS });
    assert.deepEqual(list.items.map((s) => s.metadata?.name).sort(), ['crud', 'default']);
    assert.ok(Number(list.metadata?.resourceVersion) >= Number(created.metadata?.resourceVersion));

    const patched = await core.patchNamespacedServiceAccount(
      { name: 'crud', namespace: NS, body: { metadata: { annotations: { team: 'identity' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.equal(patched.metadata?.annotations?.team, 'identity');
    assert.equal(patched.metadata?.uid, created.metadata?.uid);
    assert.ok(
      Number(patched.metadata?.resourceVersion) > Number(created.metadata?.resourceVersion),
    );

    const jp = await core.patchNamespacedServiceAccount({
      name: 'crud',
      namespace: NS,
      body: [{ op: 'add', path: '/metadata/labels', value: { app: 'x' } }],
    });
    assert.equal(jp.metadata?.labels?.app, 'x');

    const stale = { ...created, metadata: { ...created.metadata, annotations: { a: 'b' } } };
    const conflict = await statusOf(
      core.replaceNamespacedServiceAccount({ name: 'crud', namespace: NS, body: stale }),
    );
    assert.equal(conflict.code, 409);
    assert.equal(conflict.body.reason, 'Conflict');
    const fresh = await core.readNamespacedServiceAccount({ name: 'crud', namespace: NS });
    fresh.automountServiceAccountToken = false;
    const replaced = await core.replaceNamespacedServiceAccount({
      name: 'crud',
      namespace: NS,
      body: fresh,
    });
    assert.equal(replaced.automountServiceAccountToken, false);

    await core.deleteNamespacedServiceAccount({ name: 'crud', namespace: NS });
    const gone = await statusOf(core.readNamespacedServiceAccount({ name: 'crud', namespace: NS }));
    assert.equal(gone.code, 404);
    assert.equal(gone.body.kind, 'Status');
    assert.equal(gone.body.reason, 'NotFound');
  });

  test('an informer sees add, update and delete', async () => {
    const informer = makeInformer<V1ServiceAccount>(
      kc,
      `/api/v1/namespaces/${NS}/serviceaccounts`,
      () => core.listNamespacedServiceAccount({ namespace: NS }),
    );
    const seen: string[] = [];
    informer.on('add', (o) => seen.push(`add:${o.metadata?.name}`));
    informer.on('update', (o) =>
      seen.push(`update:${o.metadata?.name}:${o.metadata?.annotations?.v ?? ''}`),
    );
    informer.on('delete', (o) => seen.push(`delete:${o.metadata?.name}`));
    await informer.start();
    try {
      await eventually(() => seen.includes('add:default'), 'initial list');
      await core.createNamespacedServiceAccount({
        namespace: NS,
        body: { metadata: { name: 'watched' } },
      });
      await eventually(() => seen.includes('add:watched'), 'add event');
      await core.patchNamespacedServiceAccount(
        { name: 'watched', namespace: NS, body: { metadata: { annotations: { v: '2' } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await eventually(() => seen.includes('update:watched:2'), 'update event');
      assert.equal(informer.get('watched', NS)?.metadata?.annotations?.v, '2');
      await core.deleteNamespacedServiceAccount({ name: 'watched', namespace: NS });
      await eventually(() => seen.includes('delete:watched'), 'delete event');
    } finally {
      await informer.stop();
    }
  });
});

describe('TokenRequest and TokenReview', () => {
  before(async () => {
    await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 'app' } },
    });
  });

  test('a token is shaped like a real cluster projected token and verifies offline via OIDC discovery', async () => {
    const sa = await core.readNamespacedServiceAccount({ name: 'app', namespace: NS });
    // A token binds only to a pod that exists and runs as the ServiceAccount.
    const pod = await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'app-0' },
        spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'app' }] },
      },
    });
    const podUid = pod.metadata!.uid!;
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'app',
      namespace: NS,
      body: {
        spec: {
          audiences: ['api://precinct'],
          expirationSeconds: 600,
          boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'app-0', uid: podUid },
        },
      },
    });
    const token = tr.status!.token;
    const header = decodeProtectedHeader(token);
    assert.equal(header.alg, 'RS256');
    assert.match(header.kid ?? '', /^[A-Za-z0-9_-]{43}$/);
    const claims = decodeJwt(token);
    assert.equal(claims.iss, kd.issuer);
    assert.equal(claims.sub, `system:serviceaccount:${NS}:app`);
    assert.deepEqual(claims.aud, ['api://precinct']);
    assert.equal(claims.exp! - claims.iat!, 600);
    assert.equal(claims.nbf, claims.iat);
    assert.ok(claims.jti);
    assert.deepEqual(claims['kubernetes.io'], {
      namespace: NS,
      pod: { name: 'app-0', uid: podUid },
      serviceaccount: { name: 'app', uid: sa.metadata!.uid },
    });
    assert.equal(new Date(tr.status!.expirationTimestamp).getTime(), claims.exp! * 1000);

    // OIDC discovery and JWKS over the same HTTPS server, for any ServiceAccount (the
    // bootstrap binding of system:service-account-issuer-discovery), not for anonymous callers.
    const sat = await tokenFor('app', {});
    const anon = await call(kd, 'GET', '/.well-known/openid-configuration', { token: null });
    assert.equal(anon.status, 403);
    const disco = await call(kd, 'GET', '/.well-known/openid-configuration', { token: sat });
    assert.equal(disco.status, 200);
    const config = disco.json() as { issuer: string; jwks_uri: string };
    assert.equal(config.issuer, kd.issuer);
    assert.equal(config.jwks_uri, `${kd.issuer}/openid/v1/jwks`);
    const jwksRes = await call(kd, 'GET', new URL(config.jwks_uri).pathname, { token: sat });
    assert.equal(jwksRes.status, 200);
    const keys = createLocalJWKSet(jwksRes.json() as unknown as JSONWebKeySet);
    const verified = await jwtVerify(token, keys, {
      issuer: kd.issuer,
      audience: 'api://precinct',
    });
    assert.equal(verified.payload.sub, `system:serviceaccount:${NS}:app`);
  });

  test('TokenReview honours audiences like Kubernetes', async () => {
    const token = await tokenFor('app', { audiences: ['a', 'b'] });
    const ok = await review(token, ['b', 'c']);
    assert.equal(ok.authenticated, true);
    assert.deepEqual(ok.audiences, ['b']);
    assert.equal(ok.user?.username, `system:serviceaccount:${NS}:app`);
    assert.deepEqual(ok.user?.groups, [
      'system:serviceaccounts',
      `system:serviceaccounts:${NS}`,
      'system:authenticated',
    ]);
    assert.ok(ok.user?.uid);
    assert.match(
      ok.user?.extra?.['authentication.kubernetes.io/credential-id']?.[0] ?? '',
      /^JTI=/,
    );

    const wrongAud = await review(token, ['other']);
    assert.notEqual(wrongAud.authenticated, true);
    // Without spec.audiences the API's own audience (the issuer) is required.
    assert.notEqual((await review(token)).authenticated, true);
    const defaultToken = await tokenFor('app');
    assert.deepEqual(decodeJwt(defaultToken).aud, [kd.issuer]);
    assert.equal((await review(defaultToken)).authenticated, true);
  });

  test('a token stops verifying when its ServiceAccount is deleted, also after re-creation', async () => {
    await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 'ephemeral' } },
    });
    const token = await tokenFor('ephemeral');
    assert.equal((await review(token)).authenticated, true); // positive control
    await core.deleteNamespacedServiceAccount({ name: 'ephemeral', namespace: NS });
    assert.notEqual((await review(token)).authenticated, true);
    await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 'ephemeral' } },
    });
    assert.notEqual((await review(token)).authenticated, true);
    const fresh = await tokenFor('ephemeral');
    assert.equal((await review(fresh)).authenticated, true);
  });

  test('tampered, foreign and garbage tokens do not verify; the admin token does', async () => {
    const token = await tokenFor('app');
    const [h, p, s] = token.split('.');
    const flipped = `${h}.${p}.${s!.slice(0, -4)}${s!.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    for (const bad of [flipped, 'not-a-jwt', `${h}.${p}.`, 'x'.repeat(17_000)]) {
      assert.notEqual((await review(bad)).authenticated, true, bad.slice(0, 20));
    }
    const admin = await review(kd.adminToken);
    assert.equal(admin.authenticated, true);
    assert.equal(admin.user?.username, 'kube-dev-admin');
    assert.ok(admin.user?.groups?.includes('system:masters'));
  });

  test('TokenRequest validation', async () => {
    const short = await statusOf(
      core.createNamespacedServiceAccountToken({
        name: 'app',
        namespace: NS,
        body: { spec: { expirationSeconds: 60, audiences: [] } },
      }),
    );
    assert.equal(short.code, 422);
    assert.equal(short.body.reason, 'Invalid');
    const missing = await statusOf(
      core.createNamespacedServiceAccountToken({
        name: 'nobody',
        namespace: NS,
        body: { spec: { audiences: [] } },
      }),
    );
    assert.equal(missing.code, 404);
  });
});

describe('authorization', () => {
  before(async () => {
    await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 'reader' } },
    });
    await rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: 'sa-reader' },
        rules: [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: 'reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'sa-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: NS }],
      },
    });
  });

  const sar = async (
    verb: string,
    namespace: string,
    user = `system:serviceaccount:${NS}:reader`,
  ) =>
    (
      await authz.createSubjectAccessReview({
        body: {
          spec: {
            user,
            groups: ['system:serviceaccounts', 'system:authenticated'],
            resourceAttributes: { verb, resource: 'serviceaccounts', namespace },
          },
        },
      })
    ).status!;

  test('SubjectAccessReview allows what a binding grants and nothing else', async () => {
    const yes = await sar('list', NS);
    assert.equal(yes.allowed, true);
    assert.match(yes.reason ?? '', /RoleBinding "reader\/client-node" of Role "sa-reader"/);
    assert.equal((await sar('delete', NS)).allowed, false);
    assert.equal((await sar('list', 'default')).allowed, false);
    assert.equal((await sar('list', NS, `system:serviceaccount:${NS}:app`)).allowed, false);
  });

  test('a ServiceAccount token is authorized by RBAC on every API call', async () => {
    const token = await tokenFor('reader', { audiences: [kd.issuer] });
    const list = await call(kd, 'GET', `/api/v1/namespaces/${NS}/serviceaccounts`, { token });
    assert.equal(list.status, 200); // positive control
    const denied = await call(kd, 'GET', '/api/v1/namespaces/default/serviceaccounts', { token });
    assert.equal(denied.status, 403);
    assert.equal(denied.json().reason, 'Forbidden');
    assert.match(
      String(denied.json().message),
      /cannot list resource "serviceaccounts" in API group "" in the namespace "default"/,
    );
    const create = await call(kd, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      token,
      body: JSON.stringify({ metadata: { name: 'nope' } }),
    });
    assert.equal(create.status, 403);
    // Self reviews are allowed for every authenticated user (system:basic-user).
    const self = await call(kd, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      token,
      body: JSON.stringify({
        spec: { resourceAttributes: { verb: 'get', resource: 'serviceaccounts', namespace: NS } },
      }),
    });
    assert.equal(self.status, 201);
    assert.equal((self.json().status as { allowed: boolean }).allowed, true);
  });

  test('a ServiceAccount granted `impersonate` may impersonate, within the grant', async () => {
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'impersonate-reader' },
        rules: [
          {
            apiGroups: [''],
            resources: ['serviceaccounts'],
            verbs: ['impersonate'],
            resourceNames: ['reader'],
          },
        ],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'app-impersonates-reader' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'impersonate-reader',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: NS }],
      },
    });
    const token = await tokenFor('app', { audiences: [kd.issuer] });
    const path = `/api/v1/namespaces/${NS}/serviceaccounts`;
    assert.equal((await call(kd, 'GET', path, { token })).status, 403); // app itself may not list
    const asReader = await call(kd, 'GET', path, {
      token,
      headers: { 'Impersonate-User': `system:serviceaccount:${NS}:reader` },
    });
    assert.equal(asReader.status, 200, asReader.text);
    const whoami = await call(kd, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      token,
      body: '{}',
      headers: { 'Impersonate-User': `system:serviceaccount:${NS}:reader` },
    });
    const info = (whoami.json().status as { userInfo: { username: string; groups: string[] } })
      .userInfo;
    assert.equal(info.username, `system:serviceaccount:${NS}:reader`);
    assert.deepEqual(info.groups, [
      'system:serviceaccounts',
      `system:serviceaccounts:${NS}`,
      'system:authenticated',
    ]);
    const other = await call(kd, 'GET', path, {
      token,
      headers: { 'Impersonate-User': `system:serviceaccount:${NS}:default` },
    });
    assert.equal(other.status, 403);
  });

  test('RBAC escalation prevention: a ServiceAccount may only grant what it holds', async () => {
    await rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: 'role-writer' },
        rules: [
          {
            apiGroups: ['rbac.authorization.k8s.io'],
            resources: ['roles', 'rolebindings'],
            verbs: ['create'],
          },
          { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get'] },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: 'writer' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'role-writer' },
        subjects: [{ kind: 'ServiceAccount', name: 'writer', namespace: NS }],
      },
    });
    await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 'writer' } },
    });
    const token = await tokenFor('writer', { audiences: [kd.issuer] });
    const roles = `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`;
    const role = (name: string, verbs: string[]) =>
      JSON.stringify({
        metadata: { name },
        rules: [{ apiGroups: [''], resources: ['serviceaccounts'], verbs }],
      });
    const held = await call(kd, 'POST', roles, { token, body: role('get-only', ['get']) });
    assert.equal(held.status, 201, held.text);
    const more = await call(kd, 'POST', roles, {
      token,
      body: role('delete-too', ['get', 'delete']),
    });
    assert.equal(more.status, 403);
    assert.match(
      String(more.json().message),
      /attempting to grant RBAC permissions not currently held/,
    );
    const bindings = `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`;
    const binding = (name: string, roleName: string, kind = 'Role') =>
      JSON.stringify({
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind, name: roleName },
        subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: NS }],
      });
    assert.equal(
      (await call(kd, 'POST', bindings, { token, body: binding('ok', 'get-only') })).status,
      201,
    );
    assert.equal(
      (
        await call(kd, 'POST', bindings, {
          token,
          body: binding('no', 'cluster-admin', 'ClusterRole'),
        })
      ).status,
      403,
    );
  });

  test('impersonated groups and extra arrive one value per header line', async () => {
    const r = await call(kd, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      body: '{}',
      headers: {
        'Impersonate-User': 'bob',
        'Impersonate-Group': ['team-a', 'team,b'],
        'Impersonate-Extra-Scopes': ['read', 'write'],
      },
    });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual((r.json().status as { userInfo: unknown }).userInfo, {
      username: 'bob',
      groups: ['team-a', 'team,b', 'system:authenticated'],
      extra: { scopes: ['read', 'write'] },
    });
  });

  test('impersonation: the admin may, a ServiceAccount without the grant may not', async () => {
    const asReader = { 'Impersonate-User': `system:serviceaccount:${NS}:reader` };
    const ok = await call(kd, 'GET', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      headers: asReader,
    });
    assert.equal(ok.status, 200);
    const no = await call(kd, 'GET', '/api/v1/namespaces/default/serviceaccounts', {
      headers: asReader,
    });
    assert.equal(no.status, 403);
    const token = await tokenFor('reader', { audiences: [kd.issuer] });
    const escalate = await call(kd, 'GET', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      token,
      headers: { 'Impersonate-User': 'kube-dev-admin', 'Impersonate-Group': 'system:masters' },
    });
    assert.equal(escalate.status, 403);
    assert.match(String(escalate.json().message), /cannot impersonate resource "users"/);
  });
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import { call, startTestKubeDev } from './helpers.js';

let kd: KubeDev;
before(async () => {
  kd = await startTestKubeDev();
});
after(() => kd.close());

const SA = '/api/v1/namespaces/default/serviceaccounts';

interface Case {
  name: string;
  method: string;
  path: string;
  body?: string | Buffer;
  contentType?: string;
  token?: string | null;
  headers?: Record<string, string>;
  status: number;
  reason: string;
}

const cases: Case[] = [
  {
    name: 'create across namespaces',
    method: 'POST',
    path: '/api/v1/serviceaccounts',
    body: '{"metadata":{"name":"x"}}',
    status: 405,
    reason: 'MethodNotAllowed',
  },
  {
    name: 'invalid JSON',
    method: 'POST',
    path: SA,
    body: '{"metadata":',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'JSON that is not an object',
    method: 'POST',
    path: SA,
    body: '[1,2]',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'wrong content type',
    method: 'POST',
    path: SA,
    body: 'name: x',
    contentType: 'text/plain',
    status: 415,
    reason: 'UnsupportedMediaType',
  },
  {
    name: 'server-side apply is not supported',
    method: 'PATCH',
    path: `${SA}/default`,
    body: '{}',
    contentType: 'application/apply-patch+yaml',
    status: 415,
    reason: 'UnsupportedMediaType',
  },
  {
    name: 'body over 3 MiB',
    method: 'POST',
    path: SA,
    body: `{"x":"${'a'.repeat(3 * 1024 * 1024)}"}`,
    status: 413,
    reason: 'RequestEntityTooLarge',
  },
  {
    name: 'unknown API path',
    method: 'GET',
    path: '/api/v1/configmaps',
    status: 404,
    reason: 'NotFound',
  },
  {
    name: 'bad percent-encoding in the path',
    method: 'GET',
    path: '/api/v1/namespaces/%E0%A4%A/serviceaccounts',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'unknown group',
    method: 'GET',
    path: '/apis/apps/v1/deployments',
    status: 404,
    reason: 'NotFound',
  },
  {
    name: 'unknown non-resource path',
    method: 'GET',
    path: '/nope',
    status: 404,
    reason: 'NotFound',
  },
  {
    name: 'wrong method on discovery',
    method: 'POST',
    path: '/api/v1',
    body: '{}',
    status: 405,
    reason: 'MethodNotAllowed',
  },
  {
    name: 'GET on TokenReview',
    method: 'GET',
    path: '/apis/authentication.k8s.io/v1/tokenreviews',
    status: 405,
    reason: 'MethodNotAllowed',
  },
  {
    name: 'name not DNS-1123',
    method: 'POST',
    path: SA,
    body: '{"metadata":{"name":"Bad_Name"}}',
    status: 422,
    reason: 'Invalid',
  },
  {
    name: 'missing name',
    method: 'POST',
    path: SA,
    body: '{"metadata":{}}',
    status: 422,
    reason: 'Invalid',
  },
  {
    name: 'namespace mismatch',
    method: 'POST',
    path: SA,
    body: '{"metadata":{"name":"x","namespace":"kube-system"}}',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'wrong kind',
    method: 'POST',
    path: SA,
    body: '{"kind":"Role","metadata":{"name":"x"}}',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'labels not strings',
    method: 'POST',
    path: SA,
    body: '{"metadata":{"name":"x","labels":{"a":1}}}',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'name differs from URL on update',
    method: 'PUT',
    path: `${SA}/default`,
    body: '{"metadata":{"name":"other"}}',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'missing namespace',
    method: 'POST',
    path: '/api/v1/namespaces/absent/serviceaccounts',
    body: '{"metadata":{"name":"x"}}',
    status: 404,
    reason: 'NotFound',
  },
  {
    name: 'invalid JSON patch',
    method: 'PATCH',
    path: `${SA}/default`,
    body: '{"op":"add"}',
    contentType: 'application/json-patch+json',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'JSON patch on a missing path',
    method: 'PATCH',
    path: `${SA}/default`,
    body: '[{"op":"remove","path":"/nope/x"}]',
    contentType: 'application/json-patch+json',
    status: 422,
    reason: 'Invalid',
  },
  {
    name: 'garbage protobuf',
    method: 'POST',
    path: SA,
    body: Buffer.from('k8s\u0000\u00ff\u00ff'),
    contentType: 'application/vnd.kubernetes.protobuf',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'invalid Role rule',
    method: 'POST',
    path: '/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles',
    body: '{"metadata":{"name":"r"},"rules":[{"resources":["pods"]}]}',
    status: 422,
    reason: 'Invalid',
  },
  {
    name: 'binding to an unknown roleRef kind',
    method: 'POST',
    path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
    body: '{"metadata":{"name":"b"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r"}}',
    status: 422,
    reason: 'Invalid',
  },
  {
    name: 'token too short-lived',
    method: 'POST',
    path: `${SA}/default/token`,
    body: '{"spec":{"expirationSeconds":10}}',
    status: 422,
    reason: 'Invalid',
  },
  {
    name: 'TokenReview without a token',
    method: 'POST',
    path: '/apis/authentication.k8s.io/v1/tokenreviews',
    body: '{"spec":{}}',
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'SAR with both attribute kinds',
    method: 'POST',
    path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    body: '{"spec":{"user":"u","resourceAttributes":{},"nonResourceAttributes":{}}}',
    status: 422,
    reason: 'Invalid',
  },
  {
    name: 'SAR without user or groups',
    method: 'POST',
    path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    body: '{"spec":{"resourceAttributes":{"verb":"get"}}}',
    status: 422,
    reason: 'Invalid',
  },
  {
    name: 'bad label selector',
    method: 'GET',
    path: `${SA}?labelSelector=a%20in%20(`,
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'unsupported field selector',
    method: 'GET',
    path: `${SA}?fieldSelector=spec.x%3Dy`,
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'too old resourceVersion on watch',
    method: 'GET',
    path: `${SA}?watch=1&resourceVersion=1`,
    status: 410,
    reason: 'Expired',
  },
  {
    name: 'deleting a system namespace',
    method: 'DELETE',
    path: '/api/v1/namespaces/kube-system',
    status: 403,
    reason: 'Forbidden',
  },
  {
    name: 'no credentials: system:anonymous, which RBAC denies',
    method: 'GET',
    path: SA,
    token: null,
    status: 403,
    reason: 'Forbidden',
  },
  {
    name: 'an unknown token',
    method: 'GET',
    path: SA,
    token: 'not-the-admin-token',
    status: 401,
    reason: 'Unauthorized',
  },
  {
    name: 'a token over 16 KiB',
    method: 'GET',
    path: SA,
    token: 'x'.repeat(17 * 1024),
    status: 401,
    reason: 'Unauthorized',
  },
  {
    name: 'impersonating a group without a user',
    method: 'GET',
    path: SA,
    headers: { 'Impersonate-Group': 'system:masters' },
    status: 400,
    reason: 'BadRequest',
  },
  {
    name: 'impersonated user without rights',
    method: 'GET',
    path: SA,
    headers: { 'Impersonate-User': 'mallory' },
    status: 403,
    reason: 'Forbidden',
  },
];

test('malformed requests get Status errors and the server stays up', async (t) => {
  // The watch case needs history to have moved past resourceVersion 1: it has (bootstrap objects).
  for (const c of cases) {
    await t.test(c.name, async () => {
      const r = await call(kd, c.method, c.path, {
        ...(c.body !== undefined ? { body: c.body } : {}),
        ...(c.contentType ? { contentType: c.contentType } : {}),
        ...(c.token !== undefined ? { token: c.token } : {}),
        ...(c.headers ? { headers: c.headers } : {}),
      });
      assert.equal(r.status, c.status, r.text.slice(0, 300));
      const s = r.json();
      assert.equal(s.kind, 'Status');
      assert.equal(s.apiVersion, 'v1');
      assert.equal(s.status, 'Failure');
      assert.equal(s.reason, c.reason);
      assert.equal(s.code, c.status);
      assert.equal(typeof s.message, 'string');
    });
  }
  // Positive controls: the same server accepts the well-formed versions afterwards.
  const ok = await call(kd, 'POST', SA, { body: '{"metadata":{"name":"fine"}}' });
  assert.equal(ok.status, 201, ok.text);
  const patched = await call(kd, 'PATCH', `${SA}/fine`, {
    body: '[{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]',
    contentType: 'application/json-patch+json',
  });
  assert.equal(patched.status, 200, patched.text);
  const token = await call(kd, 'POST', `${SA}/fine/token`, {
    body: '{"spec":{"expirationSeconds":600}}',
  });
  assert.equal(token.status, 201, token.text);
  const asSa = await call(kd, 'GET', '/api', {
    headers: { 'Impersonate-User': 'system:serviceaccount:default:fine' },
  });
  assert.equal(asSa.status, 200, asSa.text);
  const rv = (await call(kd, 'GET', SA)).json().metadata as { resourceVersion: string };
  assert.match(rv.resourceVersion, /^\d+$/);
});

test('anonymous callers get health and /version; discovery, OIDC and the API are 403', async () => {
  for (const p of ['/healthz', '/readyz', '/livez', '/version']) {
    const r = await call(kd, 'GET', p, { token: null });
    assert.equal(r.status, 200, p);
  }
  for (const p of ['/.well-known/openid-configuration', '/openid/v1/jwks', '/api']) {
    const r = await call(kd, 'GET', p, { token: null });
    assert.equal(r.status, 403, p);
    assert.match(r.text, /User \\"system:anonymous\\" cannot get path/);
    assert.equal((await call(kd, 'GET', p)).status, 200, p);
  }
  // An empty bearer token is no credential; a wrong one is 401.
  const empty = await call(kd, 'GET', '/api', {
    headers: { authorization: 'Bearer ' },
    token: null,
  });
  assert.equal(empty.status, 403);
  assert.equal((await call(kd, 'GET', '/healthz', { token: 'wrong' })).status, 401);
});

test('--anonymous-issuer-discovery opens OIDC discovery and the JWKS, nothing else', async () => {
  const open = await startKubeDev({
    listen: { host: '127.0.0.1', port: 0 },
    advertiseHost: '127.0.0.1',
    anonymousIssuerDiscovery: true,
  });
  try {
    for (const p of ['/.well-known/openid-configuration', '/openid/v1/jwks']) {
      assert.equal((await call(open, 'GET', p, { token: null })).status, 200, p);
    }
    assert.equal((await call(open, 'GET', '/api', { token: null })).status, 403);
  } finally {
    await open.close();
  }
});

test('discovery lists the served resources', async () => {
  const v1 = (await call(kd, 'GET', '/api/v1')).json() as { resources: Array<{ name: string }> };
  assert.deepEqual(
    v1.resources.map((r) => r.name),
    ['namespaces', 'pods', 'secrets', 'serviceaccounts', 'serviceaccounts/token'],
  );
  const groups = (await call(kd, 'GET', '/apis')).json() as {
    kind: string;
    groups: Array<{ name: string }>;
  };
  assert.equal(groups.kind, 'APIGroupList');
  assert.deepEqual(
    groups.groups.map((g) => g.name),
    ['authentication.k8s.io', 'authorization.k8s.io', 'rbac.authorization.k8s.io'],
  );
  const rbac = (await call(kd, 'GET', '/apis/rbac.authorization.k8s.io/v1')).json() as {
    resources: Array<{ name: string }>;
  };
  assert.ok(rbac.resources.some((r) => r.name === 'clusterrolebindings'));
});

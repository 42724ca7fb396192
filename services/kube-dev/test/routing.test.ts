import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../src/errors.js';
import { PODS, SERVICE_ACCOUNTS } from '../src/resources.js';
import { parseTarget, route, verbOf, type Route } from '../src/routing.js';

/** Routes `method path` as the API does: target, verb, then handler. */
function routeOf(method: string, path: string): Route {
  const url = new URL(path, 'https://kube-dev');
  const t = parseTarget(url.pathname);
  assert.ok(t, `${path} is a resource path`);
  return route(method, verbOf(method, t, url.searchParams), t);
}

function refused(method: string, path: string): number {
  try {
    routeOf(method, path);
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    return err.code;
  }
  assert.fail(`${method} ${path} was routed`);
}

test('non-resource paths have no target; resource paths name group, version, namespace, name', () => {
  for (const p of ['/', '/api', '/apis', '/apis/rbac.authorization.k8s.io/v1', '/healthz']) {
    assert.equal(parseTarget(p), undefined, p);
  }
  assert.deepEqual(parseTarget('/api/v1/namespaces/ns1/pods/p%2Fq/status'), {
    def: PODS,
    group: '',
    version: 'v1',
    resource: 'pods',
    namespace: 'ns1',
    name: 'p/q',
    subresource: 'status',
  });
  assert.deepEqual(parseTarget('/apis/example.com/v1/widgets'), {
    group: 'example.com',
    version: 'v1',
    resource: 'widgets',
  });
});

test('stored resources route to the objects with their verb, namespace and name', () => {
  assert.deepEqual(routeOf('GET', '/api/v1/namespaces/default/serviceaccounts/a'), {
    kind: 'object',
    def: SERVICE_ACCOUNTS,
    verb: 'get',
    namespace: 'default',
    name: 'a',
  });
  assert.deepEqual(routeOf('GET', '/api/v1/serviceaccounts?watch=true'), {
    kind: 'object',
    def: SERVICE_ACCOUNTS,
    verb: 'watch',
  });
  assert.equal(
    (routeOf('DELETE', '/api/v1/namespaces/d/pods') as { verb: string }).verb,
    'deletecollection',
  );
});

test('TokenRequest and the reviews route to their handlers, with the URL namespace where it counts', () => {
  assert.deepEqual(routeOf('POST', '/api/v1/namespaces/ns/serviceaccounts/sa/token'), {
    kind: 'token-request',
    namespace: 'ns',
    name: 'sa',
  });
  assert.deepEqual(routeOf('POST', '/apis/authentication.k8s.io/v1/tokenreviews'), {
    kind: 'review',
    review: 'TokenReview',
    group: 'authentication.k8s.io',
  });
  assert.deepEqual(
    routeOf('POST', '/apis/authorization.k8s.io/v1/namespaces/ns/localsubjectaccessreviews'),
    {
      kind: 'review',
      review: 'LocalSubjectAccessReview',
      group: 'authorization.k8s.io',
      namespace: 'ns',
    },
  );
});

test('paths kube-dev does not serve are 404, methods a path does not take are 405', () => {
  const cases: Array<[string, string, number]> = [
    ['GET', '/api/v1/namespaces/ns/serviceaccounts/sa/token', 405],
    ['POST', '/api/v1/serviceaccounts/sa/token', 404],
    ['GET', '/apis/authentication.k8s.io/v1/tokenreviews', 405],
    ['POST', '/apis/authentication.k8s.io/v1/namespaces/ns/tokenreviews', 404],
    ['POST', '/apis/authorization.k8s.io/v1/localsubjectaccessreviews', 404],
    ['POST', '/apis/authorization.k8s.io/v1beta1/subjectaccessreviews', 404],
    ['GET', '/api/v1/widgets', 404],
    ['GET', '/api/v1/namespaces/default/serviceaccounts/a/status', 404],
    ['GET', '/api/v1/namespaces/x/namespaces/y', 404],
    ['GET', '/api/v1/namespaces/Not_A_Label/serviceaccounts', 404],
    ['GET', '/api/v1/a/b/c/d/e', 404],
    ['POST', '/api/v1/serviceaccounts', 405],
    ['DELETE', '/api/v1/serviceaccounts/a', 405],
  ];
  for (const [method, path, code] of cases) {
    assert.equal(refused(method, path), code, `${method} ${path}`);
  }
});

// TokenReview and RBAC behaviours a differential run against a real kube-apiserver showed
// kube-dev getting wrong: the admin token for foreign audiences, a future iat, padded
// signatures, and ClusterRole aggregation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import type { KubeDev } from '@precinct/kube-dev';
import { tempDir } from '@precinct/testing';
import { call, startTestKubeDev } from './helpers.js';
import { aggregatedRules, selectorMatches } from '../src/rbac.js';

const NS = 'hardening';
let kd: KubeDev;
const dir = tempDir('precinct-kube-dev-hardening-');

before(async () => {
  kd = await startTestKubeDev({ dataDir: dir.path });
  assert.equal(
    (
      await call(kd, 'POST', '/api/v1/namespaces', {
        body: JSON.stringify({ metadata: { name: NS } }),
      })
    ).status,
    201,
  );
  const sa = await call(kd, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
    body: JSON.stringify({ metadata: { name: 'app' } }),
  });
  assert.equal(sa.status, 201);
});
after(async () => {
  await kd?.close();
  dir.cleanup();
});

async function review(token: string, audiences?: string[]) {
  const r = await call(kd, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
    body: JSON.stringify({ spec: { token, ...(audiences ? { audiences } : {}) } }),
  });
  assert.equal(r.status, 201);
  return (
    r.json() as {
      status: { authenticated?: boolean; audiences?: string[]; user?: { username?: string } };
    }
  ).status;
}

async function tokenFor(audiences: string[]) {
  const r = await call(kd, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts/app/token`, {
    body: JSON.stringify({ spec: { audiences } }),
  });
  assert.equal(r.status, 201);
  return (r.json() as { status: { token: string } }).status.token;
}

describe('TokenReview', () => {
  test('the admin token authenticates only for the API audience', async () => {
    const api = await review(kd.adminToken);
    assert.equal(api.authenticated, true);
    assert.deepEqual(api.audiences, [kd.issuer]);
    const explicit = await review(kd.adminToken, [kd.issuer, 'other']);
    assert.equal(explicit.authenticated, true);
    assert.deepEqual(explicit.audiences, [kd.issuer]);
    // The bug: a service reviewing tokens for its own audience accepted cluster-admin.
    const foreign = await review(kd.adminToken, ['precinct']);
    assert.notEqual(foreign.authenticated, true);
    // Positive control: a ServiceAccount token for that audience passes the same review.
    const sa = await review(await tokenFor(['precinct']), ['precinct']);
    assert.equal(sa.authenticated, true);
  });

  test('a token issued in the future is refused; one within the 60 s leeway is accepted', async () => {
    const key = createPrivateKey(readFileSync(join(dir.path, 'sa-signing.key'), 'utf8'));
    const model = await tokenFor(['precinct']);
    const claims = decodeJwt(model);
    const kid = decodeProtectedHeader(model).kid!;
    const now = Math.floor(Date.now() / 1000);
    const forge = (iat: number) =>
      new SignJWT({ ...claims, iat, nbf: now - 5, exp: now + 3600 })
        .setProtectedHeader({ alg: 'RS256', kid })
        .sign(key);
    assert.notEqual((await review(await forge(now + 3600), ['precinct'])).authenticated, true);
    assert.notEqual((await review(await forge(now + 120), ['precinct'])).authenticated, true);
    assert.equal((await review(await forge(now + 30), ['precinct'])).authenticated, true);
    assert.equal((await review(await forge(now - 30), ['precinct'])).authenticated, true);
  });

  test('padding or foreign characters in a segment are refused', async () => {
    const good = await tokenFor(['precinct']);
    assert.equal((await review(good, ['precinct'])).authenticated, true);
    const [h, p, s] = good.split('.') as [string, string, string];
    for (const bad of [
      `${h}.${p}.${s}==`,
      `${h}.${p}.${s}=`,
      `${h}=.${p}.${s}`,
      `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}x+/`,
      `${h}.${p}. ${s}`,
    ]) {
      assert.notEqual((await review(bad, ['precinct'])).authenticated, true, bad.slice(-8));
    }
  });
});

describe('ClusterRole aggregation', () => {
  test('selectors: matchLabels and each matchExpressions operator', () => {
    const l = { a: '1', b: '2' };
    assert.equal(selectorMatches({}, l), true);
    assert.equal(selectorMatches({ matchLabels: { a: '1' } }, l), true);
    assert.equal(selectorMatches({ matchLabels: { a: '2' } }, l), false);
    assert.equal(
      selectorMatches({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '3'] }] }, l),
      true,
    );
    assert.equal(
      selectorMatches({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, l),
      false,
    );
    assert.equal(
      selectorMatches({ matchExpressions: [{ key: 'c', operator: 'NotIn', values: ['1'] }] }, l),
      true,
    );
    assert.equal(
      selectorMatches({ matchExpressions: [{ key: 'b', operator: 'Exists' }] }, l),
      true,
    );
    assert.equal(
      selectorMatches({ matchExpressions: [{ key: 'b', operator: 'DoesNotExist' }] }, l),
      false,
    );
    assert.equal(
      selectorMatches({ matchExpressions: [{ key: 'b', operator: 'Bogus' }] }, l),
      false,
    );
  });

  test('rules come from matching roles in name order, without duplicates or itself', () => {
    const r = (name: string, labels: Record<string, string>, verbs: string[]) => ({
      metadata: { name, labels },
      rules: [{ verbs, apiGroups: [''], resources: ['pods'] }],
    });
    const agg = {
      metadata: { name: 'agg', labels: { x: 'true' } },
      aggregationRule: { clusterRoleSelectors: [{ matchLabels: { x: 'true' } }] },
      rules: [],
    };
    const all = [
      agg,
      r('z', { x: 'true' }, ['list']),
      r('a', { x: 'true' }, ['get']),
      r('dup', { x: 'true' }, ['get']),
      r('other', {}, ['delete']),
    ];
    assert.deepEqual(aggregatedRules(agg, all), [
      { verbs: ['get'], apiGroups: [''], resources: ['pods'] },
      { verbs: ['list'], apiGroups: [''], resources: ['pods'] },
    ]);
  });

  test('a labelled ClusterRole widens view, and stops when deleted', async () => {
    const can = async (user: string) => {
      const r = await call(kd, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        body: JSON.stringify({
          spec: {
            user,
            resourceAttributes: {
              namespace: NS,
              verb: 'list',
              group: 'example.com',
              resource: 'widgets',
            },
          },
        }),
      });
      return (r.json() as { status: { allowed: boolean } }).status.allowed;
    };
    const bind = await call(
      kd,
      'POST',
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`,
      {
        body: JSON.stringify({
          metadata: { name: 'viewer' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
          subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'vera' }],
        }),
      },
    );
    assert.equal(bind.status, 201);
    assert.equal(await can('vera'), false);
    const widget = await call(kd, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      body: JSON.stringify({
        metadata: {
          name: 'widget-viewer',
          labels: { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' },
        },
        rules: [{ verbs: ['list'], apiGroups: ['example.com'], resources: ['widgets'] }],
      }),
    });
    assert.equal(widget.status, 201);
    assert.equal(await can('vera'), true);
    // admin aggregates edit aggregates view: the rule reaches admin too.
    const admin = (
      await call(kd, 'GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/admin')
    ).json() as { rules: Array<{ resources?: string[] }> };
    assert.ok(
      admin.rules.some((r) => r.resources?.includes('widgets')),
      'admin aggregates widgets through edit and view',
    );
    assert.equal(
      (await call(kd, 'DELETE', '/apis/rbac.authorization.k8s.io/v1/clusterroles/widget-viewer'))
        .status,
      200,
    );
    assert.equal(await can('vera'), false);
  });

  test('setting an aggregationRule needs full authority, not just the rules it has now', async () => {
    const sat = await tokenFor([kd.issuer]);
    // app may write clusterroles but holds nothing else.
    for (const [kind, path, body] of [
      [
        'clusterroles',
        '/apis/rbac.authorization.k8s.io/v1/clusterroles',
        {
          metadata: { name: 'role-writer' },
          rules: [
            {
              verbs: ['create'],
              apiGroups: ['rbac.authorization.k8s.io'],
              resources: ['clusterroles'],
            },
          ],
        },
      ],
      [
        'clusterrolebindings',
        '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
        {
          metadata: { name: 'role-writer' },
          roleRef: {
            apiGroup: 'rbac.authorization.k8s.io',
            kind: 'ClusterRole',
            name: 'role-writer',
          },
          subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: NS }],
        },
      ],
    ] as const) {
      assert.equal(
        (await call(kd, 'POST', path, { body: JSON.stringify(body) })).status,
        201,
        kind,
      );
    }
    const post = (body: unknown) =>
      call(kd, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
        token: sat,
        body: JSON.stringify(body),
      });
    const plain = await post({
      metadata: { name: 'plain' },
      rules: [
        {
          verbs: ['create'],
          apiGroups: ['rbac.authorization.k8s.io'],
          resources: ['clusterroles'],
        },
      ],
    });
    assert.equal(plain.status, 201, plain.text);
    const agg = await post({
      metadata: { name: 'sneaky' },
      aggregationRule: {
        clusterRoleSelectors: [
          { matchLabels: { 'rbac.authorization.k8s.io/aggregate-to-admin': 'true' } },
        ],
      },
    });
    assert.equal(agg.status, 403, agg.text);
    assert.match(agg.text, /aggregationRule/);
  });
});

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  authorize,
  uncovered,
  type Attributes,
  type PolicyRule,
  type RbacPolicy,
  type Role,
  type RoleBinding,
  type UserInfo,
} from '../src/rbac.js';

const G = 'rbac.authorization.k8s.io';

function policy(p: {
  clusterRoles?: Record<string, PolicyRule[]>;
  roles?: Record<string, PolicyRule[]>; // "ns/name"
  clusterRoleBindings?: RoleBinding[];
  roleBindings?: RoleBinding[];
}): RbacPolicy {
  const role = (name: string, rules: PolicyRule[], namespace?: string): Role => ({
    metadata: { name, ...(namespace ? { namespace } : {}) },
    rules,
  });
  return {
    clusterRoleBindings: () => p.clusterRoleBindings ?? [],
    roleBindings: (ns) => (p.roleBindings ?? []).filter((b) => b.metadata.namespace === ns),
    clusterRole: (name) => (p.clusterRoles?.[name] ? role(name, p.clusterRoles[name]) : undefined),
    role: (ns, name) =>
      p.roles?.[`${ns}/${name}`] ? role(name, p.roles[`${ns}/${name}`]!, ns) : undefined,
  };
}

const sa = (ns: string, name: string): UserInfo => ({
  username: `system:serviceaccount:${ns}:${name}`,
  groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
});
const res = (
  verb: string,
  resource: string,
  extra: Partial<Extract<Attributes, { resource: string }>> = {},
): Attributes => ({
  verb,
  resource,
  group: '',
  ...extra,
});

describe('rule matching', () => {
  const cases: Array<[string, PolicyRule, Attributes, boolean]> = [
    [
      'exact verb/group/resource',
      { verbs: ['get'], apiGroups: [''], resources: ['pods'] },
      res('get', 'pods'),
      true,
    ],
    [
      'other verb',
      { verbs: ['get'], apiGroups: [''], resources: ['pods'] },
      res('list', 'pods'),
      false,
    ],
    [
      'other group',
      { verbs: ['get'], apiGroups: ['apps'], resources: ['pods'] },
      res('get', 'pods'),
      false,
    ],
    [
      'missing apiGroups matches nothing',
      { verbs: ['get'], resources: ['pods'] },
      res('get', 'pods'),
      false,
    ],
    [
      'verb wildcard',
      { verbs: ['*'], apiGroups: [''], resources: ['pods'] },
      res('delete', 'pods'),
      true,
    ],
    [
      'group wildcard',
      { verbs: ['get'], apiGroups: ['*'], resources: ['deployments'] },
      res('get', 'deployments', { group: 'apps' }),
      true,
    ],
    [
      'resource wildcard covers subresources',
      { verbs: ['get'], apiGroups: [''], resources: ['*'] },
      res('get', 'pods', { subresource: 'log' }),
      true,
    ],
    [
      'resource does not cover its subresource',
      { verbs: ['get'], apiGroups: [''], resources: ['pods'] },
      res('get', 'pods', { subresource: 'log' }),
      false,
    ],
    [
      'explicit subresource',
      { verbs: ['get'], apiGroups: [''], resources: ['pods/log'] },
      res('get', 'pods', { subresource: 'log' }),
      true,
    ],
    [
      'subresource rule does not grant the resource',
      { verbs: ['get'], apiGroups: [''], resources: ['pods/log'] },
      res('get', 'pods'),
      false,
    ],
    [
      '*/scale',
      { verbs: ['update'], apiGroups: ['*'], resources: ['*/scale'] },
      res('update', 'deployments', { group: 'apps', subresource: 'scale' }),
      true,
    ],
    [
      '*/scale is not */status',
      { verbs: ['update'], apiGroups: ['*'], resources: ['*/scale'] },
      res('update', 'deployments', { group: 'apps', subresource: 'status' }),
      false,
    ],
    [
      'resourceNames match',
      { verbs: ['get'], apiGroups: [''], resources: ['secrets'], resourceNames: ['a'] },
      res('get', 'secrets', { name: 'a' }),
      true,
    ],
    [
      'resourceNames other name',
      { verbs: ['get'], apiGroups: [''], resources: ['secrets'], resourceNames: ['a'] },
      res('get', 'secrets', { name: 'b' }),
      false,
    ],
    [
      'resourceNames never match list (no name)',
      { verbs: ['list'], apiGroups: [''], resources: ['secrets'], resourceNames: ['a'] },
      res('list', 'secrets'),
      false,
    ],
    [
      'nonResourceURL exact',
      { verbs: ['get'], nonResourceURLs: ['/healthz'] },
      { verb: 'get', path: '/healthz' },
      true,
    ],
    [
      'nonResourceURL prefix *',
      { verbs: ['get'], nonResourceURLs: ['/logs/*'] },
      { verb: 'get', path: '/logs/kube/x' },
      true,
    ],
    [
      'nonResourceURL no prefix without *',
      { verbs: ['get'], nonResourceURLs: ['/logs'] },
      { verb: 'get', path: '/logs/x' },
      false,
    ],
    [
      'nonResourceURL *',
      { verbs: ['*'], nonResourceURLs: ['*'] },
      { verb: 'post', path: '/anything' },
      true,
    ],
    [
      'resource rule never grants a URL',
      { verbs: ['*'], apiGroups: ['*'], resources: ['*'] },
      { verb: 'get', path: '/healthz' },
      false,
    ],
    [
      'URL rule never grants a resource',
      { verbs: ['*'], nonResourceURLs: ['*'] },
      res('get', 'pods'),
      false,
    ],
  ];
  for (const [name, rule, attrs, allowed] of cases) {
    test(name, () => {
      const p = policy({
        clusterRoles: { r: [rule] },
        clusterRoleBindings: [
          {
            metadata: { name: 'b' },
            roleRef: { apiGroup: G, kind: 'ClusterRole', name: 'r' },
            subjects: [{ kind: 'User', apiGroup: G, name: 'alice' }],
          },
        ],
      });
      assert.equal(
        authorize(p, { username: 'alice', groups: ['system:authenticated'] }, attrs).allowed,
        allowed,
      );
    });
  }
});

describe('subjects and bindings', () => {
  const readPods: PolicyRule[] = [{ verbs: ['get'], apiGroups: [''], resources: ['pods'] }];
  const inNs = (ns: string) => res('get', 'pods', { namespace: ns });
  const rb = (
    ns: string,
    subjects: RoleBinding['subjects'],
    kind = 'Role',
    name = 'reader',
  ): RoleBinding => ({
    metadata: { name: 'rb', namespace: ns },
    roleRef: { apiGroup: G, kind, name },
    subjects,
  });
  const base = { roles: { 'team/reader': readPods }, clusterRoles: { 'pod-reader': readPods } };

  const cases: Array<[string, Parameters<typeof policy>[0], UserInfo, Attributes, boolean]> = [
    [
      'ServiceAccount subject in its namespace',
      {
        ...base,
        roleBindings: [rb('team', [{ kind: 'ServiceAccount', name: 'bot', namespace: 'team' }])],
      },
      sa('team', 'bot'),
      inNs('team'),
      true,
    ],
    [
      'ServiceAccount subject defaults to the binding namespace',
      { ...base, roleBindings: [rb('team', [{ kind: 'ServiceAccount', name: 'bot' }])] },
      sa('team', 'bot'),
      inNs('team'),
      true,
    ],
    [
      'ServiceAccount of another namespace',
      {
        ...base,
        roleBindings: [rb('team', [{ kind: 'ServiceAccount', name: 'bot', namespace: 'team' }])],
      },
      sa('other', 'bot'),
      inNs('team'),
      false,
    ],
    [
      'RoleBinding does not grant in other namespaces',
      {
        ...base,
        roleBindings: [rb('team', [{ kind: 'ServiceAccount', name: 'bot', namespace: 'team' }])],
      },
      sa('team', 'bot'),
      inNs('default'),
      false,
    ],
    [
      'RoleBinding does not grant cluster scope',
      {
        ...base,
        roleBindings: [rb('team', [{ kind: 'ServiceAccount', name: 'bot', namespace: 'team' }])],
      },
      sa('team', 'bot'),
      res('get', 'pods'),
      false,
    ],
    [
      'group system:serviceaccounts:<ns>',
      {
        ...base,
        roleBindings: [
          rb('team', [{ kind: 'Group', apiGroup: G, name: 'system:serviceaccounts:team' }]),
        ],
      },
      sa('team', 'any'),
      inNs('team'),
      true,
    ],
    [
      'group system:serviceaccounts',
      {
        ...base,
        roleBindings: [
          rb('team', [{ kind: 'Group', apiGroup: G, name: 'system:serviceaccounts' }]),
        ],
      },
      sa('x', 'y'),
      inNs('team'),
      true,
    ],
    [
      'group system:authenticated',
      {
        ...base,
        roleBindings: [rb('team', [{ kind: 'Group', apiGroup: G, name: 'system:authenticated' }])],
      },
      { username: 'bob', groups: ['system:authenticated'] },
      inNs('team'),
      true,
    ],
    [
      'user subject',
      { ...base, roleBindings: [rb('team', [{ kind: 'User', apiGroup: G, name: 'bob' }])] },
      { username: 'bob' },
      inNs('team'),
      true,
    ],
    [
      'user is not a group',
      { ...base, roleBindings: [rb('team', [{ kind: 'Group', apiGroup: G, name: 'bob' }])] },
      { username: 'bob' },
      inNs('team'),
      false,
    ],
    [
      'RoleBinding to a ClusterRole',
      {
        ...base,
        roleBindings: [
          rb('team', [{ kind: 'User', apiGroup: G, name: 'bob' }], 'ClusterRole', 'pod-reader'),
        ],
      },
      { username: 'bob' },
      inNs('team'),
      true,
    ],
    [
      'binding to a missing role',
      {
        ...base,
        roleBindings: [rb('team', [{ kind: 'User', apiGroup: G, name: 'bob' }], 'Role', 'absent')],
      },
      { username: 'bob' },
      inNs('team'),
      false,
    ],
    [
      'ClusterRoleBinding grants every namespace',
      {
        ...base,
        clusterRoleBindings: [
          {
            metadata: { name: 'c' },
            roleRef: { apiGroup: G, kind: 'ClusterRole', name: 'pod-reader' },
            subjects: [{ kind: 'ServiceAccount', name: 'bot', namespace: 'team' }],
          },
        ],
      },
      sa('team', 'bot'),
      inNs('elsewhere'),
      true,
    ],
    [
      'ClusterRoleBinding ServiceAccount without namespace matches nobody',
      {
        ...base,
        clusterRoleBindings: [
          {
            metadata: { name: 'c' },
            roleRef: { apiGroup: G, kind: 'ClusterRole', name: 'pod-reader' },
            subjects: [{ kind: 'ServiceAccount', name: 'bot' }],
          },
        ],
      },
      sa('team', 'bot'),
      inNs('team'),
      false,
    ],
    [
      'system:masters is always allowed',
      {},
      { username: 'root', groups: ['system:masters'] },
      res('delete', 'anything'),
      true,
    ],
    [
      'nobody else is allowed by default',
      {},
      { username: 'root', groups: ['system:authenticated'] },
      inNs('team'),
      false,
    ],
  ];
  for (const [name, p, user, attrs, allowed] of cases) {
    test(name, () => assert.equal(authorize(policy(p), user, attrs).allowed, allowed));
  }

  test('the reason names the binding, role and subject; a missing role is an evaluation error', () => {
    const d = authorize(
      policy({ ...base, roleBindings: [rb('team', [{ kind: 'ServiceAccount', name: 'bot' }])] }),
      sa('team', 'bot'),
      inNs('team'),
    );
    assert.equal(
      d.reason,
      'RBAC: allowed by RoleBinding "rb/team" of Role "reader" to ServiceAccount "team/bot"',
    );
    const e = authorize(
      policy({
        roleBindings: [rb('team', [{ kind: 'User', apiGroup: G, name: 'bob' }], 'Role', 'absent')],
      }),
      { username: 'bob' },
      inNs('team'),
    );
    assert.equal(e.allowed, false);
    assert.match(e.evaluationError ?? '', /role.rbac.authorization.k8s.io "absent" not found/);
  });
});

describe('escalation check (uncovered)', () => {
  const r = (
    verbs: string[],
    apiGroups: string[],
    resources: string[],
    resourceNames?: string[],
  ): PolicyRule => ({
    verbs,
    apiGroups,
    resources,
    ...(resourceNames ? { resourceNames } : {}),
  });
  const cases: Array<[string, PolicyRule[], PolicyRule[], boolean]> = [
    ['same rule', [r(['get'], [''], ['pods'])], [r(['get'], [''], ['pods'])], true],
    ['subset of verbs', [r(['get', 'list'], [''], ['pods'])], [r(['get'], [''], ['pods'])], true],
    ['more verbs', [r(['get'], [''], ['pods'])], [r(['get', 'delete'], [''], ['pods'])], false],
    [
      'owner wildcard covers',
      [r(['*'], ['*'], ['*'])],
      [r(['delete'], ['apps'], ['deployments'])],
      true,
    ],
    [
      'servant wildcard needs an owner wildcard',
      [r(['get', 'list', 'delete'], [''], ['pods'])],
      [r(['*'], [''], ['pods'])],
      false,
    ],
    [
      'owner without names covers a named rule',
      [r(['get'], [''], ['secrets'])],
      [r(['get'], [''], ['secrets'], ['a'])],
      true,
    ],
    [
      'named owner does not cover all names',
      [r(['get'], [''], ['secrets'], ['a'])],
      [r(['get'], [''], ['secrets'])],
      false,
    ],
    [
      'named owner covers the same name',
      [r(['get'], [''], ['secrets'], ['a', 'b'])],
      [r(['get'], [''], ['secrets'], ['b'])],
      true,
    ],
    [
      '*/scale covers deployments/scale',
      [r(['update'], ['apps'], ['*/scale'])],
      [r(['update'], ['apps'], ['deployments/scale'])],
      true,
    ],
    [
      'URL prefix covers',
      [{ verbs: ['get'], nonResourceURLs: ['/logs/*'] }],
      [{ verbs: ['get'], nonResourceURLs: ['/logs/a'] }],
      true,
    ],
    [
      'URL not held',
      [{ verbs: ['get'], nonResourceURLs: ['/healthz'] }],
      [{ verbs: ['get'], nonResourceURLs: ['/metrics'] }],
      false,
    ],
    ['nothing held', [], [r(['get'], [''], ['pods'])], false],
    ['empty servant', [], [], true],
  ];
  for (const [name, owner, servant, covered] of cases) {
    test(name, () => assert.equal(uncovered(owner, servant).length === 0, covered));
  }
});

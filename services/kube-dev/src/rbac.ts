/**
 * Kubernetes RBAC evaluation (the rules of k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac),
 * kept pure: it sees a snapshot of the RBAC objects and answers one question.
 */

import type { NonResourceAttributes, ResourceAttributes, UserInfo } from '@precinct/kube';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';

export interface PolicyRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface Subject {
  kind: 'User' | 'Group' | 'ServiceAccount' | string;
  name: string;
  namespace?: string;
  apiGroup?: string;
}

export interface RoleRef {
  apiGroup: string;
  kind: 'Role' | 'ClusterRole' | string;
  name: string;
}

export interface Role {
  metadata: { name: string; namespace?: string };
  rules?: PolicyRule[] | null;
}

export interface RoleBinding {
  metadata: { name: string; namespace?: string };
  subjects?: Subject[] | null;
  roleRef: RoleRef;
}

/** What the evaluator reads; the store implements it. */
export interface RbacPolicy {
  clusterRoleBindings(): Iterable<RoleBinding>;
  roleBindings(namespace: string): Iterable<RoleBinding>;
  clusterRole(name: string): Role | undefined;
  role(namespace: string, name: string): Role | undefined;
}

// The request attributes are the ones @precinct/kube's SubjectAccessReview authorizer asks
// about: one definition for both sides of the review.
export type { UserInfo, ResourceAttributes, NonResourceAttributes };

export type Attributes = ResourceAttributes | NonResourceAttributes;

export interface Decision {
  allowed: boolean;
  /** Which binding allowed it (empty when denied), as kube-apiserver words it. */
  reason: string;
  /** Bindings that reference a missing role, for SubjectAccessReview's evaluationError. */
  evaluationError?: string;
}

/** Members of this group are allowed everything without RBAC, as in kube-apiserver. */
export const PRIVILEGED_GROUP = 'system:masters';

export function isResourceAttributes(a: Attributes): a is ResourceAttributes {
  return 'resource' in a;
}

const has = (list: readonly string[] | undefined, v: string) =>
  !!list && (list.includes('*') || list.includes(v));

export function verbMatches(rule: PolicyRule, verb: string): boolean {
  return has(rule.verbs, verb);
}

export function apiGroupMatches(rule: PolicyRule, group: string): boolean {
  return has(rule.apiGroups, group);
}

export function resourceMatches(rule: PolicyRule, resource: string, subresource: string) {
  const combined = subresource ? `${resource}/${subresource}` : resource;
  for (const r of rule.resources ?? []) {
    if (r === '*' || r === combined) return true;
    if (subresource && r === `*/${subresource}`) return true;
  }
  return false;
}

export function resourceNameMatches(rule: PolicyRule, name: string): boolean {
  if (!rule.resourceNames || rule.resourceNames.length === 0) return true;
  return name !== '' && rule.resourceNames.includes(name);
}

export function nonResourceURLMatches(rule: PolicyRule, path: string): boolean {
  for (const u of rule.nonResourceURLs ?? []) {
    if (u === '*' || u === path) return true;
    if (u.endsWith('*') && path.startsWith(u.slice(0, -1))) return true;
  }
  return false;
}

/** Whether one rule allows the request. */
export function ruleAllows(rule: PolicyRule, a: Attributes): boolean {
  if (isResourceAttributes(a)) {
    return (
      verbMatches(rule, a.verb) &&
      apiGroupMatches(rule, a.group ?? '') &&
      resourceMatches(rule, a.resource, a.subresource ?? '') &&
      resourceNameMatches(rule, a.name ?? '')
    );
  }
  return verbMatches(rule, a.verb) && nonResourceURLMatches(rule, a.path);
}

export function serviceAccountUsername(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

/** Whether `subject` names `user`; a ServiceAccount without namespace takes the binding's. */
export function subjectMatches(subject: Subject, user: UserInfo, bindingNamespace: string) {
  switch (subject.kind) {
    case 'User':
      return user.username === subject.name;
    case 'Group':
      return (user.groups ?? []).includes(subject.name);
    case 'ServiceAccount': {
      const ns = subject.namespace || bindingNamespace;
      return ns !== '' && user.username === serviceAccountUsername(ns, subject.name);
    }
    default:
      return false;
  }
}

function describeSubject(s: Subject, bindingNamespace: string): string {
  if (s.kind === 'ServiceAccount')
    return `ServiceAccount "${s.namespace || bindingNamespace}/${s.name}"`;
  return `${s.kind} "${s.name}"`;
}

/** Evaluates `attrs` for `user` against the policy, the way the RBAC authorizer does. */
export function authorize(policy: RbacPolicy, user: UserInfo, attrs: Attributes): Decision {
  if ((user.groups ?? []).includes(PRIVILEGED_GROUP)) return { allowed: true, reason: '' };
  const errors: string[] = [];
  const namespace = isResourceAttributes(attrs) ? (attrs.namespace ?? '') : '';

  for (const b of policy.clusterRoleBindings()) {
    const subject = (b.subjects ?? []).find((s) => subjectMatches(s, user, ''));
    if (!subject) continue;
    if (b.roleRef.kind !== 'ClusterRole') continue;
    const role = policy.clusterRole(b.roleRef.name);
    if (!role) {
      errors.push(`clusterrole.rbac.authorization.k8s.io "${b.roleRef.name}" not found`);
      continue;
    }
    if ((role.rules ?? []).some((r) => ruleAllows(r, attrs))) {
      return {
        allowed: true,
        reason: `RBAC: allowed by ClusterRoleBinding "${b.metadata.name}" of ClusterRole "${role.metadata.name}" to ${describeSubject(subject, '')}`,
      };
    }
  }

  // Role bindings grant only namespaced resource requests; non-resource URLs need a cluster binding.
  if (namespace !== '') {
    for (const b of policy.roleBindings(namespace)) {
      const subject = (b.subjects ?? []).find((s) => subjectMatches(s, user, namespace));
      if (!subject) continue;
      let role: Role | undefined;
      if (b.roleRef.kind === 'ClusterRole') role = policy.clusterRole(b.roleRef.name);
      else if (b.roleRef.kind === 'Role') role = policy.role(namespace, b.roleRef.name);
      else continue;
      if (!role) {
        errors.push(
          `${b.roleRef.kind.toLowerCase()}.rbac.authorization.k8s.io "${b.roleRef.name}" not found`,
        );
        continue;
      }
      if ((role.rules ?? []).some((r) => ruleAllows(r, attrs))) {
        return {
          allowed: true,
          reason: `RBAC: allowed by RoleBinding "${b.metadata.name}/${namespace}" of ${b.roleRef.kind} "${role.metadata.name}" to ${describeSubject(subject, namespace)}`,
        };
      }
    }
  }
  return {
    allowed: false,
    reason: '',
    ...(errors.length ? { evaluationError: errors.join(', ') } : {}),
  };
}

/**
 * Every rule that applies to `user`: from ClusterRoleBindings, plus the RoleBindings of
 * `namespace` when given. What SelfSubjectRulesReview lists and escalation checks compare.
 */
export function rulesFor(policy: RbacPolicy, user: UserInfo, namespace: string): PolicyRule[] {
  if ((user.groups ?? []).includes(PRIVILEGED_GROUP)) {
    return [
      { verbs: ['*'], apiGroups: ['*'], resources: ['*'] },
      { verbs: ['*'], nonResourceURLs: ['*'] },
    ];
  }
  const rules: PolicyRule[] = [];
  for (const b of policy.clusterRoleBindings()) {
    if (b.roleRef.kind !== 'ClusterRole') continue;
    if (!(b.subjects ?? []).some((s) => subjectMatches(s, user, ''))) continue;
    rules.push(...(policy.clusterRole(b.roleRef.name)?.rules ?? []));
  }
  if (namespace) {
    for (const b of policy.roleBindings(namespace)) {
      if (!(b.subjects ?? []).some((s) => subjectMatches(s, user, namespace))) continue;
      const role =
        b.roleRef.kind === 'Role'
          ? policy.role(namespace, b.roleRef.name)
          : b.roleRef.kind === 'ClusterRole'
            ? policy.clusterRole(b.roleRef.name)
            : undefined;
      rules.push(...(role?.rules ?? []));
    }
  }
  return rules;
}

// A single permission: one verb on one group/resource (and name), or on one URL.
type Atom = { verb: string; group?: string; resource?: string; name?: string; url?: string };

function atoms(rule: PolicyRule): Atom[] {
  const out: Atom[] = [];
  for (const verb of rule.verbs ?? []) {
    for (const url of rule.nonResourceURLs ?? []) out.push({ verb, url });
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        const names = rule.resourceNames?.length ? rule.resourceNames : [undefined];
        for (const name of names)
          out.push({ verb, group, resource, ...(name !== undefined ? { name } : {}) });
      }
    }
  }
  return out;
}

function ownerCovers(owner: PolicyRule, a: Atom): boolean {
  if (!has(owner.verbs, a.verb)) return false;
  if (a.url !== undefined) {
    return (owner.nonResourceURLs ?? []).some(
      (u) => u === '*' || u === a.url || (u.endsWith('*') && a.url!.startsWith(u.slice(0, -1))),
    );
  }
  if (!has(owner.apiGroups, a.group!)) return false;
  const res = a.resource!;
  const sub = res.includes('/') ? res.slice(res.indexOf('/') + 1) : '';
  const resourceOk = (owner.resources ?? []).some(
    (r) => r === '*' || r === res || (sub !== '' && r === `*/${sub}`),
  );
  if (!resourceOk) return false;
  if (!owner.resourceNames || owner.resourceNames.length === 0) return true;
  return a.name !== undefined && owner.resourceNames.includes(a.name);
}

/**
 * Whether `owner` rules hold every permission in `servant` rules (Kubernetes' escalation
 * check): a wildcard is covered only by a wildcard, a rule without resourceNames only by a
 * rule without them. Returns the uncovered rules, empty when covered.
 */
export function uncovered(owner: PolicyRule[], servant: PolicyRule[]): Atom[] {
  return servant.flatMap(atoms).filter((a) => !owner.some((o) => ownerCovers(o, a)));
}

const rule = (verbs: string[], apiGroups: string[], resources: string[]): PolicyRule => ({
  verbs,
  apiGroups,
  resources,
});
const READ = ['get', 'list', 'watch'];
const WRITE = ['create', 'delete', 'deletecollection', 'patch', 'update'];

/** A built-in ClusterRole: its rules, or the selectors that aggregate them, and its labels. */
export interface BootstrapClusterRole {
  name: string;
  rules: PolicyRule[];
  labels?: Record<string, string>;
  aggregationRule?: { clusterRoleSelectors: LabelSelector[] };
}

const AGGREGATE_TO = 'rbac.authorization.k8s.io/aggregate-to-';
// As in kube-apiserver's bootstrap policy, view is labelled into edit and edit into admin, so
// whatever aggregates to view reaches edit and admin too.
const aggregated = (name: string, into?: string): BootstrapClusterRole => ({
  name,
  rules: [],
  ...(into ? { labels: { [`${AGGREGATE_TO}${into}`]: 'true' } } : {}),
  aggregationRule: {
    clusterRoleSelectors: [{ matchLabels: { [`${AGGREGATE_TO}${name}`]: 'true' } }],
  },
});

/**
 * The built-in ClusterRoles kube-dev creates at start, a subset of kube-apiserver's bootstrap
 * policy: enough for kubectl to feel normal (discovery, self reviews, cluster-admin), and
 * admin/edit/view aggregated from system:aggregate-to-* exactly as a real cluster does, so a
 * ClusterRole labelled aggregate-to-view widens view there and here alike.
 */
export function bootstrapClusterRoles(): BootstrapClusterRole[] {
  return [
    {
      name: 'cluster-admin',
      rules: [rule(['*'], ['*'], ['*']), { verbs: ['*'], nonResourceURLs: ['*'] }],
    },
    aggregated('admin'),
    aggregated('edit', 'admin'),
    aggregated('view', 'edit'),
    {
      name: 'system:aggregate-to-admin',
      labels: { [`${AGGREGATE_TO}admin`]: 'true' },
      rules: [
        rule([...READ, ...WRITE], [RBAC_GROUP], ['roles', 'rolebindings']),
        rule(['create'], ['authorization.k8s.io'], ['localsubjectaccessreviews']),
      ],
    },
    {
      name: 'system:aggregate-to-edit',
      labels: { [`${AGGREGATE_TO}edit`]: 'true' },
      rules: [
        rule(['impersonate'], [''], ['serviceaccounts']),
        rule(WRITE, [''], ['pods', 'secrets', 'serviceaccounts']),
        rule(['create'], [''], ['serviceaccounts/token']),
        rule(READ, [''], ['secrets']),
      ],
    },
    {
      name: 'system:aggregate-to-view',
      labels: { [`${AGGREGATE_TO}view`]: 'true' },
      rules: [rule(READ, [''], ['namespaces', 'pods', 'serviceaccounts'])],
    },
    {
      name: 'system:discovery',
      rules: [
        {
          verbs: ['get'],
          nonResourceURLs: [
            '/api',
            '/api/*',
            '/apis',
            '/apis/*',
            '/healthz',
            '/livez',
            '/openapi',
            '/openapi/*',
            '/readyz',
            '/version',
            '/version/',
          ],
        },
      ],
    },
    {
      name: 'system:basic-user',
      rules: [
        rule(
          ['create'],
          ['authorization.k8s.io'],
          ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'],
        ),
        rule(['create'], ['authentication.k8s.io'], ['selfsubjectreviews']),
      ],
    },
    {
      name: 'system:public-info-viewer',
      rules: [
        {
          verbs: ['get'],
          nonResourceURLs: ['/healthz', '/livez', '/readyz', '/version', '/version/'],
        },
      ],
    },
    {
      name: 'system:service-account-issuer-discovery',
      rules: [
        {
          verbs: ['get'],
          nonResourceURLs: ['/.well-known/openid-configuration', '/openid/v1/jwks'],
        },
      ],
    },
    {
      name: 'system:auth-delegator',
      rules: [
        rule(['create'], ['authentication.k8s.io'], ['tokenreviews']),
        rule(['create'], ['authorization.k8s.io'], ['subjectaccessreviews']),
      ],
    },
  ];
}

/** The built-in ClusterRoleBindings: name, role, and the groups bound. */
export function bootstrapClusterRoleBindings(): Array<{
  name: string;
  role: string;
  groups: string[];
}> {
  return [
    { name: 'cluster-admin', role: 'cluster-admin', groups: [PRIVILEGED_GROUP] },
    { name: 'system:discovery', role: 'system:discovery', groups: ['system:authenticated'] },
    { name: 'system:basic-user', role: 'system:basic-user', groups: ['system:authenticated'] },
    {
      name: 'system:public-info-viewer',
      role: 'system:public-info-viewer',
      groups: ['system:authenticated', 'system:unauthenticated'],
    },
    {
      name: 'system:service-account-issuer-discovery',
      role: 'system:service-account-issuer-discovery',
      groups: ['system:serviceaccounts'],
    },
  ];
}

/** A structured label selector, as ClusterRole aggregationRule.clusterRoleSelectors holds. */
export interface LabelSelector {
  matchLabels?: Record<string, string> | null;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] | null }> | null;
}

/**
 * Whether `labels` match `sel` (metav1.LabelSelector semantics). An empty selector matches
 * everything; an unknown operator matches nothing (validation refuses it first).
 */
export function selectorMatches(
  sel: LabelSelector,
  labels: Record<string, string> | undefined,
): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const values = e.values ?? [];
    const ok =
      e.operator === 'In'
        ? has && values.includes(l[e.key]!)
        : e.operator === 'NotIn'
          ? !has || !values.includes(l[e.key]!)
          : e.operator === 'Exists'
            ? has
            : e.operator === 'DoesNotExist'
              ? !has
              : false;
    if (!ok) return false;
  }
  return true;
}

export interface AggregatableClusterRole {
  metadata: { name: string; labels?: Record<string, string> };
  rules?: PolicyRule[] | null;
  aggregationRule?: { clusterRoleSelectors?: LabelSelector[] | null } | null;
}

/**
 * The rules of an aggregated ClusterRole, as kube-controller-manager's clusterrole-aggregation
 * controller computes them: the rules of every other ClusterRole matching any of its selectors,
 * taken in name order, without exact duplicates.
 */
export function aggregatedRules(
  role: AggregatableClusterRole,
  all: Iterable<AggregatableClusterRole>,
): PolicyRule[] {
  const selectors = role.aggregationRule?.clusterRoleSelectors ?? [];
  const sources = [...all]
    .filter(
      (r) =>
        r.metadata.name !== role.metadata.name &&
        selectors.some((s) => selectorMatches(s, r.metadata.labels)),
    )
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  const out: PolicyRule[] = [];
  const seen = new Set<string>();
  for (const r of sources) {
    for (const rule of r.rules ?? []) {
      const k = JSON.stringify(rule);
      if (seen.has(k)) continue;
      seen.add(k);
      out.push(rule);
    }
  }
  return out;
}

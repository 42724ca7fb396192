import { SYSTEM_NAMESPACES, type Objects } from './objects.js';
import { bootstrapClusterRoleBindings, bootstrapClusterRoles, RBAC_GROUP } from './rbac.js';
import { CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, NAMESPACES } from './resources.js';
import type { ObjectStore } from './store.js';
import { prepareObject } from './validation.js';

/** The binding `anonymousIssuerDiscovery` creates (and removes when off). */
const ANONYMOUS_DISCOVERY_BINDING = 'kube-dev:anonymous-issuer-discovery';

/**
 * Creates what a fresh kube-apiserver has: the system namespaces and the built-in RBAC roles
 * and bindings (reconciled to this version's policy on every start), and the anonymous
 * discovery binding when asked for (removed when not).
 */
export function bootstrap(objects: Objects, store: ObjectStore, anonymousDiscovery: boolean): void {
  for (const ns of SYSTEM_NAMESPACES) {
    if (!store.peek(NAMESPACES.storeKind, undefined, ns)) {
      objects.create(
        NAMESPACES,
        prepareObject(NAMESPACES, { metadata: { name: ns } }, undefined, undefined),
      );
    }
  }
  const labels = { 'kubernetes.io/bootstrapping': 'rbac-defaults' };
  for (const r of bootstrapClusterRoles()) {
    const existing = store.get(CLUSTER_ROLES.storeKind, undefined, r.name);
    if (existing) {
      // Like kube-apiserver's reconciliation: built-in roles follow this version's policy
      // unless annotated rbac.authorization.kubernetes.io/autoupdate: "false".
      const auto = existing.metadata.annotations?.['rbac.authorization.kubernetes.io/autoupdate'];
      const wantLabels = { ...existing.metadata.labels, ...labels, ...r.labels };
      const stale = r.aggregationRule
        ? JSON.stringify(existing.aggregationRule) !== JSON.stringify(r.aggregationRule)
        : JSON.stringify(existing.rules) !== JSON.stringify(r.rules) ||
          existing.aggregationRule !== undefined;
      if (
        auto !== 'false' &&
        (stale || JSON.stringify(existing.metadata.labels) !== JSON.stringify(wantLabels))
      ) {
        const { aggregationRule: _a, ...rest } = existing;
        store.update(CLUSTER_ROLES.storeKind, 'clusterroles', CLUSTER_ROLES.group, {
          ...rest,
          metadata: { ...existing.metadata, labels: wantLabels },
          rules: r.rules,
          ...(r.aggregationRule ? { aggregationRule: r.aggregationRule } : {}),
        });
      }
      continue;
    }
    objects.create(
      CLUSTER_ROLES,
      prepareObject(
        CLUSTER_ROLES,
        {
          metadata: { name: r.name, labels: { ...labels, ...r.labels } },
          rules: r.rules,
          ...(r.aggregationRule ? { aggregationRule: r.aggregationRule } : {}),
        },
        undefined,
        undefined,
      ),
    );
  }
  for (const b of bootstrapClusterRoleBindings()) {
    if (store.peek(CLUSTER_ROLE_BINDINGS.storeKind, undefined, b.name)) continue;
    const body = {
      metadata: { name: b.name, labels },
      roleRef: { apiGroup: RBAC_GROUP, kind: 'ClusterRole', name: b.role },
      subjects: b.groups.map((g) => ({ kind: 'Group', apiGroup: RBAC_GROUP, name: g })),
    };
    objects.create(
      CLUSTER_ROLE_BINDINGS,
      prepareObject(CLUSTER_ROLE_BINDINGS, body, undefined, undefined),
    );
  }
  const anon = store.peek(CLUSTER_ROLE_BINDINGS.storeKind, undefined, ANONYMOUS_DISCOVERY_BINDING);
  if (anonymousDiscovery && !anon) {
    const body = {
      metadata: { name: ANONYMOUS_DISCOVERY_BINDING },
      roleRef: {
        apiGroup: RBAC_GROUP,
        kind: 'ClusterRole',
        name: 'system:service-account-issuer-discovery',
      },
      subjects: [{ kind: 'Group', apiGroup: RBAC_GROUP, name: 'system:unauthenticated' }],
    };
    objects.create(
      CLUSTER_ROLE_BINDINGS,
      prepareObject(CLUSTER_ROLE_BINDINGS, body, undefined, undefined),
    );
  } else if (!anonymousDiscovery && anon) {
    store.delete(
      CLUSTER_ROLE_BINDINGS.storeKind,
      CLUSTER_ROLE_BINDINGS.resource,
      RBAC_GROUP,
      undefined,
      ANONYMOUS_DISCOVERY_BINDING,
    );
  }
}

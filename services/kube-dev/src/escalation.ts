import type { Logger } from 'pino';
import { ApiError } from './errors.js';
import {
  authorize,
  RBAC_GROUP,
  rulesFor,
  uncovered,
  type PolicyRule,
  type RbacPolicy,
  type ResourceAttributes,
  type UserInfo,
} from './rbac.js';
import {
  CLUSTER_ROLE_BINDINGS,
  CLUSTER_ROLES,
  ROLE_BINDINGS,
  ROLES,
  type ResourceDef,
} from './resources.js';
import type { KubeObject } from './store.js';
import { isObj } from './schema.js';

/**
 * Kubernetes' RBAC escalation prevention: writing a role needs verb `escalate` on it or
 * holding every permission it grants; writing a binding needs verb `bind` on the role it
 * references or holding every permission of that role (in the binding's scope).
 */
export function preventEscalation(
  policy: RbacPolicy,
  log: Logger,
  user: UserInfo,
  def: ResourceDef,
  obj: KubeObject,
  urlName: string | undefined,
): void {
  const ns = obj.metadata.namespace ?? '';
  let servant: PolicyRule[];
  let special: ResourceAttributes;
  if (def === ROLES || def === CLUSTER_ROLES) {
    servant = (obj.rules as PolicyRule[] | undefined) ?? [];
    // The name is the request's (none on create), as kube-apiserver asks: `escalate` limited
    // by resourceNames covers updates of those roles, never their creation.
    special = {
      verb: 'escalate',
      group: RBAC_GROUP,
      resource: def.resource,
      ...(urlName ? { name: urlName } : {}),
      namespace: ns,
    };
  } else if (def === ROLE_BINDINGS || def === CLUSTER_ROLE_BINDINGS) {
    const ref = obj.roleRef as { kind: string; name: string };
    const role = ref.kind === 'Role' ? policy.role(ns, ref.name) : policy.clusterRole(ref.name);
    servant = role?.rules ?? [];
    special = {
      verb: 'bind',
      group: RBAC_GROUP,
      resource: ref.kind === 'Role' ? 'roles' : 'clusterroles',
      name: ref.name,
      namespace: ns,
    };
  } else return;
  if (authorize(policy, user, special).allowed) return;
  const held = rulesFor(policy, user, ns);
  const missing = uncovered(held, servant);
  // An aggregationRule can gather any rule, so (as in kube-apiserver) setting one without
  // `escalate` needs every permission there is.
  if (missing.length === 0 && def === CLUSTER_ROLES && isObj(obj.aggregationRule)) {
    const full: PolicyRule[] = [
      { verbs: ['*'], apiGroups: ['*'], resources: ['*'] },
      { verbs: ['*'], nonResourceURLs: ['*'] },
    ];
    if (uncovered(held, full).length > 0) {
      throw new ApiError(
        403,
        'Forbidden',
        `clusterroles.${RBAC_GROUP} "${obj.metadata.name}" is forbidden: must have cluster-admin privileges to use the aggregationRule`,
        { name: obj.metadata.name, group: RBAC_GROUP, kind: 'clusterroles' },
      );
    }
  }
  if (missing.length === 0) return;
  log.debug(
    { user: user.username, kind: def.kind, missing: missing.length },
    'RBAC escalation refused',
  );
  throw new ApiError(
    403,
    'Forbidden',
    `${def.resource}.${RBAC_GROUP} "${obj.metadata.name}" is forbidden: user "${user.username}" is attempting to grant RBAC permissions not currently held: ${missing
      .slice(0, 10)
      .map((m) => JSON.stringify(m))
      .join(', ')}`,
    { name: obj.metadata.name, group: RBAC_GROUP, kind: def.resource },
  );
}

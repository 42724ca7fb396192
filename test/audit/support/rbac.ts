import {
  RbacAuthorizationV1Api,
  type KubeConfig,
  type RbacV1Subject,
} from '@kubernetes/client-node';

/**
 * Grants `verbs` on the audit store's RBAC object (Kubernaut's tiers: services /
 * data-storage-service in `namespace`) to one subject, through a Role and a RoleBinding named
 * `name`, with the real RBAC API.
 */
export async function grantAuditVerbs(
  kc: KubeConfig,
  namespace: string,
  name: string,
  verbs: string[],
  subject: RbacV1Subject,
): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace,
    body: {
      metadata: { name },
      rules: [
        {
          apiGroups: [''],
          resources: ['services'],
          resourceNames: ['data-storage-service'],
          verbs,
        },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [subject],
    },
  });
}

import { RBAC_GROUP } from './rbac.js';
import type { KubeObject } from './store.js';

/** A REST resource kube-dev stores. */
export interface ResourceDef {
  group: string;
  version: string;
  resource: string;
  kind: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Store key prefix: `<group>/<resource>`. */
  storeKind: string;
  /** Returns a message when the name is not valid for this resource. */
  validateName(name: string): string | undefined;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function dns1123Label(name: string): string | undefined {
  if (name.length > 63 || !DNS1123_LABEL.test(name)) {
    return `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`;
  }
  return undefined;
}

export function dns1123Subdomain(name: string): string | undefined {
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    return `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`;
  }
  return undefined;
}

/** RBAC object names may hold ':' (system:basic-user), but not '/', '%' or be '.' / '..'. */
export function pathSegmentName(name: string): string | undefined {
  if (name === '.' || name === '..') return `may not be '${name}'`;
  if (/[/%]/.test(name)) return `may not contain '/' or '%'`;
  if (name.length === 0 || name.length > 253) return 'must be 1 to 253 characters';
  return undefined;
}

const def = (d: Omit<ResourceDef, 'storeKind'>): ResourceDef => ({
  ...d,
  storeKind: `${d.group}/${d.resource}`,
});

export const NAMESPACES = def({
  group: '',
  version: 'v1',
  resource: 'namespaces',
  kind: 'Namespace',
  singular: 'namespace',
  namespaced: false,
  shortNames: ['ns'],
  validateName: dns1123Label,
});
export const SERVICE_ACCOUNTS = def({
  group: '',
  version: 'v1',
  resource: 'serviceaccounts',
  kind: 'ServiceAccount',
  singular: 'serviceaccount',
  namespaced: true,
  shortNames: ['sa'],
  validateName: dns1123Subdomain,
});
/**
 * Pods and Secrets exist so that tokens can be bound to them (TokenRequest boundObjectRef) and
 * end with them; nothing runs a pod.
 */
export const PODS = def({
  group: '',
  version: 'v1',
  resource: 'pods',
  kind: 'Pod',
  singular: 'pod',
  namespaced: true,
  shortNames: ['po'],
  validateName: dns1123Subdomain,
});
export const SECRETS = def({
  group: '',
  version: 'v1',
  resource: 'secrets',
  kind: 'Secret',
  singular: 'secret',
  namespaced: true,
  validateName: dns1123Subdomain,
});
export const ROLES = def({
  group: RBAC_GROUP,
  version: 'v1',
  resource: 'roles',
  kind: 'Role',
  singular: 'role',
  namespaced: true,
  validateName: pathSegmentName,
});
export const CLUSTER_ROLES = def({
  group: RBAC_GROUP,
  version: 'v1',
  resource: 'clusterroles',
  kind: 'ClusterRole',
  singular: 'clusterrole',
  namespaced: false,
  validateName: pathSegmentName,
});
export const ROLE_BINDINGS = def({
  group: RBAC_GROUP,
  version: 'v1',
  resource: 'rolebindings',
  kind: 'RoleBinding',
  singular: 'rolebinding',
  namespaced: true,
  validateName: pathSegmentName,
});
export const CLUSTER_ROLE_BINDINGS = def({
  group: RBAC_GROUP,
  version: 'v1',
  resource: 'clusterrolebindings',
  kind: 'ClusterRoleBinding',
  singular: 'clusterrolebinding',
  namespaced: false,
  validateName: pathSegmentName,
});

export const STORED: ResourceDef[] = [
  NAMESPACES,
  SERVICE_ACCOUNTS,
  PODS,
  SECRETS,
  ROLES,
  CLUSTER_ROLES,
  ROLE_BINDINGS,
  CLUSTER_ROLE_BINDINGS,
];

export function apiVersionOf(group: string, version: string): string {
  return group ? `${group}/${version}` : version;
}

/** The object with the apiVersion and kind of the endpoint that serves it. */
export function withTypeMeta(def: ResourceDef, o: KubeObject): KubeObject {
  return { ...o, apiVersion: apiVersionOf(def.group, def.version), kind: def.kind };
}

/** A `<Kind>List` of the objects at resourceVersion `rv`. */
export function listOf(def: ResourceDef, items: KubeObject[], rv: string) {
  return {
    kind: `${def.kind}List`,
    apiVersion: apiVersionOf(def.group, def.version),
    metadata: { resourceVersion: rv },
    items: items.map((o) => withTypeMeta(def, o)),
  };
}

const CRUD = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

interface ApiResource {
  name: string;
  singularName: string;
  namespaced: boolean;
  kind: string;
  verbs: string[];
  shortNames?: string[];
  group?: string;
  version?: string;
}

function stored(d: ResourceDef): ApiResource {
  return {
    name: d.resource,
    singularName: d.singular,
    namespaced: d.namespaced,
    kind: d.kind,
    verbs: d.resource === 'namespaces' ? CRUD.filter((v) => v !== 'deletecollection') : CRUD,
    ...(d.shortNames ? { shortNames: d.shortNames } : {}),
  };
}

const createOnly = (name: string, kind: string, namespaced = false): ApiResource => ({
  name,
  singularName: kind.toLowerCase(),
  namespaced,
  kind,
  verbs: ['create'],
});

/** Resource lists per group version, as /api/v1 and /apis/<group>/<version> return them. */
export const DISCOVERY: Record<string, ApiResource[]> = {
  v1: [
    stored(NAMESPACES),
    stored(PODS),
    stored(SECRETS),
    stored(SERVICE_ACCOUNTS),
    {
      name: 'serviceaccounts/token',
      singularName: '',
      namespaced: true,
      group: 'authentication.k8s.io',
      version: 'v1',
      kind: 'TokenRequest',
      verbs: ['create'],
    },
  ],
  'authentication.k8s.io/v1': [
    createOnly('selfsubjectreviews', 'SelfSubjectReview'),
    createOnly('tokenreviews', 'TokenReview'),
  ],
  'authorization.k8s.io/v1': [
    createOnly('localsubjectaccessreviews', 'LocalSubjectAccessReview', true),
    createOnly('selfsubjectaccessreviews', 'SelfSubjectAccessReview'),
    createOnly('selfsubjectrulesreviews', 'SelfSubjectRulesReview'),
    createOnly('subjectaccessreviews', 'SubjectAccessReview'),
  ],
  [`${RBAC_GROUP}/v1`]: [
    stored(CLUSTER_ROLE_BINDINGS),
    stored(CLUSTER_ROLES),
    stored(ROLE_BINDINGS),
    stored(ROLES),
  ],
};

export const API_GROUPS = ['authentication.k8s.io', 'authorization.k8s.io', RBAC_GROUP];

import { badRequest, type FieldCause } from './errors.js';
import { RBAC_GROUP } from './rbac.js';
import {
  CLUSTER_ROLE_BINDINGS,
  CLUSTER_ROLES,
  dns1123Label,
  dns1123Subdomain,
  NAMESPACES,
  PODS,
  ROLE_BINDINGS,
  ROLES,
  SECRETS,
  SERVICE_ACCOUNTS,
  type ResourceDef,
} from './resources.js';
import type { KubeObject } from './store.js';
import { isObj, stringArray } from './schema.js';

/**
 * The checks and defaults of each kind kube-dev stores, after its metadata passed: a
 * namespace's labels and phase, RBAC rules and bindings, ServiceAccounts, Pods and Secrets.
 * Fills defaults into `obj` and returns the broken fields (a Secret with bad base64 is a 400).
 */
export function admitKind(def: ResourceDef, obj: KubeObject): FieldCause[] {
  const causes: FieldCause[] = [];
  if (def === NAMESPACES) {
    obj.metadata.labels = {
      ...obj.metadata.labels,
      'kubernetes.io/metadata.name': obj.metadata.name,
    };
    obj.spec = { finalizers: ['kubernetes'] };
    obj.status = { phase: 'Active' };
  }
  if (def === ROLES || def === CLUSTER_ROLES)
    causes.push(...validateRules(obj.rules, def === ROLES));
  if (def === ROLE_BINDINGS || def === CLUSTER_ROLE_BINDINGS) {
    causes.push(...validateBinding(obj, def === CLUSTER_ROLE_BINDINGS));
  }
  if (def === SERVICE_ACCOUNTS) {
    if (
      obj.automountServiceAccountToken !== undefined &&
      typeof obj.automountServiceAccountToken !== 'boolean'
    ) {
      causes.push({
        field: 'automountServiceAccountToken',
        message: 'Invalid value: must be a boolean',
      });
    }
  }
  if (def === PODS) causes.push(...preparePod(obj));
  if (def === SECRETS) prepareSecret(obj);
  return causes;
}

function validateRules(rules: unknown, namespaced: boolean) {
  const causes: FieldCause[] = [];
  if (rules === undefined || rules === null) return causes;
  if (!Array.isArray(rules)) return [{ field: 'rules', message: 'Invalid value: must be a list' }];
  rules.forEach((r: unknown, i) => {
    const f = `rules[${i}]`;
    if (!isObj(r)) return causes.push({ field: f, message: 'Invalid value: must be an object' });
    if (!stringArray(r.verbs) || r.verbs.length === 0) {
      causes.push({
        field: `${f}.verbs`,
        message: 'Required value: verbs must contain at least one value',
        reason: 'FieldValueRequired',
      });
    }
    for (const k of ['apiGroups', 'resources', 'resourceNames', 'nonResourceURLs']) {
      if (r[k] !== undefined && r[k] !== null && !stringArray(r[k]))
        causes.push({ field: `${f}.${k}`, message: 'Invalid value: must be a list of strings' });
    }
    const nru = stringArray(r.nonResourceURLs) && r.nonResourceURLs.length > 0;
    const res = stringArray(r.resources) && r.resources.length > 0;
    if (nru && namespaced)
      causes.push({
        field: `${f}.nonResourceURLs`,
        message: 'Invalid value: namespaced rules cannot apply to non-resource URLs',
      });
    if (nru && res)
      causes.push({
        field: `${f}.nonResourceURLs`,
        message:
          'Invalid value: rules cannot apply to both regular resources and non-resource URLs',
      });
    if (res && (!stringArray(r.apiGroups) || r.apiGroups.length === 0)) {
      causes.push({
        field: `${f}.apiGroups`,
        message: 'Required value: resource rules must supply at least one api group',
        reason: 'FieldValueRequired',
      });
    }
    if (!nru && !res)
      causes.push({
        field: `${f}.resources`,
        message: 'Required value: rules must apply to resources or non-resource URLs',
        reason: 'FieldValueRequired',
      });
    return undefined;
  });
  return causes;
}

function validateBinding(obj: KubeObject, cluster: boolean) {
  const causes: FieldCause[] = [];
  const ref = obj.roleRef;
  if (!isObj(ref))
    return [{ field: 'roleRef', message: 'Required value', reason: 'FieldValueRequired' }];
  if (ref.apiGroup !== RBAC_GROUP)
    causes.push({
      field: 'roleRef.apiGroup',
      message: `Unsupported value: "${String(ref.apiGroup)}": supported values: "${RBAC_GROUP}"`,
    });
  const kinds = cluster ? ['ClusterRole'] : ['Role', 'ClusterRole'];
  if (typeof ref.kind !== 'string' || !kinds.includes(ref.kind))
    causes.push({
      field: 'roleRef.kind',
      message: `Unsupported value: "${String(ref.kind)}": supported values: ${kinds.map((k) => `"${k}"`).join(', ')}`,
    });
  if (typeof ref.name !== 'string' || !ref.name)
    causes.push({ field: 'roleRef.name', message: 'Required value', reason: 'FieldValueRequired' });
  const subjects = obj.subjects;
  if (subjects !== undefined && subjects !== null) {
    if (!Array.isArray(subjects))
      return [...causes, { field: 'subjects', message: 'Invalid value: must be a list' }];
    subjects.forEach((s: unknown, i) => {
      const f = `subjects[${i}]`;
      if (!isObj(s) || typeof s.name !== 'string' || !s.name) {
        causes.push({
          field: `${f}.name`,
          message: 'Required value',
          reason: 'FieldValueRequired',
        });
        return;
      }
      if (s.kind === 'ServiceAccount') {
        if (s.apiGroup)
          causes.push({
            field: `${f}.apiGroup`,
            message: `Unsupported value: "${String(s.apiGroup)}": supported values: ""`,
          });
        if (cluster && !s.namespace)
          causes.push({
            field: `${f}.namespace`,
            message: 'Required value',
            reason: 'FieldValueRequired',
          });
        if (dns1123Subdomain(s.name))
          causes.push({ field: `${f}.name`, message: `Invalid value: "${s.name}"` });
      } else if (s.kind === 'User' || s.kind === 'Group') {
        if (s.apiGroup !== RBAC_GROUP)
          causes.push({
            field: `${f}.apiGroup`,
            message: `Unsupported value: "${String(s.apiGroup ?? '')}": supported values: "${RBAC_GROUP}"`,
          });
      } else {
        causes.push({
          field: `${f}.kind`,
          message: `Unsupported value: "${String(s.kind)}": supported values: "ServiceAccount", "User", "Group"`,
        });
      }
    });
  }
  return causes;
}

/** The checks and defaults a Pod gets (kube-dev stores pods only to bind tokens to them). */
function preparePod(obj: KubeObject) {
  const causes: FieldCause[] = [];
  const spec = isObj(obj.spec) ? obj.spec : {};
  const containers = spec.containers;
  if (!Array.isArray(containers) || containers.length === 0) {
    causes.push({
      field: 'spec.containers',
      message: 'Required value',
      reason: 'FieldValueRequired',
    });
  } else {
    containers.forEach((c: unknown, i) => {
      const f = `spec.containers[${i}]`;
      if (!isObj(c) || typeof c.name !== 'string' || dns1123Label(c.name))
        causes.push({
          field: `${f}.name`,
          message: 'Required value',
          reason: 'FieldValueRequired',
        });
      if (!isObj(c) || typeof c.image !== 'string' || !c.image.trim())
        causes.push({
          field: `${f}.image`,
          message: 'Required value',
          reason: 'FieldValueRequired',
        });
    });
  }
  const sa =
    typeof spec.serviceAccountName === 'string' && spec.serviceAccountName
      ? spec.serviceAccountName
      : 'default';
  obj.spec = { ...spec, serviceAccountName: sa, serviceAccount: sa };
  if (!isObj(obj.status)) obj.status = { phase: 'Pending' };
  return causes;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** stringData folds into data (base64), as kube-apiserver stores a Secret; type defaults to Opaque. */
function prepareSecret(obj: KubeObject) {
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(isObj(obj.data) ? obj.data : {})) {
    if (typeof v !== 'string' || !BASE64.test(v))
      throw badRequest(
        `Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data.${k}`,
      );
    data[k] = v;
  }
  for (const [k, v] of Object.entries(isObj(obj.stringData) ? obj.stringData : {}))
    data[k] = Buffer.from(String(v)).toString('base64');
  delete obj.stringData;
  if (Object.keys(data).length) obj.data = data;
  else delete obj.data;
  if (typeof obj.type !== 'string' || !obj.type) obj.type = 'Opaque';
}

import { badRequest, invalid } from './errors.js';
import { duplicateKeys } from './http.js';
import { RBAC_GROUP } from './rbac.js';
import {
  apiVersionOf,
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
import { decode } from './schema.js';
import type { KubeObject } from './store.js';

/**
 * What kube-apiserver checks in a body before it is stored: decoding (types, unknown and
 * duplicate fields, by the fieldValidation mode), then the object's names, metadata and the
 * per-kind rules, reported as one 422 with a cause per field.
 */

export const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function stringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function stringMap(v: unknown): boolean {
  return (
    v === undefined ||
    v === null ||
    (isObj(v) && Object.values(v).every((x) => typeof x === 'string'))
  );
}

export type FieldValidation = 'Ignore' | 'Warn' | 'Strict';

/** The fieldValidation query parameter; absent or empty means Warn, as in kube-apiserver. */
export function fieldValidation(q: URLSearchParams, method: string): FieldValidation {
  const v = q.get('fieldValidation') ?? '';
  if (v === '') return 'Warn';
  if (v === 'Ignore' || v === 'Warn' || v === 'Strict') return v;
  const options =
    method === 'PATCH' ? 'PatchOptions' : method === 'PUT' ? 'UpdateOptions' : 'CreateOptions';
  throw invalid(`${options}.meta.k8s.io`, '', '', [
    {
      field: 'fieldValidation',
      message: `Unsupported value: "${v}": supported values: "", "Ignore", "Strict", "Warn"`,
      reason: 'FieldValueNotSupported',
    },
  ]);
}

/** A decoded body and, in Warn mode, the problems to send back as Warning headers. */
export interface Decoded {
  object: Record<string, unknown>;
  warnings: string[];
}

/**
 * Decodes a body as kube-apiserver's decoder does: a wrong type is a 400; unknown fields are
 * dropped, and refused (Strict: 400, or 422 for a patch, as kube-apiserver words them) or
 * returned as warnings (Warn). For a patch, `patchDocument` is the patch as sent, whose
 * duplicate keys count.
 */
export function decodeBody(
  kind: string,
  apiVersion: string,
  body: Record<string, unknown>,
  mode: FieldValidation,
  patchDocument?: object,
): Decoded {
  const d = decode(kind, body);
  const handled = `${kind} in version "${apiVersion.split('/').pop()}" cannot be handled as a ${kind}`;
  if (d.typeErrors.length) throw badRequest(`${handled}: ${d.typeErrors[0]}`);
  const problems = [
    ...duplicateKeys(patchDocument ?? body).map((f) => `duplicate field "${f}"`),
    ...d.unknown.map((u) => `unknown field "${u}"`),
  ];
  if (problems.length && mode === 'Strict') {
    const why = `strict decoding error: ${problems.join(', ')}`;
    if (patchDocument)
      throw invalid('', '', '', [{ field: 'patch', message: `Invalid value: ${why}` }]);
    throw badRequest(`${handled}: ${why}`);
  }
  return { object: d.value, warnings: mode === 'Warn' ? problems : [] };
}

/**
 * Checks and normalises a body for create (`urlName` undefined) or update (the name from the
 * URL): kind and apiVersion, names, namespace agreement, metadata types, and per-kind
 * validation and defaults. Throws 400 or 422; reads no stored state.
 */
export function prepareObject(
  def: ResourceDef,
  body: Record<string, unknown>,
  ns: string | undefined,
  urlName: string | undefined,
): KubeObject {
  const apiVersion = apiVersionOf(def.group, def.version);
  if (body.kind !== undefined && body.kind !== def.kind) {
    throw badRequest(
      `the kind of the provided object (${String(body.kind)}) does not match the resource ${def.resource} (${def.kind})`,
    );
  }
  if (body.apiVersion !== undefined && body.apiVersion !== apiVersion) {
    throw badRequest(
      `the apiVersion of the provided object (${String(body.apiVersion)}) is not ${apiVersion}`,
    );
  }
  const meta = body.metadata ?? {};
  if (!isObj(meta)) throw badRequest('metadata must be an object');
  let name = meta.name;
  if (
    name === undefined &&
    urlName === undefined &&
    typeof meta.generateName === 'string' &&
    meta.generateName
  ) {
    name = `${meta.generateName}${Math.random().toString(36).slice(2, 7)}`;
  }
  if (urlName !== undefined && name !== undefined && name !== urlName) {
    throw badRequest(
      `the name of the object (${String(name)}) does not match the name on the URL (${urlName})`,
    );
  }
  name ??= urlName;
  if (
    def.namespaced &&
    meta.namespace !== undefined &&
    meta.namespace !== '' &&
    meta.namespace !== ns
  ) {
    throw badRequest(
      'the namespace of the provided object does not match the namespace sent on the request',
    );
  }
  if (!def.namespaced && meta.namespace) {
    throw badRequest(`${def.kind} is cluster-scoped; metadata.namespace must be empty`);
  }
  if (typeof name !== 'string' || name === '') {
    throw invalid(def.kind, def.group, '', [
      {
        field: 'metadata.name',
        message: 'Required value: name or generateName is required',
        reason: 'FieldValueRequired',
      },
    ]);
  }
  const causes: Array<{ field: string; message: string; reason?: string }> = [];
  const nameErr = def.validateName(name);
  if (nameErr)
    causes.push({ field: 'metadata.name', message: `Invalid value: "${name}": ${nameErr}` });
  if (!stringMap(meta.labels))
    causes.push({
      field: 'metadata.labels',
      message: 'Invalid value: labels must map strings to strings',
    });
  if (!stringMap(meta.annotations))
    causes.push({
      field: 'metadata.annotations',
      message: 'Invalid value: annotations must map strings to strings',
    });
  if (meta.resourceVersion !== undefined && typeof meta.resourceVersion !== 'string') {
    causes.push({
      field: 'metadata.resourceVersion',
      message: 'Invalid value: must be a string',
    });
  }
  const { kind: _k, apiVersion: _a, metadata: _m, ...rest } = body;
  const obj: KubeObject = {
    apiVersion,
    kind: def.kind,
    metadata: {
      name,
      ...(def.namespaced ? { namespace: ns! } : {}),
      ...(isObj(meta.labels) && Object.keys(meta.labels).length
        ? { labels: meta.labels as Record<string, string> }
        : {}),
      ...(isObj(meta.annotations) && Object.keys(meta.annotations).length
        ? { annotations: meta.annotations as Record<string, string> }
        : {}),
      ...(urlName !== undefined && typeof meta.resourceVersion === 'string' && meta.resourceVersion
        ? { resourceVersion: meta.resourceVersion }
        : {}),
    },
    ...rest,
  };
  if (def === NAMESPACES) {
    obj.metadata.labels = { ...obj.metadata.labels, 'kubernetes.io/metadata.name': name };
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
  if (causes.length) throw invalid(def.kind, def.group, name, causes);
  return obj;
}

function validateRules(rules: unknown, namespaced: boolean) {
  const causes: Array<{ field: string; message: string; reason?: string }> = [];
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
  const causes: Array<{ field: string; message: string; reason?: string }> = [];
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
  const causes: Array<{ field: string; message: string; reason?: string }> = [];
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

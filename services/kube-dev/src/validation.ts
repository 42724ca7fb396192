import { badRequest, invalid, type FieldCause } from './errors.js';
import { duplicateKeys } from './http.js';
import { admitKind } from './kinds.js';
import { apiVersionOf, type ResourceDef } from './resources.js';
import { decode, isObj } from './schema.js';
import type { KubeObject } from './store.js';

/**
 * What kube-apiserver checks in a body before it is stored: decoding (types, unknown and
 * duplicate fields, by the fieldValidation mode), then the object's names, metadata and the
 * per-kind rules, reported as one 422 with a cause per field.
 */

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
export interface DecodedBody {
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
): DecodedBody {
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
  const causes: FieldCause[] = [];
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
  causes.push(...admitKind(def, obj));
  if (causes.length) throw invalid(def.kind, def.group, name, causes);
  return obj;
}

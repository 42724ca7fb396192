/**
 * A minimal OpenAPI v3 description: per group version, the create/update/patch operations of
 * each stored kind with their `fieldValidation` query parameter. kubectl (apply, create -f)
 * reads it to learn that the server validates fields itself (fieldValidation=Strict) instead of
 * downloading a full schema for client-side validation. It is not a complete schema.
 */
import { createHash } from 'node:crypto';
import { STORED, type ResourceDef } from './resources.js';

const param = (name: string) => ({
  name,
  in: 'query',
  schema: { type: 'string', uniqueItems: true },
});
const WRITE_PARAMS = ['dryRun', 'fieldManager', 'fieldValidation', 'pretty'].map(param);

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

function operations(def: ResourceDef) {
  const gvk = { group: def.group, version: def.version, kind: def.kind };
  const base = `/${gvPath(def.group, def.version)}${def.namespaced ? '/namespaces/{namespace}' : ''}/${def.resource}`;
  const op = (action: string, id: string) => ({
    operationId: `${action}${def.kind}`,
    parameters: WRITE_PARAMS,
    'x-kubernetes-action': id,
    'x-kubernetes-group-version-kind': gvk,
    responses: { '200': { description: 'OK' } },
  });
  return {
    [base]: { post: op('create', 'post') },
    [`${base}/{name}`]: {
      put: op('replace', 'put'),
      patch: op('patch', 'patch'),
    },
  };
}

function documents(): Map<string, unknown> {
  const docs = new Map<string, unknown>();
  for (const def of STORED) {
    const key = gvPath(def.group, def.version);
    const doc = (docs.get(key) as { paths: Record<string, unknown> } | undefined) ?? {
      openapi: '3.0.0',
      info: { title: 'Kubernetes (kube-dev)', version: 'v1.32.0' },
      paths: {},
      components: { schemas: {} },
    };
    Object.assign(doc.paths, operations(def));
    docs.set(key, doc);
  }
  return docs;
}

const DOCS = documents();
const HASHES = new Map(
  [...DOCS].map(([k, d]) => [
    k,
    createHash('sha256').update(JSON.stringify(d)).digest('hex').slice(0, 32).toUpperCase(),
  ]),
);

/** The /openapi/v3 index. */
export function openApiIndex() {
  return {
    paths: Object.fromEntries(
      [...DOCS.keys()].map((k) => [
        k,
        { serverRelativeURL: `/openapi/v3/${k}?hash=${HASHES.get(k)}` },
      ]),
    ),
  };
}

/** The document for `api/v1` or `apis/<group>/<version>`, or undefined. */
export function openApiDocument(gv: string): unknown {
  return DOCS.get(gv);
}

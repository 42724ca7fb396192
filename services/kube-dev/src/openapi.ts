/**
 * OpenAPI for every group/version/kind kube-dev serves, from the shapes in schema.ts:
 *
 * - `/openapi/v3` and `/openapi/v3/<gv>`: per group version, the operations with their query
 *   parameters (a PATCH with `fieldValidation` is how kubectl learns a kind is validated by the
 *   server, so create/apply send fieldValidation=Strict) and the kinds' schemas.
 * - `/openapi/v2`: one document with every kind's schema, JSON or protobuf (the gnostic
 *   openapi_v2.Document kubectl asks for). kubectl validates kinds the server has no PATCH for
 *   (TokenReview, SubjectAccessReview...) against it on the client side, as with a real server.
 */
import { createHash } from 'node:crypto';
import { DISCOVERY, STORED, type ResourceDef } from './resources.js';
import { jsonSchema, KIND_SHAPES } from './schema.js';

const param = (name: string) => ({
  name,
  in: 'query',
  schema: { type: 'string', uniqueItems: true },
});
const WRITE_PARAMS = ['dryRun', 'fieldManager', 'fieldValidation', 'pretty'].map(param);

interface Gvk {
  group: string;
  version: string;
  kind: string;
}

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

/** The Go package name kube-apiserver uses for a group's definitions. */
export function definitionName({ group, version, kind }: Gvk): string {
  const pkg = group === '' ? 'core' : group.split('.')[0]!;
  return `io.k8s.api.${pkg}.${version}.${kind}`;
}

function kindSchema(gvk: Gvk): Record<string, unknown> {
  const shape = KIND_SHAPES[gvk.kind];
  return {
    ...(shape ? jsonSchema(shape) : { type: 'object' }),
    'x-kubernetes-group-version-kind': [gvk],
  };
}

const op = (gvk: Gvk, action: string, id: string) => ({
  operationId: `${action}${gvk.kind}`,
  parameters: WRITE_PARAMS,
  'x-kubernetes-action': id,
  'x-kubernetes-group-version-kind': gvk,
  requestBody: {
    content: {
      '*/*': { schema: { $ref: `#/components/schemas/${definitionName(gvk)}` } },
    },
  },
  responses: { '200': { description: 'OK' }, '201': { description: 'Created' } },
});

function storedOperations(def: ResourceDef) {
  const gvk = { group: def.group, version: def.version, kind: def.kind };
  const base = `/${gvPath(def.group, def.version)}${def.namespaced ? '/namespaces/{namespace}' : ''}/${def.resource}`;
  return {
    [base]: { post: op(gvk, 'create', 'post') },
    [`${base}/{name}`]: {
      put: op(gvk, 'replace', 'put'),
      patch: op(gvk, 'patch', 'patch'),
    },
  };
}

/** Every kind, with the group version it is served in and its create-only path, if any. */
function kinds(): Array<{ gvk: Gvk; createPath?: string }> {
  const out: Array<{ gvk: Gvk; createPath?: string }> = STORED.map((d) => ({
    gvk: { group: d.group, version: d.version, kind: d.kind },
  }));
  for (const [gv, resources] of Object.entries(DISCOVERY)) {
    const [group, version] = gv.includes('/') ? gv.split('/') : ['', gv];
    for (const r of resources) {
      if (!r.verbs.includes('create') || r.verbs.includes('update')) continue;
      if (r.name === 'serviceaccounts/token') {
        out.push({
          gvk: { group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest' },
          createPath: '/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token',
        });
        continue;
      }
      out.push({
        gvk: { group: group!, version: version!, kind: r.kind },
        createPath: `/${gvPath(group!, version!)}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.name}`,
      });
    }
  }
  return out;
}

function v3Documents(): Map<string, unknown> {
  type Doc = { paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } };
  const docs = new Map<string, Doc>();
  const docFor = (key: string): Doc => {
    let d = docs.get(key);
    if (!d) {
      d = { paths: {}, components: { schemas: {} } };
      docs.set(key, d);
    }
    return d;
  };
  for (const def of STORED) {
    const d = docFor(gvPath(def.group, def.version));
    Object.assign(d.paths, storedOperations(def));
  }
  for (const { gvk, createPath } of kinds()) {
    const served = createPath?.startsWith('/api/v1/') ? 'api/v1' : gvPath(gvk.group, gvk.version);
    const d = docFor(served);
    d.components.schemas[definitionName(gvk)] = kindSchema(gvk);
    if (createPath) d.paths[createPath] = { post: op(gvk, 'create', 'post') };
  }
  return new Map(
    [...docs].map(([k, d]) => [
      k,
      { openapi: '3.0.0', info: { title: 'Kubernetes (kube-dev)', version: 'v1.32.0' }, ...d },
    ]),
  );
}

const V3 = v3Documents();
const hash = (d: unknown) =>
  createHash('sha256').update(JSON.stringify(d)).digest('hex').slice(0, 32).toUpperCase();
const V3_HASHES = new Map([...V3].map(([k, d]) => [k, hash(d)]));

/** The /openapi/v3 index. */
export function openApiIndex() {
  return {
    paths: Object.fromEntries(
      [...V3.keys()].map((k) => [
        k,
        { serverRelativeURL: `/openapi/v3/${k}?hash=${V3_HASHES.get(k)}` },
      ]),
    ),
  };
}

/** The v3 document for `api/v1` or `apis/<group>/<version>`, or undefined. */
export function openApiDocument(gv: string): unknown {
  return V3.get(gv);
}

/** The /openapi/v2 document (definitions only: kubectl reads nothing else from it). */
export const OPENAPI_V2 = {
  swagger: '2.0',
  info: { title: 'Kubernetes (kube-dev)', version: 'v1.32.0' },
  paths: {},
  definitions: Object.fromEntries(kinds().map(({ gvk }) => [definitionName(gvk), kindSchema(gvk)])),
};

// --- protobuf encoding of the gnostic openapi_v2.Document (field numbers from OpenAPIv2.proto)

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
const bytesField = (num: number, payload: Buffer) =>
  Buffer.concat([varint((num << 3) | 2), varint(payload.length), payload]);
const stringField = (num: number, s: string) => bytesField(num, Buffer.from(s, 'utf8'));

/** gnostic Schema: _ref 1, format 2, required 19, additional_properties 21, type 22, items 23, properties 25, vendor_extension 31. */
function schemaPb(s: Record<string, unknown>): Buffer {
  const parts: Buffer[] = [];
  if (typeof s.format === 'string') parts.push(stringField(2, s.format));
  for (const r of (s.required as string[] | undefined) ?? []) parts.push(stringField(19, r));
  if (s.additionalProperties && typeof s.additionalProperties === 'object') {
    // AdditionalPropertiesItem { oneof: Schema schema = 1; bool boolean = 2 }
    parts.push(
      bytesField(21, bytesField(1, schemaPb(s.additionalProperties as Record<string, unknown>))),
    );
  }
  if (typeof s.type === 'string') parts.push(bytesField(22, stringField(1, s.type)));
  if (s.items)
    parts.push(bytesField(23, bytesField(1, schemaPb(s.items as Record<string, unknown>))));
  if (s.properties) {
    // Properties { repeated NamedSchema additional_properties = 1 }, NamedSchema { name 1, value 2 }
    const named = Object.entries(s.properties as Record<string, Record<string, unknown>>).map(
      ([k, v]) => bytesField(1, Buffer.concat([stringField(1, k), bytesField(2, schemaPb(v))])),
    );
    parts.push(bytesField(25, Buffer.concat(named)));
  }
  for (const [k, v] of Object.entries(s)) {
    if (!k.startsWith('x-')) continue;
    // NamedAny { name 1, value 2 }, Any { yaml 2 }: JSON is YAML.
    const any = stringField(2, JSON.stringify(v));
    parts.push(bytesField(31, Buffer.concat([stringField(1, k), bytesField(2, any)])));
  }
  return Buffer.concat(parts);
}

/** The v2 document as gnostic protobuf: swagger 1, info 2 {title 1, version 2}, definitions 9. */
export const OPENAPI_V2_PROTOBUF: Buffer = Buffer.concat([
  stringField(1, OPENAPI_V2.swagger),
  bytesField(
    2,
    Buffer.concat([stringField(1, OPENAPI_V2.info.title), stringField(2, OPENAPI_V2.info.version)]),
  ),
  bytesField(
    9,
    Buffer.concat(
      Object.entries(OPENAPI_V2.definitions).map(([name, s]) =>
        bytesField(1, Buffer.concat([stringField(1, name), bytesField(2, schemaPb(s))])),
      ),
    ),
  ),
]);

/** What the v2 protobuf is served as; clients may ask for it with `@v1.0` (kubectl does). */
export const OPENAPI_V2_PROTOBUF_TYPE =
  'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';
export const OPENAPI_V2_PROTOBUF_ACCEPT =
  /application\/com\.github\.proto-openapi\.spec\.v2[@.]v1\.0\+protobuf/;

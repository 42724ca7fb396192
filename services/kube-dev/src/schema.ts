/**
 * The shapes of the kinds kube-dev serves (the fields of k8s.io/api types it knows), used for
 * three things kube-apiserver derives from the same Go types: decoding a request body the way
 * its JSON decoder does (unknown fields dropped, reported or refused per `fieldValidation`;
 * a wrong type is a 400), and the OpenAPI v3 and v2 documents kubectl validates against.
 */

/** A field's shape. `any` keeps whatever arrives (pod specs, which kube-dev never runs). */
export type Shape =
  | 'string'
  | 'integer'
  | 'boolean'
  | 'any'
  | { array: Shape }
  | { map: Shape }
  | { object: string; fields: Record<string, Shape>; required?: string[] };

const obj = (
  name: string,
  fields: Record<string, Shape>,
  required?: string[],
): Shape & { object: string } => ({ object: name, fields, ...(required ? { required } : {}) });
const arr = (s: Shape): Shape => ({ array: s });
const strings = arr('string');
const stringMap: Shape = { map: 'string' };

const OWNER_REFERENCE = obj(
  'OwnerReference',
  {
    apiVersion: 'string',
    kind: 'string',
    name: 'string',
    uid: 'string',
    controller: 'boolean',
    blockOwnerDeletion: 'boolean',
  },
  ['apiVersion', 'kind', 'name', 'uid'],
);
const MANAGED_FIELDS = obj('ManagedFieldsEntry', {
  manager: 'string',
  operation: 'string',
  apiVersion: 'string',
  time: 'string',
  fieldsType: 'string',
  fieldsV1: 'any',
  subresource: 'string',
});
export const OBJECT_META = obj('ObjectMeta', {
  name: 'string',
  generateName: 'string',
  namespace: 'string',
  selfLink: 'string',
  uid: 'string',
  resourceVersion: 'string',
  generation: 'integer',
  creationTimestamp: 'string',
  deletionTimestamp: 'string',
  deletionGracePeriodSeconds: 'integer',
  labels: stringMap,
  annotations: stringMap,
  ownerReferences: arr(OWNER_REFERENCE),
  finalizers: strings,
  managedFields: arr(MANAGED_FIELDS),
});
const OBJECT_REFERENCE = obj('ObjectReference', {
  kind: 'string',
  namespace: 'string',
  name: 'string',
  uid: 'string',
  apiVersion: 'string',
  resourceVersion: 'string',
  fieldPath: 'string',
});
const POLICY_RULE = obj(
  'PolicyRule',
  {
    verbs: strings,
    apiGroups: strings,
    resources: strings,
    resourceNames: strings,
    nonResourceURLs: strings,
  },
  ['verbs'],
);
const LABEL_SELECTOR = obj('LabelSelector', {
  matchLabels: stringMap,
  matchExpressions: arr(
    obj('LabelSelectorRequirement', { key: 'string', operator: 'string', values: strings }, [
      'key',
      'operator',
    ]),
  ),
});
const SUBJECT = obj(
  'Subject',
  { kind: 'string', apiGroup: 'string', name: 'string', namespace: 'string' },
  ['kind', 'name'],
);
const ROLE_REF = obj('RoleRef', { apiGroup: 'string', kind: 'string', name: 'string' }, [
  'apiGroup',
  'kind',
  'name',
]);
const USER_INFO = obj('UserInfo', {
  username: 'string',
  uid: 'string',
  groups: strings,
  extra: { map: strings },
});
const SELECTOR_REQUIREMENT = obj('FieldSelectorRequirement', {
  key: 'string',
  operator: 'string',
  values: strings,
});
const RESOURCE_ATTRIBUTES = obj('ResourceAttributes', {
  namespace: 'string',
  verb: 'string',
  group: 'string',
  version: 'string',
  resource: 'string',
  subresource: 'string',
  name: 'string',
  fieldSelector: obj('FieldSelectorAttributes', {
    rawSelector: 'string',
    requirements: arr(SELECTOR_REQUIREMENT),
  }),
  labelSelector: obj('LabelSelectorAttributes', {
    rawSelector: 'string',
    requirements: arr(SELECTOR_REQUIREMENT),
  }),
});
const NON_RESOURCE_ATTRIBUTES = obj('NonResourceAttributes', { path: 'string', verb: 'string' });
const SAR_STATUS = obj('SubjectAccessReviewStatus', {
  allowed: 'boolean',
  denied: 'boolean',
  reason: 'string',
  evaluationError: 'string',
});

const top = (name: string, fields: Record<string, Shape>, required?: string[]) =>
  obj(name, { apiVersion: 'string', kind: 'string', metadata: OBJECT_META, ...fields }, required);

/** Shapes by kind. */
export const KIND_SHAPES: Record<string, Shape & { object: string }> = {
  Namespace: top('Namespace', {
    spec: obj('NamespaceSpec', { finalizers: strings }),
    status: obj('NamespaceStatus', {
      phase: 'string',
      conditions: arr(
        obj('NamespaceCondition', {
          type: 'string',
          status: 'string',
          lastTransitionTime: 'string',
          reason: 'string',
          message: 'string',
        }),
      ),
    }),
  }),
  ServiceAccount: top('ServiceAccount', {
    secrets: arr(OBJECT_REFERENCE),
    imagePullSecrets: arr(obj('LocalObjectReference', { name: 'string' })),
    automountServiceAccountToken: 'boolean',
  }),
  Pod: top('Pod', { spec: 'any', status: 'any' }),
  Secret: top('Secret', {
    data: stringMap,
    stringData: stringMap,
    type: 'string',
    immutable: 'boolean',
  }),
  Role: top('Role', { rules: arr(POLICY_RULE) }),
  ClusterRole: top('ClusterRole', {
    rules: arr(POLICY_RULE),
    aggregationRule: obj('AggregationRule', { clusterRoleSelectors: arr(LABEL_SELECTOR) }),
  }),
  RoleBinding: top('RoleBinding', { subjects: arr(SUBJECT), roleRef: ROLE_REF }, ['roleRef']),
  ClusterRoleBinding: top('ClusterRoleBinding', { subjects: arr(SUBJECT), roleRef: ROLE_REF }, [
    'roleRef',
  ]),
  TokenRequest: top(
    'TokenRequest',
    {
      spec: obj(
        'TokenRequestSpec',
        {
          audiences: strings,
          expirationSeconds: 'integer',
          boundObjectRef: obj('BoundObjectReference', {
            kind: 'string',
            apiVersion: 'string',
            name: 'string',
            uid: 'string',
          }),
        },
        ['audiences'],
      ),
      status: obj('TokenRequestStatus', { token: 'string', expirationTimestamp: 'string' }),
    },
    ['spec'],
  ),
  TokenReview: top(
    'TokenReview',
    {
      spec: obj('TokenReviewSpec', { token: 'string', audiences: strings }),
      status: obj('TokenReviewStatus', {
        authenticated: 'boolean',
        user: USER_INFO,
        audiences: strings,
        error: 'string',
      }),
    },
    ['spec'],
  ),
  SelfSubjectReview: top('SelfSubjectReview', {
    status: obj('SelfSubjectReviewStatus', { userInfo: USER_INFO }),
  }),
  SubjectAccessReview: top(
    'SubjectAccessReview',
    {
      spec: obj('SubjectAccessReviewSpec', {
        resourceAttributes: RESOURCE_ATTRIBUTES,
        nonResourceAttributes: NON_RESOURCE_ATTRIBUTES,
        user: 'string',
        groups: strings,
        extra: { map: strings },
        uid: 'string',
      }),
      status: SAR_STATUS,
    },
    ['spec'],
  ),
  LocalSubjectAccessReview: top(
    'LocalSubjectAccessReview',
    {
      spec: obj('SubjectAccessReviewSpec', {
        resourceAttributes: RESOURCE_ATTRIBUTES,
        nonResourceAttributes: NON_RESOURCE_ATTRIBUTES,
        user: 'string',
        groups: strings,
        extra: { map: strings },
        uid: 'string',
      }),
      status: SAR_STATUS,
    },
    ['spec'],
  ),
  SelfSubjectAccessReview: top(
    'SelfSubjectAccessReview',
    {
      spec: obj('SelfSubjectAccessReviewSpec', {
        resourceAttributes: RESOURCE_ATTRIBUTES,
        nonResourceAttributes: NON_RESOURCE_ATTRIBUTES,
      }),
      status: SAR_STATUS,
    },
    ['spec'],
  ),
  SelfSubjectRulesReview: top(
    'SelfSubjectRulesReview',
    {
      spec: obj('SelfSubjectRulesReviewSpec', { namespace: 'string' }),
      status: 'any',
    },
    ['spec'],
  ),
};

/** What the body's decoding found. */
export interface Decoded {
  /** The body without unknown fields. */
  value: Record<string, unknown>;
  /** Paths of unknown fields (`rules[0].resourceName`), as kube-apiserver names them. */
  unknown: string[];
  /** Type mismatches: each one makes the request a 400 whatever fieldValidation says. */
  typeErrors: string[];
}

const MAX_REPORTED = 100;

function jsonType(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return `number ${v}`;
  return typeof v === 'object' ? 'object' : typeof v;
}

function goType(s: Shape): string {
  if (s === 'string') return 'string';
  if (s === 'integer') return 'int64';
  if (s === 'boolean') return 'bool';
  if (s === 'any') return 'interface {}';
  if ('array' in s) return `[]${goType(s.array)}`;
  if ('map' in s) return `map[string]${goType(s.map)}`;
  return s.object;
}

/**
 * Decodes a parsed JSON body against a kind's shape, iteratively (never recursing on input
 * depth). Unknown fields are collected and left out of `value`; `null` is accepted anywhere,
 * as Go decodes it to the zero value.
 */
export function decode(kind: string, body: Record<string, unknown>): Decoded {
  const shape = KIND_SHAPES[kind];
  if (!shape) return { value: body, unknown: [], typeErrors: [] };
  const unknown: string[] = [];
  const typeErrors: string[] = [];
  const root: { v: unknown } = { v: undefined };
  // Each work item decodes `value` against `shape` and stores the result with `put`.
  const work: Array<{ shape: Shape; value: unknown; path: string; put: (v: unknown) => void }> = [
    { shape, value: body, path: '', put: (v) => (root.v = v) },
  ];
  const join = (p: string, k: string) => (p ? `${p}.${k}` : k);
  while (work.length) {
    const { shape: s, value, path, put } = work.pop()!;
    if (value === null || s === 'any') {
      put(value);
      continue;
    }
    const mismatch = () => {
      if (typeErrors.length < MAX_REPORTED)
        typeErrors.push(
          `json: cannot unmarshal ${jsonType(value)} into Go struct field ${path || kind} of type ${goType(s)}`,
        );
    };
    if (s === 'string' || s === 'boolean') {
      if (typeof value !== s) mismatch();
      else put(value);
      continue;
    }
    if (s === 'integer') {
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) mismatch();
      else put(value);
      continue;
    }
    if ('array' in s) {
      if (!Array.isArray(value)) {
        mismatch();
        continue;
      }
      const out: unknown[] = new Array<unknown>(value.length);
      put(out);
      value.forEach((item, i) =>
        work.push({ shape: s.array, value: item, path: `${path}[${i}]`, put: (v) => (out[i] = v) }),
      );
      continue;
    }
    if (typeof value !== 'object' || Array.isArray(value)) {
      mismatch();
      continue;
    }
    const out: Record<string, unknown> = {};
    put(out);
    for (const [k, v] of Object.entries(value)) {
      const fieldShape = 'map' in s ? s.map : Object.hasOwn(s.fields, k) ? s.fields[k] : undefined;
      if (fieldShape === undefined) {
        if (unknown.length < MAX_REPORTED) unknown.push(join(path, k));
        continue;
      }
      work.push({ shape: fieldShape, value: v, path: join(path, k), put: (x) => (out[k] = x) });
    }
  }
  return { value: root.v as Record<string, unknown>, unknown: unknown.sort(), typeErrors };
}

/** Depth of a JSON text's nesting, counted without parsing (strings skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) max = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** The OpenAPI (v3 and v2 share it) JSON schema of a shape, inlined. */
export function jsonSchema(s: Shape): Record<string, unknown> {
  if (s === 'any') return { 'x-kubernetes-preserve-unknown-fields': true };
  if (s === 'integer') return { type: 'integer', format: 'int64' };
  if (typeof s === 'string') return { type: s };
  if ('array' in s) return { type: 'array', items: jsonSchema(s.array) };
  if ('map' in s) return { type: 'object', additionalProperties: jsonSchema(s.map) };
  return {
    type: 'object',
    properties: Object.fromEntries(Object.entries(s.fields).map(([k, v]) => [k, jsonSchema(v)])),
    ...(s.required ? { required: s.required } : {}),
  };
}

/**
 * Paths of keys that appear twice in the same JSON object (`metadata.name`, `rules[0].verbs`),
 * found by scanning the text, since JSON.parse keeps the last silently. At most 100.
 */
export function duplicateFields(text: string): string[] {
  type Frame = { object: boolean; keys: Set<string>; key: string; index: number };
  const stack: Frame[] = [];
  const out: string[] = [];
  const path = () =>
    stack.map((f, i) => (f.object ? `${i > 0 ? '.' : ''}${f.key}` : `[${f.index}]`)).join('');
  for (let i = 0; i < text.length && out.length < MAX_REPORTED; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      let k = j + 1;
      while (k < text.length && /\s/.test(text[k]!)) k++;
      if (top?.object && text[k] === ':') {
        let key: string;
        try {
          key = JSON.parse(text.slice(i, j + 1)) as string;
        } catch {
          key = text.slice(i + 1, j);
        }
        top.key = key;
        if (top.keys.has(key)) out.push(path());
        top.keys.add(key);
      }
      i = j;
    } else if (c === '{' || c === '[') {
      stack.push({ object: c === '{', keys: new Set(), key: '', index: 0 });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top && !top.object) top.index++;
    }
  }
  return out;
}

/** A JSON object (not null, not an array). */
export const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A JSON array of strings. */
export function stringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

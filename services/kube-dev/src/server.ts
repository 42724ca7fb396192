import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ApiError, badRequest, invalid, notFound } from './errors.js';
import { type Authenticator, forbidden, impersonate } from './auth.js';
import { applyPatch, PATCH_CONTENT_TYPES } from './patch.js';
import { decodeProtobufObject } from './protobuf.js';
import {
  OPENAPI_V2,
  OPENAPI_V2_PROTOBUF,
  OPENAPI_V2_PROTOBUF_ACCEPT,
  OPENAPI_V2_PROTOBUF_TYPE,
  openApiDocument,
  openApiIndex,
} from './openapi.js';
import { decode, duplicateFields, jsonDepth } from './schema.js';
import {
  aggregatedRules,
  authorize,
  RBAC_GROUP,
  rulesFor,
  uncovered,
  type Attributes,
  type NonResourceAttributes,
  type PolicyRule,
  type RbacPolicy,
  type ResourceAttributes,
  type Role,
  type RoleBinding,
  type UserInfo,
} from './rbac.js';
import {
  API_GROUPS,
  apiVersionOf,
  CLUSTER_ROLE_BINDINGS,
  CLUSTER_ROLES,
  DISCOVERY,
  NAMESPACES,
  PODS,
  ROLE_BINDINGS,
  ROLES,
  SECRETS,
  SERVICE_ACCOUNTS,
  STORED,
  dns1123Label,
  dns1123Subdomain,
  type ResourceDef,
} from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import type { KubeObject, ObjectStore, StoreEvent } from './store.js';
import { issueToken, jwks, type BoundObject, type SigningKey } from './tokens.js';

/** Request bodies above this get 413, as kube-apiserver bounds them (3 MiB). */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;
const MAX_TOKEN_SECONDS = 2 ** 32;
const MIN_TOKEN_SECONDS = 600;
const DEFAULT_TOKEN_SECONDS = 3600;
/** Namespaces that always exist and cannot be deleted. */
export const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public'];
const BOOKMARK_INTERVAL_MS = 10_000;
const PROTOBUF = 'application/vnd.kubernetes.protobuf';
const ANONYMOUS_USER = 'system:anonymous';
export const UNAUTHENTICATED = 'system:unauthenticated';

export interface ApiContext {
  store: ObjectStore;
  key: SigningKey;
  issuer: string;
  authenticator: Authenticator;
  log: Logger;
  /** `host:port` clients should use (for /api serverAddressByClientCIDRs). */
  serverAddress: string;
}

/** The RBAC objects in the store, as the evaluator reads them. */
export function storePolicy(store: ObjectStore): RbacPolicy {
  return {
    clusterRoleBindings: () =>
      store.iterate(CLUSTER_ROLE_BINDINGS.storeKind) as Iterable<KubeObject & RoleBinding>,
    roleBindings: (ns) =>
      store.iterate(ROLE_BINDINGS.storeKind, ns) as Iterable<KubeObject & RoleBinding>,
    clusterRole: (name) =>
      store.peek(CLUSTER_ROLES.storeKind, undefined, name) as (KubeObject & Role) | undefined,
    role: (ns, name) => store.peek(ROLES.storeKind, ns, name) as (KubeObject & Role) | undefined,
  };
}

const VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-precinct-kube-dev',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'n/a',
  compiler: 'node',
  platform: `${process.platform}/${process.arch}`,
};

function send(res: ServerResponse, code: number, body: unknown) {
  const data = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(data),
    'Cache-Control': 'no-cache, private',
  });
  res.end(data);
}

function sendError(res: ServerResponse, err: ApiError) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  send(res, err.code, err.toStatus());
}

/** Reads the body with a size bound; rejects non-JSON content types. */
async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    req.resume();
    throw new ApiError(413, 'RequestEntityTooLarge', 'the request body is too large');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY_BYTES) {
      req.resume();
      throw new ApiError(413, 'RequestEntityTooLarge', 'the request body is too large');
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

function parseJson(buf: Buffer): unknown {
  const text = buf.toString('utf8');
  // kube-apiserver's JSON decoder stops at 10000 levels; so does kube-dev, before parsing, so
  // nothing downstream ever walks a deeper document.
  if (jsonDepth(text) > MAX_JSON_DEPTH)
    throw badRequest(`the request body is nested more than ${MAX_JSON_DEPTH} levels deep`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest('the request body is not valid JSON');
  }
  if (typeof value === 'object' && value !== null) {
    const dups = duplicateFields(text);
    if (dups.length) DUPLICATES.set(value, dups);
  }
  return value;
}

/** Duplicate keys of a parsed body (JSON.parse keeps the last), for field validation. */
const DUPLICATES = new WeakMap<object, string[]>();
const MAX_JSON_DEPTH = 10_000;
type FieldValidation = 'Ignore' | 'Warn' | 'Strict';

/** The fieldValidation query parameter; absent or empty means Warn, as in kube-apiserver. */
function fieldValidation(q: URLSearchParams, method: string): FieldValidation {
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

/**
 * Decodes a body as kube-apiserver's decoder does: a wrong type is a 400; unknown fields are
 * dropped, and refused (Strict: 400, or 422 for a patch, as kube-apiserver words them) or
 * reported in Warning headers (Warn).
 */
function decodeBody(
  kind: string,
  apiVersion: string,
  body: Record<string, unknown>,
  mode: FieldValidation,
  res: ServerResponse,
  patch = false,
  parsed: object = body,
): Record<string, unknown> {
  const d = decode(kind, body);
  const handled = `${kind} in version "${apiVersion.split('/').pop()}" cannot be handled as a ${kind}`;
  if (d.typeErrors.length) throw badRequest(`${handled}: ${d.typeErrors[0]}`);
  const problems = [
    ...(DUPLICATES.get(parsed) ?? []).map((f) => `duplicate field "${f}"`),
    ...d.unknown.map((u) => `unknown field "${u}"`),
  ];
  if (problems.length && mode === 'Strict') {
    const why = `strict decoding error: ${problems.join(', ')}`;
    if (patch) throw invalid('', '', '', [{ field: 'patch', message: `Invalid value: ${why}` }]);
    throw badRequest(`${handled}: ${why}`);
  }
  if (problems.length && mode === 'Warn') {
    res.setHeader(
      'Warning',
      problems.map((p) => `299 - ${JSON.stringify(p)}`),
    );
  }
  return d.value;
}

async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = mediaType(req);
  if (type === PROTOBUF) return decodeProtobufObject(await readBody(req));
  if (type !== 'application/json') {
    req.resume();
    throw new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: application/json, ${PROTOBUF}`,
    );
  }
  const body = parseJson(await readBody(req));
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest('the request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function stringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function stringMap(v: unknown): boolean {
  return (
    v === undefined ||
    v === null ||
    (isObj(v) && Object.values(v).every((x) => typeof x === 'string'))
  );
}

/** Parsed request target. */
interface Target {
  def?: ResourceDef;
  group: string;
  version: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

function parseTarget(path: string): Target | undefined {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts[1] === 'v1' && parts.length > 2) {
    group = '';
    version = 'v1';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length > 3) {
    group = parts[1]!;
    version = parts[2]!;
    rest = parts.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length > 3) return { group, version, resource: rest.join('/') };
  const [resource, name, subresource] = rest as [string, string?, string?];
  const def = STORED.find(
    (d) => d.group === group && d.version === version && d.resource === resource,
  );
  return {
    ...(def ? { def } : {}),
    group,
    version,
    resource,
    ...(subresource !== undefined ? { subresource } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
  };
}

function verbOf(method: string, t: Target, q: URLSearchParams): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      if (t.name) return 'get';
      return q.get('watch') === 'true' || q.get('watch') === '1' ? 'watch' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return t.name ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

const nonResourceVerb = (method: string) =>
  ({ GET: 'get', HEAD: 'get', POST: 'post', PUT: 'put', PATCH: 'patch', DELETE: 'delete' })[
    method
  ] ?? method.toLowerCase();

function withTypeMeta(def: ResourceDef, o: KubeObject): KubeObject {
  return { ...o, apiVersion: apiVersionOf(def.group, def.version), kind: def.kind };
}

function listOf(def: ResourceDef, items: KubeObject[], rv: string) {
  return {
    kind: `${def.kind}List`,
    apiVersion: apiVersionOf(def.group, def.version),
    metadata: { resourceVersion: rv },
    items: items.map((o) => withTypeMeta(def, o)),
  };
}

/** The Kubernetes REST API of kube-dev, as one node:http request handler. */
export class KubeApi {
  private readonly policy: RbacPolicy;
  private readonly watches = new Set<ServerResponse>();

  constructor(private readonly ctx: ApiContext) {
    this.policy = storePolicy(ctx.store);
  }

  /** Ends every open watch (on shutdown). */
  closeWatches(): void {
    for (const res of this.watches) res.end();
    this.watches.clear();
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.serve(req, res).catch((err: unknown) => {
      if (err instanceof ApiError) return sendError(res, err);
      this.ctx.log.error({ err }, 'request failed');
      sendError(res, new ApiError(500, 'InternalError', 'an internal error occurred'));
    });
  };

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'https://kube-dev');
    } catch {
      throw badRequest('invalid request URL');
    }
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    try {
      decodeURIComponent(path);
    } catch {
      throw badRequest('invalid request path');
    }

    const requester = await this.authenticateRequest(req);
    const user = impersonate(this.policy, requester, req.headersDistinct);
    const log = this.ctx.log.child({ user: user.username, method, path });

    const target =
      path.startsWith('/api/') || path.startsWith('/apis/') ? parseTarget(path) : undefined;
    if (!target) {
      const attrs: NonResourceAttributes = { verb: nonResourceVerb(method), path };
      // Health, /version and OIDC discovery are authorized like any path: the bootstrap
      // bindings open the first two to everyone and discovery to ServiceAccounts, as in
      // kube-apiserver.
      this.authorizeOrThrow(user, attrs);
      if (await this.servePublic(req, method, path, url, res)) return;
      return this.serveNonResource(req, method, path, res);
    }
    const verb = verbOf(method, target, url.searchParams);
    const attrs: ResourceAttributes = {
      verb,
      group: target.group,
      version: target.version,
      resource: target.resource,
      ...(target.subresource ? { subresource: target.subresource } : {}),
      ...(target.name ? { name: target.name } : {}),
      ...(target.namespace ? { namespace: target.namespace } : {}),
    };
    this.authorizeOrThrow(user, attrs);
    log.debug({ verb, resource: target.resource }, 'request');
    await this.serveResource(req, res, method, verb, target, url.searchParams, user);
  }

  private async servePublic(
    req: IncomingMessage,
    method: string,
    path: string,
    url: URL,
    res: ServerResponse,
  ) {
    if (method !== 'GET' && method !== 'HEAD') return false;
    const health = /^\/(healthz|livez|readyz)(\/.*)?$/.exec(path);
    if (health) {
      const body = url.searchParams.has('verbose')
        ? `[+]ping ok\n${health[1]} check passed\n`
        : 'ok';
      res.writeHead(200, {
        'Content-Type': 'text/plain; charset=utf-8',
        'Cache-Control': 'no-cache, private',
      });
      res.end(body);
      return true;
    }
    if (path === '/version') {
      send(res, 200, VERSION);
      return true;
    }
    if (path === '/.well-known/openid-configuration') {
      send(res, 200, {
        issuer: this.ctx.issuer,
        jwks_uri: `${this.ctx.issuer}/openid/v1/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
      return true;
    }
    if (path === '/openid/v1/jwks') {
      // Served only as application/jwk-set+json, like kube-apiserver (406 for a client that
      // accepts only application/json).
      const accept = req.headers.accept;
      if (
        accept &&
        !/(^|,)\s*(\*\/\*|application\/\*|application\/jwk-set\+json)\s*(;|,|$)/i.test(accept)
      ) {
        throw new ApiError(
          406,
          'NotAcceptable',
          '406: Not Acceptable\n\nAvailable representations: application/jwk-set+json',
        );
      }
      const body = JSON.stringify(await jwks(this.ctx.key));
      res.writeHead(200, {
        'Content-Type': 'application/jwk-set+json',
        'Content-Length': Buffer.byteLength(body),
      });
      res.end(body);
      return true;
    }
    return false;
  }

  /**
   * The bearer token's user; a request without one is `system:anonymous` (group
   * `system:unauthenticated`), as with kube-apiserver's default --anonymous-auth, so RBAC
   * decides what it may see. A token that does not authenticate is 401.
   */
  private async authenticateRequest(req: IncomingMessage): Promise<UserInfo> {
    const h = req.headers.authorization;
    const m = h ? /^Bearer\s+(\S*)\s*$/i.exec(h) : null;
    if (!m || !m[1]) return { username: ANONYMOUS_USER, groups: [UNAUTHENTICATED] };
    const result = await this.ctx.authenticator.authenticate(m[1]);
    if (!result) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
    return result.user;
  }

  private authorizeOrThrow(user: UserInfo, attrs: Attributes) {
    const d = authorize(this.policy, user, attrs);
    if (!d.allowed) {
      this.ctx.log.debug({ user: user.username, attrs }, 'forbidden');
      throw forbidden(user, attrs);
    }
  }

  private serveNonResource(
    req: IncomingMessage,
    method: string,
    path: string,
    res: ServerResponse,
  ) {
    if (method !== 'GET' && method !== 'HEAD') {
      throw new ApiError(
        405,
        'MethodNotAllowed',
        `the server does not allow this method on the requested resource`,
      );
    }
    if (path === '/api') {
      return send(res, 200, {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [
          { clientCIDR: '0.0.0.0/0', serverAddress: this.ctx.serverAddress },
        ],
      });
    }
    if (path === '/api/v1') return send(res, 200, resourceList('v1'));
    if (path === '/apis') {
      return send(res, 200, {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: API_GROUPS.map(apiGroup),
      });
    }
    if (path === '/openapi/v3') return send(res, 200, openApiIndex());
    if (path === '/openapi/v2') {
      if (OPENAPI_V2_PROTOBUF_ACCEPT.test(req.headers.accept ?? '')) {
        res.writeHead(200, {
          'Content-Type': OPENAPI_V2_PROTOBUF_TYPE,
          'Content-Length': OPENAPI_V2_PROTOBUF.length,
        });
        res.end(OPENAPI_V2_PROTOBUF);
        return;
      }
      return send(res, 200, OPENAPI_V2);
    }
    if (path.startsWith('/openapi/v3/')) {
      const doc = openApiDocument(path.slice('/openapi/v3/'.length));
      if (doc) return send(res, 200, doc);
    }
    const g = /^\/apis\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    if (g && API_GROUPS.includes(g[1]!)) {
      if (!g[2]) return send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(g[1]!) });
      if (g[2] === 'v1') return send(res, 200, resourceList(`${g[1]}/v1`));
    }
    throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  }

  /**
   * Fills the rules of every ClusterRole with an aggregationRule, as the clusterrole-aggregation
   * controller does (here synchronously, after each ClusterRole write). Repeats until nothing
   * changes so aggregates of aggregates settle too.
   */
  aggregateClusterRoles(): void {
    for (let pass = 0; pass < 10; pass++) {
      let changed = false;
      const all = this.ctx.store.list(CLUSTER_ROLES.storeKind) as Array<KubeObject & Role>;
      for (const role of all) {
        if (!isObj(role.aggregationRule)) continue;
        const rules = aggregatedRules(role as Parameters<typeof aggregatedRules>[0], all);
        if (JSON.stringify(rules) === JSON.stringify(role.rules ?? [])) continue;
        const { resourceVersion: _rv, ...meta } = role.metadata as KubeObject['metadata'];
        this.ctx.store.update(CLUSTER_ROLES.storeKind, CLUSTER_ROLES.resource, RBAC_GROUP, {
          ...role,
          metadata: meta,
          rules,
        } as KubeObject);
        changed = true;
      }
      if (!changed) return;
    }
  }

  private async serveResource(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    verb: string,
    t: Target,
    q: URLSearchParams,
    user: UserInfo,
  ) {
    const dryRun = q.getAll('dryRun').includes('All');
    // Create-only review and token endpoints.
    if (t.group === '' && t.resource === 'serviceaccounts' && t.subresource === 'token') {
      if (method !== 'POST') throw methodNotAllowed();
      if (!t.namespace || !t.name) throw notFoundPath();
      const mode = fieldValidation(q, method);
      const body = decodeBody(
        'TokenRequest',
        'authentication.k8s.io/v1',
        await readJsonObject(req),
        mode,
        res,
      );
      return send(res, 201, await this.tokenRequest(t.namespace, t.name, body));
    }
    const review = `${t.group}/${t.resource}`;
    const reviewKinds: Record<string, string> = {
      'authentication.k8s.io/tokenreviews': 'TokenReview',
      'authentication.k8s.io/selfsubjectreviews': 'SelfSubjectReview',
      'authorization.k8s.io/subjectaccessreviews': 'SubjectAccessReview',
      'authorization.k8s.io/localsubjectaccessreviews': 'LocalSubjectAccessReview',
      'authorization.k8s.io/selfsubjectaccessreviews': 'SelfSubjectAccessReview',
      'authorization.k8s.io/selfsubjectrulesreviews': 'SelfSubjectRulesReview',
    };
    const reviews: Record<string, (b: Record<string, unknown>) => Promise<unknown> | unknown> = {
      'authentication.k8s.io/tokenreviews': (b) => this.tokenReview(b),
      'authentication.k8s.io/selfsubjectreviews': () => ({
        kind: 'SelfSubjectReview',
        apiVersion: 'authentication.k8s.io/v1',
        metadata: { creationTimestamp: null },
        status: { userInfo: userInfoJson(user) },
      }),
      'authorization.k8s.io/subjectaccessreviews': (b) =>
        this.subjectAccessReview(b, 'SubjectAccessReview'),
      'authorization.k8s.io/localsubjectaccessreviews': (b) =>
        this.subjectAccessReview(b, 'LocalSubjectAccessReview', t.namespace),
      'authorization.k8s.io/selfsubjectaccessreviews': (b) => this.selfSubjectAccessReview(b, user),
      'authorization.k8s.io/selfsubjectrulesreviews': (b) => this.selfSubjectRulesReview(b, user),
    };
    const reviewFn = reviews[review];
    if (reviewFn && t.version === 'v1' && !t.name) {
      if (method !== 'POST') throw methodNotAllowed();
      const namespacedOk =
        t.resource === 'localsubjectaccessreviews' ? !!t.namespace : !t.namespace;
      if (!namespacedOk) throw notFoundPath();
      const mode = fieldValidation(q, method);
      const body = decodeBody(
        reviewKinds[review]!,
        `${t.group}/v1`,
        await readJsonObject(req),
        mode,
        res,
      );
      return send(res, 201, await reviewFn(body));
    }

    const def = t.def;
    if (!def || t.subresource || (def.namespaced ? false : t.namespace !== undefined))
      throw notFoundPath();
    if (def.namespaced && t.namespace !== undefined && dns1123Label(t.namespace))
      throw notFoundPath();
    const ns = def.namespaced ? t.namespace : undefined;
    // Across namespaces a namespaced resource can only be listed and watched.
    if (def.namespaced && ns === undefined && verb !== 'list' && verb !== 'watch')
      throw methodNotAllowed();

    const aggregate =
      def === CLUSTER_ROLES &&
      !dryRun &&
      ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(verb);
    try {
      return await this.serveStored(req, res, verb, def, ns, t, q, user, dryRun);
    } finally {
      // Synchronously after the write, before any other request is served.
      if (aggregate) this.aggregateClusterRoles();
    }
  }

  private async serveStored(
    req: IncomingMessage,
    res: ServerResponse,
    verb: string,
    def: ResourceDef,
    ns: string | undefined,
    t: Target,
    q: URLSearchParams,
    user: UserInfo,
    dryRun: boolean,
  ) {
    switch (verb) {
      case 'get': {
        const o = this.ctx.store.get(def.storeKind, ns, t.name!);
        if (!o) throw notFound(def.resource, def.group, t.name!);
        return send(res, 200, withTypeMeta(def, o));
      }
      case 'list': {
        const rv = this.ctx.store.resourceVersion;
        const lf = parseLabelSelector(q.get('labelSelector'));
        const ff = parseFieldSelector(q.get('fieldSelector'));
        const items = this.ctx.store.list(def.storeKind, ns).filter((o) => lf(o) && ff(o));
        return send(res, 200, listOf(def, items, rv));
      }
      case 'watch':
        return this.watch(req, res, def, ns, q);
      case 'create': {
        const mode = fieldValidation(q, 'POST');
        const body = decodeBody(
          def.kind,
          apiVersionOf(def.group, def.version),
          await readJsonObject(req),
          mode,
          res,
        );
        const obj = this.prepare(def, body, ns, undefined);
        this.preventEscalation(user, def, obj, undefined);
        return send(res, 201, withTypeMeta(def, this.create(def, obj, dryRun)));
      }
      case 'update': {
        const mode = fieldValidation(q, 'PUT');
        const body = decodeBody(
          def.kind,
          apiVersionOf(def.group, def.version),
          await readJsonObject(req),
          mode,
          res,
        );
        const obj = this.prepare(def, body, ns, t.name);
        this.preventEscalation(user, def, obj, t.name);
        return send(res, 200, withTypeMeta(def, this.update(def, obj, dryRun)));
      }
      case 'patch': {
        const type = PATCH_CONTENT_TYPES[mediaType(req)];
        if (!type) {
          req.resume();
          throw new ApiError(
            415,
            'UnsupportedMediaType',
            `the body of the request was in an unknown format - accepted media types include: ${Object.keys(PATCH_CONTENT_TYPES).join(', ')}`,
          );
        }
        const mode = fieldValidation(q, 'PATCH');
        const patch = parseJson(await readBody(req));
        const cur = this.ctx.store.get(def.storeKind, ns, t.name!);
        if (!cur) throw notFound(def.resource, def.group, t.name!);
        const patched: unknown = applyPatch(type, withTypeMeta(def, cur), patch);
        if (!isObj(patched)) throw badRequest('the patch produced something other than an object');
        const meta = isObj(patched.metadata) ? patched.metadata : {};
        // Identity fields cannot be patched; a patch that carries a resourceVersion is a precondition.
        patched.metadata = { ...meta, name: t.name, ...(ns ? { namespace: ns } : {}) };
        const decoded = decodeBody(
          def.kind,
          apiVersionOf(def.group, def.version),
          patched,
          mode,
          res,
          true,
          isObj(patch) || Array.isArray(patch) ? patch : patched,
        );
        const obj = this.prepare(def, decoded, ns, t.name);
        this.preventEscalation(user, def, obj, t.name);
        return send(res, 200, withTypeMeta(def, this.update(def, obj, dryRun)));
      }
      case 'delete': {
        if (def === NAMESPACES && SYSTEM_NAMESPACES.includes(t.name!)) {
          throw new ApiError(
            403,
            'Forbidden',
            `namespaces "${t.name}" is forbidden: this namespace may not be deleted`,
            {
              name: t.name!,
              kind: 'namespaces',
            },
          );
        }
        if (
          mediaType(req) === 'application/json' ||
          Number(req.headers['content-length'] ?? 0) > 0
        ) {
          await readBody(req); // DeleteOptions: propagation and grace period do not apply here.
        }
        const o = this.ctx.store.delete(
          def.storeKind,
          def.resource,
          def.group,
          ns,
          t.name!,
          dryRun,
        );
        if (def === NAMESPACES && !dryRun) this.deleteNamespaceContents(t.name!);
        return send(res, 200, withTypeMeta(def, o));
      }
      case 'deletecollection': {
        const lf = parseLabelSelector(q.get('labelSelector'));
        const ff = parseFieldSelector(q.get('fieldSelector'));
        const items = this.ctx.store.list(def.storeKind, ns).filter((o) => lf(o) && ff(o));
        for (const o of items) {
          this.ctx.store.delete(
            def.storeKind,
            def.resource,
            def.group,
            o.metadata.namespace,
            o.metadata.name,
            dryRun,
          );
        }
        return send(res, 200, listOf(def, items, this.ctx.store.resourceVersion));
      }
      default:
        throw methodNotAllowed();
    }
  }

  /**
   * Kubernetes' RBAC escalation prevention: writing a role needs verb `escalate` on it or
   * holding every permission it grants; writing a binding needs verb `bind` on the role it
   * references or holding every permission of that role (in the binding's scope).
   */
  private preventEscalation(
    user: UserInfo,
    def: ResourceDef,
    obj: KubeObject,
    urlName: string | undefined,
  ) {
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
      const role =
        ref.kind === 'Role' ? this.policy.role(ns, ref.name) : this.policy.clusterRole(ref.name);
      servant = role?.rules ?? [];
      special = {
        verb: 'bind',
        group: RBAC_GROUP,
        resource: ref.kind === 'Role' ? 'roles' : 'clusterroles',
        name: ref.name,
        namespace: ns,
      };
    } else return;
    if (authorize(this.policy, user, special).allowed) return;
    const held = rulesFor(this.policy, user, ns);
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
    this.ctx.log.debug(
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

  private deleteNamespaceContents(ns: string) {
    for (const d of STORED) {
      if (!d.namespaced) continue;
      for (const o of this.ctx.store.list(d.storeKind, ns)) {
        this.ctx.store.delete(d.storeKind, d.resource, d.group, ns, o.metadata.name);
      }
    }
  }

  /** Creates an object; a new namespace gets its `default` ServiceAccount. */
  create(def: ResourceDef, obj: KubeObject, dryRun = false): KubeObject {
    if (
      def.namespaced &&
      !this.ctx.store.peek(NAMESPACES.storeKind, undefined, obj.metadata.namespace!)
    ) {
      throw notFound('namespaces', '', obj.metadata.namespace!);
    }
    if (def === PODS) {
      // The ServiceAccount admission plugin: a pod runs as an existing ServiceAccount.
      const ns = obj.metadata.namespace!;
      const sa = (obj.spec as { serviceAccountName: string }).serviceAccountName;
      if (!this.ctx.store.peek(SERVICE_ACCOUNTS.storeKind, ns, sa)) {
        throw new ApiError(
          403,
          'Forbidden',
          `pods "${obj.metadata.name}" is forbidden: error looking up service account ${ns}/${sa}: serviceaccount "${sa}" not found`,
          { name: obj.metadata.name, kind: 'pods' },
        );
      }
    }
    const created = this.ctx.store.create(def.storeKind, def.resource, def.group, obj, dryRun);
    if (def === NAMESPACES && !dryRun) {
      this.ctx.store.create(SERVICE_ACCOUNTS.storeKind, SERVICE_ACCOUNTS.resource, '', {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'default', namespace: obj.metadata.name },
      });
    }
    return created;
  }

  private update(def: ResourceDef, obj: KubeObject, dryRun: boolean): KubeObject {
    const cur = this.ctx.store.peek(def.storeKind, obj.metadata.namespace, obj.metadata.name);
    if (cur && (def === ROLE_BINDINGS || def === CLUSTER_ROLE_BINDINGS)) {
      if (JSON.stringify(cur.roleRef) !== JSON.stringify(obj.roleRef)) {
        throw invalid(def.kind, def.group, obj.metadata.name, [
          {
            field: 'roleRef',
            message: 'Invalid value: cannot change roleRef',
            reason: 'FieldValueInvalid',
          },
        ]);
      }
    }
    if (cur && def === NAMESPACES) obj.status = cur.status;
    return this.ctx.store.update(def.storeKind, def.resource, def.group, obj, dryRun);
  }

  /**
   * Checks and normalises a body for create (name undefined) or update (name from the URL):
   * kind and apiVersion, names, namespace agreement, metadata types, and per-kind validation.
   */
  prepare(
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
        ...(urlName !== undefined &&
        typeof meta.resourceVersion === 'string' &&
        meta.resourceVersion
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

  private watch(
    req: IncomingMessage,
    res: ServerResponse,
    def: ResourceDef,
    ns: string | undefined,
    q: URLSearchParams,
  ) {
    const lf = parseLabelSelector(q.get('labelSelector'));
    const ff = parseFieldSelector(q.get('fieldSelector'));
    const rvParam = q.get('resourceVersion') ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam))
      throw badRequest(`invalid resourceVersion "${rvParam}"`);
    const timeout = q.get('timeoutSeconds');
    if (timeout !== null && !/^\d+$/.test(timeout)) throw badRequest('invalid timeoutSeconds');
    const bookmarks =
      q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1';
    const initialEvents = q.get('sendInitialEvents') === 'true';
    // No resourceVersion (or 0): start with the current state as ADDED events, like kube-apiserver.
    const replayAll = rvParam === '' || rvParam === '0' || initialEvents;
    const since = replayAll ? Number(this.ctx.store.resourceVersion) : Number(rvParam);
    const initial = replayAll ? this.ctx.store.list(def.storeKind, ns) : [];

    const write = (type: string, object: unknown) => {
      // An ended or broken stream may still get a store event before its 'close' arrives.
      if (res.writableEnded || res.destroyed) return;
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const pending: StoreEvent[] = [];
    let started = false;
    const onEvent = (e: StoreEvent) => {
      if (!started) {
        pending.push(e);
        return;
      }
      if (lf(e.object) && ff(e.object)) write(e.type, withTypeMeta(def, e.object));
    };
    const unsubscribe = this.ctx.store.watch(def.storeKind, ns, since, onEvent);
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    // Clients resolve the watch on the response headers; send them before the first event.
    res.flushHeaders();
    this.watches.add(res);
    for (const o of initial) if (lf(o) && ff(o)) write('ADDED', withTypeMeta(def, o));
    const bookmark = (extra: Record<string, string> = {}) =>
      write('BOOKMARK', {
        kind: def.kind,
        apiVersion: apiVersionOf(def.group, def.version),
        metadata: {
          resourceVersion: this.ctx.store.resourceVersion,
          ...(Object.keys(extra).length ? { annotations: extra } : {}),
        },
      });
    if (initialEvents && bookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    started = true;
    for (const e of pending) onEvent(e);
    const timers: NodeJS.Timeout[] = [];
    if (bookmarks) {
      const t = setInterval(() => bookmark(), BOOKMARK_INTERVAL_MS);
      t.unref();
      timers.push(t);
    }
    // timeoutSeconds=0 means no timeout, as in kube-apiserver (which then picks its default).
    if (timeout !== null && Number(timeout) > 0) {
      const t = setTimeout(() => res.end(), Number(timeout) * 1000);
      t.unref();
      timers.push(t);
    }
    const cleanup = () => {
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      this.watches.delete(res);
    };
    res.on('close', cleanup);
    res.on('error', cleanup);
    req.on('close', cleanup);
  }

  private async tokenRequest(ns: string, name: string, body: Record<string, unknown>) {
    if (body.kind !== undefined && body.kind !== 'TokenRequest')
      throw badRequest('expected kind TokenRequest');
    const sa = this.ctx.store.get(SERVICE_ACCOUNTS.storeKind, ns, name);
    if (!sa) throw notFound('serviceaccounts', '', name);
    const spec = body.spec ?? {};
    if (!isObj(spec)) throw badRequest('spec must be an object');
    const causes: Array<{ field: string; message: string }> = [];
    let audiences = [this.ctx.issuer];
    if (spec.audiences !== undefined && spec.audiences !== null) {
      // kube-apiserver accepts an empty string among the audiences (it matches nothing).
      if (!stringArray(spec.audiences)) {
        causes.push({
          field: 'spec.audiences',
          message: 'Invalid value: must be a list of strings',
        });
      } else if (spec.audiences.length) audiences = spec.audiences;
    }
    let seconds = DEFAULT_TOKEN_SECONDS;
    if (spec.expirationSeconds !== undefined && spec.expirationSeconds !== null) {
      const e = spec.expirationSeconds;
      if (typeof e !== 'number' || !Number.isInteger(e)) {
        causes.push({
          field: 'spec.expirationSeconds',
          message: 'Invalid value: must be an integer',
        });
      } else if (e < MIN_TOKEN_SECONDS) {
        causes.push({
          field: 'spec.expirationSeconds',
          message: 'Invalid value: may not specify a duration less than 10 minutes',
        });
      } else if (e > MAX_TOKEN_SECONDS) {
        causes.push({
          field: 'spec.expirationSeconds',
          message: 'Invalid value: may not specify a duration larger than 2^32 seconds',
        });
      } else seconds = e;
    }
    let bound: BoundObject | undefined;
    const ref = spec.boundObjectRef;
    if (isObj(ref)) {
      const kind = typeof ref.kind === 'string' ? ref.kind : '';
      const refName = typeof ref.name === 'string' ? ref.name : '';
      const apiVersion = typeof ref.apiVersion === 'string' ? ref.apiVersion : '';
      const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
      const version = apiVersion.includes('/') ? apiVersion.split('/')[1] : apiVersion;
      const defs: Record<string, ResourceDef> = { Pod: PODS, Secret: SECRETS };
      const target = group === '' ? defs[kind] : undefined;
      if (kind === 'Node' && group === '') {
        // kube-dev has no nodes, so a node to bind to never exists.
        throw notFound('nodes', '', refName);
      }
      if (!target) {
        throw badRequest(`cannot bind token to object of type ${group}/${version}, Kind=${kind}`);
      }
      // Like kube-apiserver: the object must exist now, with the uid the caller names; the
      // token then lives only as long as that object (TokenReview checks it again).
      const o = this.ctx.store.peek(target.storeKind, ns, refName);
      if (!o) throw notFound(target.resource, '', refName);
      const uid = o.metadata.uid!;
      if (typeof ref.uid === 'string' && ref.uid && ref.uid !== uid) {
        throw new ApiError(
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${kind} "${refName}": the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`,
          { name: refName, kind },
        );
      }
      if (
        target === PODS &&
        (o.spec as { serviceAccountName?: string }).serviceAccountName !== name
      ) {
        throw badRequest(
          `cannot bind token for serviceaccount "${name}" to pod running with different serviceaccount name.`,
        );
      }
      bound = { kind: kind as BoundObject['kind'], name: refName, uid };
    }
    if (causes.length) throw invalid('TokenRequest', 'authentication.k8s.io', name, causes);
    const { token, expiresAt } = await issueToken(this.ctx.key, {
      issuer: this.ctx.issuer,
      audiences,
      namespace: ns,
      serviceAccount: { name, uid: sa.metadata.uid! },
      expirationSeconds: seconds,
      ...(bound ? { boundObject: bound } : {}),
    });
    return {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name, namespace: ns, creationTimestamp: null },
      spec: {
        audiences,
        expirationSeconds: seconds,
        boundObjectRef: bound
          ? {
              kind: bound.kind,
              apiVersion: 'v1',
              name: bound.name,
              ...(bound.uid ? { uid: bound.uid } : {}),
            }
          : null,
      },
      status: { token, expirationTimestamp: expiresAt.toISOString().replace(/\.\d+Z$/, 'Z') },
    };
  }

  private async tokenReview(body: Record<string, unknown>) {
    const spec = body.spec;
    if (!isObj(spec) || typeof spec.token !== 'string' || !spec.token) {
      throw badRequest('token is required for TokenReview in authentication');
    }
    if (spec.audiences !== undefined && spec.audiences !== null && !stringArray(spec.audiences)) {
      throw invalid('TokenReview', 'authentication.k8s.io', '', [
        { field: 'spec.audiences', message: 'Invalid value: must be a list of strings' },
      ]);
    }
    const audiences = (spec.audiences as string[] | undefined | null) ?? undefined;
    const result = await this.ctx.authenticator.authenticate(spec.token, audiences ?? undefined);
    const base = {
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: { token: spec.token, ...(audiences ? { audiences } : {}) },
    };
    if (!result) return { ...base, status: { user: {}, error: 'invalid bearer token' } };
    return {
      ...base,
      status: { authenticated: true, user: userInfoJson(result.user), audiences: result.audiences },
    };
  }

  private decide(user: UserInfo, spec: Record<string, unknown>, kind: string, namespace?: string) {
    const ra = spec.resourceAttributes;
    const nra = spec.nonResourceAttributes;
    if ((ra === undefined || ra === null) === (nra === undefined || nra === null)) {
      throw invalid(kind, 'authorization.k8s.io', '', [
        {
          field: 'spec.resourceAttributes',
          message:
            'Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified',
        },
      ]);
    }
    let attrs: Attributes;
    if (isObj(ra)) {
      const str = (k: string) => (typeof ra[k] === 'string' ? (ra[k] as string) : '');
      attrs = {
        verb: str('verb'),
        group: str('group'),
        version: str('version'),
        resource: str('resource'),
        subresource: str('subresource'),
        name: str('name'),
        namespace: namespace ?? str('namespace'),
      };
    } else if (isObj(nra)) {
      attrs = {
        verb: typeof nra.verb === 'string' ? nra.verb : '',
        path: typeof nra.path === 'string' ? nra.path : '',
      };
    } else {
      throw badRequest('resourceAttributes and nonResourceAttributes must be objects');
    }
    const d = authorize(this.policy, user, attrs);
    return {
      allowed: d.allowed,
      ...(d.reason ? { reason: d.reason } : {}),
      ...(d.evaluationError ? { evaluationError: d.evaluationError } : {}),
    };
  }

  private subjectAccessReview(body: Record<string, unknown>, kind: string, namespace?: string) {
    const spec = body.spec;
    if (!isObj(spec))
      throw invalid(kind, 'authorization.k8s.io', '', [
        { field: 'spec', message: 'Required value' },
      ]);
    const username = typeof spec.user === 'string' ? spec.user : '';
    const groups = stringArray(spec.groups) ? spec.groups : [];
    if (!username && groups.length === 0) {
      throw invalid(kind, 'authorization.k8s.io', '', [
        {
          field: 'spec.user',
          message: 'Invalid value: "": at least one of user or group must be specified',
        },
      ]);
    }
    if (namespace !== undefined && isObj(spec.resourceAttributes)) {
      const rns = spec.resourceAttributes.namespace;
      if (rns !== undefined && rns !== '' && rns !== namespace) {
        throw invalid('', 'authorization.k8s.io', '', [
          {
            field: 'spec.resourceAttributes.namespace',
            message: `Invalid value: "${String(rns)}": must match metadata.namespace`,
          },
        ]);
      }
    }
    if (namespace !== undefined && spec.nonResourceAttributes) {
      throw badRequest('a LocalSubjectAccessReview cannot ask about nonResourceAttributes');
    }
    const extra = isObj(spec.extra) ? (spec.extra as Record<string, string[]>) : undefined;
    const user: UserInfo = {
      username,
      groups,
      ...(typeof spec.uid === 'string' ? { uid: spec.uid } : {}),
      ...(extra ? { extra } : {}),
    };
    return {
      kind,
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null, ...(namespace ? { namespace } : {}) },
      spec,
      status: this.decide(user, spec, kind, namespace),
    };
  }

  private selfSubjectAccessReview(body: Record<string, unknown>, user: UserInfo) {
    const spec = body.spec;
    if (!isObj(spec))
      throw invalid('SelfSubjectAccessReview', 'authorization.k8s.io', '', [
        { field: 'spec', message: 'Required value' },
      ]);
    return {
      kind: 'SelfSubjectAccessReview',
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec,
      status: this.decide(user, spec, 'SelfSubjectAccessReview'),
    };
  }

  /** The rules that apply to the requester in one namespace (what `kubectl auth can-i --list` shows). */
  private selfSubjectRulesReview(body: Record<string, unknown>, user: UserInfo) {
    const spec = isObj(body.spec) ? body.spec : {};
    const namespace = typeof spec.namespace === 'string' ? spec.namespace : '';
    const rules = rulesFor(this.policy, user, namespace);
    const resourceRules = rules
      .filter((r) => r.resources?.length)
      .map((r) => ({
        verbs: r.verbs,
        apiGroups: r.apiGroups ?? [],
        resources: r.resources,
        ...(r.resourceNames?.length ? { resourceNames: r.resourceNames } : {}),
      }));
    const nonResourceRules = rules
      .filter((r) => r.nonResourceURLs?.length)
      .map((r) => ({ verbs: r.verbs, nonResourceURLs: r.nonResourceURLs }));
    return {
      kind: 'SelfSubjectRulesReview',
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: { namespace },
      status: { resourceRules, nonResourceRules, incomplete: false },
    };
  }
}

function userInfoJson(u: UserInfo) {
  return {
    username: u.username,
    ...(u.uid ? { uid: u.uid } : {}),
    groups: u.groups ?? [],
    ...(u.extra && Object.keys(u.extra).length ? { extra: u.extra } : {}),
  };
}

const methodNotAllowed = () =>
  new ApiError(
    405,
    'MethodNotAllowed',
    'the server does not allow this method on the requested resource',
  );
const notFoundPath = () =>
  new ApiError(404, 'NotFound', 'the server could not find the requested resource');

function apiGroup(name: string) {
  const gv = { groupVersion: `${name}/v1`, version: 'v1' };
  return { name, versions: [gv], preferredVersion: gv };
}

function resourceList(groupVersion: string) {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: DISCOVERY[groupVersion] ?? [],
  };
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

import type { IncomingMessage } from 'node:http';
import { badRequest, methodNotAllowed, notFoundPath } from './errors.js';
import type { ResourceAttributes } from './rbac.js';
import { dns1123Label, STORED, type ResourceDef } from './resources.js';
import type { ReviewKind } from './reviews.js';

/**
 * Where a request goes: its URL as kube-apiserver reads it, the RBAC attributes it is
 * authorized with, and (once authorized) the handler that answers it.
 */

/** The method, URL and normalised path of a request. */
export interface RequestLine {
  method: string;
  url: URL;
  /** The URL path without trailing slashes (`/` stays `/`). */
  path: string;
}

/** 400 for a URL or path that does not parse (bad percent-encoding included). */
export function requestLine(req: IncomingMessage): RequestLine {
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
  return { method, url, path };
}

/** A parsed `/api/v1/...` or `/apis/<group>/<version>/...` path. */
export interface Target {
  /** The stored resource the path names, if it names one. */
  def?: ResourceDef;
  group: string;
  version: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** The resource a path addresses; undefined for a non-resource path (`/api`, `/healthz`). */
export function parseTarget(path: string): Target | undefined {
  if (!path.startsWith('/api/') && !path.startsWith('/apis/')) return undefined;
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

/** The RBAC verb of a resource request, as kube-apiserver's request info derives it. */
export function verbOf(method: string, t: Target, q: URLSearchParams): string {
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

/** The RBAC verb of a non-resource request (lower-case HTTP method; HEAD is get). */
export const nonResourceVerb = (method: string): string =>
  ({ GET: 'get', HEAD: 'get', POST: 'post', PUT: 'put', PATCH: 'patch', DELETE: 'delete' })[
    method
  ] ?? method.toLowerCase();

/** What RBAC is asked about a resource request. */
export function resourceAttributes(t: Target, verb: string): ResourceAttributes {
  return {
    verb,
    group: t.group,
    version: t.version,
    resource: t.resource,
    ...(t.subresource ? { subresource: t.subresource } : {}),
    ...(t.name ? { name: t.name } : {}),
    ...(t.namespace ? { namespace: t.namespace } : {}),
  };
}

/** The create-only review endpoints, by `<group>/<resource>`. */
const REVIEWS: Record<string, ReviewKind> = {
  'authentication.k8s.io/tokenreviews': 'TokenReview',
  'authentication.k8s.io/selfsubjectreviews': 'SelfSubjectReview',
  'authorization.k8s.io/subjectaccessreviews': 'SubjectAccessReview',
  'authorization.k8s.io/localsubjectaccessreviews': 'LocalSubjectAccessReview',
  'authorization.k8s.io/selfsubjectaccessreviews': 'SelfSubjectAccessReview',
  'authorization.k8s.io/selfsubjectrulesreviews': 'SelfSubjectRulesReview',
};

/** The handler an authorized resource request goes to. */
export type Route =
  | { kind: 'token-request'; namespace: string; name: string }
  | { kind: 'review'; review: ReviewKind; group: string; namespace?: string }
  | { kind: 'object'; def: ResourceDef; verb: string; namespace?: string; name?: string };

/**
 * Picks the handler, or throws what kube-apiserver answers for a path it does not serve (404)
 * or a method the path does not take (405).
 */
export function route(method: string, verb: string, t: Target): Route {
  if (t.group === '' && t.resource === 'serviceaccounts' && t.subresource === 'token') {
    if (method !== 'POST') throw methodNotAllowed();
    if (!t.namespace || !t.name) throw notFoundPath();
    return { kind: 'token-request', namespace: t.namespace, name: t.name };
  }
  const review = REVIEWS[`${t.group}/${t.resource}`];
  if (review && t.version === 'v1' && !t.name) {
    if (method !== 'POST') throw methodNotAllowed();
    const namespacedOk = review === 'LocalSubjectAccessReview' ? !!t.namespace : !t.namespace;
    if (!namespacedOk) throw notFoundPath();
    return {
      kind: 'review',
      review,
      group: t.group,
      ...(t.namespace !== undefined ? { namespace: t.namespace } : {}),
    };
  }
  const def = t.def;
  if (!def || t.subresource || (def.namespaced ? false : t.namespace !== undefined))
    throw notFoundPath();
  if (def.namespaced && t.namespace !== undefined && dns1123Label(t.namespace))
    throw notFoundPath();
  const namespace = def.namespaced ? t.namespace : undefined;
  // Across namespaces a namespaced resource can only be listed and watched.
  if (def.namespaced && namespace === undefined && verb !== 'list' && verb !== 'watch')
    throw methodNotAllowed();
  return {
    kind: 'object',
    def,
    verb,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(t.name !== undefined ? { name: t.name } : {}),
  };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ApiError, badRequest, invalid, methodNotAllowed, notFound } from './errors.js';
import { preventEscalation } from './escalation.js';
import { mediaType, parseJson, readBody, readJsonObject, send, warn } from './http.js';
import { applyPatch, PATCH_CONTENT_TYPES } from './patch.js';
import { aggregatedRules, RBAC_GROUP, type RbacPolicy, type Role, type UserInfo } from './rbac.js';
import {
  apiVersionOf,
  CLUSTER_ROLE_BINDINGS,
  CLUSTER_ROLES,
  listOf,
  NAMESPACES,
  PODS,
  ROLE_BINDINGS,
  SERVICE_ACCOUNTS,
  STORED,
  withTypeMeta,
  type ResourceDef,
} from './resources.js';
import type { Route } from './routing.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import type { KubeObject, ObjectStore } from './store.js';
import { isObj } from './schema.js';
import { decodeBody, fieldValidation, prepareObject, type FieldValidation } from './validation.js';
import type { Watches } from './watch.js';

/** Namespaces that always exist and cannot be deleted. */
export const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public'];

type ObjectRoute = Extract<Route, { kind: 'object' }>;

/** Decodes a body for `def`, sending its decoding warnings with whatever answer follows. */
function decodeFor(
  res: ServerResponse,
  def: ResourceDef,
  body: Record<string, unknown>,
  mode: FieldValidation,
  patchDocument?: object,
): Record<string, unknown> {
  const d = decodeBody(def.kind, apiVersionOf(def.group, def.version), body, mode, patchDocument);
  warn(res, d.warnings);
  return d.object;
}

/**
 * The stored resources' verbs (get, list, watch, create, update, patch, delete,
 * deletecollection) over the object store, with the admission kube-dev has: validation,
 * RBAC escalation prevention, a namespace's default ServiceAccount and contents, pods'
 * ServiceAccounts, and ClusterRole aggregation after every ClusterRole write.
 */
export class Objects {
  constructor(
    private readonly store: ObjectStore,
    private readonly policy: RbacPolicy,
    private readonly watches: Watches,
    private readonly log: Logger,
  ) {}

  /** Answers an authorized request for a stored resource. */
  async serve(
    req: IncomingMessage,
    res: ServerResponse,
    r: ObjectRoute,
    q: URLSearchParams,
    user: UserInfo,
  ): Promise<void> {
    const dryRun = q.getAll('dryRun').includes('All');
    const aggregate =
      r.def === CLUSTER_ROLES &&
      !dryRun &&
      ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(r.verb);
    try {
      return await this.serveVerb(req, res, r, q, user, dryRun);
    } finally {
      // Synchronously after the write, before any other request is served.
      if (aggregate) this.aggregateClusterRoles();
    }
  }

  /**
   * Fills the rules of every ClusterRole with an aggregationRule, as the clusterrole-aggregation
   * controller does (here synchronously, after each ClusterRole write). Repeats until nothing
   * changes so aggregates of aggregates settle too.
   */
  aggregateClusterRoles(): void {
    for (let pass = 0; pass < 10; pass++) {
      let changed = false;
      const all = this.store.list(CLUSTER_ROLES.storeKind) as Array<KubeObject & Role>;
      for (const role of all) {
        if (!isObj(role.aggregationRule)) continue;
        const rules = aggregatedRules(role as Parameters<typeof aggregatedRules>[0], all);
        if (JSON.stringify(rules) === JSON.stringify(role.rules ?? [])) continue;
        const { resourceVersion: _rv, ...meta } = role.metadata as KubeObject['metadata'];
        this.store.update(CLUSTER_ROLES.storeKind, CLUSTER_ROLES.resource, RBAC_GROUP, {
          ...role,
          metadata: meta,
          rules,
        } as KubeObject);
        changed = true;
      }
      if (!changed) return;
    }
  }

  private async serveVerb(
    req: IncomingMessage,
    res: ServerResponse,
    { def, verb, namespace: ns, name }: ObjectRoute,
    q: URLSearchParams,
    user: UserInfo,
    dryRun: boolean,
  ) {
    switch (verb) {
      case 'get': {
        const o = this.store.get(def.storeKind, ns, name!);
        if (!o) throw notFound(def.resource, def.group, name!);
        return send(res, 200, withTypeMeta(def, o));
      }
      case 'list': {
        const rv = this.store.resourceVersion;
        const lf = parseLabelSelector(q.get('labelSelector'));
        const ff = parseFieldSelector(q.get('fieldSelector'));
        const items = this.store.list(def.storeKind, ns).filter((o) => lf(o) && ff(o));
        return send(res, 200, listOf(def, items, rv));
      }
      case 'watch':
        return this.watches.serve(req, res, def, ns, q);
      case 'create': {
        const mode = fieldValidation(q, 'POST');
        const body = decodeFor(res, def, await readJsonObject(req), mode);
        const obj = prepareObject(def, body, ns, undefined);
        preventEscalation(this.policy, this.log, user, def, obj, undefined);
        return send(res, 201, withTypeMeta(def, this.create(def, obj, dryRun)));
      }
      case 'update': {
        const mode = fieldValidation(q, 'PUT');
        const body = decodeFor(res, def, await readJsonObject(req), mode);
        const obj = prepareObject(def, body, ns, name);
        preventEscalation(this.policy, this.log, user, def, obj, name);
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
        const cur = this.store.get(def.storeKind, ns, name!);
        if (!cur) throw notFound(def.resource, def.group, name!);
        const patched: unknown = applyPatch(type, withTypeMeta(def, cur), patch);
        if (!isObj(patched)) throw badRequest('the patch produced something other than an object');
        const meta = isObj(patched.metadata) ? patched.metadata : {};
        // Identity fields cannot be patched; a patch that carries a resourceVersion is a precondition.
        patched.metadata = { ...meta, name, ...(ns ? { namespace: ns } : {}) };
        const decoded = decodeFor(
          res,
          def,
          patched,
          mode,
          isObj(patch) || Array.isArray(patch) ? patch : patched,
        );
        const obj = prepareObject(def, decoded, ns, name);
        preventEscalation(this.policy, this.log, user, def, obj, name);
        return send(res, 200, withTypeMeta(def, this.update(def, obj, dryRun)));
      }
      case 'delete': {
        if (def === NAMESPACES && SYSTEM_NAMESPACES.includes(name!)) {
          throw new ApiError(
            403,
            'Forbidden',
            `namespaces "${name}" is forbidden: this namespace may not be deleted`,
            {
              name: name!,
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
        const o = this.store.delete(def.storeKind, def.resource, def.group, ns, name!, dryRun);
        if (def === NAMESPACES && !dryRun) this.deleteNamespaceContents(name!);
        return send(res, 200, withTypeMeta(def, o));
      }
      case 'deletecollection': {
        const lf = parseLabelSelector(q.get('labelSelector'));
        const ff = parseFieldSelector(q.get('fieldSelector'));
        const items = this.store.list(def.storeKind, ns).filter((o) => lf(o) && ff(o));
        for (const o of items) {
          this.store.delete(
            def.storeKind,
            def.resource,
            def.group,
            o.metadata.namespace,
            o.metadata.name,
            dryRun,
          );
        }
        return send(res, 200, listOf(def, items, this.store.resourceVersion));
      }
      default:
        throw methodNotAllowed();
    }
  }

  private deleteNamespaceContents(ns: string) {
    for (const d of STORED) {
      if (!d.namespaced) continue;
      for (const o of this.store.list(d.storeKind, ns)) {
        this.store.delete(d.storeKind, d.resource, d.group, ns, o.metadata.name);
      }
    }
  }

  /** Creates an object; a new namespace gets its `default` ServiceAccount. */
  create(def: ResourceDef, obj: KubeObject, dryRun = false): KubeObject {
    if (
      def.namespaced &&
      !this.store.peek(NAMESPACES.storeKind, undefined, obj.metadata.namespace!)
    ) {
      throw notFound('namespaces', '', obj.metadata.namespace!);
    }
    if (def === PODS) {
      // The ServiceAccount admission plugin: a pod runs as an existing ServiceAccount.
      const ns = obj.metadata.namespace!;
      const sa = (obj.spec as { serviceAccountName: string }).serviceAccountName;
      if (!this.store.peek(SERVICE_ACCOUNTS.storeKind, ns, sa)) {
        throw new ApiError(
          403,
          'Forbidden',
          `pods "${obj.metadata.name}" is forbidden: error looking up service account ${ns}/${sa}: serviceaccount "${sa}" not found`,
          { name: obj.metadata.name, kind: 'pods' },
        );
      }
    }
    const created = this.store.create(def.storeKind, def.resource, def.group, obj, dryRun);
    if (def === NAMESPACES && !dryRun) {
      this.store.create(SERVICE_ACCOUNTS.storeKind, SERVICE_ACCOUNTS.resource, '', {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'default', namespace: obj.metadata.name },
      });
    }
    return created;
  }

  private update(def: ResourceDef, obj: KubeObject, dryRun: boolean): KubeObject {
    const cur = this.store.peek(def.storeKind, obj.metadata.namespace, obj.metadata.name);
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
    return this.store.update(def.storeKind, def.resource, def.group, obj, dryRun);
  }
}

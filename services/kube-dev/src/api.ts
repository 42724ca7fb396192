import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { type Authenticator, forbidden, impersonate } from './auth.js';
import { Discovery } from './discovery.js';
import { ApiError } from './errors.js';
import { readJsonObject, send, sendError, warn } from './http.js';
import { Objects } from './objects.js';
import {
  authorize,
  type Attributes,
  type RbacPolicy,
  type Role,
  type RoleBinding,
  type UserInfo,
} from './rbac.js';
import { CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, ROLE_BINDINGS, ROLES } from './resources.js';
import { Reviews } from './reviews.js';
import {
  nonResourceVerb,
  parseTarget,
  requestLine,
  resourceAttributes,
  route,
  verbOf,
} from './routing.js';
import type { KubeObject, ObjectStore } from './store.js';
import { tokenRequest } from './token-request.js';
import type { SigningKey } from './tokens.js';
import { decodeBody, fieldValidation } from './validation.js';
import { Watches } from './watch.js';

const ANONYMOUS_USER = 'system:anonymous';
const UNAUTHENTICATED = 'system:unauthenticated';

/** What the API serves from and how it names itself. */
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
function storePolicy(store: ObjectStore): RbacPolicy {
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

/**
 * The Kubernetes REST API of kube-dev, as one node:http request handler: authenticate (bearer
 * token, else anonymous), impersonate, authorize with RBAC, then route to discovery, a
 * TokenRequest, a review or the stored objects.
 */
export class KubeApi {
  /** The stored objects' verbs; also how bootstrap creates the built-in objects. */
  readonly objects: Objects;
  private readonly policy: RbacPolicy;
  private readonly watches: Watches;
  private readonly discovery: Discovery;
  private readonly reviews: Reviews;

  constructor(private readonly ctx: ApiContext) {
    this.policy = storePolicy(ctx.store);
    this.watches = new Watches(ctx.store);
    this.objects = new Objects(ctx.store, this.policy, this.watches, ctx.log);
    this.discovery = new Discovery(ctx);
    this.reviews = new Reviews(this.policy, ctx.authenticator);
  }

  /** Ends every open watch (on shutdown). */
  closeWatches(): void {
    this.watches.closeAll();
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.serve(req, res).catch((err: unknown) => {
      if (err instanceof ApiError) return sendError(res, err);
      this.ctx.log.error({ err }, 'request failed');
      sendError(res, new ApiError(500, 'InternalError', 'an internal error occurred'));
    });
  };

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { method, url, path } = requestLine(req);
    const requester = await this.authenticateRequest(req);
    const user = impersonate(this.policy, requester, req.headersDistinct);
    const log = this.ctx.log.child({ user: user.username, method, path });

    const target = parseTarget(path);
    if (!target) {
      // Health, /version and OIDC discovery are authorized like any path: the bootstrap
      // bindings open the first two to everyone and discovery to ServiceAccounts, as in
      // kube-apiserver.
      this.authorizeOrThrow(user, { verb: nonResourceVerb(method), path });
      return this.discovery.serve(req, res, method, path, url);
    }
    const q = url.searchParams;
    const verb = verbOf(method, target, q);
    this.authorizeOrThrow(user, resourceAttributes(target, verb));
    log.debug({ verb, resource: target.resource }, 'request');
    const r = route(method, verb, target);
    switch (r.kind) {
      case 'token-request': {
        const body = await this.decode(req, res, 'TokenRequest', 'authentication.k8s.io/v1', q);
        return send(res, 201, await tokenRequest(this.ctx, r.namespace, r.name, body));
      }
      case 'review': {
        const body = await this.decode(req, res, r.review, `${r.group}/v1`, q);
        return send(res, 201, await this.reviews.answer(r.review, body, user, r.namespace));
      }
      case 'object':
        return this.objects.serve(req, res, r, q, user);
    }
  }

  /** The body of a create-only endpoint (TokenRequest, reviews), decoded for `kind`. */
  private async decode(
    req: IncomingMessage,
    res: ServerResponse,
    kind: string,
    apiVersion: string,
    q: URLSearchParams,
  ): Promise<Record<string, unknown>> {
    const mode = fieldValidation(q, 'POST');
    const d = decodeBody(kind, apiVersion, await readJsonObject(req), mode);
    warn(res, d.warnings);
    return d.object;
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
}

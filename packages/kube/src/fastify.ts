import fp from 'fastify-plugin';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { PROBLEM_CONTENT_TYPE } from '@precinct/runtime/http';
import type { ServiceAccountIdentity } from './identity.js';
import type { TokenVerifier } from './verifier.js';
import type { UserInfo } from './sar.js';
import {
  kubeAuthCore,
  stripIdentityHeaders,
  resolveAttrs,
  type AuthOutcome,
  type KubeAuthOptions,
  type RouteAuthorization,
} from './middleware.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified caller; set on every route the plugin protects (ServiceAccount mode). */
    identity?: ServiceAccountIdentity;
  }
  interface FastifyContextConfig {
    /** Per-route RBAC attributes; `false` makes the route public (no token needed). */
    kubeAuth?: RouteAuthorization<FastifyRequest> | false;
  }
}

/**
 * What the plugin needs of `request.spiffeId` (a `SpiffeId` of @precinct/spiffe, set by its
 * `spiffeFastify` plugin): structural, so this package does not load the SPIFFE SDK.
 */
export interface SpiffePeerId {
  toString(): string;
  readonly trustDomain: { idString(): string };
}

/**
 * The Kubernetes user an mTLS peer is to RBAC: User `<SPIFFE ID>` in Group `<trust domain ID>`
 * (e.g. `spiffe://example.org/ns/a/sa/b` in `spiffe://example.org`), so a RoleBinding can name
 * one workload or a whole trust domain.
 */
export function spiffeUser(id: SpiffePeerId): UserInfo {
  return { username: id.toString(), groups: [id.trustDomain.idString()] };
}

interface CommonOptions extends Omit<KubeAuthOptions, 'verifier'> {
  /** Attributes for routes that don't set `config.kubeAuth`. Default: authenticate only. */
  defaultAuthorization?: RouteAuthorization<FastifyRequest>;
}

export type KubeAuthFastifyOptions =
  | (CommonOptions & {
      /**
       * How a caller is authenticated. `'serviceAccountToken'` (the default): a Kubernetes
       * ServiceAccount token in `Authorization: Bearer`, checked by `verifier`; the caller is
       * `request.identity`, and RBAC always checks the route's attributes.
       */
      caller?: 'serviceAccountToken';
      verifier: TokenVerifier;
    })
  | (CommonOptions & {
      /**
       * `'spiffe'`: the mTLS peer's SPIFFE ID, `request.spiffeId` from @precinct/spiffe's
       * `spiffeFastify` (register it first; registration fails otherwise). No token is read.
       */
      caller: 'spiffe';
      /**
       * `true`: RBAC checks the route's attributes for `spiffeUser(request.spiffeId)` (needs
       * `authorizer`). `false`: the TLS authorizer given to `tlsServerOptions` is the only
       * authorization and route attributes are not asked. No default: the choice is explicit.
       */
      rbac: boolean;
    });

const plugin: FastifyPluginAsync<KubeAuthFastifyOptions> = async (app, opts) => {
  const spiffe = checkOptions(opts, (name) => app.hasRequestDecorator(name));
  const auth = kubeAuthCore(opts);
  const rbac = !spiffe || opts.rbac;
  if (!spiffe) app.decorateRequest('identity', undefined);

  async function peerOutcome(
    req: FastifyRequest,
    attrs: ReturnType<typeof resolveAttrs>,
  ): Promise<AuthOutcome | { ok: true; identity?: undefined }> {
    stripIdentityHeaders(req.headers);
    const id = (req as unknown as { spiffeId?: SpiffePeerId }).spiffeId;
    // spiffeServer admits only authenticated peers, so this is a plain-HTTP or misbuilt server.
    if (!id) return auth.refuse(401, 'ERR_NO_SPIFFE_ID');
    const denied = await auth.authorize(spiffeUser(id), rbac ? attrs : []);
    return denied ?? { ok: true };
  }

  app.addHook('onRequest', async (req, reply) => {
    const route = req.routeOptions.config.kubeAuth;
    if (route === false) {
      // Public routes still never see a client-supplied identity.
      stripIdentityHeaders(req.headers);
      return;
    }
    const attrs = resolveAttrs(route ?? opts.defaultAuthorization, req);
    const outcome = spiffe ? await peerOutcome(req, attrs) : await auth.check(req.headers, attrs);
    if (outcome.ok) {
      if (outcome.identity) req.identity = outcome.identity;
      return;
    }
    // A bearer challenge only where a bearer token is what the caller should send.
    if (!spiffe && outcome.problem.status === 401) reply.header('www-authenticate', 'Bearer');
    return reply.code(outcome.problem.status).type(PROBLEM_CONTENT_TYPE).send(outcome.problem);
  });
};

/** Checks the options at registration (a bad option fails start-up); true in SPIFFE mode. */
function checkOptions(
  opts: KubeAuthFastifyOptions,
  hasRequestDecorator: (name: string) => boolean,
): opts is Extract<KubeAuthFastifyOptions, { caller: 'spiffe' }> {
  const caller: unknown = opts?.caller ?? 'serviceAccountToken';
  if (caller === 'serviceAccountToken') {
    if (typeof (opts as { verifier?: TokenVerifier }).verifier?.verify !== 'function') {
      throw new TypeError('kubeAuthFastifyPlugin: a verifier is required');
    }
    return false;
  }
  if (caller !== 'spiffe') {
    throw new TypeError(
      `kubeAuthFastifyPlugin: caller must be 'serviceAccountToken' or 'spiffe', not ${JSON.stringify(caller)}`,
    );
  }
  const o = opts as Extract<KubeAuthFastifyOptions, { caller: 'spiffe' }> & { verifier?: unknown };
  if (o.verifier !== undefined) {
    throw new TypeError("kubeAuthFastifyPlugin: caller 'spiffe' reads no token: drop verifier");
  }
  if (typeof o.rbac !== 'boolean') {
    throw new TypeError("kubeAuthFastifyPlugin: caller 'spiffe' needs rbac: true or false");
  }
  if (o.rbac && typeof o.authorizer?.authorize !== 'function') {
    throw new TypeError('kubeAuthFastifyPlugin: rbac: true needs an authorizer');
  }
  if (!o.rbac && o.authorizer !== undefined) {
    throw new TypeError(
      'kubeAuthFastifyPlugin: an authorizer with rbac: false would never be asked',
    );
  }
  if (!hasRequestDecorator('spiffeId')) {
    throw new TypeError(
      "kubeAuthFastifyPlugin: caller 'spiffe' needs spiffeFastify (@precinct/spiffe/fastify) registered first",
    );
  }
  return true;
}

/**
 * Fastify plugin: every route in its scope requires an authenticated caller (by default a
 * verified ServiceAccount token, `request.identity`; with `caller: 'spiffe'` the mTLS peer,
 * `request.spiffeId`) and the RBAC attributes of `config.kubeAuth` (or
 * `defaultAuthorization`). Refusals are the runtime's problem+json (401/403/503).
 */
export const kubeAuthFastifyPlugin = fp(plugin, { name: '@precinct/kube', fastify: '5.x' });

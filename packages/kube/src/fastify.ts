import fp from 'fastify-plugin';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ServiceAccountIdentity } from './identity.js';
import {
  createKubeAuth,
  stripIdentityHeaders,
  resolveAttrs,
  type KubeAuthOptions,
  type RouteAuthorization,
} from './middleware.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified caller; set on every route the plugin protects. */
    identity?: ServiceAccountIdentity;
  }
  interface FastifyContextConfig {
    /** Per-route RBAC attributes; `false` makes the route public (no token needed). */
    kubeAuth?: RouteAuthorization<FastifyRequest> | false;
  }
}

export interface KubeAuthFastifyOptions extends KubeAuthOptions {
  /** Attributes for routes that don't set `config.kubeAuth`. Default: authenticate only. */
  defaultAuthorization?: RouteAuthorization<FastifyRequest>;
}

const plugin: FastifyPluginAsync<KubeAuthFastifyOptions> = async (app, opts) => {
  if (!opts || typeof opts.verifier?.verify !== 'function') {
    throw new TypeError('kubeAuthFastifyPlugin: a verifier is required');
  }
  const auth = createKubeAuth(opts);
  app.decorateRequest('identity', undefined);
  app.addHook('onRequest', async (req, reply) => {
    const route = req.routeOptions.config.kubeAuth;
    if (route === false) {
      // Public routes still never see a client-supplied identity.
      stripIdentityHeaders(req.headers);
      return;
    }
    const outcome = await auth.check(
      req.headers,
      resolveAttrs(route ?? opts.defaultAuthorization, req),
    );
    if (outcome.ok) {
      req.identity = outcome.identity;
      return;
    }
    if (outcome.problem.status === 401) reply.header('www-authenticate', 'Bearer');
    return reply
      .code(outcome.problem.status)
      .type('application/problem+json')
      .send(outcome.problem);
  });
};

/**
 * Fastify plugin: every route in its scope requires a verified ServiceAccount token and the
 * RBAC attributes of `config.kubeAuth` (or `defaultAuthorization`); `request.identity` holds
 * the caller.
 */
export const kubeAuthFastifyPlugin = fp(plugin, { name: '@precinct/kube', fastify: '5.x' });

// Who is calling, and for whom: the verified caller (SPIFFE mTLS peer or Kubernetes bearer
// token, authorized by RBAC per route) and, from a verified delegation token, the person it
// acts for. Nothing a client claims in a header is believed.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import {
  KubeAuthError,
  kubeAuthFastifyPlugin,
  parseServiceAccountUsername,
  type Authorizer,
  type ResourceAttributes,
  type TokenVerifier,
} from '@precinct/kube';
import { DELEGATION_HEADER, DelegationError, type DelegationVerifier } from '@precinct/delegation';
import type { SpiffeTlsServerOptions } from '@precinct/spiffe';
import { spiffeFastify } from '@precinct/spiffe/fastify';
import type { Logger } from '@precinct/runtime';
import { sendProblem } from '@precinct/runtime/http';
import type { Writer } from '../events.js';
import { stringProblem } from '../input.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified caller when it is not a bearer-token identity (SPIFFE mTLS). */
    caller?: { written_by: string; written_by_kind: string };
    /** The person a verified delegation token says the caller acts for. */
    onBehalfOf?: string;
  }
}

/** Where RBAC is asked (Kubernaut's tiers); every field configurable. */
export interface AuthzTarget {
  group?: string;
  resource: string;
  name: string;
  namespace: string;
}

/** The audience of tokens minted for the store (`kubectl create token SA --audience ...`). */
export const DEFAULT_TOKEN_AUDIENCE = 'data-storage-service';

/**
 * Refuses (401, ERR_TOKEN_AUDIENCE) a verified identity whose audiences name none of the
 * store's: a token minted for the Kubernetes API (or any other service) is not a credential
 * for the store, even from a verifier that forgot to ask for the audience.
 */
function audienceBound(inner: TokenVerifier, audiences: readonly string[]): TokenVerifier {
  if (audiences.length === 0 || audiences.some((a) => !a))
    throw new TypeError('tokenAudiences: at least one non-empty audience is required');
  return {
    async verify(token) {
      const id = await inner.verify(token);
      if (!id.audiences.some((a) => audiences.includes(a)))
        throw new KubeAuthError('ERR_TOKEN_AUDIENCE', 'token not issued for the audit store');
      return id;
    },
    ...(inner.close ? { close: () => inner.close!() } : {}),
  };
}

/** Who is writing, from proof only: the mTLS peer or the verified bearer token. */
function callerOf(req: FastifyRequest): { written_by: string; written_by_kind: string } {
  if (req.caller) return req.caller;
  if (req.identity)
    return {
      written_by: req.identity.username,
      written_by_kind: parseServiceAccountUsername(req.identity.username)
        ? 'serviceaccount'
        : 'user',
    };
  return { written_by: 'anonymous', written_by_kind: 'unauthenticated' };
}

/** Who writes an event: the verified caller, and the person a verified delegation names. */
export function writerOf(req: FastifyRequest): Writer {
  return { ...callerOf(req), on_behalf_of: req.onBehalfOf ?? null };
}

/** The route configs of each kind of access: RBAC verbs on the store's target, or public. */
export interface RouteAccess {
  READ: { kubeAuth: ResourceAttributes[] };
  WRITE: { kubeAuth: ResourceAttributes[] };
  HOLD: { kubeAuth: ResourceAttributes[] };
  PUBLIC: { kubeAuth: false };
}

export function routeAccess(authz: AuthzTarget): RouteAccess {
  const attr = (verb: string): ResourceAttributes => ({
    verb,
    resource: authz.resource,
    name: authz.name,
    namespace: authz.namespace,
    ...(authz.group ? { group: authz.group } : {}),
  });
  return {
    READ: { kubeAuth: [attr('get')] },
    WRITE: { kubeAuth: [attr('get'), attr('create')] },
    HOLD: { kubeAuth: [attr('update')] },
    PUBLIC: { kubeAuth: false },
  };
}

export interface AuthOptions {
  /** Kubernetes auth (see `AuditStoreOptions.auth`); `false` for local development only. */
  auth: { verifier: TokenVerifier; authorizer: Authorizer } | false;
  /** From `tlsServerOptions()`: the app serves SPIFFE mTLS and the peer is the caller. */
  spiffeTls?: SpiffeTlsServerOptions;
  delegation?: DelegationVerifier;
  /** Default `[DEFAULT_TOKEN_AUDIENCE]`. */
  tokenAudiences?: readonly string[];
  logger: Logger;
  registry: Registry;
}

/**
 * Installs the authentication hooks on the root of `app` (so they run before every route, in
 * this order): the caller (mTLS peer + RBAC, or bearer token + RBAC), then the delegation
 * token. A route whose `config.kubeAuth` is false is public.
 */
export async function installAuth(app: FastifyInstance, opts: AuthOptions): Promise<void> {
  const auth = opts.auth && {
    verifier: audienceBound(opts.auth.verifier, opts.tokenAudiences ?? [DEFAULT_TOKEN_AUDIENCE]),
    authorizer: opts.auth.authorizer,
  };
  if (opts.spiffeTls) {
    // spiffeServer (installed by the plugin) hands only authenticated connections to Fastify;
    // the kube plugin then asks RBAC about the peer's SPIFFE ID (a User in its trust domain's
    // Group) for each route's attributes, or, without Kubernetes auth, only the TLS authorizer
    // decides.
    await app.register(spiffeFastify, { tlsOptions: opts.spiffeTls });
    await app.register(kubeAuthFastifyPlugin, {
      caller: 'spiffe',
      ...(auth ? { rbac: true, authorizer: auth.authorizer } : { rbac: false }),
      logger: opts.logger,
      registry: opts.registry,
    });
    app.addHook('onRequest', async (req) => {
      if (req.routeOptions.config.kubeAuth === false || !req.spiffeId) return;
      req.caller = { written_by: req.spiffeId.toString(), written_by_kind: 'spiffe' };
    });
  } else if (auth) {
    await app.register(kubeAuthFastifyPlugin, {
      verifier: auth.verifier,
      authorizer: auth.authorizer,
      logger: opts.logger,
      registry: opts.registry,
    });
  }
  app.decorateRequest('caller', undefined);
  app.decorateRequest('onBehalfOf', undefined);
  const delegations = new Counter({
    name: 'precinct_audit_delegation_total',
    help: 'Requests that carried a delegation token, by result and reason.',
    labelNames: ['result', 'reason'],
    registers: [opts.registry],
  });
  // After authentication (hooks run in registration order): a delegation token is believed
  // only when it verifies and names the verified caller as its actor.
  app.addHook('onRequest', async (req, reply) => {
    const raw = req.headers[DELEGATION_HEADER];
    delete req.headers[DELEGATION_HEADER];
    if (raw === undefined || req.routeOptions.config.kubeAuth === false) return;
    const refuse = (status: 401 | 503, reason: string) => {
      delegations.inc({ result: 'refused', reason });
      req.log.warn({ reason, status }, 'delegation token refused');
      return sendProblem(
        reply,
        status === 401 ? 'authentication_failed' : 'authentication_unavailable',
      );
    };
    if (!opts.delegation) return refuse(401, 'not_configured');
    if (typeof raw !== 'string') return refuse(401, 'malformed');
    try {
      const d = await opts.delegation.verify(raw, { actor: callerOf(req).written_by });
      // The person is stored and hashed like any field: a subject the database cannot keep
      // exactly would make this writer's chain verify as tampered.
      if (stringProblem(d.subject) || d.subject.length > 255)
        return refuse(401, 'malformed_subject');
      req.onBehalfOf = d.subject;
      delegations.inc({ result: 'accepted', reason: 'ok' });
    } catch (err) {
      if (!(err instanceof DelegationError)) throw err;
      return refuse(err.reason === 'jwks_unavailable' ? 503 : 401, err.reason);
    }
  });
}

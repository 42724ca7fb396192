import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Counter, register as defaultRegistry, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { PROBLEM_CONTENT_TYPE, problem, type ProblemDetails } from '@precinct/runtime/http';
import { KubeError, type KubeErrorCode } from './errors.js';
import type { ServiceAccountIdentity } from './identity.js';
import type { TokenVerifier } from './verifier.js';
import type { Authorizer, NonResourceAttributes, ResourceAttributes, UserInfo } from './sar.js';

/** Headers through which a client could claim an identity. Removed before anything reads them. */
const IDENTITY_HEADER_PREFIXES = ['impersonate-', 'x-remote-extra-'];
const IDENTITY_HEADERS = new Set([
  'x-auth-request-user',
  'x-auth-request-email',
  'x-auth-request-groups',
  'x-auth-request-preferred-username',
  'x-remote-user',
  'x-remote-group',
  'x-spiffe-id',
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-groups',
]);

/** Authorization headers longer than this are refused before parsing (tokens are <= 16 KiB). */
const MAX_AUTHORIZATION_HEADER = 16 * 1024 + 7;

/** Deletes every client-supplied identity header in place; returns the names removed. */
export function stripIdentityHeaders(headers: IncomingHttpHeaders): string[] {
  const removed: string[] = [];
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (IDENTITY_HEADERS.has(lower) || IDENTITY_HEADER_PREFIXES.some((p) => lower.startsWith(p))) {
      delete headers[name];
      removed.push(lower);
    }
  }
  return removed;
}

/** What to ask RBAC for a request: one attribute set, several (all must be allowed), or none. */
export type RouteAuthorization<Req = IncomingMessage> =
  | ResourceAttributes
  | NonResourceAttributes
  | Array<ResourceAttributes | NonResourceAttributes>
  | ((
      req: Req,
    ) =>
      | ResourceAttributes
      | NonResourceAttributes
      | Array<ResourceAttributes | NonResourceAttributes>);

export interface KubeAuthOptions {
  verifier: TokenVerifier;
  /** Needed when any route asks RBAC. */
  authorizer?: Authorizer;
  logger?: Logger;
  /** prom-client registry for precinct_kube_auth_requests_total. Default: the global one. */
  registry?: Registry;
}

/**
 * Why a request was refused: a KubeError code or one of the middleware's own. Logs and the
 * metric's `reason` label carry it (a bounded set); clients only ever see the generic problem.
 */
type RefusalReason =
  KubeErrorCode | 'ERR_INTERNAL' | 'ERR_NO_AUTHORIZER' | 'ERR_RBAC_DENIED' | 'ERR_NO_SPIFFE_ID';

/** A refusal: the problem details to answer with (from the runtime's one table). */
type Denied = { ok: false; problem: ProblemDetails };

export type AuthOutcome = { ok: true; identity: ServiceAccountIdentity } | Denied;

const REFUSAL = {
  401: 'authentication_failed',
  403: 'authorization_failed',
  503: 'authorization_unavailable',
} as const;

const METRIC = 'precinct_kube_auth_requests_total';

function counterFor(registry: Registry): Counter<'result' | 'reason'> {
  const existing = registry.getSingleMetric(METRIC);
  if (existing) return existing as Counter<'result' | 'reason'>;
  return new Counter({
    name: METRIC,
    help: 'Requests seen by the Precinct Kubernetes auth middleware, by result and reason.',
    labelNames: ['result', 'reason'],
    registers: [registry],
  });
}

/** Bearer token of an Authorization header, or a reason code why there is none. */
export function bearerToken(
  header: string | string[] | undefined,
):
  | { token: string }
  | { reason: 'ERR_TOKEN_MISSING' | 'ERR_TOKEN_MALFORMED' | 'ERR_TOKEN_TOO_LARGE' } {
  if (header === undefined || header === '') return { reason: 'ERR_TOKEN_MISSING' };
  if (Array.isArray(header)) return { reason: 'ERR_TOKEN_MALFORMED' };
  if (header.length > MAX_AUTHORIZATION_HEADER) return { reason: 'ERR_TOKEN_TOO_LARGE' };
  const m = /^Bearer +([A-Za-z0-9\-_.~+/]+=*) *$/i.exec(header);
  if (!m) return { reason: 'ERR_TOKEN_MALFORMED' };
  return { token: m[1]! };
}

/**
 * The decision procedure both adapters share: strip identity headers, authenticate, authorize.
 * Clients get one of three generic problems; the specific reason goes to the log and the
 * metric label (a bounded set: the ERR_ codes).
 */
export function createKubeAuth(opts: KubeAuthOptions) {
  const { refuse: _refuse, ...auth } = kubeAuthCore(opts);
  return auth;
}

/**
 * createKubeAuth without a required verifier, for the Fastify plugin's SPIFFE mode (which
 * never reads a token), plus `refuse` for refusals it decides itself.
 */
export function kubeAuthCore(
  opts: Omit<KubeAuthOptions, 'verifier'> & { verifier?: TokenVerifier },
) {
  const counter = counterFor(opts.registry ?? defaultRegistry);
  const log = opts.logger;

  function fail(
    status: 401 | 403 | 503,
    reason: RefusalReason,
    extra?: Record<string, unknown>,
  ): Denied {
    const result = status === 401 ? 'unauthenticated' : status === 403 ? 'denied' : 'unavailable';
    counter.inc({ result, reason });
    log?.warn({ reason, status, ...extra }, 'kube auth refused a request');
    return { ok: false, problem: problem(REFUSAL[status]) };
  }

  return {
    refuse: (status: 401 | 403 | 503, reason: RefusalReason): Denied => fail(status, reason),
    async check(
      headers: IncomingHttpHeaders,
      attrs: Array<ResourceAttributes | NonResourceAttributes>,
    ): Promise<AuthOutcome> {
      stripIdentityHeaders(headers);
      if (!opts.verifier) throw new TypeError('kube auth: check() needs a verifier');
      const bearer = bearerToken(headers.authorization);
      if ('reason' in bearer) return fail(401, bearer.reason);
      let identity: ServiceAccountIdentity;
      try {
        identity = await opts.verifier.verify(bearer.token);
      } catch (err) {
        const code = err instanceof KubeError ? err.code : 'ERR_INTERNAL';
        if (code === 'ERR_KUBE_UNAVAILABLE' || code === 'ERR_INTERNAL') return fail(503, code);
        return fail(401, code);
      }
      const denied = await authorizeAll(
        {
          username: identity.username,
          ...(identity.uid ? { uid: identity.uid } : {}),
          groups: identity.groups,
          extra: identity.extra,
        },
        attrs,
      );
      if (denied) return denied;
      counter.inc({ result: 'allowed', reason: 'ok' });
      return { ok: true, identity };
    },
    /**
     * RBAC only, for a caller another mechanism already authenticated (an mTLS peer's SPIFFE
     * ID, say, which Kubernetes RBAC can bind as a User). Same decisions, metric and log as
     * `check`; resolves undefined when every attribute set is allowed.
     */
    async authorize(
      user: UserInfo,
      attrs: Array<ResourceAttributes | NonResourceAttributes>,
    ): Promise<Denied | undefined> {
      const denied = await authorizeAll(user, attrs);
      if (denied) return denied;
      counter.inc({ result: 'allowed', reason: 'ok' });
      return undefined;
    },
  };

  async function authorizeAll(
    user: UserInfo,
    attrs: Array<ResourceAttributes | NonResourceAttributes>,
  ): Promise<Denied | undefined> {
    if (attrs.length === 0) return undefined;
    if (!opts.authorizer) return fail(503, 'ERR_NO_AUTHORIZER');
    for (const a of attrs) {
      try {
        const d = await opts.authorizer.authorize(user, a);
        if (!d.allowed) return fail(403, 'ERR_RBAC_DENIED', { user: user.username, verb: a.verb });
      } catch (err) {
        const code = err instanceof KubeError ? err.code : 'ERR_INTERNAL';
        return fail(503, code);
      }
    }
    return undefined;
  }
}

/** The attribute sets a route asks RBAC for (none for a public route). */
export function resolveAttrs<Req>(
  route: RouteAuthorization<Req> | undefined | false,
  req: Req,
): Array<ResourceAttributes | NonResourceAttributes> {
  if (!route) return [];
  const v = typeof route === 'function' ? route(req) : route;
  return Array.isArray(v) ? v : [v];
}

// The node:http adapter answers the RFC 9457 members only (type, title, status): its body is
// pinned by users' tests from before the runtime's `code` extension member existed.
function sendNodeProblem(res: ServerResponse, p: ProblemDetails): void {
  const body = JSON.stringify({ type: p.type, title: p.title, status: p.status });
  res.writeHead(p.status, {
    'content-type': PROBLEM_CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
    ...(p.status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
  });
  res.end(body);
}

export interface NodeHttpAuthOptions extends KubeAuthOptions {
  authorization?: RouteAuthorization<IncomingMessage>;
}

/**
 * node:http adapter. Returns a function to call first in a request handler: it resolves with
 * the identity, or answers the request itself (401/403/503) and resolves undefined.
 */
export function createNodeHttpAuth(opts: NodeHttpAuthOptions) {
  const auth = createKubeAuth(opts);
  return async (
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<ServiceAccountIdentity | undefined> => {
    const outcome = await auth.check(req.headers, resolveAttrs(opts.authorization, req));
    if (outcome.ok) return outcome.identity;
    sendNodeProblem(res, outcome.problem);
    return undefined;
  };
}

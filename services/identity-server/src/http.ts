import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '@precinct/runtime';
import {
  probesPlugin,
  sendProblem,
  type ProblemCode,
  type ReadyCheck,
} from '@precinct/runtime/http';
import type { WorkloadSockets } from './attestation.js';
import type { KeyManager } from './authority.js';
import { bundleDocument } from './federation.js';
import type { EntryRegistry } from './entries.js';
import { IdentityServerError, type IdentityServerErrorCode } from './errors.js';
import type { IdentityMetrics } from './metrics.js';
import { attestRoutes } from './routes/attest.js';
import { entryRoutes } from './routes/entries.js';

function childLogger(logger: Logger, component: string, quiet = false): FastifyBaseLogger {
  // pino's Logger and fastify's logger type differ only in generics. Probes and key fetches
  // are frequent and routine: `quiet` keeps their per-request lines out of the log.
  const child = logger.child({ component }, quiet ? { level: 'warn' } : {});
  return child as unknown as FastifyBaseLogger;
}

// Each identity-server error code's answer, as a code of the shared problem table (which owns
// the statuses). Codes not here are internal errors (500).
const PROBLEM_OF: Partial<Record<IdentityServerErrorCode, ProblemCode>> = {
  ERR_ENTRY_INVALID: 'bad_request',
  ERR_TRUST_DOMAIN_MISMATCH: 'bad_request',
  ERR_ADMIN_REQUEST: 'bad_request',
  ERR_ADMIN_UNAUTHORIZED: 'authentication_failed',
  ERR_ATTESTATION_FAILED: 'authentication_failed',
  ERR_ENTRY_NOT_FOUND: 'not_found',
  ERR_ENTRY_EXISTS: 'conflict',
};

// Fastify's own client errors (schema validation, body size, media type) keep their status.
const CLIENT_ERROR: Record<number, ProblemCode> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
  431: 'request_headers_too_large',
};

/**
 * The admin API (`/v1/entries`, bearer token) and the attestation endpoint (`POST /v1/attest`,
 * authenticated by the ServiceAccount token it carries). Entry errors are shown to the admin in
 * full (they describe the admin's own input); attestation failures are generic.
 */
export function createAdminApp(deps: {
  entries: EntryRegistry;
  sockets: WorkloadSockets;
  adminToken: string;
  logger: Logger;
  /** The token audience attestation expects, named in a 401 (see IdentityServerOptions). */
  attestAudience?: string;
}): FastifyInstance {
  const app = Fastify({
    loggerInstance: childLogger(deps.logger, 'admin-api'),
    bodyLimit: 64 * 1024,
  });
  app.setErrorHandler((err: unknown, req, reply) => {
    if (err instanceof IdentityServerError) {
      const code = PROBLEM_OF[err.code];
      if (err.code === 'ERR_ATTESTATION_FAILED') {
        // Which token to bring is no secret, and without it a newcomer cannot tell a wrong
        // audience from a wrong cluster; why this one failed stays in the log.
        const detail = deps.attestAudience
          ? `present a Kubernetes ServiceAccount token for the audience "${deps.attestAudience}" (kubectl create token SA --audience ${deps.attestAudience})`
          : undefined;
        return sendProblem(reply, 'authentication_failed', detail);
      }
      // The body's `code` is the domain error's own ERR_* code (and `detail` says what was
      // wrong with the admin's input); status and title are the table entry's.
      if (code) return sendProblem(reply, code, err.message, err.code);
    }
    const e = err as { code?: string; statusCode?: number; validation?: unknown };
    if (e.code === 'ERR_KUBE_UNAVAILABLE' || e.code === 'ERR_DB_UNAVAILABLE') {
      req.log.warn({ code: e.code }, 'admin API: a dependency is unavailable');
      return sendProblem(reply, 'unavailable');
    }
    if (e.validation) return sendProblem(reply, 'bad_request');
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return sendProblem(reply, CLIENT_ERROR[e.statusCode] ?? 'bad_request');
    }
    req.log.error({ err }, 'admin API error');
    return sendProblem(reply, 'internal');
  });
  app.setNotFoundHandler((_req, reply) => sendProblem(reply, 'not_found'));

  void app.register(attestRoutes, { sockets: deps.sockets });
  void app.register(entryRoutes, { entries: deps.entries, adminToken: deps.adminToken });
  return app;
}

/**
 * The OIDC discovery provider for JWT-SVIDs: `/.well-known/openid-configuration` and `/keys`
 * (the published JWT keys with `use: sig`, as relying parties such as clouds expect).
 */
export function createOidcApp(deps: {
  keys: KeyManager;
  issuer: () => string;
  logger: Logger;
  /** Serve HTTPS (relying parties such as clouds require an https issuer). */
  tls?: { certPem: string; keyPem: string };
}): FastifyInstance {
  const app = Fastify({
    loggerInstance: childLogger(deps.logger, 'oidc', true),
    ...(deps.tls ? { https: { cert: deps.tls.certPem, key: deps.tls.keyPem } } : {}),
  }) as unknown as FastifyInstance;
  app.get('/.well-known/openid-configuration', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    const issuer = deps.issuer();
    return {
      issuer,
      jwks_uri: `${issuer}/keys`,
      authorization_endpoint: '',
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
    };
  });
  app.get('/keys', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    return { keys: deps.keys.jwks().keys.map((k) => ({ ...k, use: 'sig' })) };
  });
  return app;
}

/**
 * `/health` (alive), `/ready` (every check passes, else 503 naming the failing ones),
 * `/metrics` (Prometheus): the service kit's probes.
 */
export function createHealthApp(deps: {
  metrics: IdentityMetrics;
  ready: Record<string, ReadyCheck>;
  logger: Logger;
}): FastifyInstance {
  const app = Fastify({
    loggerInstance: childLogger(deps.logger, 'health', true),
  });
  void app.register(probesPlugin, { registry: deps.metrics.registry, ready: deps.ready });
  return app;
}

/**
 * The SPIFFE bundle endpoint, https_web profile: `GET /` returns this trust domain's bundle
 * (X.509 and JWT authorities, `spiffe_sequence`, `spiffe_refresh_hint`) over TLS with a web-PKI
 * certificate.
 */
export function createBundleEndpointApp(deps: {
  keys: KeyManager;
  certPem: string;
  keyPem: string;
  refreshHintSeconds: number;
  logger: Logger;
}): FastifyInstance {
  const app = Fastify({
    loggerInstance: childLogger(deps.logger, 'bundle-endpoint', true),
    https: { cert: deps.certPem, key: deps.keyPem },
  }) as unknown as FastifyInstance;
  app.get('/', async (_req, reply) => {
    reply.type('application/json');
    return bundleDocument(deps.keys, deps.refreshHintSeconds);
  });
  return app;
}

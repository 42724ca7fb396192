// The store's HTTP app: the service kit's plumbing (problem+json, probes), the store's own
// checks on every request (body, strings, caller, delegation), then one plugin per group of
// routes. Hooks are installed on the root before any route plugin, so they run for all.
import { readFileSync } from 'node:fs';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
import { Counter, type Registry } from 'prom-client';
import type { DelegationVerifier } from '@precinct/delegation';
import type { SpiffeTlsServerOptions } from '@precinct/spiffe';
import type { Logger } from '@precinct/runtime';
import { sendProblem } from '@precinct/runtime/http';
import type { Db } from './db.js';
import { DEFAULT_TIME_WINDOW, LIMITS, eventInputSchema, storedEventSchema } from './events.js';
import type { SigningKey } from './export.js';
import type { TimeWindow } from './input.js';
import type { AuditRepository } from './store.js';
import { installAuth, routeAccess, type AuthOptions, type AuthzTarget } from './http/auth.js';
import { installBodyChecks } from './http/body.js';
import { installErrorHandlers, problemClientError } from './http/problems.js';
import { exportRoutes } from './routes/export.js';
import { holdRoutes } from './routes/holds.js';
import { ingestRoutes } from './routes/ingest.js';
import { probeRoutes } from './routes/probes.js';
import { queryRoutes } from './routes/query.js';

const openapi = readFileSync(new URL('./openapi.json', import.meta.url), 'utf8');

export interface AuditAppOptions extends AuthOptions {
  authz: AuthzTarget;
  signingKey: SigningKey;
  logger: Logger;
  registry: Registry;
  maxExportEvents: number;
  delegation?: DelegationVerifier;
  /** From `tlsServerOptions()`: the app serves SPIFFE mTLS. */
  spiffeTls?: SpiffeTlsServerOptions;
  /** Default `DEFAULT_TIME_WINDOW`. */
  timeWindow?: TimeWindow;
}

/** Builds the Fastify app (not listening). */
export async function buildAuditApp(
  repo: AuditRepository,
  db: Db,
  opts: AuditAppOptions,
): Promise<FastifyInstance> {
  const app = Fastify({
    ...(opts.spiffeTls ? { https: opts.spiffeTls } : {}),
    loggerInstance: opts.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: LIMITS.bodyBytes,
    clientErrorHandler: problemClientError,
    // A path whose percent-encoding is not UTF-8 is refused by the router before any hook.
    frameworkErrors: (_err, _req, reply) =>
      sendProblem(reply as FastifyReply, 'invalid_request', 'the URL is not percent-encoded UTF-8'),
    ajv: { customOptions: { allErrors: true, removeAdditional: false, coerceTypes: false } },
  });
  app.addSchema(eventInputSchema);
  app.addSchema(storedEventSchema);
  installBodyChecks(app);
  const failures = new Counter({
    name: 'precinct_audit_write_failures_total',
    help: 'Write requests that committed nothing, by reason.',
    labelNames: ['reason'],
    registers: [opts.registry],
  });
  installErrorHandlers(app, failures);
  await installAuth(app, opts);

  const access = routeAccess(opts.authz);
  await app.register(probeRoutes, { db, registry: opts.registry });
  app.get('/openapi.json', { config: access.PUBLIC }, async (_req, reply) =>
    reply.type('application/json').send(openapi),
  );
  await app.register(ingestRoutes, {
    repo,
    access,
    registry: opts.registry,
    timeWindow: opts.timeWindow ?? DEFAULT_TIME_WINDOW,
  });
  await app.register(queryRoutes, { repo, access });
  await app.register(exportRoutes, {
    repo,
    access,
    signingKey: opts.signingKey,
    maxExportEvents: opts.maxExportEvents,
  });
  await app.register(holdRoutes, { repo, access });
  return app;
}

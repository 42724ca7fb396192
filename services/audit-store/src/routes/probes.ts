import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import { probesPlugin, sendProblem } from '@precinct/runtime/http';
import type { Db } from '../db.js';

/**
 * The probes, public (never authenticated): `@precinct/runtime/http`'s `/health`, `/ready` and
 * `/metrics`, and `/healthz`, `/readyz`, the names the chart, the CLI and existing deployments
 * probe (same checks; `/readyz` answers 503 "database unreachable" as it always has).
 */
export const probeRoutes: FastifyPluginAsync<{ db: Db; registry: Registry }> = async (
  app,
  { db, registry },
) => {
  const database = () => db.ping();
  // Public in every auth mode: the auth hooks skip routes whose kubeAuth is false.
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, kubeAuth: false };
  });
  await app.register(probesPlugin, { registry, ready: { database } });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await database();
      return { status: 'ok' };
    } catch {
      return sendProblem(reply, 'database_unreachable');
    }
  });
};

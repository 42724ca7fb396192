import type { FastifyPluginAsync } from 'fastify';
import type { WorkloadSockets } from '../attestation.js';

/**
 * `POST /v1/attest`: a workload presents its ServiceAccount token and gets its own Workload API
 * socket. Authenticated by that token alone; a refusal is the app's generic 401.
 */
export const attestRoutes: FastifyPluginAsync<{ sockets: WorkloadSockets }> = async (app, deps) => {
  app.post(
    '/v1/attest',
    {
      schema: {
        body: {
          type: 'object',
          required: ['token'],
          additionalProperties: false,
          properties: { token: { type: 'string', minLength: 1, maxLength: 16384 } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              address: { type: 'string' },
              socketPath: { type: 'string' },
              expiresAt: { type: 'string' },
              selectors: { type: 'array', items: { type: 'string' } },
            },
          },
        },
      },
    },
    async (req) => {
      const a = await deps.sockets.attest((req.body as { token: string }).token);
      return { ...a, expiresAt: a.expiresAt.toISOString() };
    },
  );
};

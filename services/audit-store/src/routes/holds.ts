// Legal holds: a correlation under hold is never pruned by retention.
import type { FastifyPluginAsync } from 'fastify';
import { sendProblem } from '@precinct/runtime/http';
import { LIMITS } from '../events.js';
import type { AuditRepository } from '../store.js';
import { writerOf, type RouteAccess } from '../http/auth.js';
import { errorResponses } from '../http/problems.js';

export interface HoldRoutesOptions {
  repo: AuditRepository;
  access: RouteAccess;
}

/** `POST`, `GET /api/v1/audit/legal-hold` and `DELETE /api/v1/audit/legal-hold/:correlation_id`. */
export const holdRoutes: FastifyPluginAsync<HoldRoutesOptions> = async (app, opts) => {
  const { repo } = opts;
  const { READ, HOLD } = opts.access;
  const holdSchema = {
    type: 'object',
    properties: {
      correlation_id: { type: 'string' },
      reason: { type: 'string' },
      placed_by: { type: 'string' },
      placed_at: { type: 'string' },
    },
  };
  app.post(
    '/api/v1/audit/legal-hold',
    {
      config: HOLD,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['correlation_id', 'reason'],
          properties: {
            correlation_id: { type: 'string', minLength: 1, maxLength: 255 },
            reason: { type: 'string', minLength: 1, maxLength: LIMITS.longString },
          },
        },
        response: { 201: holdSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const b = req.body as { correlation_id: string; reason: string };
      return reply
        .code(201)
        .send(await repo.placeHold(b.correlation_id, b.reason, writerOf(req).written_by));
    },
  );
  app.get(
    '/api/v1/audit/legal-hold',
    {
      config: READ,
      schema: {
        response: {
          200: { type: 'object', properties: { holds: { type: 'array', items: holdSchema } } },
          ...errorResponses,
        },
      },
    },
    async () => ({ holds: await repo.listHolds() }),
  );
  app.delete(
    '/api/v1/audit/legal-hold/:correlation_id',
    {
      config: HOLD,
      schema: {
        params: {
          type: 'object',
          properties: { correlation_id: { type: 'string', minLength: 1, maxLength: 255 } },
        },
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const id = (req.params as { correlation_id: string }).correlation_id;
      if (!(await repo.releaseHold(id))) return sendProblem(reply, 'legal_hold_not_found');
      return reply.code(204).send();
    },
  );
};

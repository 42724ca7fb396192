import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { sendProblem } from '@precinct/runtime/http';
import type { EntryRegistry } from '../entries.js';

/** Constant-time comparison of a presented bearer token with the expected one. */
function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

const entryBody = {
  type: 'object',
  additionalProperties: true,
  maxProperties: 16,
} as const;

const entryResponse = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    spiffeId: { type: 'string' },
    selectors: {
      type: 'array',
      items: {
        type: 'object',
        properties: { type: { type: 'string' }, value: { type: 'string' } },
      },
    },
    x509SvidTtl: { type: 'integer' },
    jwtSvidTtl: { type: 'integer' },
    dnsNames: { type: 'array', items: { type: 'string' } },
    hint: { type: 'string' },
    federatesWith: { type: 'array', items: { type: 'string' } },
    admin: { type: 'boolean' },
    revision: { type: 'integer' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const;

/**
 * The admin API: registration entries under `/v1/entries`, for the bearer of the admin token.
 * Entry errors reach the admin in full (they describe the admin's own input).
 */
export const entryRoutes: FastifyPluginAsync<{
  entries: EntryRegistry;
  adminToken: string;
}> = async (app, deps) => {
  app.addHook('onRequest', async (req, reply) => {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(h);
    if (!m || !tokenMatches(m[1]!, deps.adminToken)) {
      req.log.info({ reason: m ? 'token_mismatch' : 'token_missing' }, 'admin API refused');
      return sendProblem(reply, 'authentication_failed');
    }
  });
  const idParam = {
    type: 'object',
    properties: { id: { type: 'string', maxLength: 64 } },
    required: ['id'],
  } as const;
  app.get(
    '/v1/entries',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: { entries: { type: 'array', items: entryResponse } },
          },
        },
      },
    },
    async () => ({
      entries: deps.entries.list(),
    }),
  );
  app.post(
    '/v1/entries',
    { schema: { body: entryBody, response: { 201: entryResponse } } },
    async (req, reply) => {
      reply.code(201);
      return deps.entries.create(req.body);
    },
  );
  app.get(
    '/v1/entries/:id',
    { schema: { params: idParam, response: { 200: entryResponse } } },
    async (req) => deps.entries.get((req.params as { id: string }).id),
  );
  app.patch(
    '/v1/entries/:id',
    { schema: { params: idParam, body: entryBody, response: { 200: entryResponse } } },
    async (req) => deps.entries.update((req.params as { id: string }).id, req.body),
  );
  app.delete(
    '/v1/entries/:id',
    { schema: { params: idParam, response: { 200: entryResponse } } },
    async (req) => deps.entries.delete((req.params as { id: string }).id),
  );
};

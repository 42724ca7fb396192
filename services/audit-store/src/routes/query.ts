// Reads: events by filter, newest first, keyset-paginated.
import type { FastifyPluginAsync } from 'fastify';
import { parseTimestamp } from '../input.js';
import { FILTER_FIELDS, type AuditRepository, type EventFilter } from '../store.js';
import type { RouteAccess } from '../http/auth.js';
import { ValidationProblem, checkRange, errorResponses } from '../http/problems.js';

const querySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...Object.fromEntries(
      FILTER_FIELDS.map((f) => [f, { type: 'string', minLength: 1, maxLength: 255 }]),
    ),
    since: { type: 'string', format: 'date-time', maxLength: 64 },
    until: { type: 'string', format: 'date-time', maxLength: 64 },
    limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
    offset: { type: 'string', pattern: '^[0-9]{1,6}$' },
    cursor: { type: 'string', maxLength: 512 },
  },
};

function encodeCursor(ts: string, id: string): string {
  return Buffer.from(JSON.stringify([ts, id])).toString('base64url');
}
function decodeCursor(c: string): { ts: string; id: string } {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
    // Only what encodeCursor writes: an ISO timestamp exactly as toISOString gives it and a
    // lowercase UUID, both handed to PostgreSQL as typed parameters.
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      typeof v[0] === 'string' &&
      parseTimestamp(v[0])?.toISOString() === v[0] &&
      typeof v[1] === 'string' &&
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v[1])
    ) {
      return { ts: v[0], id: v[1] };
    }
  } catch {
    /* fall through */
  }
  throw new ValidationProblem([{ field: 'cursor', message: 'is not a cursor this store issued' }]);
}

export interface QueryRoutesOptions {
  repo: AuditRepository;
  access: RouteAccess;
}

/** `GET /api/v1/audit/events`. */
export const queryRoutes: FastifyPluginAsync<QueryRoutesOptions> = async (app, opts) => {
  const { repo } = opts;
  const { READ } = opts.access;
  app.get(
    '/api/v1/audit/events',
    {
      config: READ,
      schema: {
        querystring: querySchema,
        response: {
          200: {
            type: 'object',
            required: ['data', 'pagination'],
            properties: {
              data: { type: 'array', items: { $ref: 'AuditEvent#' } },
              pagination: {
                type: 'object',
                properties: {
                  limit: { type: 'integer' },
                  offset: { type: 'integer' },
                  has_more: { type: 'boolean' },
                  next_cursor: { type: ['string', 'null'] },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const q = req.query as Record<string, string | undefined>;
      checkRange(q);
      const limit = q.limit !== undefined ? Number(q.limit) : 50;
      const offset = q.offset !== undefined ? Number(q.offset) : 0;
      const bad: Array<{ field: string; message: string }> = [];
      if (limit < 1 || limit > 1000) bad.push({ field: 'limit', message: 'must be 1..1000' });
      if (offset > 100000) bad.push({ field: 'offset', message: 'must be at most 100000' });
      if (bad.length) throw new ValidationProblem(bad);
      const after = q.cursor !== undefined ? decodeCursor(q.cursor) : undefined;
      const filter: EventFilter = {};
      for (const k of [...FILTER_FIELDS, 'since', 'until'] as const)
        if (q[k] !== undefined) filter[k] = q[k];
      const { events, hasMore } = await repo.query(filter, {
        limit,
        offset,
        ...(after ? { after } : {}),
      });
      const last = events[events.length - 1];
      return {
        data: events,
        pagination: {
          limit,
          offset,
          has_more: hasMore,
          next_cursor: hasMore && last ? encodeCursor(last.event_timestamp, last.event_id) : null,
        },
      };
    },
  );
};

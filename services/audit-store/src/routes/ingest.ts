// Writes: one event or a batch, chained under its correlation, attributed to the verified
// caller, idempotent under an `Idempotency-Key`.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { LIMITS, checkEvent, type AuditEventInput, type Writer } from '../events.js';
import { MAX_PROBLEMS, type InputProblem, type TimeWindow } from '../input.js';
import type { AuditRepository } from '../store.js';
import { writerOf, type RouteAccess } from '../http/auth.js';
import { ValidationProblem, errorResponses } from '../http/problems.js';

/**
 * The `Idempotency-Key` request header (IETF httpapi draft): a structured-field string
 * (`"..."`) or, leniently, a bare token; 1..255 visible ASCII characters.
 */
function idempotencyKeyOf(req: FastifyRequest): string | undefined {
  const raw = req.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  const v = typeof raw === 'string' ? raw.trim() : undefined;
  const key = v && /^".*"$/.test(v) ? v.slice(1, -1) : v;
  // Visible ASCII without '"' and '\\', so a key reads the same quoted or bare.
  if (!key || key.length > 255 || !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(key))
    throw new ValidationProblem([
      {
        field: 'Idempotency-Key',
        message: "must be 1..255 visible ASCII characters other than '\"' and '\\'",
      },
    ]);
  return key;
}

/**
 * What an Idempotency-Key is bound to besides the writer (the key's row is per writer): the
 * route, the body's bytes, and the person the writer acts for, so the same key and body sent
 * for another person is a conflict (422), never a replay of the first person's receipt.
 * Without a person, the form of earlier releases (keys stored before an upgrade still match).
 */
function idempotencyRequestHash(batch: boolean, bodyHash: string, writer: Writer): string {
  const base = `${batch ? 'batch' : 'single'}:${bodyHash}`;
  if (writer.on_behalf_of === null) return base;
  return `${base}:obo:${createHash('sha256').update(writer.on_behalf_of).digest('hex')}`;
}

export interface IngestRoutesOptions {
  repo: AuditRepository;
  access: RouteAccess;
  registry: Registry;
  timeWindow: TimeWindow;
}

/** `POST /api/v1/audit/events` and `POST /api/v1/audit/events/batch`. */
export const ingestRoutes: FastifyPluginAsync<IngestRoutesOptions> = async (app, opts) => {
  const { repo, timeWindow } = opts;
  const { WRITE } = opts.access;
  const written = new Counter({
    name: 'precinct_audit_events_written_total',
    help: 'Audit events committed.',
    registers: [opts.registry],
  });
  const replays = new Counter({
    name: 'precinct_audit_idempotent_replays_total',
    help: 'Write requests answered from an earlier commit of the same idempotency key.',
    registers: [opts.registry],
  });
  const writeSeconds = new Histogram({
    name: 'precinct_audit_write_seconds',
    help: 'Time to commit one write request (single or batch).',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [opts.registry],
  });

  const write = async (
    req: FastifyRequest,
    reply: FastifyReply,
    events: AuditEventInput[],
    batch: boolean,
  ) => {
    const key = idempotencyKeyOf(req);
    const now = new Date();
    const bad: InputProblem[] = [];
    for (let i = 0; i < events.length && bad.length < MAX_PROBLEMS; i++)
      bad.push(...checkEvent(events[i]!, batch ? `[${i}].` : '', now, timeWindow));
    if (bad.length) throw new ValidationProblem(bad.slice(0, MAX_PROBLEMS));
    const writer = writerOf(req);
    const end = writeSeconds.startTimer();
    const r = await repo.insert(
      events,
      writer,
      now,
      key === undefined
        ? undefined
        : { key, requestHash: idempotencyRequestHash(batch, req.bodyHash ?? '', writer) },
    );
    end();
    if (r.replayed) {
      replays.inc();
      reply.header('idempotent-replayed', 'true');
    } else written.inc(r.events.length);
    return r.events;
  };

  app.post(
    '/api/v1/audit/events',
    {
      config: WRITE,
      schema: {
        body: { $ref: 'AuditEventInput#' },
        response: {
          201: {
            type: 'object',
            required: ['event_id', 'event_timestamp', 'message'],
            properties: {
              event_id: { type: 'string' },
              event_timestamp: { type: 'string' },
              correlation_id: { type: 'string' },
              chain_seq: { type: 'integer' },
              event_hash: { type: 'string' },
              written_by: { type: 'string' },
              message: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const [e] = await write(req, reply, [req.body as AuditEventInput], false);
      return reply.code(201).send({ ...e!, message: 'audit event created' });
    },
  );

  app.post(
    '/api/v1/audit/events/batch',
    {
      config: WRITE,
      schema: {
        body: {
          type: 'array',
          minItems: 1,
          maxItems: LIMITS.batchEvents,
          items: { $ref: 'AuditEventInput#' },
        },
        response: {
          201: {
            type: 'object',
            required: ['event_ids', 'message'],
            properties: {
              event_ids: { type: 'array', items: { type: 'string' } },
              message: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const stored = await write(req, reply, req.body as AuditEventInput[], true);
      return reply.code(201).send({
        event_ids: stored.map((e) => e.event_id),
        message: `${stored.length} audit events created`,
      });
    },
  );
};

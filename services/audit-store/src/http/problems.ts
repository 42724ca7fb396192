// The store's error answers: every one is RFC 9457 problem+json from the service kit's table
// (`@precinct/runtime/http`), with the request's field problems listed for a 400.
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { Counter } from 'prom-client';
import {
  PROBLEMS,
  PROBLEM_CONTENT_TYPE,
  problem,
  sendProblem,
  type ProblemCode,
} from '@precinct/runtime/http';
import { AuditStoreError } from '../errors.js';
import { parseTimestamp, type InputProblem } from '../input.js';

const problemSchema = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string' },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: { field: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
};
/** Response schemas of a route's problem answers. */
export const errorResponses = { '4xx': problemSchema, '5xx': problemSchema };

/** A request the store refuses with 400 and the list of what is wrong with it. */
export class ValidationProblem extends Error {
  constructor(readonly errors: Array<{ field: string; message: string }>) {
    super('invalid request');
  }
}

/** `since`/`until` of a read, checked as the database will take them. */
export function checkRange(q: { since?: string; until?: string }): void {
  const bad: InputProblem[] = [];
  for (const k of ['since', 'until'] as const)
    if (q[k] !== undefined && !parseTimestamp(q[k]))
      bad.push({ field: k, message: 'must be an RFC 3339 date-time in years 0001..9999' });
  if (bad.length) throw new ValidationProblem(bad);
}

function fieldOf(e: { instancePath: string; params: Record<string, unknown> }): string {
  const path = e.instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('');
  const extra =
    typeof e.params.missingProperty === 'string'
      ? `.${e.params.missingProperty}`
      : typeof e.params.additionalProperty === 'string'
        ? `.${e.params.additionalProperty}`
        : '';
  return `${path}${extra}`.replace(/^\./, '') || '(body)';
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (headers or URL over 16 KiB,
 * malformed request lines) get problem+json too, as Fastify's default handler sends them.
 */
export function problemClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const p = problem(
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? 'request_timeout'
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? 'request_headers_too_large'
        : 'bad_request',
  );
  const body = JSON.stringify(p);
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${p.status} ${STATUS_CODES[p.status]}\r\nConnection: close\r\nContent-Length: ${body.length}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n\r\n${body}`,
    );
  socket.destroy();
}

/**
 * The code for a Fastify client error's status: the table's code of that status, else
 * `bad_request` (the store has always answered those with the generic "bad request").
 */
function clientErrorCode(status: number): ProblemCode {
  if (status === 400) return 'bad_request';
  const same = (Object.keys(PROBLEMS) as ProblemCode[]).filter(
    (c) => PROBLEMS[c].status === status,
  );
  return same.length === 1 ? same[0]! : 'bad_request';
}

/**
 * Installs the error and not-found handlers: every error leaves as problem+json, a storage
 * failure counted in `failures` by reason.
 */
export function installErrorHandlers(app: FastifyInstance, failures: Counter<'reason'>): void {
  app.setErrorHandler((err: FastifyError | AuditStoreError | ValidationProblem, req, reply) => {
    const invalid = (errors: InputProblem[]) =>
      reply
        .code(400)
        .type(PROBLEM_CONTENT_TYPE)
        .send({ ...problem('invalid_request'), errors });
    if (err instanceof ValidationProblem) return invalid(err.errors);
    if ('validation' in err && err.validation)
      return invalid(
        err.validation.map((v) => ({
          field: fieldOf(v as { instancePath: string; params: Record<string, unknown> }),
          message: v.message ?? 'is invalid',
        })),
      );
    if (err instanceof AuditStoreError) {
      if (err.code === 'ERR_IDEMPOTENCY_CONFLICT') {
        failures.inc({ reason: 'idempotency_conflict' });
        return sendProblem(
          reply,
          'idempotency_key_reused',
          'this Idempotency-Key was already used for a different request',
        );
      }
      if (err.code === 'ERR_DB_UNAVAILABLE') {
        req.log.warn({ code: err.code, err: err.message }, 'database unavailable');
        failures.inc({ reason: 'db_unavailable' });
        reply.header('retry-after', '1');
        return sendProblem(reply, 'storage_unavailable', 'retry later');
      }
      req.log.error({ code: err.code, err: err.message }, 'storage error');
      return sendProblem(reply, 'internal');
    }
    const fe = err as FastifyError;
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendProblem(reply, 'payload_too_large');
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return sendProblem(reply, 'unsupported_media_type');
    // Fastify's other client errors (unparsable JSON, a bad Content-Length, ...).
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500)
      return sendProblem(reply, clientErrorCode(fe.statusCode));
    req.log.error({ err }, 'unhandled error');
    return sendProblem(reply, 'internal');
  });
  app.setNotFoundHandler((_req, reply) => sendProblem(reply, 'not_found'));
}

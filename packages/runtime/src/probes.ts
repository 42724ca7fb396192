import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Registry } from 'prom-client';
import { PROBLEM_CONTENT_TYPE, problem, type ErrorCode, type ProblemCode } from './problem.js';

/**
 * One readiness condition. Ready when it returns (or resolves to) anything but `false`; not
 * ready when it returns `false`, throws, rejects or does not settle within the timeout.
 */
export type ReadyCheck = () => unknown;

export interface ProbesOptions {
  /** The registry `/metrics` serves (text exposition format). */
  registry: Registry;
  /**
   * Named readiness conditions for `/ready`, e.g. `{ svid: () => source.getX509Svid() }`. All
   * run on every request, concurrently. The names (never the errors) appear in the 503 body,
   * so an operator sees which dependency is missing.
   */
  ready?: Record<string, ReadyCheck>;
  /** How long `/ready` waits for each check, in milliseconds. Default 2000. */
  readyTimeoutMs?: number;
}

/**
 * Sends an RFC 9457 problem for `code` (status from the one table in `problem.ts`); `domainCode`
 * is a service's own `ERR_*` code for the body's `code` member (see `problem()`).
 */
export function sendProblem(
  reply: FastifyReply,
  code: ProblemCode,
  detail?: string,
  domainCode?: ErrorCode,
): FastifyReply {
  const body = problem(code, detail, domainCode);
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(body);
}

async function passes(check: ReadyCheck, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    const result = await Promise.race([Promise.resolve().then(check), timeout]);
    return result !== false;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Fastify plugin serving `GET /health` (the process answers), `GET /ready` (every ready check
 * passes, else 503 problem+json) and `GET /metrics` (prom-client). Meant for a separate
 * plain-HTTP server when the main port requires mTLS, so probes need no client certificate.
 * Options are checked at registration: a bad option fails start-up.
 */
export const probesPlugin: FastifyPluginAsync<ProbesOptions> = async (app, opts) => {
  if (!opts || typeof opts.registry?.metrics !== 'function') {
    throw new TypeError('probesPlugin: registry (a prom-client Registry) is required');
  }
  const checks = Object.entries(opts.ready ?? {});
  for (const [name, check] of checks) {
    if (typeof check !== 'function') {
      throw new TypeError(`probesPlugin: ready.${name} must be a function`);
    }
  }
  const timeoutMs = opts.readyTimeoutMs ?? 2000;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw new TypeError('probesPlugin: readyTimeoutMs must be a positive integer');
  }
  const { registry } = opts;
  const statusSchema = {
    200: {
      type: 'object',
      properties: { status: { type: 'string' } },
      required: ['status'],
      additionalProperties: false,
    },
  };

  app.get('/health', { schema: { response: statusSchema } }, async () => ({ status: 'ok' }));
  app.get('/ready', { schema: { response: statusSchema } }, async (_req, reply) => {
    const results = await Promise.all(checks.map(([, check]) => passes(check, timeoutMs)));
    const failing = checks.filter((_, i) => !results[i]).map(([name]) => name);
    if (failing.length > 0)
      return sendProblem(reply, 'unavailable', `not ready: ${failing.join(', ')}`);
    return { status: 'ok' };
  });
  app.get('/metrics', async (_req, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );
};
Object.assign(probesPlugin, {
  [Symbol.for('fastify.display-name')]: '@precinct/runtime/probes',
  [Symbol.for('plugin-meta')]: { name: '@precinct/runtime/probes', fastify: '5.x' },
});

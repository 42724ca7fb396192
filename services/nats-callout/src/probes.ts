import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { PROBLEM_CONTENT_TYPE, problem, type ProblemCode } from '@precinct/runtime/http';

/**
 * The callout's probe server (node:http; the callout has no other HTTP API): `/health`,
 * `/ready` and `/metrics` as the runtime's probes plugin serves them, with two documented
 * differences kept for the Helm chart and existing users: `/ready` answers the readiness
 * report itself (200 or 503, the same JSON both times) rather than `{status}` or a problem,
 * and `/healthz`, `/readyz` are aliases. Errors are the runtime's problem+json.
 */
export function createProbeServer(opts: {
  /** Readiness, as `/ready` reports it; also refreshes the gauges `/metrics` shows. */
  status: () => { ready: boolean };
  registry: Registry;
}): Server {
  const json = (res: ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, code: ProblemCode, headers: Record<string, string> = {}) => {
    const body = problem(code);
    res.writeHead(body.status, {
      'content-type': PROBLEM_CONTENT_TYPE,
      'cache-control': 'no-store',
      ...headers,
    });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return fail(res, 'method_not_allowed', { allow: 'GET, HEAD' });
    }
    if (path === '/health' || path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/ready' || path === '/readyz') {
      const s = opts.status();
      return json(res, s.ready ? 200 : 503, s);
    }
    if (path === '/metrics') {
      opts.status();
      opts.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': opts.registry.contentType });
          res.end(text);
        },
        () => fail(res, 'internal'),
      );
      return;
    }
    fail(res, 'not_found');
  });
  server.requestTimeout = 10_000;
  return server;
}

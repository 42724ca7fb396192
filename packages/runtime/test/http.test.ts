import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { Counter, Registry } from 'prom-client';
import {
  PROBLEMS,
  PROBLEM_CONTENT_TYPE,
  problem,
  problemStatus,
  problemWireCode,
  probesPlugin,
  sendProblem,
  type ErrorCode,
  type ProblemCode,
  type ProblemWireCode,
} from '@precinct/runtime/http';

test('problem(): RFC 9457 body with the status and title from the one table', () => {
  for (const code of Object.keys(PROBLEMS) as ProblemCode[]) {
    const body = problem(code);
    assert.equal(body.status, PROBLEMS[code].status);
    assert.equal(body.title, PROBLEMS[code].title);
    assert.equal(body.type, 'about:blank');
    assert.equal(body.code, problemWireCode(code));
    assert.equal('detail' in body, false);
  }
  assert.deepEqual(problem('not_found', 'no such event'), {
    type: 'about:blank',
    title: 'not found',
    status: 404,
    code: 'ERR_NOT_FOUND',
    detail: 'no such event',
  });
});

test('wire codes: every entry answers ERR_<KEY IN UPPER SNAKE>, one per entry', () => {
  const wire: ProblemWireCode = problemWireCode('request_headers_too_large');
  assert.equal(wire, 'ERR_REQUEST_HEADERS_TOO_LARGE');
  assert.equal(problemWireCode('bad_request'), 'ERR_BAD_REQUEST');
  const all = (Object.keys(PROBLEMS) as ProblemCode[]).map((k) => problem(k).code);
  for (const code of all) assert.match(code, /^ERR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
  assert.equal(new Set(all).size, all.length, 'two entries share a wire code');
  // The old meaning (the table key) never reaches the wire.
  for (const k of Object.keys(PROBLEMS)) assert.equal(all.includes(k as never), false, k);
  for (const bad of ['nope', 'toString', '__proto__']) {
    assert.throws(() => problemWireCode(bad as ProblemCode), TypeError, bad);
  }
  // @ts-expect-error a wire code is not a table key: the typecheck fails if they are confused
  const key: ProblemCode = 'ERR_NOT_FOUND';
  assert.throws(() => problem(key), TypeError);
});

test("problem(): a domain ERR_* code replaces the wire code; status and title stay the entry's", () => {
  assert.deepEqual(problem('conflict', 'entry e1 exists', 'ERR_ENTRY_EXISTS'), {
    type: 'about:blank',
    title: 'conflict',
    status: 409,
    code: 'ERR_ENTRY_EXISTS',
    detail: 'entry e1 exists',
  });
  // Positive control above; anything not ERR_ and upper snake case is refused, not sent.
  for (const bad of ['conflict', 'ERR_', 'ERR_entry_exists', 'ERR_A__B', 'ERR_A_', 'ERR A', '']) {
    assert.throws(() => problem('conflict', undefined, bad as ErrorCode), TypeError, bad);
  }
  // @ts-expect-error a domain code must be ERR_ and upper case: the typecheck fails otherwise
  const lower: ErrorCode = 'ERR_entry_exists';
  assert.throws(() => problem('conflict', undefined, lower), TypeError);
});

test('problemStatus(): unknown codes (and inherited names) are a TypeError', () => {
  assert.equal(problemStatus('unavailable'), 503);
  for (const bad of ['nope', 'toString', '__proto__', 'constructor']) {
    assert.throws(() => problemStatus(bad as ProblemCode), TypeError, bad);
  }
});

async function probesApp(ready: Record<string, () => unknown>, readyTimeoutMs?: number) {
  const registry = new Registry();
  new Counter({ name: 'probe_test_total', help: 'test', registers: [registry] }).inc(3);
  const app = Fastify();
  await app.register(probesPlugin, {
    registry,
    ready,
    ...(readyTimeoutMs ? { readyTimeoutMs } : {}),
  });
  await app.ready();
  return app;
}

test('probes: /health and /metrics; /ready 200 when every check passes', async (t) => {
  const app = await probesApp({ a: () => true, b: async () => undefined });
  t.after(() => app.close());
  const health = await app.inject('/health');
  assert.equal(health.statusCode, 200);
  assert.deepEqual(health.json(), { status: 'ok' });
  const ready = await app.inject('/ready');
  assert.equal(ready.statusCode, 200);
  const metrics = await app.inject('/metrics');
  assert.equal(metrics.statusCode, 200);
  assert.match(metrics.headers['content-type'] as string, /^text\/plain/);
  assert.match(metrics.body, /^probe_test_total 3$/m);
});

test('probes: /ready 503 problem+json naming each failing check (false, throw, reject, hang)', async (t) => {
  const app = await probesApp(
    {
      ok: () => true,
      falsy: () => false,
      throws: () => {
        throw new Error('secret detail');
      },
      rejects: () => Promise.reject(new Error('secret detail')),
      hangs: () => new Promise(() => {}),
    },
    50,
  );
  t.after(() => app.close());
  const res = await app.inject('/ready');
  assert.equal(res.statusCode, 503);
  assert.equal(res.headers['content-type'], `${PROBLEM_CONTENT_TYPE}; charset=utf-8`);
  const body = res.json();
  assert.equal(body.code, 'ERR_UNAVAILABLE');
  assert.equal(body.detail, 'not ready: falsy, throws, rejects, hangs');
  assert.doesNotMatch(res.body, /secret detail/);
});

test('probes: bad options fail registration', async () => {
  for (const opts of [
    {},
    { registry: {} },
    { registry: new Registry(), ready: { x: 'yes' } },
    { registry: new Registry(), readyTimeoutMs: -1 },
  ]) {
    const app = Fastify();
    await assert.rejects(
      (async () => {
        await app.register(probesPlugin, opts as never);
        await app.ready();
      })(),
      TypeError,
      JSON.stringify(opts),
    );
    await app.close();
  }
});

test('sendProblem(): status and content type from the table', async (t) => {
  const app = Fastify();
  app.get('/x', (_req, reply) => sendProblem(reply, 'authorization_failed'));
  t.after(() => app.close());
  const res = await app.inject('/x');
  assert.equal(res.statusCode, 403);
  assert.match(res.headers['content-type'] as string, /^application\/problem\+json/);
  assert.deepEqual(res.json(), problem('authorization_failed'));
  assert.equal(res.json().code, 'ERR_AUTHORIZATION_FAILED');
});

test('sendProblem(): a domain code goes in `code`, the entry decides the status', async (t) => {
  const app = Fastify();
  app.get('/x', (_req, reply) =>
    sendProblem(reply, 'not_found', 'no entry e1', 'ERR_ENTRY_NOT_FOUND'),
  );
  t.after(() => app.close());
  const res = await app.inject('/x');
  assert.equal(res.statusCode, 404);
  assert.deepEqual(res.json(), problem('not_found', 'no entry e1', 'ERR_ENTRY_NOT_FOUND'));
  assert.equal(res.json().code, 'ERR_ENTRY_NOT_FOUND');
});

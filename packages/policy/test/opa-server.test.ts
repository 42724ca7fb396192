// The OPA server client fails closed: every way OPA can fail to answer is a typed error,
// never a decision. Malformed answers come from a small local HTTP server (a real OPA never
// sends them); unreachable, stopped and undefined-decision cases use the real opa.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { peerSkip } from '@precinct/testing';
import {
  opaServerPolicy,
  PolicyError,
  type DecisionInput,
  type PolicyErrorCode,
} from '@precinct/policy';
import { startOpaServer } from './opa.js';
import { userId } from './scenarios.js';

const INPUT: DecisionInput = { person: userId('alice'), document: 'DOC-001', action: 'read' };
const GOOD = {
  allow: true,
  reason: 'person_has_department',
  details: {
    user_departments: ['engineering', 'finance'],
    agent_capabilities: [],
    effective_permissions: ['engineering', 'finance'],
    required: ['engineering'],
  },
};

async function rejectsWith(p: Promise<unknown>, code: PolicyErrorCode, message?: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof PolicyError, `not a PolicyError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('answers from a scripted HTTP server', () => {
  let srv: Server;
  let url: string;
  let answer: (res: ServerResponse, body: string) => void;
  const seen: { url: string; body: string }[] = [];

  before(async () => {
    srv = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ url: req.url ?? '', body });
        answer(res, body);
      });
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
  });
  after(async () => {
    srv.closeAllConnections();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  const json = (status: number, v: unknown) => (res: ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(typeof v === 'string' ? v : JSON.stringify(v));
  };

  test('a well-formed answer is the decision, posted as {input} to /v1/data/<path>', async () => {
    answer = json(200, { result: GOOD, decision_id: 'x' });
    const d = await opaServerPolicy({ url }).decide(INPUT);
    assert.deepEqual(d, GOOD);
    const last = seen.at(-1)!;
    assert.equal(last.url, '/v1/data/demo/authorization/decision');
    assert.deepEqual(JSON.parse(last.body), { input: INPUT });
  });

  test('a base URL with a path prefix keeps it', async () => {
    answer = json(200, { result: GOOD });
    await opaServerPolicy({ url: `${url}/opa` }).decide(INPUT);
    assert.equal(seen.at(-1)!.url, '/opa/v1/data/demo/authorization/decision');
  });

  const malformed: [string, unknown, PolicyErrorCode][] = [
    ['an undefined decision ({})', {}, 'ERR_POLICY_RESULT'],
    ['non-JSON', 'not json', 'ERR_POLICY_RESULT'],
    ['allow as a string', { result: { ...GOOD, allow: 'true' } }, 'ERR_POLICY_RESULT'],
    ['a bare boolean', { result: true }, 'ERR_POLICY_RESULT'],
    ['an unknown reason', { result: { ...GOOD, reason: 'because' } }, 'ERR_POLICY_RESULT'],
    [
      'allow contradicting the reason',
      { result: { ...GOOD, reason: 'agent_without_person' } },
      'ERR_POLICY_RESULT',
    ],
    ['no details', { result: { allow: true, reason: 'public_document' } }, 'ERR_POLICY_RESULT'],
    [
      'details with a non-array',
      { result: { ...GOOD, details: { ...GOOD.details, required: 'engineering' } } },
      'ERR_POLICY_RESULT',
    ],
  ];
  for (const [name, body, code] of malformed) {
    test(`fails closed on ${name}`, async () => {
      answer = json(200, body);
      await rejectsWith(opaServerPolicy({ url }).decide(INPUT), code);
    });
  }

  for (const status of [400, 404, 500, 503]) {
    test(`fails closed on HTTP ${status}, even with an allowing body`, async () => {
      answer = json(status, { result: GOOD });
      await rejectsWith(opaServerPolicy({ url }).decide(INPUT), 'ERR_POLICY_UNAVAILABLE', /\d{3}/);
    });
  }

  test('fails closed on an oversized answer (declared and streamed)', async () => {
    const big = JSON.stringify({ result: GOOD, pad: 'x'.repeat(100_000) });
    answer = json(200, big);
    await rejectsWith(opaServerPolicy({ url }).decide(INPUT), 'ERR_POLICY_RESULT', /larger/);
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' }); // chunked, no length
      res.write(big.slice(0, 50_000));
      res.end(big.slice(50_000));
    };
    await rejectsWith(opaServerPolicy({ url }).decide(INPUT), 'ERR_POLICY_RESULT', /larger/);
    // Positive control: the same answer fits a larger limit.
    const d = await opaServerPolicy({ url, maxResponseBytes: 200_000 }).decide(INPUT);
    assert.equal(d.allow, true);
  });

  test('times out on a server that never answers', async () => {
    answer = () => {}; // holds the request open
    await rejectsWith(
      opaServerPolicy({ url, timeoutMs: 100 }).decide(INPUT),
      'ERR_POLICY_UNAVAILABLE',
      /timed out/,
    );
  });

  test('bad input is refused before any request is sent', async () => {
    answer = json(200, { result: GOOD });
    const before = seen.length;
    const bad = { ...INPUT, token: 'eyJhbGciOiJFUzI1NiJ9.e30.sig' } as unknown as DecisionInput;
    await rejectsWith(opaServerPolicy({ url }).decide(bad), 'ERR_POLICY_INPUT');
    assert.equal(seen.length, before);
  });
});

describe('a real OPA server', { skip: peerSkip('opa') }, () => {
  test('unreachable after it stops; undefined decision on a wrong path', async () => {
    const opa = await startOpaServer();
    try {
      const engine = opaServerPolicy({ url: opa.url, timeoutMs: 10_000 });
      assert.equal((await engine.decide(INPUT)).allow, true); // positive control
      // A policy path OPA does not have answers {}: not a decision.
      const wrong = opaServerPolicy({ url: opa.url, path: 'demo/authorization/nothing' });
      await rejectsWith(wrong.decide(INPUT), 'ERR_POLICY_RESULT', /no decision/);
      // The whole package has allow and reason beside other rules, but it is not a decision.
      const pkg = opaServerPolicy({ url: opa.url, path: 'demo/authorization' });
      await rejectsWith(pkg.decide(INPUT), 'ERR_POLICY_RESULT', /details is not an object/);
    } finally {
      await opa.close();
    }
    const engine = opaServerPolicy({ url: opa.url, timeoutMs: 10_000 });
    await rejectsWith(engine.decide(INPUT), 'ERR_POLICY_UNAVAILABLE', /unreachable/);
  });
});

test('options are checked at construction', () => {
  const bad: [unknown, RegExp][] = [
    [{ url: 'not a url' }, /not a URL/],
    [{ url: 'ftp://opa:8181' }, /http or https/],
    [{ url: 'http://user:secret@opa:8181' }, /credentials/],
    [{ url: 'http://opa:8181/?x=1' }, /query/],
    [{ url: 'http://opa:8181', path: '../v1/policies' }, /path/],
    [{ url: 'http://opa:8181', path: 'demo/authorization/decision?x' }, /path/],
    [{ url: 'http://opa:8181', timeoutMs: 0 }, /timeoutMs/],
    [{ url: 'http://opa:8181', maxResponseBytes: -1 }, /maxResponseBytes/],
  ];
  for (const [opts, message] of bad) {
    assert.throws(
      () => opaServerPolicy(opts as Parameters<typeof opaServerPolicy>[0]),
      (err: unknown) =>
        err instanceof PolicyError && err.code === 'ERR_POLICY_CONFIG' && message.test(err.message),
      JSON.stringify(opts),
    );
  }
  assert.doesNotThrow(() => opaServerPolicy({ url: 'https://opa.example:8181/prefix/' }));
  // The password never reaches the error message.
  try {
    opaServerPolicy({ url: 'http://user:secret@opa:8181' });
  } catch (err) {
    assert.doesNotMatch(String((err as Error).message), /secret/);
  }
});

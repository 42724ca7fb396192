import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decisionLogger,
  PolicyError,
  wasmPolicy,
  withDecisionLog,
  type DecisionInput,
  type DecisionLogEntry,
} from '@precinct/policy';
import { agentId, userId } from './scenarios.js';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

test('every decision, allow and deny, becomes one OPA-format entry', async () => {
  const entries: DecisionLogEntry[] = [];
  let n = 0;
  const logger = decisionLogger({
    sink: (e) => entries.push(e),
    now: () => new Date('2026-12-05T21:00:00.000Z'),
    newId: () => `id-${++n}`,
  });
  const engine = withDecisionLog(await wasmPolicy(), logger);
  const allowIn = {
    person: userId('alice'),
    agent: agentId('gpt4'),
    document: 'DOC-001',
    action: 'read',
  };
  const denyIn = { agent: agentId('gpt4'), document: 'DOC-001', action: 'read' };
  const allowed = await engine.decide(allowIn);
  const denied = await engine.decide(denyIn);
  assert.equal(allowed.allow, true);
  assert.equal(denied.allow, false);
  assert.deepEqual(entries, [
    {
      decision_id: 'id-1',
      path: 'demo/authorization/decision',
      input: allowIn,
      result: allowed,
      timestamp: '2026-12-05T21:00:00.000Z',
    },
    {
      decision_id: 'id-2',
      path: 'demo/authorization/decision',
      input: denyIn,
      result: denied,
      timestamp: '2026-12-05T21:00:00.000Z',
    },
  ]);
  // Entries are copies: changing the returned decision later does not rewrite the log.
  allowed.details.effective_permissions.push('admin');
  assert.deepEqual(entries[0]!.result.details.effective_permissions, ['engineering', 'finance']);
});

test('default ids are unique UUIDs and timestamps RFC 3339', async () => {
  const entries: DecisionLogEntry[] = [];
  const engine = withDecisionLog(
    await wasmPolicy(),
    decisionLogger({ sink: (e) => entries.push(e) }),
  );
  const input = { person: userId('bob'), document: 'DOC-003', action: 'read' };
  await engine.decide(input);
  await engine.decide(input);
  assert.equal(entries.length, 2);
  assert.notEqual(entries[0]!.decision_id, entries[1]!.decision_id);
  for (const e of entries) {
    assert.match(
      e.decision_id,
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    assert.ok(!Number.isNaN(Date.parse(e.timestamp)));
  }
});

test('a token never reaches the log: the input carrying one is refused, nothing is logged', async () => {
  const lines: string[] = [];
  const logger = decisionLogger({ sink: (e) => lines.push(JSON.stringify(e)) });
  const engine = withDecisionLog(await wasmPolicy(), logger);
  const withToken = {
    person: userId('alice'),
    document: 'DOC-001',
    action: 'read',
    token: TOKEN,
  } as unknown as DecisionInput;
  await assert.rejects(
    engine.decide(withToken),
    (err: unknown) => err instanceof PolicyError && err.code === 'ERR_POLICY_INPUT',
  );
  assert.throws(() =>
    logger.log(withToken, {
      allow: false,
      reason: 'no_identity',
      details: {
        user_departments: [],
        agent_capabilities: [],
        effective_permissions: [],
        required: [],
      },
    }),
  );
  assert.deepEqual(lines, []);
  // Positive control: the same request without the token is decided and logged.
  const { token: _token, ...clean } = withToken as unknown as Record<string, string>;
  await engine.decide(clean as unknown as DecisionInput);
  assert.equal(lines.length, 1);
  assert.ok(!lines.join('\n').includes(TOKEN.slice(0, 12)));
});

test('a sink that throws fails the decision (an unrecorded decision is not made)', async () => {
  const engine = withDecisionLog(
    await wasmPolicy(),
    decisionLogger({
      sink: () => {
        throw new Error('disk full');
      },
    }),
  );
  await assert.rejects(
    engine.decide({ person: userId('alice'), document: 'DOC-001', action: 'read' }),
    /disk full/,
  );
  assert.throws(
    () => decisionLogger({ sink: 'stdout' as unknown as () => void }),
    (err: unknown) => err instanceof PolicyError && err.code === 'ERR_POLICY_CONFIG',
  );
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  PolicyError,
  loadDemoData,
  policyFiles,
  validatePolicyData,
  wasmPolicy,
  type PolicyData,
} from '@precinct/policy';

const isConfigError = (message: RegExp) => (err: unknown) =>
  err instanceof PolicyError && err.code === 'ERR_POLICY_CONFIG' && message.test(err.message);

test('a deployment supplies its own data; the demo people are then unknown', async () => {
  const data: PolicyData = {
    precinct: {
      trust_domain: 'corp.example',
      users: { dana: { departments: ['legal'] } },
      agents: { scribe: { capabilities: ['legal', 'finance'] } },
      documents: { 'L-1': { required_departments: ['legal'] } },
    },
  };
  const engine = await wasmPolicy({ data });
  const d = await engine.decide({
    person: 'spiffe://corp.example/user/dana',
    agent: 'spiffe://corp.example/agent/scribe',
    document: 'L-1',
    action: 'read',
  });
  assert.deepEqual(d, {
    allow: true,
    reason: 'delegation_permits',
    details: {
      user_departments: ['legal'],
      agent_capabilities: ['finance', 'legal'],
      effective_permissions: ['legal'],
      required: ['legal'],
    },
  });
  const alice = await engine.decide({
    person: 'spiffe://demo.example.com/user/alice',
    document: 'DOC-007',
    action: 'read',
  });
  assert.equal(alice.reason, 'unknown_person');
});

test('the demo data file is valid policy data', () => {
  const data = loadDemoData();
  assert.equal(data.precinct.trust_domain, 'demo.example.com');
  assert.deepEqual(Object.keys(data.precinct.documents).length, 7);
});

test('unusable data is refused at construction', async () => {
  const demo = loadDemoData();
  const bad: [string, unknown, RegExp][] = [
    ['no precinct', {}, /precinct must be an object/],
    ['a bad trust domain', { precinct: { ...demo.precinct, trust_domain: 'A/B' } }, /trust_domain/],
    ['users as an array', { precinct: { ...demo.precinct, users: [] } }, /users must be/],
    [
      'departments as a string',
      { precinct: { ...demo.precinct, users: { alice: { departments: 'engineering' } } } },
      /users\.alice\.departments/,
    ],
    [
      'the reference single required_department',
      {
        precinct: {
          ...demo.precinct,
          documents: { 'DOC-001': { required_department: 'engineering' } },
        },
      },
      /documents\.DOC-001\.required_departments/,
    ],
  ];
  for (const [name, data, message] of bad) {
    assert.throws(() => validatePolicyData(data), isConfigError(message), name);
    await assert.rejects(wasmPolicy({ data: data as PolicyData }), isConfigError(message), name);
  }
  assert.doesNotThrow(() => validatePolicyData(demo));
});

test('a module that is not Wasm, or lacks the entrypoint, is refused at construction', async () => {
  await assert.rejects(
    wasmPolicy({ wasm: new TextEncoder().encode('not wasm') }),
    isConfigError(/could not be loaded/),
  );
  await assert.rejects(
    wasmPolicy({ entrypoint: 'demo/authorization/allow' }),
    isConfigError(/no entrypoint demo\/authorization\/allow/),
  );
  const engine = await wasmPolicy({ wasm: readFileSync(policyFiles.wasm) });
  const d = await engine.decide({
    person: 'spiffe://demo.example.com/user/carol',
    document: 'DOC-004',
    action: 'read',
  });
  assert.equal(d.allow, true);
});

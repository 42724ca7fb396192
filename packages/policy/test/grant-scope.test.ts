// The token service's scope decision backed by the policy: every person x agent x document of
// the demo gives exactly the policy's answer, refusals carry the policy's reason and details,
// and a policy that cannot decide rejects (the token service answers 503) instead of granting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PolicyError,
  opaServerPolicy,
  parseDocumentScope,
  policyGrantScope,
  wasmPolicy,
  type PolicyEngine,
} from '@precinct/policy';
import { AGENTS, DOCUMENTS, USERS, agentId, userId } from './scenarios.js';

const wasm = await wasmPolicy();
const grant = policyGrantScope(wasm);
const scope = (doc: string) => `documents:read:${doc}`;

test('each scope is granted exactly when the policy allows it, direct and delegated', async () => {
  let granted = 0;
  let refused = 0;
  for (const u of USERS) {
    for (const a of [undefined, ...AGENTS]) {
      const person = userId(u);
      const agent = a === undefined ? undefined : agentId(a);
      const r = await grant({ person, agent, requested: DOCUMENTS.map(scope) });
      for (const doc of DOCUMENTS) {
        const d = await wasm.decide({
          person,
          ...(agent ? { agent } : {}),
          document: doc,
          action: 'read',
        });
        const refusal = r.refused.find((x) => x.scope === scope(doc));
        assert.equal(r.granted.includes(scope(doc)), d.allow, `${u} ${a ?? '-'} ${doc}`);
        if (d.allow) {
          granted++;
          assert.equal(refusal, undefined);
        } else {
          refused++;
          assert.deepEqual(refusal, { scope: scope(doc), reason: d.reason, details: d.details });
        }
      }
    }
  }
  // Both branches ran: the grant is neither everything nor nothing.
  assert.ok(granted > 10 && refused > 10, `${granted} granted, ${refused} refused`);
});

test('delegated is never wider than the person alone', async () => {
  for (const u of USERS) {
    const own = await grant({
      person: userId(u),
      agent: undefined,
      requested: DOCUMENTS.map(scope),
    });
    for (const a of AGENTS) {
      const via = await grant({
        person: userId(u),
        agent: agentId(a),
        requested: DOCUMENTS.map(scope),
      });
      for (const s of via.granted) assert.ok(own.granted.includes(s), `${u} via ${a}: ${s}`);
    }
  }
});

test('the reference scenarios: alice lacks admin; alice through summarizer lacks engineering', async () => {
  const direct = await grant({
    person: userId('alice'),
    agent: undefined,
    requested: [scope('DOC-001'), scope('DOC-003')],
  });
  assert.deepEqual(direct.granted, [scope('DOC-001')]);
  assert.equal(direct.refused[0]?.reason, 'person_lacks_department');
  const delegated = await grant({
    person: userId('alice'),
    agent: agentId('summarizer'),
    requested: [scope('DOC-001'), scope('DOC-002')],
  });
  assert.deepEqual(delegated.granted, [scope('DOC-002')]);
  assert.deepEqual(delegated.refused, [
    {
      scope: scope('DOC-001'),
      reason: 'agent_lacks_capability',
      details: {
        user_departments: ['engineering', 'finance'],
        agent_capabilities: ['finance'],
        effective_permissions: ['finance'],
        required: ['engineering'],
      },
    },
  ]);
});

test('scopes the policy cannot read, and inputs it refuses, are refused, not granted', async () => {
  const r = await grant({
    person: userId('bob'),
    agent: undefined,
    requested: ['openid', 'documents:read', 'documents:read:DOC-002', 'documents:write:DOC-002'],
  });
  assert.deepEqual(r.granted, ['documents:read:DOC-002']);
  assert.deepEqual(
    r.refused.map((x) => [x.scope, x.reason]),
    [
      ['openid', 'unknown_scope'],
      ['documents:read', 'unknown_scope'],
      ['documents:write:DOC-002', 'action_not_permitted'],
    ],
  );
  const odd = await grant({
    person: 'not a spiffe id',
    agent: undefined,
    requested: [scope('DOC-007')],
  });
  assert.deepEqual(odd, {
    granted: [],
    refused: [{ scope: scope('DOC-007'), reason: 'policy_input_refused' }],
  });
  // A custom reading of scopes: the positive control that parseScope is what decides.
  const custom = policyGrantScope(wasm, {
    parseScope: (s) => (s === 'roadmap' ? { document: 'DOC-001', action: 'read' } : undefined),
  });
  assert.deepEqual(
    (await custom({ person: userId('alice'), agent: undefined, requested: ['roadmap'] })).granted,
    ['roadmap'],
  );
});

test('a policy that cannot decide rejects; it never grants', async () => {
  const down = policyGrantScope(opaServerPolicy({ url: 'http://127.0.0.1:9', timeoutMs: 500 }));
  await assert.rejects(
    down({ person: userId('alice'), agent: undefined, requested: [scope('DOC-001')] }),
    (err: unknown) => err instanceof PolicyError && err.code === 'ERR_POLICY_UNAVAILABLE',
  );
  const broken: PolicyEngine = {
    decide: async () => {
      throw new PolicyError('ERR_POLICY_RESULT', 'malformed decision: unknown reason');
    },
  };
  await assert.rejects(
    policyGrantScope(broken)({
      person: userId('alice'),
      agent: undefined,
      requested: [scope('DOC-001')],
    }),
    /malformed decision/,
  );
});

test('parseDocumentScope reads documents:<action>:<document> and nothing else', () => {
  assert.deepEqual(parseDocumentScope('documents:read:DOC-001'), {
    action: 'read',
    document: 'DOC-001',
  });
  for (const s of [
    'documents:read',
    'documents::DOC-1',
    'docs:read:DOC-1',
    'documents:Read:D',
    'documents:read:DOC 1',
  ]) {
    assert.equal(parseDocumentScope(s), undefined, s);
  }
});

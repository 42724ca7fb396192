// The two engines give the same answers: a real `opa run --server` and the checked-in Wasm,
// over every user x agent x document x mode, plus the reference demo's 17 scenarios.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { peerSkip, seededRandom, tempDir } from '@precinct/testing';
import {
  loadDemoData,
  opaServerPolicy,
  wasmPolicy,
  policyFiles,
  type DecisionInput,
  type PolicyData,
  type PolicyEngine,
} from '@precinct/policy';
import { startOpaServer, type OpaServer } from './opa.js';
import { SCENARIOS, agentId, allInputs, userId } from './scenarios.js';
import { baselinePolicy } from './baseline.js';

const skip = peerSkip('opa');

// Beyond the demo's population: identities and requests the policy must refuse.
const EDGE_INPUTS: DecisionInput[] = [
  { person: userId('mallory'), document: 'DOC-007', action: 'read' },
  { person: 'spiffe://elsewhere.example/user/alice', document: 'DOC-001', action: 'read' },
  { person: agentId('claude'), document: 'DOC-001', action: 'read' },
  { person: userId('alice'), agent: userId('bob'), document: 'DOC-001', action: 'read' },
  { person: userId('alice'), agent: agentId('rogue'), document: 'DOC-007', action: 'read' },
  { person: userId('alice'), document: 'DOC-999', action: 'read' },
  { person: userId('alice'), document: 'DOC-001', action: 'delete' },
  { person: `${userId('alice')}/extra`, document: 'DOC-001', action: 'read' },
];

describe('OPA server and Wasm agree', { skip }, () => {
  let opa: OpaServer;
  let server: PolicyEngine;
  let wasm: PolicyEngine;
  const baseline = baselinePolicy(loadDemoData());

  before(async () => {
    opa = await startOpaServer();
    server = opaServerPolicy({ url: opa.url, timeoutMs: 10_000 });
    wasm = await wasmPolicy();
  });
  after(async () => {
    await opa?.close();
  });

  test('every user x agent x document x mode, and the edge cases', async () => {
    const inputs = [...allInputs(), ...EDGE_INPUTS];
    // 7 documents x (3 direct + 3 agent-only + 9 delegated)
    assert.equal(inputs.length, 7 * 15 + EDGE_INPUTS.length);
    const allowed = { server: 0, wasm: 0 };
    for (const input of inputs) {
      const [fromServer, fromWasm] = await Promise.all([server.decide(input), wasm.decide(input)]);
      const label = JSON.stringify(input);
      assert.deepEqual(fromWasm, fromServer, label);
      assert.deepEqual(baseline(input), fromServer, `TypeScript baseline: ${label}`);
      if (fromServer.allow) allowed.server++;
      if (fromWasm.allow) allowed.wasm++;
    }
    // Agreement alone would pass if both denied everything: both allow a real share.
    assert.ok(allowed.server > 20 && allowed.server < inputs.length - 20, `${allowed.server}`);
  });

  test('random requests mixing valid, unknown and misplaced identities (seeded)', async () => {
    const seed = Number(process.env.POLICY_FUZZ_SEED ?? 20261205);
    const rnd = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const names = ['alice', 'bob', 'carol', 'gpt4', 'claude', 'summarizer', 'mallory'];
    const id = () => {
      const td = pick(['demo.example.com', 'demo.example.com', 'other.example']);
      const kind = pick(['user', 'agent', 'ns/x/user']);
      return `spiffe://${td}/${kind}/${pick(names)}`;
    };
    const documents = ['DOC-001', 'DOC-003', 'DOC-005', 'DOC-006', 'DOC-007', 'DOC-404'];
    let allowed = 0;
    for (let i = 0; i < 300; i++) {
      const input: DecisionInput = {
        document: pick(documents),
        action: pick(['read', 'read', 'read', 'write']),
      };
      const shape = pick(['person', 'agent', 'both', 'both']);
      if (shape !== 'agent') input.person = rnd() < 0.7 ? userId(pick(names)) : id();
      if (shape !== 'person') input.agent = rnd() < 0.7 ? agentId(pick(names)) : id();
      const [a, b] = await Promise.all([server.decide(input), wasm.decide(input)]);
      const label = `seed ${seed}, #${i}: ${JSON.stringify(input)}`;
      assert.deepEqual(b, a, label);
      assert.deepEqual(baseline(input), a, `TypeScript baseline: ${label}`);
      if (a.allow) allowed++;
    }
    assert.ok(allowed > 10, `only ${allowed} of 300 allowed`);
  });

  test('the reference demo 17 scenarios, on both engines', async () => {
    assert.equal(SCENARIOS.length, 17);
    for (const s of SCENARIOS) {
      for (const [name, engine] of [
        ['opa server', server],
        ['wasm', wasm],
      ] as const) {
        const d = await engine.decide(s.input);
        assert.equal(d.allow, s.allow, `${name}: ${s.name} (reason ${d.reason})`);
      }
    }
    assert.equal(SCENARIOS.filter((s) => s.allow).length, 8);
  });

  test('reasons and details of representative scenarios', async () => {
    for (const engine of [server, wasm]) {
      const s13 = await engine.decide(SCENARIOS[12]!.input);
      assert.equal(s13.reason, 'agent_without_person');
      const s14 = await engine.decide(SCENARIOS[13]!.input);
      assert.deepEqual(s14, {
        allow: false,
        reason: 'agent_lacks_capability',
        details: {
          user_departments: ['engineering', 'finance'],
          agent_capabilities: ['finance'],
          effective_permissions: ['finance'],
          required: ['engineering'],
        },
      });
      const s9 = await engine.decide(SCENARIOS[8]!.input);
      assert.equal(s9.reason, 'delegation_permits');
      assert.deepEqual(s9.details.effective_permissions, ['engineering', 'finance']);
      const s16 = await engine.decide(SCENARIOS[15]!.input);
      assert.equal(s16.reason, 'person_lacks_department');
    }
  });
});

describe("a deployment's own data, on both engines", { skip }, () => {
  const data: PolicyData = {
    precinct: {
      trust_domain: 'corp.example',
      users: { dana: { departments: ['legal', 'sales'] }, eve: { departments: [] } },
      agents: { scribe: { capabilities: ['legal'] }, closer: { capabilities: ['sales', 'legal'] } },
      documents: {
        contract: { required_departments: ['legal'] },
        pipeline: { required_departments: ['sales', 'finance'] },
        handbook: { required_departments: [] },
      },
    },
  };
  let opa: OpaServer | undefined;
  const dir = tempDir('precinct-policy-data-');

  after(async () => {
    await opa?.close();
    dir.cleanup();
  });

  test('OPA server with the data file == Wasm with the same data', async () => {
    const file = join(dir.path, 'corp.json');
    writeFileSync(file, JSON.stringify(data));
    opa = await startOpaServer([policyFiles.regoDir, file]);
    const server = opaServerPolicy({ url: opa.url, timeoutMs: 10_000 });
    const wasm = await wasmPolicy({ data });
    const td = 'spiffe://corp.example';
    let allowed = 0;
    let n = 0;
    for (const document of ['contract', 'pipeline', 'handbook', 'DOC-001']) {
      for (const person of [undefined, 'dana', 'eve', 'alice']) {
        for (const agent of [undefined, 'scribe', 'closer', 'gpt4']) {
          if (!person && !agent) continue;
          const input: DecisionInput = { document, action: 'read' };
          if (person) input.person = `${td}/user/${person}`;
          if (agent) input.agent = `${td}/agent/${agent}`;
          const [a, b] = await Promise.all([server.decide(input), wasm.decide(input)]);
          assert.deepEqual(b, a, JSON.stringify(input));
          if (a.allow) allowed++;
          n++;
        }
      }
    }
    assert.ok(allowed > 5 && allowed < n - 5, `${allowed} of ${n} allowed`);
    const d = await wasm.decide({
      person: `${td}/user/dana`,
      agent: `${td}/agent/scribe`,
      document: 'pipeline',
      action: 'read',
    });
    assert.equal(d.reason, 'agent_lacks_capability');
  });
});

// Policy decisions: the Rego policy compiled to Wasm and evaluated in-process, against the
// same rules hand-written in TypeScript, and against a real `opa run --server` over HTTP.
//
//   npm run bench -- policy
//   BENCH_ROUNDS=5 BENCH_PHASE_MS=3000 npm run bench -- policy
//
// Every engine decides the same 105 requests (7 documents x 3 people, 3 agents without a
// person, 9 delegations) in turn, through the same PolicyEngine interface: input validation,
// evaluation and the decision's shape check. The baseline does the validation too, so the ratio
// compares evaluation, not bookkeeping. The OPA server is sequential round trips on one
// keep-alive connection (what a request handler waits for); phases alternate between engines
// so a change in the machine's load lands on all of them alike.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { peerSkip, requirePeer, tempDir } from '@precinct/testing';
import {
  loadDemoData,
  opaServerPolicy,
  validateInput,
  wasmPolicy,
  type PolicyEngine,
} from '@precinct/policy';
import { startOpaServer } from '../packages/policy/test/opa.js';
import { allInputs } from '../packages/policy/test/scenarios.js';
import { baselinePolicy } from '../packages/policy/test/baseline.js';
import { percentile, printTable } from './table.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 2_000);
const inputs = allInputs();

const skip = peerSkip('opa');
if (skip) {
  console.log(skip);
  process.exit(0);
}

const rules = baselinePolicy(loadDemoData());
const baseline: PolicyEngine = { decide: async (input) => rules(validateInput(input)) };
const wasm = await wasmPolicy();
// The SDK's own cost: a policy that answers a constant decision of the same shape, through the
// same engine (input to JSON, into Wasm memory, result JSON back out, shape check).
const floor = await wasmPolicy({ wasm: constantPolicyWasm(), entrypoint: 'floor/decision' });
const opa = await startOpaServer();
const server = opaServerPolicy({ url: opa.url, timeoutMs: 10_000 });

// The engines must agree before their speed means anything.
for (const input of inputs) {
  const [a, b, c] = await Promise.all([baseline, wasm, server].map((e) => e.decide(input)));
  const same = JSON.stringify(a) === JSON.stringify(b) && JSON.stringify(b) === JSON.stringify(c);
  if (!same) throw new Error(`engines disagree on ${JSON.stringify(input)}`);
}

function constantPolicyWasm(): Buffer {
  const dir = tempDir('precinct-policy-bench-');
  try {
    const details = JSON.stringify({
      user_departments: ['engineering', 'finance'],
      agent_capabilities: ['finance'],
      effective_permissions: ['finance'],
      required: ['engineering', 'finance'],
    });
    writeFileSync(
      join(dir.path, 'floor.rego'),
      `package floor\ndecision := {"allow": false, "reason": "no_identity", "details": ${details}}\n`,
    );
    const out = join(dir.path, 'bundle.tar.gz');
    const args = ['build', '-t', 'wasm', '-e', 'floor/decision', '-o', out, 'floor.rego'];
    execFileSync(requirePeer('opa'), args, { cwd: dir.path });
    return execFileSync('tar', ['-xzOf', out, '/policy.wasm'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } finally {
    dir.cleanup();
  }
}

interface Sample {
  cpuMs: number;
  count: number;
  ms: number;
  latencies: number[];
}
const samples = new Map<string, Sample>();

async function phase(name: string, engine: PolicyEngine, ms: number): Promise<void> {
  const s = samples.get(name) ?? { count: 0, ms: 0, latencies: [], cpuMs: 0 };
  samples.set(name, s);
  let i = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    const t0 = performance.now();
    await engine.decide(inputs[i++ % inputs.length]!);
    now = performance.now();
    s.latencies.push(now - t0);
    s.count++;
  }
  s.ms += now - start;
  const used = process.cpuUsage(cpu);
  s.cpuMs += (used.user + used.system) / 1000;
}

const engines: [string, PolicyEngine][] = [
  ['baseline', baseline],
  ['wasm', wasm],
  ['server', server],
  ['floor', floor],
];
try {
  for (const [name, engine] of engines) await phase(`warmup-${name}`, engine, 300);
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? engines : [...engines].reverse();
    for (const [name, engine] of order) await phase(name, engine, PHASE_MS);
  }
} finally {
  await opa.close();
}

const stats = (name: string) => {
  const s = samples.get(name)!;
  const sorted = s.latencies.sort((a, b) => a - b);
  return {
    rate: (s.count * 1000) / s.ms,
    p50: percentile(sorted, 50) * 1000,
    p99: percentile(sorted, 99) * 1000,
    /** CPU time of this process per decision, µs: steadier than wall time on a busy machine. */
    cpu: (s.cpuMs * 1000) / s.count,
  };
};
const b = stats('baseline');
const w = stats('wasm');
const o = stats('server');
const f = stats('floor');

printTable('@precinct/policy: Wasm in-process vs hand-written TypeScript (same rules)', [
  {
    metric: 'decisions/s',
    ours: w.rate,
    reference: b.rate,
    unit: '/s',
    target: '>= 50% of TypeScript',
    met: w.rate / b.rate >= 0.5,
  },
  { metric: 'p50 latency', ours: w.p50, reference: b.p50, unit: 'µs', target: '-', met: true },
  { metric: 'p99 latency', ours: w.p99, reference: b.p99, unit: 'µs', target: '-', met: true },
  { metric: 'CPU per decision', ours: w.cpu, reference: b.cpu, unit: 'µs', target: '-', met: true },
]);
printTable('@precinct/policy: Wasm in-process vs the opa-wasm SDK floor (constant decision)', [
  {
    metric: 'decisions/s',
    ours: w.rate,
    reference: f.rate,
    unit: '/s',
    target: 'what the SDK alone allows',
    met: true,
  },
  { metric: 'CPU per decision', ours: w.cpu, reference: f.cpu, unit: 'µs', target: '-', met: true },
]);
printTable('@precinct/policy: Wasm in-process vs OPA server over HTTP (same policy)', [
  {
    metric: 'decisions/s',
    ours: w.rate,
    reference: o.rate,
    unit: '/s',
    target: '>= 10x the OPA round trip',
    met: w.rate / o.rate >= 10,
  },
  { metric: 'p50 latency', ours: w.p50, reference: o.p50, unit: 'µs', target: '-', met: true },
  { metric: 'p99 latency', ours: w.p99, reference: o.p99, unit: 'µs', target: '-', met: true },
]);

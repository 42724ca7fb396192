// npm run bench -- delegation-e2e
// Delegated requests per second end to end: dashboard API (session cookie) -> token service
// (person's Transaction Token) -> agent service -> token service again (replacement exchange as
// the agent's SVID) -> document service -> policy service (Wasm) -> audit store (its own
// process, as deployed), every hop SVID mTLS and every token verified; then the same without
// the audit store. Reference, same run: the same five hops as plain HTTP servers
// (Fastify + undici, the same Wasm policy at the end) that carry no identity at all: no TLS,
// no tokens signed or verified, no audit. p50/p99 latency at the same concurrency.
import Fastify from 'fastify';
import { Agent, request } from 'undici';
import { wasmPolicy } from '@precinct/policy';
import { Browser, startWorld } from '../test/demo/support.js';
import { percentile, printTable } from './table.js';

const CONCURRENCY = 8;
const DURATION_MS = Number(process.env.BENCH_MS ?? 4000);

async function measure(
  fn: () => Promise<void>,
): Promise<{ rps: number; p50: number; p99: number }> {
  for (let i = 0; i < 50; i++) await fn();
  const lat: number[] = [];
  const start = performance.now();
  const end = start + DURATION_MS;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await fn();
        lat.push(performance.now() - t);
      }
    }),
  );
  const elapsed = performance.now() - start;
  lat.sort((a, b) => a - b);
  return { rps: (lat.length * 1000) / elapsed, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

// --- ours, without audit, then with the audit store in its own process
const world = await startWorld({ auditInChild: true });
const dashAgent = new Agent({ connections: CONCURRENCY });
async function delegated(dashboardUrl: string) {
  const browser = new Browser(dashboardUrl);
  await browser.login('alice', world.passwords.alice!);
  const origin = new URL(dashboardUrl).origin;
  return measure(async () => {
    const r = await request(`${dashboardUrl}/api/access-delegated`, {
      dispatcher: dashAgent,
      method: 'POST',
      headers: { 'content-type': 'application/json', origin, cookie: browser.cookie! },
      body: JSON.stringify({ agent_id: 'gpt4', document_id: 'DOC-001' }),
    });
    await r.body.dump();
    if (r.statusCode !== 200) throw new Error(`ours: ${r.statusCode}`);
  });
}
// Without audit first: the store's backlog would otherwise still be using the CPU.
const unaudited = await world.startDemoWith(await wasmPolicy(), { audit: false });
const oursNoAudit = await delegated(unaudited.urls.dashboard);
const ours = await delegated(world.demo.urls.dashboard);

// --- reference: the same hops, plain HTTP, no identity
const policy = await wasmPolicy();
const servers: Array<ReturnType<typeof Fastify>> = [];
const plain = new Agent({ connections: CONCURRENCY * 2 });
async function serve(
  handler: (body: Record<string, unknown>) => Promise<unknown>,
): Promise<string> {
  const app = Fastify();
  app.post('/', async (req) => handler(req.body as Record<string, unknown>));
  await app.listen({ host: '127.0.0.1', port: 0 });
  servers.push(app);
  const a = app.server.address() as { port: number };
  return `http://127.0.0.1:${a.port}/`;
}
const post = async (url: string, body: unknown) => {
  const r = await request(url, {
    dispatcher: plain,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return (await r.body.json()) as Record<string, unknown>;
};
const policyUrl = await serve(async (b) => ({ result: await policy.decide(b.input as never) }));
const tokenUrl = await serve(async (b) => ({ access_token: `t-${String(b.scope)}` }));
const docUrl = await serve(async (b) => {
  const { result } = (await post(policyUrl, {
    input: { person: b.person, agent: b.agent, document: b.document_id, action: 'read' },
  })) as { result: { allow: boolean; reason: string } };
  return { granted: result.allow, reason: result.reason };
});
const agentUrl = await serve(async (b) => {
  await post(tokenUrl, { scope: b.document_id });
  return post(docUrl, b);
});
const dashUrl = await serve(async (b) => {
  await post(tokenUrl, { scope: b.document_id });
  return post(agentUrl, {
    person: 'spiffe://demo.example.com/user/alice',
    agent: 'spiffe://demo.example.com/agent/gpt4',
    document_id: b.document_id,
  });
});
const reference = await measure(async () => {
  const r = await post(dashUrl, { agent_id: 'gpt4', document_id: 'DOC-001' });
  if (r.granted !== true) throw new Error('reference: not granted');
});

printTable(
  `Delegated access end to end (${CONCURRENCY} concurrent clients, ${DURATION_MS} ms each)`,
  [
    {
      metric: 'requests/s: mTLS + Txn-Tokens vs plain HTTP',
      ours: ours.rps,
      reference: reference.rps,
      unit: 'req/s',
      target: '>= 50% of reference',
      met: ours.rps >= 0.5 * reference.rps,
    },
    {
      metric: 'requests/s: same, without audit',
      ours: oursNoAudit.rps,
      reference: reference.rps,
      unit: 'req/s',
      target: 'reported',
      met: true,
    },
    {
      metric: 'p50 latency',
      ours: ours.p50,
      reference: reference.p50,
      unit: 'ms',
      target: 'reported',
      met: true,
    },
    {
      metric: 'p99 latency',
      ours: ours.p99,
      reference: reference.p99,
      unit: 'ms',
      target: 'reported',
      met: true,
    },
    {
      metric: 'p99 latency without audit',
      ours: oursNoAudit.p99,
      reference: reference.p99,
      unit: 'ms',
      target: 'reported',
      met: true,
    },
  ],
);

await dashAgent.close();
await plain.close();
for (const s of servers) await s.close();
await world.close();

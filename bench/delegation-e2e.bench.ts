// npm run bench -- delegation-e2e
//   BENCH_ROUNDS=3 BENCH_MS=3000 npm run bench -- delegation-e2e
//
// Delegated requests per second end to end: dashboard API (session cookie) -> token service
// (the person's Transaction Token for the agent) -> agent service -> token service again
// (replacement exchange as the agent's SVID) -> document service -> policy service (Wasm),
// every hop SVID mTLS and every token verified.
//
// Reference, same run: the same five hops doing the same identity work over plain HTTP, so that
// the ratio is the cost of TLS and nothing else: the ID token minted by the same signer, both
// exchanges through the token service's own exchange logic (ID token verified, consent, the same
// policy-backed scope decision, ES256 signing), the Transaction Token verified at every hop that
// verifies it in ours, the same Wasm policy and decision check at the end. What TLS provides is
// all it lacks: the caller's identity comes from a header (stand-in for the certificate).
//
// The target compares both without the audit trail (the same work); ours with the audit store
// (its own process, as deployed, taking every decision of the token and document services) is
// reported beside it. Phases alternate between the three paths so a change in the machine's
// load lands on all of them alike; CPU per request (this process, all threads) is steadier than
// wall-clock rates on a busy machine and shown for the two in-process paths.
import Fastify, { type FastifyInstance } from 'fastify';
import { Agent, request } from 'undici';
import {
  TXN_TOKEN_HEADER,
  TXN_TOKEN_TYPE,
  createTxnTokenVerifier,
  type TxnTokenVerifier,
} from '@precinct/delegation';
import { parseDecision, policyGrantScope, wasmPolicy } from '@precinct/policy';
import {
  ID_TOKEN_TYPE,
  SigningKeyRing,
  TOKEN_EXCHANGE_GRANT_TYPE,
  createOidcPersonAuthenticator,
  createTokenExchange,
} from '@precinct/token-service';
import { Browser, TD, agentId, sid, startWorld, userId } from '../test/demo/support.js';
import { percentile, printTable } from './table.js';

const CONCURRENCY = 8;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PHASE_MS = Number(process.env.BENCH_MS ?? 3000);

interface Sample {
  count: number;
  ms: number;
  cpuMs: number;
  latencies: number[];
}
const samples = new Map<string, Sample>();

async function phase(name: string, fn: () => Promise<void>, ms: number): Promise<void> {
  const s = samples.get(name) ?? { count: 0, ms: 0, cpuMs: 0, latencies: [] };
  samples.set(name, s);
  const cpu = process.cpuUsage();
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await fn();
        s.latencies.push(performance.now() - t);
        s.count++;
      }
    }),
  );
  s.ms += performance.now() - start;
  const used = process.cpuUsage(cpu);
  s.cpuMs += (used.user + used.system) / 1000;
}

function stats(name: string) {
  const s = samples.get(name)!;
  const sorted = s.latencies.sort((a, b) => a - b);
  return {
    rps: (s.count * 1000) / s.ms,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpu: s.cpuMs / s.count,
  };
}

// --- ours: the demo world, with and without the audit store
const world = await startWorld({ auditInChild: true });
const policy = await wasmPolicy();
const dashAgent = new Agent({ connections: CONCURRENCY });
async function oursClient(dashboardUrl: string) {
  const browser = new Browser(dashboardUrl);
  await browser.login('alice', world.passwords.alice!);
  const origin = new URL(dashboardUrl).origin;
  return async () => {
    const r = await request(`${dashboardUrl}/api/access-delegated`, {
      dispatcher: dashAgent,
      method: 'POST',
      headers: { 'content-type': 'application/json', origin, cookie: browser.cookie! },
      body: JSON.stringify({ agent_id: 'gpt4', document_id: 'DOC-001' }),
    });
    await r.body.dump();
    if (r.statusCode !== 200) throw new Error(`ours: ${r.statusCode}`);
  };
}
const unaudited = await world.startDemoWith(policy, { audit: false });
const ours = await oursClient(world.demo.urls.dashboard);
const oursNoAudit = await oursClient(unaudited.urls.dashboard);

// --- reference: the same hops and the same identity work, plain HTTP
const servers: FastifyInstance[] = [];
const plain = new Agent({ connections: CONCURRENCY * 2 });
const CALLER = 'x-bench-caller';
async function serve(
  route: (app: FastifyInstance) => void,
  opts: { form?: boolean } = {},
): Promise<string> {
  const app = Fastify();
  if (opts.form) {
    app.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string' },
      (_req, body, done) => done(null, new Map(new URLSearchParams(body as string))),
    );
  }
  route(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  servers.push(app);
  const a = app.server.address() as { port: number };
  return `http://127.0.0.1:${a.port}`;
}
async function call(
  url: string,
  caller: string,
  body: string,
  headers: Record<string, string> = {},
  type = 'application/json',
) {
  const r = await request(url, {
    dispatcher: plain,
    method: 'POST',
    headers: { 'content-type': type, [CALLER]: caller, ...headers },
    body,
  });
  return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> };
}

const keys = new SigningKeyRing({ maxTokenLifetimeSeconds: 300 });
const issuer = sid('token-service');
const exchange = createTokenExchange({
  trustDomain: TD,
  issuer,
  keys,
  persons: [
    createOidcPersonAuthenticator({
      issuer: world.idp.issuer,
      clientId: world.idp.audience,
      jwks: world.idp.jwks() as never,
      algorithms: ['ES256'],
    }),
  ],
  consent: world.consent,
  grantScope: policyGrantScope(policy),
  isAgent: (id) => id.startsWith(`spiffe://${TD}/agent/`),
  mayRequest: (id) => id === sid('dashboard') || id.startsWith(`spiffe://${TD}/agent/`),
  explainRefusals: true,
});
const verifier = (): TxnTokenVerifier =>
  createTxnTokenVerifier({ trustDomain: TD, issuer, jwks: keys.jwks() });

const policyUrl = await serve((app) =>
  app.post('/v1/data/demo/authorization/decision', async (req) => ({
    result: await policy.decide((req.body as { input: never }).input),
  })),
);
const tokenUrl = await serve(
  (app) =>
    app.post('/token', async (req, reply) => {
      const caller = String(req.headers[CALLER]);
      try {
        const out = await exchange.exchange(req.body as Map<string, string>, {
          id: caller,
          trustDomain: TD,
        });
        return out.response;
      } catch (err) {
        return reply.code(400).send({ error: String((err as { error?: string }).error) });
      }
    }),
  { form: true },
);
const docVerifier = verifier();
const docUrl = await serve((app) =>
  app.post('/access', async (req, reply) => {
    const caller = String(req.headers[CALLER]);
    const documentId = (req.body as { document_id: string }).document_id;
    const t = await docVerifier.verify(String(req.headers[TXN_TOKEN_HEADER]));
    if (!t.scope.includes(`documents:read:${documentId}`) || t.actor !== caller) {
      return reply.code(403).send({ granted: false });
    }
    const input = { person: t.subject, agent: t.actor, document: documentId, action: 'read' };
    const answer = await call(
      `${policyUrl}/v1/data/demo/authorization/decision`,
      sid('document-service'),
      JSON.stringify({ input }),
    );
    const d = parseDecision(answer.body.result);
    return reply.code(d.allow ? 200 : 403).send({
      granted: d.allow,
      reason: d.reason,
      details: d.details,
      user: t.subject,
      agent: t.actor,
      txn: t.txn,
    });
  }),
);
const exchangeForm = (fields: Record<string, string>) =>
  new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
    requested_token_type: TXN_TOKEN_TYPE,
    audience: TD,
    ...fields,
  }).toString();
const agentVerifier = verifier();
const agentUrl = await serve((app) =>
  app.post('/agents/:id/access', async (req, reply) => {
    const agent = agentId((req.params as { id: string }).id);
    const documentId = (req.body as { document_id: string }).document_id;
    const raw = String(req.headers[TXN_TOKEN_HEADER]);
    const t = await agentVerifier.verify(raw);
    if (!t.scope.includes(`documents:read:${documentId}`)) return reply.code(401).send({});
    const replaced = await call(
      `${tokenUrl}/token`,
      agent,
      exchangeForm({
        scope: `documents:read:${documentId}`,
        subject_token: raw,
        subject_token_type: TXN_TOKEN_TYPE,
      }),
      {},
      'application/x-www-form-urlencoded',
    );
    const token = replaced.body.access_token as string;
    const answer = await call(
      `${docUrl}/access`,
      agent,
      JSON.stringify({ document_id: documentId }),
      {
        [TXN_TOKEN_HEADER]: token,
      },
    );
    return reply.code(answer.status).send(answer.body);
  }),
);
const dashUrl = await serve((app) =>
  app.post('/api/access-delegated', async (req, reply) => {
    const b = req.body as { agent_id: string; document_id: string };
    const person = await call(
      `${tokenUrl}/token`,
      sid('dashboard'),
      exchangeForm({
        scope: `documents:read:${b.document_id}`,
        subject_token: world.idp.mint(userId('alice')),
        subject_token_type: ID_TOKEN_TYPE,
        requested_actor: agentId(b.agent_id),
      }),
      {},
      'application/x-www-form-urlencoded',
    );
    if (person.status !== 200) return reply.code(403).send({ granted: false });
    const answer = await call(
      `${agentUrl}/agents/${b.agent_id}/access`,
      sid('dashboard'),
      JSON.stringify({ document_id: b.document_id }),
      { [TXN_TOKEN_HEADER]: person.body.access_token as string },
    );
    return reply.code(answer.status).send(answer.body);
  }),
);
const reference = async () => {
  const r = await call(
    `${dashUrl}/api/access-delegated`,
    'browser',
    JSON.stringify({ agent_id: 'gpt4', document_id: 'DOC-001' }),
  );
  if (r.body.granted !== true) throw new Error(`reference: ${JSON.stringify(r.body)}`);
};

const paths: Array<[string, () => Promise<void>, () => void]> = [
  ['ours-no-audit', oursNoAudit, () => (world.auditExchanges = false)],
  ['reference', reference, () => (world.auditExchanges = false)],
  ['ours', ours, () => (world.auditExchanges = true)],
];
try {
  for (const [, fn, setup] of paths) {
    setup();
    for (let i = 0; i < 50; i++) await fn();
  }
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? paths : [...paths].reverse();
    for (const [name, fn, setup] of order) {
      setup();
      await phase(name, fn, PHASE_MS);
    }
    // The audited phase leaves a backlog in the store's process: let it drain before the next.
    await world.demo.flushAudit();
  }
} finally {
  world.auditExchanges = true;
}

const o = stats('ours-no-audit');
const ref = stats('reference');
const a = stats('ours');
printTable(
  `Delegated access end to end (${CONCURRENCY} concurrent clients, ${ROUNDS} x ${PHASE_MS} ms each)`,
  [
    {
      metric: 'requests/s: mTLS vs plain HTTP, same work',
      ours: o.rps,
      reference: ref.rps,
      unit: 'req/s',
      target: '>= 50% of reference',
      met: o.rps >= 0.5 * ref.rps,
    },
    {
      metric: 'CPU per request (this process)',
      ours: o.cpu,
      reference: ref.cpu,
      unit: 'ms',
      target: 'reported',
      met: true,
    },
    {
      metric: 'p50 latency',
      ours: o.p50,
      reference: ref.p50,
      unit: 'ms',
      target: 'reported',
      met: true,
    },
    {
      metric: 'p99 latency',
      ours: o.p99,
      reference: ref.p99,
      unit: 'ms',
      target: 'reported',
      met: true,
    },
    {
      metric: 'requests/s: ours with the audit store',
      ours: a.rps,
      reference: ref.rps,
      unit: 'req/s',
      target: 'reported',
      met: true,
    },
    {
      metric: 'p99 latency with the audit store',
      ours: a.p99,
      reference: ref.p99,
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

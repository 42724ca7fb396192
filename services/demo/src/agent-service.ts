// The agent service (the reference's 8083): AI agents acting for people. It holds one SVID per
// agent besides its own; to act as an agent it exchanges the person's Transaction Token at the
// token service over mTLS with that agent's SVID (so the token's `act.sub` is proved by the
// certificate, never claimed), then calls the document service with the same SVID.
import { request } from 'undici';
import { TXN_TOKEN_HEADER, TXN_TOKEN_TYPE } from '@precinct/delegation';
import { createLogger } from '@precinct/runtime';
import { sendProblem } from '@precinct/runtime/http';
import {
  ACCESS_SCHEMA,
  DOCUMENT_ID,
  MtlsClient,
  agentSpiffeId,
  documentScope,
  mtlsService,
  pickSvid,
  type ServiceHandle,
} from './common.js';
import { checkTxnToken, tokenHash, txnVerifier } from './txn.js';
import type { UserServiceOptions } from './user-service.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/**
 * As the user service's options; `svidSource` holds the workload's own SVID (the default, first)
 * and one per agent, which it presents when it acts as that agent.
 */
export type AgentServiceOptions = UserServiceOptions & {
  /**
   * The egress broker (people's third-party tokens), when one runs: an agent acting for a person
   * calls a provider through it (`POST /agents/:id/egress/:provider`), with a Transaction Token
   * narrowed to `scope(provider)`; the broker injects the person's token, the agent never sees it.
   */
  egressBroker?: { url: string; spiffeId: string; scope: (provider: string) => string };
};

const PROVIDER = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** The provider API path an agent asks for: plain segments, no dot segments, bounded. */
const EGRESS_PATH = /^[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*$/;

export async function startAgentService(o: AgentServiceOptions): Promise<ServiceHandle> {
  const logger = o.logger ?? createLogger('agent-service');
  const callers = new Set(o.callers);
  const svc = await mtlsService({
    ...o,
    name: 'agent-service',
    allow: (id) => callers.has(id),
    logger,
  });
  const ownTokenClient = new MtlsClient(o.svidSource, o.bundleSource, o.tokenService.spiffeId);
  const verifier = txnVerifier(o.trustDomain, o.tokenService, ownTokenClient);
  const agents = Object.entries(o.data.precinct.agents).map(([id, a]) => ({
    id,
    name: String(a.name ?? id),
    capabilities: [...a.capabilities],
    spiffe_id: agentSpiffeId(o.trustDomain, id),
  }));
  // Per agent: its SVID, a client to the token service and one to the document service.
  const clients = new Map<string, { token: MtlsClient; docs: MtlsClient; egress?: MtlsClient }>();
  for (const a of agents) {
    const svid = pickSvid(o.svidSource as never, a.spiffe_id);
    clients.set(a.id, {
      token: new MtlsClient(svid, o.bundleSource, o.tokenService.spiffeId),
      docs: new MtlsClient(svid, o.bundleSource, o.documentService.spiffeId),
      ...(o.egressBroker
        ? { egress: new MtlsClient(svid, o.bundleSource, o.egressBroker.spiffeId) }
        : {}),
    });
  }

  svc.app.get('/agents', async () => agents);
  svc.app.get('/agents/:id', async (req, reply) => {
    const a = agents.find((x) => x.id === (req.params as { id: string }).id);
    return a ?? sendProblem(reply, 'not_found');
  });

  svc.app.post('/agents/:id/access', { schema: ACCESS_SCHEMA }, async (req, reply) => {
    const agentName = (req.params as { id: string }).id;
    const agent = agents.find((x) => x.id === agentName);
    const c = clients.get(agentName);
    if (!agent || !c) return sendProblem(reply, 'not_found');
    const documentId = (req.body as { document_id: string }).document_id;
    if (!DOCUMENT_ID.test(documentId)) return sendProblem(reply, 'bad_request', 'bad document_id');
    const check = await checkTxnToken(req, verifier, documentId);
    let token: string | undefined;
    if (check.ok === false) {
      logger.info({ reason: check.reason, agent: agent.spiffe_id }, 'delegated access refused');
      return sendProblem(reply, check.unavailable ? 'unavailable' : 'authentication_failed');
    }
    if (check.ok === true) {
      // Replacement exchange as the agent: same txn and person, scope narrowed to this
      // document, the agent pushed onto `act` by the token service from our certificate.
      let answer;
      try {
        answer = await tokenExchange(c.token, check.raw, documentScope(documentId));
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'token service unavailable');
        return sendProblem(reply, 'unavailable');
      }
      const body = answer.body as
        { access_token?: unknown; error?: unknown; txn?: unknown; decision?: unknown } | undefined;
      if (answer.status !== 200 || typeof body?.access_token !== 'string') {
        const error = typeof body?.error === 'string' ? body.error.slice(0, 64) : 'unknown';
        logger.info(
          { error, agent: agent.spiffe_id, txn: check.token.txn, status: answer.status },
          'token service refused the delegation',
        );
        if (answer.status >= 500) return sendProblem(reply, 'unavailable');
        // A policy refusal at the exchange carries the policy's answer: pass it on as the
        // document service would have answered it.
        const d = body?.decision as { reason?: unknown; details?: unknown } | undefined;
        const policyReason =
          typeof d?.reason === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(d.reason)
            ? d.reason
            : undefined;
        return reply.code(403).send({
          granted: false,
          reason: policyReason ?? 'delegation_refused',
          ...(policyReason && d?.details !== undefined ? { details: d.details } : {}),
          agent: agent.spiffe_id,
          user: check.token.subject,
          txn: check.token.txn,
        });
      }
      token = body.access_token;
      logger.debug(
        { txn: check.token.txn, token_sha256: tokenHash(token), agent: agent.spiffe_id },
        'acting for the person',
      );
    }
    // Without a token the agent still asks, as itself: the policy answers agent_without_person.
    let answer;
    try {
      answer = await c.docs.json(`${o.documentService.url}/access`, {
        ...(token ? { headers: { [TXN_TOKEN_HEADER]: token } } : {}),
        body: { document_id: documentId },
      });
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'document service unavailable');
      return sendProblem(reply, 'unavailable');
    }
    return reply.code(answer.status).send(answer.body);
  });

  // As the agent, for the person: replacement exchange to the provider's scope, then the broker.
  svc.app.post('/agents/:id/egress/:provider', async (req, reply) => {
    const { id, provider } = req.params as { id: string; provider: string };
    const agent = agents.find((x) => x.id === id);
    const c = clients.get(id);
    const broker = o.egressBroker;
    if (!broker || !agent || !c?.egress || !PROVIDER.test(provider))
      return sendProblem(reply, 'not_found');
    const b = req.body as { path?: unknown } | undefined;
    const path = typeof b === 'object' && b !== null ? b.path : undefined;
    if (
      typeof path !== 'string' ||
      path.length > 512 ||
      !EGRESS_PATH.test(path) ||
      path.split('/').some((s) => s === '.' || s === '..') ||
      Object.keys(b!).length !== 1
    )
      return sendProblem(reply, 'bad_request', 'send {path}: the provider API path');
    const raw = req.headers[TXN_TOKEN_HEADER];
    if (typeof raw !== 'string') return sendProblem(reply, 'authentication_failed');
    let answer;
    try {
      answer = await tokenExchange(c.token, raw, broker.scope(provider));
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'token service unavailable');
      return sendProblem(reply, 'unavailable');
    }
    const token = (answer.body as { access_token?: unknown } | undefined)?.access_token;
    if (answer.status !== 200 || typeof token !== 'string') {
      if (answer.status >= 500) return sendProblem(reply, 'unavailable');
      return reply
        .code(403)
        .send({ granted: false, reason: 'delegation_refused', agent: agent.spiffe_id });
    }
    let res;
    try {
      res = await request(`${broker.url}/v1/egress/${provider}/${path}`, {
        dispatcher: c.egress.dispatcher,
        headers: { [TXN_TOKEN_HEADER]: token },
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'egress broker unavailable');
      return sendProblem(reply, 'unavailable');
    }
    const ct = res.headers['content-type'];
    const text = await res.body.text();
    logger.info(
      { agent: agent.spiffe_id, provider, status: res.statusCode, token_sha256: tokenHash(token) },
      'provider called through the egress broker',
    );
    return reply
      .code(res.statusCode)
      .header('content-type', typeof ct === 'string' ? ct : 'application/octet-stream')
      .header('cache-control', 'no-store')
      .send(text);
  });

  async function tokenExchange(client: MtlsClient, subjectToken: string, scope: string) {
    const res = await request(`${o.tokenService.url}/token`, {
      dispatcher: client.dispatcher,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: TOKEN_EXCHANGE,
        requested_token_type: TXN_TOKEN_TYPE,
        audience: o.trustDomain,
        scope,
        subject_token: subjectToken,
        subject_token_type: TXN_TOKEN_TYPE,
      }).toString(),
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const text = await res.body.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.statusCode, body };
  }

  const handle = await svc.start();
  return {
    ...handle,
    async close() {
      await handle.close();
      await ownTokenClient.close();
      for (const c of clients.values())
        await Promise.all([c.token.close(), c.docs.close(), c.egress?.close()]);
    },
  };
}

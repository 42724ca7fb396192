// The document service (the reference's 8084): the one place a document is released. Every
// request names its person only through a verified Transaction Token and its agent only through
// the token's outermost actor, which must be the very SVID that called; the policy service
// decides; every decision, allow or deny, goes to the audit store with token hashes.
import { randomUUID } from 'node:crypto';
import { Counter } from 'prom-client';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuditClient, type AuditEventInput } from '@precinct/audit-client';
import { parseDecision, type Decision, type PolicyData } from '@precinct/policy';
import { createLogger, type Logger } from '@precinct/runtime';
import { sendProblem } from '@precinct/runtime/http';
import type { X509BundleSource, X509SvidSource } from '@precinct/spiffe';
import {
  ACCESS_SCHEMA,
  DOCUMENT_ID,
  MtlsClient,
  mtlsService,
  type ListenConfig,
  type ServiceHandle,
} from './common.js';
import { POLICY_DECISION_ROUTE } from './policy-service.js';
import { checkTxnToken, tokenHash, txnVerifier, type TokenServiceRef } from './txn.js';

export interface DocumentServiceOptions extends ListenConfig {
  svidSource: X509SvidSource;
  bundleSource: X509BundleSource;
  trustDomain: string;
  data: PolicyData;
  tokenService: TokenServiceRef;
  policyService: { url: string; spiffeId: string };
  /** The user service's SPIFFE ID: calls for a person directly (token without actor). */
  userService: string;
  /** Agent SVIDs (held by the agent service): calls as that agent. */
  agents: readonly string[];
  /** The audit store over mTLS as this service; without it decisions are only logged. */
  audit?: { url: string; spiffeId: string };
  logger?: Logger;
}

/** What the document service answers for an access request (the reference's shape). */
export interface AccessAnswer {
  granted: boolean;
  reason: string;
  details?: Decision['details'];
  document?: { id: string; title: string; sensitivity?: string; content: string };
  user?: string;
  agent?: string;
  txn?: string;
}

export interface DocumentService extends ServiceHandle {
  /** Waits until every decision so far is in the audit store. */
  flushAudit(): Promise<void>;
}

export function documentCatalog(data: PolicyData) {
  return Object.entries(data.precinct.documents).map(([id, d]) => ({
    id,
    title: String(d.title ?? id),
    required_departments: [...d.required_departments],
    sensitivity: d.sensitivity ?? 'unknown',
  }));
}

export async function startDocumentService(o: DocumentServiceOptions): Promise<DocumentService> {
  const logger = o.logger ?? createLogger('document-service');
  const agents = new Set(o.agents);
  const svc = await mtlsService({
    ...o,
    name: 'document-service',
    allow: (id) => id === o.userService || agents.has(id),
    logger,
  });
  const tokenClient = new MtlsClient(o.svidSource, o.bundleSource, o.tokenService.spiffeId);
  const policyClient = new MtlsClient(o.svidSource, o.bundleSource, o.policyService.spiffeId);
  const verifier = txnVerifier(o.trustDomain, o.tokenService, tokenClient);
  const auditClient = o.audit
    ? new MtlsClient(o.svidSource, o.bundleSource, o.audit.spiffeId)
    : undefined;
  const audit =
    o.audit && auditClient
      ? new AuditClient({
          url: o.audit.url,
          fetch: auditClient.fetch,
          // Larger batches: the store's cost is mostly per batch (one transaction, one chain lock).
          flushIntervalMs: 200,
        })
      : undefined;
  const decisions = new Counter({
    name: 'precinct_demo_document_decisions_total',
    help: 'Document access decisions by result and bounded reason',
    labelNames: ['granted', 'reason'],
    registers: [svc.registry],
  });
  const auditFailures = new Counter({
    name: 'precinct_demo_audit_write_failures_total',
    help: 'Decisions the audit store refused',
    registers: [svc.registry],
  });
  const catalog = documentCatalog(o.data);
  const byId = new Map(catalog.map((d) => [d.id, d]));

  svc.app.get('/documents', async () => catalog);
  svc.app.get('/documents/:id', async (req, reply) => {
    const d = byId.get((req.params as { id: string }).id);
    return d ?? sendProblem(reply, 'not_found');
  });

  interface Record {
    peer: string;
    documentId: string;
    granted: boolean;
    reason: string;
    person?: string | undefined;
    agent?: string | undefined;
    actors?: string[];
    txn?: string;
    reqWl?: string;
    scope?: string[];
    rawToken?: string;
    details?: Decision['details'];
  }

  function record(r: Record): void {
    decisions.inc({ granted: String(r.granted), reason: r.reason });
    const tokenSha = r.rawToken ? tokenHash(r.rawToken) : undefined;
    logger.info(
      {
        caller: r.peer,
        person: r.person,
        agent: r.agent,
        document: r.documentId,
        granted: r.granted,
        reason: r.reason,
        txn: r.txn,
        token_sha256: tokenSha,
      },
      'document access decision',
    );
    if (!audit) return;
    const event: AuditEventInput = {
      event_type: 'demo.document.access',
      event_category: 'authorization',
      event_action: 'read',
      event_outcome: r.granted ? 'success' : 'failure',
      // The actor is who acted: the agent when delegated, else the person.
      actor_type: r.agent ? 'agent' : r.person ? 'user' : 'workload',
      actor_id: r.agent ?? r.person ?? r.peer,
      resource_type: 'document',
      resource_id: r.documentId,
      // The transaction id ties the decision to every hop's log; without a token there is none.
      correlation_id: r.txn ?? `no-txn-${randomUUID()}`,
      severity: r.granted ? 'info' : 'warning',
      ...(r.granted ? {} : { error_code: r.reason }),
      event_data: {
        decision: r.granted ? 'allow' : 'deny',
        reason: r.reason,
        caller: r.peer,
        on_behalf_of: r.person ?? null,
        agent: r.agent ?? null,
        actors: r.actors ?? [],
        req_wl: r.reqWl ?? null,
        scope: r.scope ?? [],
        token_sha256: tokenSha ?? null,
        ...(r.details ? { details: r.details } : {}),
      },
    };
    audit.write(event).catch((err: unknown) => {
      auditFailures.inc();
      logger.error({ err: (err as Error).message }, 'audit write failed');
    });
  }

  const deny = (reply: FastifyReply, status: 401 | 403 | 503, r: Record): FastifyReply => {
    record(r);
    return reply.code(status).send({
      granted: false,
      reason: r.reason,
      ...(r.details ? { details: r.details } : {}),
      ...(r.person ? { user: r.person } : {}),
      ...(r.agent ? { agent: r.agent } : {}),
      ...(r.txn ? { txn: r.txn } : {}),
    } satisfies AccessAnswer);
  };

  svc.app.post('/access', { schema: ACCESS_SCHEMA }, async (req: FastifyRequest, reply) => {
    const peer = req.spiffeId!.toString();
    const documentId = (req.body as { document_id: string }).document_id;
    if (!DOCUMENT_ID.test(documentId)) return sendProblem(reply, 'bad_request', 'bad document_id');
    const callerIsAgent = agents.has(peer);
    const check = await checkTxnToken(req, verifier, documentId);
    let person: string | undefined;
    let agent: string | undefined;
    const base: Record = { peer, documentId, granted: false, reason: '' };
    if (check.ok === 'absent') {
      // Only an agent can come without a person; the policy then answers agent_without_person.
      if (!callerIsAgent) return deny(reply, 401, { ...base, reason: 'txn_token_missing' });
      agent = peer;
    } else if (check.ok === false) {
      return deny(reply, check.unavailable ? 503 : 401, { ...base, reason: check.reason });
    } else {
      const t = check.token;
      Object.assign(base, {
        txn: t.txn,
        reqWl: t.requestingWorkload,
        scope: t.scope,
        rawToken: check.raw,
        actors: t.actors,
        person: t.subject,
        agent: t.actor,
      });
      // The token's agent must be the caller's certificate, and a direct caller must carry a
      // token with no agent in it: nobody speaks for an agent it is not.
      if (callerIsAgent ? t.actor !== peer : t.actor !== undefined) {
        return deny(reply, 403, { ...base, reason: 'actor_not_caller' });
      }
      person = t.subject;
      agent = t.actor;
    }
    const input = {
      ...(person ? { person } : {}),
      ...(agent ? { agent } : {}),
      document: documentId,
      action: 'read',
    };
    let decision: Decision;
    try {
      const answer = await policyClient.json(`${o.policyService.url}${POLICY_DECISION_ROUTE}`, {
        body: { input },
      });
      if (answer.status === 400) {
        // The policy cannot even read the input (e.g. a person id of another form): a deny.
        return deny(reply, 403, { ...base, person, agent, reason: 'policy_input_refused' });
      }
      if (answer.status !== 200) throw new Error(`policy answered ${answer.status}`);
      decision = parseDecision((answer.body as { result?: unknown } | undefined)?.result);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'policy service unavailable');
      return deny(reply, 503, { ...base, person, agent, reason: 'policy_unavailable' });
    }
    const r: Record = {
      ...base,
      person,
      agent,
      granted: decision.allow,
      reason: decision.reason,
      details: decision.details,
    };
    if (!decision.allow) return deny(reply, 403, r);
    record(r);
    const d = byId.get(documentId);
    return {
      granted: true,
      reason: decision.reason,
      details: decision.details,
      document: {
        id: documentId,
        title: d?.title ?? documentId,
        sensitivity: d?.sensitivity,
        content: `Contents of ${d?.title ?? documentId}.`,
      },
      ...(person ? { user: person } : {}),
      ...(agent ? { agent } : {}),
      ...(base.txn ? { txn: base.txn } : {}),
    } satisfies AccessAnswer;
  });

  const handle = await svc.start();
  return {
    ...handle,
    async flushAudit() {
      await audit?.flush();
    },
    async close() {
      await handle.close();
      await audit?.close();
      await Promise.all([tokenClient.close(), policyClient.close(), auditClient?.close()]);
    },
  };
}

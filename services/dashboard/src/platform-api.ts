// The platform views' API (/api/platform/*): workloads, audit, Kubernetes, NATS and consent,
// each read from a backend the caller injects (`precinct up` wires the identity server, the
// audit store, kube-dev and the NATS callout). The browser only ever talks to these routes;
// no route forwards a URL or lets a request name a backend. Every route needs a session: the
// dashboard's guard sets `req.user`, and this plugin refuses any request that reached it without.
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sendProblem } from '@precinct/runtime/http';
import type {
  AuditEventView,
  ChainVerification,
  NatsClientView,
  ServiceAccountView,
  TrustView,
  Workload,
} from './platform-views.js';

export type {
  AuditEventView,
  BundleAuthority,
  ChainVerification,
  NatsClientView,
  ServiceAccountView,
  TrustView,
  Workload,
} from './platform-views.js';

export interface AuditFilter {
  actor?: string;
  outcome?: 'success' | 'failure';
  correlationId?: string;
  limit?: number;
}

/** The audit store's export: NDJSON and its detached signature. */
export interface AuditExport {
  ndjson: string;
  signature?: string;
  algorithm?: string;
  keyId?: string;
}

/** Consent as the token service keeps it; `MemoryConsentStore` satisfies it as is. */
export interface ConsentBackend {
  mayAct(person: string, agent: string): Promise<boolean>;
  grant(person: string, agents: Iterable<string>): void | Promise<void>;
  withdraw(person: string, agent?: string): void | Promise<void>;
}

/** What the platform views read; each part is optional and its view says "not connected". */
export interface PlatformBackends {
  workloads?: {
    list(): Promise<Workload[]>;
    /** Calls `cb` on every rotation; returns the unsubscribe function. */
    onRotation(cb: (w: Workload) => void): () => void;
    trust(): Promise<TrustView>;
  };
  audit?: {
    list(filter: AuditFilter): Promise<AuditEventView[]>;
    verifyChain(correlationId: string): Promise<ChainVerification>;
    /** The store's signed export, passed through byte for byte (verify-export checks it). */
    export(filter: AuditFilter): Promise<AuditExport>;
  };
  kube?: { serviceAccounts(): Promise<ServiceAccountView[]> };
  nats?: { clients(): Promise<NatsClientView[]> };
  consent?: {
    store: ConsentBackend;
    /** The agents a person may grant, as SPIFFE IDs. */
    agents(): Promise<string[]>;
  };
}

export interface PlatformApiOptions {
  backends: PlatformBackends;
  /** The person's SPIFFE ID from the session's user name. */
  personId(user: string): string;
  /** Whether the session's person holds the auditor role: only they reach /api/platform/audit/*. */
  isAuditor(req: FastifyRequest): boolean;
}

const CORRELATION = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$/;
const ACTOR = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$/;
const SPIFFE = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)+$/;

// Response schemas: Fastify serializes only what they declare, so a backend that returns more
// (a key, a token, a raw certificate) cannot leak it to the browser.
const strs = { type: 'array', items: { type: 'string' } } as const;
const nullableStr = { type: ['string', 'null'] } as const;
const WORKLOAD = {
  type: 'object',
  properties: {
    spiffeId: { type: 'string' },
    serial: { type: 'string' },
    notAfter: { type: 'string' },
    selectors: strs,
  },
} as const;
const AUTHORITIES = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      fingerprint: { type: 'string' },
      subject: { type: 'string' },
      notAfter: { type: 'string' },
    },
  },
} as const;
const allowDeny = { type: 'object', properties: { allow: strs, deny: strs } } as const;
const ok200 = (properties: Record<string, unknown>) => ({
  response: { 200: { type: 'object', properties } },
});
const SCHEMAS = {
  workloads: ok200({
    connected: { type: 'boolean' },
    workloads: { type: 'array', items: WORKLOAD },
    trust: {
      type: 'object',
      properties: {
        trustDomain: { type: 'string' },
        authorities: AUTHORITIES,
        federation: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              trustDomain: { type: 'string' },
              endpoint: { type: 'string' },
              authorities: AUTHORITIES,
            },
          },
        },
      },
    },
  }),
  audit: ok200({
    connected: { type: 'boolean' },
    events: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          event_id: { type: 'string' },
          event_timestamp: { type: 'string' },
          correlation_id: { type: 'string' },
          chain_seq: { type: 'integer' },
          actor_id: { type: 'string' },
          resource_id: nullableStr,
          event_outcome: { type: 'string' },
          on_behalf_of: nullableStr,
          agent: nullableStr,
          decision: nullableStr,
          reason: nullableStr,
        },
      },
    },
  }),
  verify: ok200({
    correlation_id: { type: 'string' },
    is_valid: { type: 'boolean' },
    events_checked: { type: 'integer' },
    broken_links: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          event_id: nullableStr,
          chain_seq: { type: ['integer', 'null'] },
          reason: { type: 'string' },
        },
      },
    },
    tampered_events: strs,
  }),
  kube: ok200({
    connected: { type: 'boolean' },
    serviceAccounts: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          namespace: { type: 'string' },
          name: { type: 'string' },
          annotations: { type: 'object', additionalProperties: { type: 'string' } },
          spiffeId: { type: 'string' },
          nats: { type: 'object', properties: { pub: allowDeny, sub: allowDeny } },
        },
      },
    },
  }),
  nats: ok200({
    connected: { type: 'boolean' },
    clients: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          account: { type: 'string' },
          spiffeId: { type: 'string' },
          pub: strs,
          sub: strs,
          connectedAt: { type: 'string' },
        },
      },
    },
  }),
  consent: ok200({
    connected: { type: 'boolean' },
    agents: {
      type: 'array',
      items: {
        type: 'object',
        properties: { id: { type: 'string' }, granted: { type: 'boolean' } },
      },
    },
  }),
  consentChange: ok200({ id: { type: 'string' }, granted: { type: 'boolean' } }),
};

function userOf(req: FastifyRequest): string | undefined {
  return (req as { user?: string }).user;
}

function auditFilter(q: Record<string, unknown>): AuditFilter | undefined {
  const f: AuditFilter = {};
  if (q.actor !== undefined && q.actor !== '') {
    if (typeof q.actor !== 'string' || !ACTOR.test(q.actor)) return undefined;
    f.actor = q.actor;
  }
  if (q.outcome !== undefined && q.outcome !== '') {
    if (q.outcome !== 'success' && q.outcome !== 'failure') return undefined;
    f.outcome = q.outcome;
  }
  if (q.correlation_id !== undefined && q.correlation_id !== '') {
    if (typeof q.correlation_id !== 'string' || !CORRELATION.test(q.correlation_id))
      return undefined;
    f.correlationId = q.correlation_id;
  }
  f.limit = 200;
  return f;
}

/**
 * Registers `/api/platform/*`. Register it inside the dashboard, after its session guard: a
 * request without `req.user` is refused here too, so mounting it elsewhere cannot open it.
 */
export async function platformApi(app: FastifyInstance, o: PlatformApiOptions): Promise<void> {
  const b = o.backends;
  // Open rotation streams and how to unsubscribe each (ended at close, whatever the client does).
  const streams = new Map<ServerResponse, () => void>();

  app.addHook('preHandler', async (req, reply) => {
    if (!userOf(req)) return sendProblem(reply, 'authentication_failed');
    if ((req.routeOptions.url ?? '').startsWith('/api/platform/audit/') && !o.isAuditor(req)) {
      req.log.info({ reason: 'not_auditor' }, 'request refused');
      return sendProblem(reply, 'authorization_failed');
    }
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('cache-control', 'no-store');
    return payload;
  });
  // Before the server stops: an open stream would otherwise hold close() until its client left.
  app.addHook('preClose', async () => {
    for (const [res, stop] of streams) {
      stop();
      res.end();
    }
    streams.clear();
  });

  // A backend failure says "unavailable" to the browser; the cause stays in the log.
  const guarded =
    <T>(fn: (req: FastifyRequest, reply: FastifyReply) => Promise<T>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      try {
        return await fn(req, reply);
      } catch (err) {
        req.log.warn({ err: (err as Error).message, route: req.routeOptions.url }, 'backend');
        return sendProblem(reply, 'unavailable');
      }
    };

  app.get('/api/platform/capabilities', async (req) => ({
    workloads: b.workloads !== undefined,
    audit: b.audit !== undefined && o.isAuditor(req),
    kube: b.kube !== undefined,
    nats: b.nats !== undefined,
    consent: b.consent !== undefined,
  }));

  app.get(
    '/api/platform/workloads',
    { schema: SCHEMAS.workloads },
    guarded(async () =>
      b.workloads
        ? { connected: true, workloads: await b.workloads.list(), trust: await b.workloads.trust() }
        : { connected: false, workloads: [] },
    ),
  );

  app.get('/api/platform/workloads/rotations', async (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
    });
    res.write(': connected\n\n');
    const off = b.workloads?.onRotation((w) => {
      const shown = { spiffeId: w.spiffeId, serial: w.serial, notAfter: w.notAfter };
      res.write(`event: rotation\ndata: ${JSON.stringify(shown)}\n\n`);
    });
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    ping.unref();
    const stop = () => {
      clearInterval(ping);
      off?.();
      streams.delete(res);
    };
    streams.set(res, stop);
    req.raw.on('close', stop);
  });

  app.get(
    '/api/platform/audit/events',
    { schema: SCHEMAS.audit },
    guarded(async (req, reply) => {
      if (!b.audit) return { connected: false, events: [] };
      const f = auditFilter(req.query as Record<string, unknown>);
      if (!f) return sendProblem(reply, 'bad_request', 'bad filter');
      return { connected: true, events: await b.audit.list(f) };
    }),
  );

  app.post(
    '/api/platform/audit/verify',
    { schema: SCHEMAS.verify },
    guarded(async (req, reply) => {
      const id = (req.body as { correlation_id?: unknown } | undefined)?.correlation_id;
      if (typeof id !== 'string' || !CORRELATION.test(id))
        return sendProblem(reply, 'bad_request', 'correlation_id is required');
      if (!b.audit) return sendProblem(reply, 'unavailable');
      return b.audit.verifyChain(id);
    }),
  );

  app.get(
    '/api/platform/audit/export',
    guarded(async (req, reply) => {
      if (!b.audit) return sendProblem(reply, 'unavailable');
      const f = auditFilter(req.query as Record<string, unknown>);
      if (!f) return sendProblem(reply, 'bad_request', 'bad filter');
      const x = await b.audit.export(f);
      if (x.signature) reply.header('x-audit-export-signature', x.signature);
      if (x.algorithm) reply.header('x-audit-export-signature-alg', x.algorithm);
      if (x.keyId) reply.header('x-audit-export-key-id', x.keyId);
      return reply
        .header('content-disposition', 'attachment; filename="precinct-audit-export.ndjson"')
        .type('application/x-ndjson')
        .send(x.ndjson);
    }),
  );

  app.get(
    '/api/platform/kube/serviceaccounts',
    { schema: SCHEMAS.kube },
    guarded(async () =>
      b.kube
        ? { connected: true, serviceAccounts: await b.kube.serviceAccounts() }
        : { connected: false, serviceAccounts: [] },
    ),
  );

  app.get(
    '/api/platform/nats/clients',
    { schema: SCHEMAS.nats },
    guarded(async () =>
      b.nats
        ? { connected: true, clients: await b.nats.clients() }
        : { connected: false, clients: [] },
    ),
  );

  // Consent: the person is the session's, never the body's.
  app.get(
    '/api/platform/consent',
    { schema: SCHEMAS.consent },
    guarded(async (req) => {
      if (!b.consent) return { connected: false, agents: [] };
      const person = o.personId(userOf(req)!);
      const agents = await b.consent.agents();
      return {
        connected: true,
        agents: await Promise.all(
          agents.map(async (id) => ({ id, granted: await b.consent!.store.mayAct(person, id) })),
        ),
      };
    }),
  );

  app.post(
    '/api/platform/consent',
    { schema: SCHEMAS.consentChange },
    guarded(async (req, reply) => {
      const body = req.body as Record<string, unknown> | undefined;
      if (
        typeof body !== 'object' ||
        body === null ||
        Object.keys(body).some((k) => k !== 'agent' && k !== 'granted') ||
        typeof body.agent !== 'string' ||
        !SPIFFE.test(body.agent) ||
        typeof body.granted !== 'boolean'
      ) {
        return sendProblem(reply, 'bad_request', 'send {agent, granted}');
      }
      if (!b.consent) return sendProblem(reply, 'unavailable');
      const agents = await b.consent.agents();
      if (!agents.includes(body.agent)) return sendProblem(reply, 'bad_request', 'unknown agent');
      const person = o.personId(userOf(req)!);
      if (body.granted) await b.consent.store.grant(person, [body.agent]);
      else await b.consent.store.withdraw(person, body.agent);
      req.log.info({ agent: body.agent, granted: body.granted }, 'consent changed');
      return { id: body.agent, granted: body.granted };
    }),
  );
}

// The pieces every demo service shares: an mTLS Fastify app whose callers are checked against an
// allow-list of SPIFFE IDs, probes on a separate plain port, forgeable identity headers removed
// before any route sees them, and an mTLS client that accepts exactly one server identity.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { Agent, fetch as undiciFetch, request, type Dispatcher } from 'undici';
import {
  authorizeId,
  authorizeMemberOf,
  tlsClientOptions,
  tlsServerOptions,
  undiciConnector,
  type X509BundleSource,
  type X509SvidSource,
} from '@precinct/spiffe';
import { spiffeFastify } from '@precinct/spiffe/fastify';
import { formatHostPort, listen, type Logger } from '@precinct/runtime';
import { probesPlugin, sendProblem, type ReadyCheck } from '@precinct/runtime/http';

/** Scope a Transaction Token must carry to read a document. */
export const documentScope = (documentId: string): string => `documents:read:${documentId}`;

/** `spiffe://<td>/user/<name>`: the person form the policy expects. */
export const userSpiffeId = (trustDomain: string, name: string): string =>
  `spiffe://${trustDomain}/user/${name}`;
/** `spiffe://<td>/agent/<name>`: an agent's SVID, held by the agent service. */
export const agentSpiffeId = (trustDomain: string, name: string): string =>
  `spiffe://${trustDomain}/agent/${name}`;

/** A bounded document id (the policy's own syntax). */
export const DOCUMENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** A bounded user or agent name. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// Identity a client could simply type. Removed at the edge of every service, never read: the
// person travels only in a signed Transaction Token, the caller only in its certificate.
const FORGEABLE = new Set([
  'x-spiffe-id',
  'x-auth-request-user',
  'x-remote-user',
  'x-forwarded-user',
]);
export function stripIdentityHeaders(headers: Record<string, unknown>): void {
  for (const name of Object.keys(headers)) {
    if (FORGEABLE.has(name) || name.startsWith('impersonate-')) delete headers[name];
  }
}

/** Where a started service can be reached. */
export interface ServiceHandle {
  /** `https://host:port`, mTLS. */
  url: string;
  /** `http://host:port`: /health, /ready, /metrics. */
  healthUrl: string;
  /** The service's own SPIFFE ID (the server identity its clients pin). */
  spiffeId: string;
  close(): Promise<void>;
}

export interface ListenConfig {
  /** Default `::`. */
  host?: string;
  /** Default 0. */
  port?: number;
  /** Default `host`. */
  healthHost?: string;
  /** Default 0. */
  healthPort?: number;
  /** Host in URLs when listening on a wildcard address. Default localhost. */
  advertiseHost?: string;
}

export interface MtlsServiceOptions extends ListenConfig {
  name: string;
  svidSource: X509SvidSource;
  bundleSource: X509BundleSource;
  /** Which peers may call at all (their verified SPIFFE ID). */
  allow: (spiffeId: string) => boolean;
  logger: Logger;
  ready?: Record<string, ReadyCheck>;
  bodyLimit?: number;
}

export interface MtlsService {
  app: FastifyInstance;
  registry: Registry;
  /** Starts listening (after routes are added). */
  start(): Promise<ServiceHandle>;
}

/**
 * An mTLS Fastify app: TLS admits only SVIDs of this trust domain; an onRequest hook then
 * refuses (403) peers not on the allow-list, so a wrong caller is also counted and logged.
 */
export async function mtlsService(o: MtlsServiceOptions): Promise<MtlsService> {
  const svid = o.svidSource.getX509Svid();
  const trustDomain = svid.id.trustDomain.name;
  const tlsOptions = tlsServerOptions(o.svidSource, o.bundleSource, authorizeMemberOf(trustDomain));
  const app = Fastify({
    https: tlsOptions,
    loggerInstance: o.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: o.bodyLimit ?? 16 * 1024,
  });
  await app.register(spiffeFastify, { tlsOptions });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const refused = new Counter({
    name: 'precinct_demo_callers_refused_total',
    help: 'Requests refused because the mTLS peer is not on the allow-list',
    labelNames: ['service'],
    registers: [registry],
  });
  app.addHook('onRequest', async (req, reply) => {
    stripIdentityHeaders(req.headers);
    const peer = req.spiffeId?.toString();
    if (!peer || !o.allow(peer)) {
      refused.inc({ service: o.name });
      o.logger.warn({ peer, reason: 'caller_not_allowed' }, 'caller refused');
      return sendProblem(reply, 'authorization_failed');
    }
  });
  app.setNotFoundHandler((_req, reply) => sendProblem(reply, 'not_found'));
  app.setErrorHandler((err, _req, reply) => {
    const status = (err as { statusCode?: number }).statusCode;
    if (status === 413) return sendProblem(reply, 'payload_too_large');
    if (status === 415) return sendProblem(reply, 'unsupported_media_type');
    if (status !== undefined && status < 500) return sendProblem(reply, 'bad_request');
    o.logger.error({ err: (err as Error).message }, 'unexpected error');
    return sendProblem(reply, 'internal');
  });
  return {
    app,
    registry,
    async start() {
      const probes = Fastify({ logController: new LogController({ disableRequestLogging: true }) });
      await probes.register(probesPlugin, {
        registry,
        ready: { svid: () => o.svidSource.getX509Svid() !== undefined, ...o.ready },
      });
      const host = o.host ?? '::';
      const healthHost = o.healthHost ?? host;
      let port: number;
      let healthPort: number;
      try {
        await app.ready();
        await probes.ready();
        port = await listen(app.server, { host, port: o.port ?? 0 });
        healthPort = await listen(probes.server, { host: healthHost, port: o.healthPort ?? 0 });
      } catch (err) {
        await app.close();
        await probes.close();
        throw err;
      }
      const shown = (h: string) =>
        h === '::' || h === '0.0.0.0' ? (o.advertiseHost ?? 'localhost') : h;
      let closed: Promise<void> | undefined;
      return {
        url: `https://${formatHostPort(shown(host), port)}`,
        healthUrl: `http://${formatHostPort(shown(healthHost), healthPort)}`,
        spiffeId: svid.id.toString(),
        close() {
          closed ??= (async () => {
            await probes.close();
            await app.close();
          })();
          return closed;
        },
      };
    },
  };
}

/**
 * Turns Nagle's algorithm off on each connection, as undici's own connector does: small
 * request/answer exchanges otherwise wait for delayed ACKs (tens of ms per hop).
 */
export function noDelay(
  connect: ReturnType<typeof undiciConnector>,
): ReturnType<typeof undiciConnector> {
  return (o, cb) =>
    connect(o, (...args) => {
      args[1]?.setNoDelay(true);
      (cb as (...a: unknown[]) => void)(...args);
    });
}

/** An answer from a peer: status and parsed JSON body (undefined when not JSON). */
export interface PeerAnswer {
  status: number;
  body: unknown;
}

const MAX_ANSWER_BYTES = 256 * 1024;

/**
 * An mTLS client presenting `svidSource`'s SVID and accepting only `serverId` as the server.
 * `json()` rejects on network failure (the caller maps that to 503, never to an allow).
 */
export class MtlsClient {
  readonly dispatcher: Agent;
  constructor(
    svidSource: X509SvidSource,
    bundleSource: X509BundleSource,
    readonly serverId: string,
  ) {
    this.dispatcher = new Agent({
      connect: noDelay(
        undiciConnector(tlsClientOptions(svidSource, bundleSource, authorizeId(serverId))),
      ) as never,
      keepAliveTimeout: 10_000,
    });
  }

  async json(
    url: string,
    init: { method?: Dispatcher.HttpMethod; headers?: Record<string, string>; body?: unknown } = {},
  ): Promise<PeerAnswer> {
    const res = await request(url, {
      dispatcher: this.dispatcher,
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: {
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...init.headers,
      },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_ANSWER_BYTES) {
        res.body.destroy();
        throw new Error('answer too large');
      }
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.statusCode, body };
  }

  /** A fetch over this client's connections (for jose's remote JWKS). */
  fetch: typeof globalThis.fetch = ((input: string | URL, init?: RequestInit) =>
    undiciFetch(input as string, {
      ...(init as object),
      dispatcher: this.dispatcher,
    })) as unknown as typeof globalThis.fetch;

  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

/** An X509SvidSource handing out one SVID, by SPIFFE ID, of a workload that holds several. */
export function pickSvid(
  source: X509SvidSource & {
    getX509Svids?: () => readonly ReturnType<X509SvidSource['getX509Svid']>[];
  },
  spiffeId: string,
): X509SvidSource {
  return {
    getX509Svid() {
      const all = source.getX509Svids ? source.getX509Svids() : [source.getX509Svid()];
      const svid = all.find((s) => s.id.toString() === spiffeId);
      if (!svid) throw new Error(`demo: the workload holds no SVID for ${spiffeId}`);
      return svid;
    },
  };
}

/** The body every `POST .../access` route takes: one document id, nothing else. */
export const ACCESS_SCHEMA = {
  body: {
    type: 'object',
    required: ['document_id'],
    additionalProperties: false,
    properties: { document_id: { type: 'string', minLength: 1, maxLength: 128 } },
  },
} as const;

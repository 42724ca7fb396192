// The dashboard: a backend-for-frontend on its own origin. People log in with a password; the
// session cookie is theirs alone (httpOnly, SameSite=Strict); every access request derives the
// person from the session, turns it into an ID token and then a Transaction Token at the token
// service (mTLS as the dashboard), and sends that token down the chain. Nothing a browser sends
// can name another person.
import { createHash, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { Agent, request } from 'undici';
import { TXN_TOKEN_HEADER, TXN_TOKEN_TYPE } from '@precinct/delegation';
import { createLogger, formatHostPort, listen, type Logger } from '@precinct/runtime';
import { probesPlugin, sendProblem } from '@precinct/runtime/http';
import {
  authorizeId,
  tlsClientOptions,
  undiciConnector,
  type X509BundleSource,
  type X509SvidSource,
} from '@precinct/spiffe';
import type { DashboardIdp } from './idp.js';
import { OidcLogin, OidcRefused, type DashboardOidcOptions } from './oidc.js';
import {
  PeopleTokenInvalid,
  PeopleTokensRefused,
  type PeopleTokensBackend,
} from './people-tokens.js';
import { platformApi, type PlatformBackends } from './platform-api.js';
import { UI_PUBLIC_ROUTES, uiPlugin } from './static.js';
import { PasswordBook, loadOrCreateDemoPasswords } from './people.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
export const SESSION_COOKIE = 'precinct_session';
const MAX_SESSIONS = 10_000;
const MAX_STREAMS_PER_PERSON = 8;
const DOCUMENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface Peer {
  url: string;
  spiffeId: string;
}

export interface DashboardOptions {
  /** The dashboard's SVID, used for its mTLS calls. */
  svidSource: X509SvidSource;
  bundleSource: X509BundleSource;
  trustDomain: string;
  tokenService: Peer;
  userService: Peer;
  agentService: Peer;
  idp: DashboardIdp;
  /** Where the demo people's generated passwords are (created 0600 when missing). */
  demoUsersFile: string;
  /** People who can log in with a demo password. Default alice, bob, carol. */
  people?: readonly string[];
  /**
   * People from this OpenID Provider instead of demo passwords (one identity source at a time).
   * The redirect URI is `<publicUrl>/api/auth/oidc/callback`; register it at the provider.
   */
  oidc?: DashboardOidcOptions;
  /** The dashboard's URL as browsers reach it (behind a proxy). Default: its own listen URL. */
  publicUrl?: string;
  /**
   * Names of the people who may read the audit trail. Default: the people whose departments in
   * the user service's directory include `auditorDepartment` (with OIDC, also the provider's
   * `auditorGroups`).
   */
  auditors?: readonly string[];
  /** Default `admin` (bob in the demo's policy data). */
  auditorDepartment?: string;
  /** Health URLs shown by /api/status, by service name. */
  statusTargets?: Record<string, string>;
  /** Serve HTTPS with this key pair (cookies then get `Secure`). Default plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Further origins allowed to send state-changing requests (besides the dashboard's own). */
  allowedOrigins?: readonly string[];
  sessionTtlSeconds?: number;
  host?: string;
  port?: number;
  healthHost?: string;
  healthPort?: number;
  advertiseHost?: string;
  logger?: Logger;
  /** Backends of the platform views (/api/platform/*); see platform-api.ts. Default: none. */
  platform?: PlatformBackends;
  /** People's third-party tokens (/api/secrets/*), when a secrets manager is configured. */
  peopleTokens?: PeopleTokensBackend;
}

export interface Dashboard {
  url: string;
  healthUrl: string;
  close(): Promise<void>;
}

type IdentitySource = 'demo' | 'oidc';

interface Session {
  user: string;
  source: IdentitySource;
  auditor: boolean;
  expiresAt: number;
  /** The provider's ID token (OIDC): the hint for logging out there too. Never sent out. */
  idToken?: string;
}

const OIDC_COOKIE = 'precinct_oidc';
const OIDC_CALLBACK = '/api/auth/oidc/callback';

interface DecisionEvent {
  mode: 'direct' | 'delegated' | 'autonomous';
  user: string;
  agent?: string;
  document: string;
  granted: boolean;
  reason: string;
  at: string;
}

class PeerClient {
  readonly dispatcher: Agent;
  constructor(
    svid: X509SvidSource,
    bundles: X509BundleSource,
    readonly peer: Peer,
  ) {
    const connect = undiciConnector(tlsClientOptions(svid, bundles, authorizeId(peer.spiffeId)));
    this.dispatcher = new Agent({
      // Nagle off, as undici's own connector does: no delayed-ACK waits per request.
      connect: ((o, cb) =>
        connect(o, (...args) => {
          args[1]?.setNoDelay(true);
          (cb as (...a: unknown[]) => void)(...args);
        })) as typeof connect as never,
    });
  }
  async call(
    path: string,
    init: { body?: string; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: unknown }> {
    const res = await request(`${this.peer.url}${path}`, {
      dispatcher: this.dispatcher,
      method: init.body === undefined ? 'GET' : 'POST',
      headers: init.headers ?? {},
      ...(init.body !== undefined ? { body: init.body } : {}),
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const text = await res.body.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.statusCode, body };
  }
  json(path: string, body: unknown, headers: Record<string, string> = {}) {
    return this.call(path, {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    });
  }
  close() {
    return this.dispatcher.close();
  }
}

const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

// Identity a browser could type; removed before any route, never read.
function stripIdentityHeaders(headers: Record<string, unknown>): void {
  for (const name of Object.keys(headers)) {
    if (
      name === 'x-spiffe-id' ||
      name === 'x-auth-request-user' ||
      name === 'x-remote-user' ||
      name === 'x-forwarded-user' ||
      name.startsWith('impersonate-')
    ) {
      delete headers[name];
    }
  }
}

const LOGIN_SCHEMA = {
  body: {
    type: 'object',
    required: ['username', 'password'],
    additionalProperties: false,
    properties: {
      username: { type: 'string', minLength: 1, maxLength: 64 },
      password: { type: 'string', minLength: 1, maxLength: 256 },
    },
  },
};

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const logger = o.logger ?? createLogger('dashboard');
  const people = o.people ?? ['alice', 'bob', 'carol'];
  const source: IdentitySource = o.oidc ? 'oidc' : 'demo';
  const oidcLogin = o.oidc ? new OidcLogin(o.oidc) : undefined;
  const book = oidcLogin
    ? undefined
    : await PasswordBook.create(loadOrCreateDemoPasswords(o.demoUsersFile, people));
  const sessions = new Map<string, Session>();
  const ttlMs = (o.sessionTtlSeconds ?? 8 * 3600) * 1000;
  const secure = o.tls !== undefined;
  const scheme = secure ? 'https' : 'http';
  const tokenClient = new PeerClient(o.svidSource, o.bundleSource, o.tokenService);
  const userClient = new PeerClient(o.svidSource, o.bundleSource, o.userService);
  const agentClient = new PeerClient(o.svidSource, o.bundleSource, o.agentService);
  const subscribers = new Map<ServerResponse, string>();
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const logins = new Counter({
    name: 'precinct_dashboard_logins_total',
    help: 'Login attempts by result',
    labelNames: ['result'],
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'precinct_dashboard_refused_total',
    help: 'Requests refused by the dashboard, by bounded reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  let ownOrigins: string[] = [];
  // Set once listening; the OIDC redirect URI is derived from it.
  let publicUrl = '';
  let ownHosts = new Set<string>();

  const app = Fastify({
    ...(o.tls ? { https: { cert: o.tls.cert, key: o.tls.key } } : {}),
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 8 * 1024,
  });
  app.addHook('onRequest', async (req) => stripIdentityHeaders(req.headers));
  app.setNotFoundHandler((_req, reply) => sendProblem(reply, 'not_found'));
  app.setErrorHandler((err, _req, reply) => {
    const status = (err as { statusCode?: number }).statusCode;
    if (status === 413) return sendProblem(reply, 'payload_too_large');
    if (status === 415) return sendProblem(reply, 'unsupported_media_type');
    if (status !== undefined && status < 500) return sendProblem(reply, 'bad_request');
    logger.error({ err: (err as Error).message }, 'unexpected error');
    return sendProblem(reply, 'internal');
  });

  const refuse = (
    reply: FastifyReply,
    code: 'authentication_failed' | 'authorization_failed' | 'bad_request' | 'too_many_requests',
    reason: string,
    detail?: string,
  ) => {
    refusals.inc({ reason });
    logger.info({ reason }, 'request refused');
    return sendProblem(reply, code, detail);
  };

  /** CSRF: a state-changing request must come from this origin. */
  function sameOrigin(req: FastifyRequest): boolean {
    const origin = req.headers.origin;
    if (typeof origin === 'string') {
      const host = req.headers.host;
      // The Host-derived origin counts only for names of this server (localhost, 127.0.0.1,
      // [::1], the advertised host): a DNS-rebinding page's own name is never one of them.
      return (
        (typeof host === 'string' && ownHosts.has(host) && origin === `${scheme}://${host}`) ||
        ownOrigins.includes(origin) ||
        (o.allowedOrigins ?? []).includes(origin)
      );
    }
    return req.headers['sec-fetch-site'] === 'same-origin';
  }

  function session(req: FastifyRequest): Session | undefined {
    const raw = cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (!raw || !/^[A-Za-z0-9_-]{43}$/.test(raw)) return undefined;
    // Looked up by hash: the map never holds a usable cookie, and lookup time says nothing.
    const key = sha256(raw);
    const s = sessions.get(key);
    if (!s) return undefined;
    if (s.expiresAt <= Date.now()) {
      sessions.delete(key);
      return undefined;
    }
    return s;
  }

  const cookie = (value: string, maxAgeSeconds: number) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;

  // Guards: a session for everything under /api except login; same origin for every request
  // that changes state (anything but GET and HEAD).
  app.addHook('preValidation', async (req, reply) => {
    const url = req.routeOptions.url ?? '';
    if (req.method !== 'GET' && req.method !== 'HEAD' && !sameOrigin(req)) {
      return refuse(reply, 'authorization_failed', 'cross_origin');
    }
    const open =
      url === '/api/auth/login' ||
      url === '/api/auth/config' ||
      url === '/api/auth/oidc/login' ||
      url === OIDC_CALLBACK ||
      url === '/health' ||
      url === '/api/status' ||
      UI_PUBLIC_ROUTES.has(url) ||
      url === '/.well-known/jwks.json';
    if (!open) {
      const s = session(req);
      if (!s) return refuse(reply, 'authentication_failed', 'no_session');
      (req as { user?: string }).user = s.user;
      (req as { auditor?: boolean }).auditor = s.auditor;
    }
  });

  /** Whether `user` may read the audit trail; decided once, at login. Fails closed. */
  async function isAuditor(user: string, byProvider: boolean): Promise<boolean> {
    if (o.auditors) return o.auditors.includes(user);
    if (byProvider) return true;
    const department = o.auditorDepartment ?? 'admin';
    try {
      const r = await userClient.call('/users');
      const list = Array.isArray(r.body)
        ? (r.body as Array<{ id?: unknown; departments?: unknown }>)
        : [];
      const me = r.status === 200 ? list.find((p) => p.id === user) : undefined;
      return Array.isArray(me?.departments) && me.departments.includes(department);
    } catch {
      logger.warn('user service unavailable: auditor role not granted');
      return false;
    }
  }

  /** A new session for `user`: it, and the cookie header to send. */
  async function newSession(
    user: string,
    auditorByProvider: boolean,
    idToken?: string,
  ): Promise<{ session: Session; setCookie: string }> {
    const value = randomBytes(32).toString('base64url');
    // Bounded: past the limit the oldest session ends (Maps iterate in insertion order).
    if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
    const auditor = await isAuditor(user, auditorByProvider);
    const session: Session = {
      user,
      source,
      auditor,
      expiresAt: Date.now() + ttlMs,
      ...(idToken ? { idToken } : {}),
    };
    sessions.set(sha256(value), session);
    logger.info({ user, source, auditor }, 'logged in');
    return { session, setCookie: cookie(value, Math.floor(ttlMs / 1000)) };
  }

  const me = (s: Pick<Session, 'user' | 'auditor'>) => ({
    user: s.user,
    spiffe_id: personId(s.user),
    source,
    auditor: s.auditor,
  });

  app.get('/api/auth/config', async () => ({
    source,
    ...(oidcLogin ? { login_url: '/api/auth/oidc/login', issuer: oidcLogin.issuer } : {}),
  }));

  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/.well-known/jwks.json', async () => o.idp.jwks());

  app.post('/api/auth/login', { schema: LOGIN_SCHEMA }, async (req, reply) => {
    // One identity source at a time: with an OpenID Provider there are no passwords here.
    if (!book) return sendProblem(reply, 'not_found');
    const { username, password } = req.body as { username: string; password: string };
    const user = await book.verify(username, password);
    if (!user) {
      logins.inc({ result: 'refused' });
      return refuse(reply, 'authentication_failed', 'bad_credentials');
    }
    logins.inc({ result: 'ok' });
    const { session: s, setCookie } = await newSession(user, false);
    return reply.header('set-cookie', setCookie).header('cache-control', 'no-store').send(me(s));
  });

  const oidcCookie = (value: string, maxAgeSeconds: number) =>
    // Lax, not Strict: the provider's redirect back is a cross-site navigation that must carry it.
    `${OIDC_COOKIE}=${value}; Path=/api/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;

  app.get('/api/auth/oidc/login', async (_req, reply) => {
    if (!oidcLogin) return sendProblem(reply, 'not_found');
    let started;
    try {
      started = await oidcLogin.begin(`${publicUrl}${OIDC_CALLBACK}`);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'OpenID Provider unavailable');
      return sendProblem(reply, 'unavailable');
    }
    return reply
      .header('set-cookie', oidcCookie(started.cookie, 600))
      .header('cache-control', 'no-store')
      .redirect(started.url, 302);
  });

  app.get(OIDC_CALLBACK, async (req, reply) => {
    if (!oidcLogin) return sendProblem(reply, 'not_found');
    // The URL the provider redirected to, rebuilt from our own redirect URI (never the Host).
    const query = req.url.indexOf('?');
    const callbackUrl = new URL(
      `${publicUrl}${OIDC_CALLBACK}${query >= 0 ? req.url.slice(query) : ''}`,
    );
    reply.header('cache-control', 'no-store');
    let person;
    try {
      person = await oidcLogin.finish(cookieValue(req.headers.cookie, OIDC_COOKIE), callbackUrl);
    } catch (err) {
      logins.inc({ result: 'refused' });
      const reason = err instanceof OidcRefused ? err.reason : 'oidc_failed';
      reply.header('set-cookie', oidcCookie('', 0));
      if (reason === 'oidc_provider_unavailable') {
        refusals.inc({ reason });
        return sendProblem(reply, 'unavailable');
      }
      return refuse(reply, 'authentication_failed', reason);
    }
    logins.inc({ result: 'ok' });
    const { setCookie } = await newSession(person.name, person.auditor, person.idToken);
    return reply.header('set-cookie', [setCookie, oidcCookie('', 0)]).redirect('/', 302);
  });

  app.post('/api/auth/logout', async (req, reply) => {
    const raw = cookieValue(req.headers.cookie, SESSION_COOKIE);
    const s = raw ? sessions.get(sha256(raw)) : undefined;
    if (raw) sessions.delete(sha256(raw));
    reply.header('set-cookie', cookie('', 0)).header('cache-control', 'no-store');
    // With an OpenID Provider (when configured): the browser goes on to end its session there.
    const endSession =
      oidcLogin && s?.idToken
        ? await oidcLogin.endSessionUrl(s.idToken, `${publicUrl}/`)
        : undefined;
    return endSession ? reply.send({ end_session_url: endSession }) : reply.code(204).send();
  });

  app.get('/api/auth/me', async (req) => {
    const r = req as { user?: string; auditor?: boolean };
    return me({ user: r.user!, auditor: r.auditor === true });
  });

  const personId = (user: string) => `spiffe://${o.trustDomain}/user/${user}`;

  const passThrough =
    (client: PeerClient, path: string) => async (_req: FastifyRequest, reply: FastifyReply) => {
      try {
        const a = await client.call(path);
        return reply
          .code(a.status === 200 ? 200 : 502)
          .send(a.status === 200 ? a.body : { title: 'upstream error' });
      } catch {
        return sendProblem(reply, 'unavailable');
      }
    };
  app.get('/api/users', passThrough(userClient, '/users'));
  app.get('/api/documents', passThrough(userClient, '/documents'));
  app.get('/api/agents', passThrough(agentClient, '/agents'));

  app.get('/api/status', async () => {
    const services: Record<string, string> = {};
    await Promise.all(
      Object.entries(o.statusTargets ?? {}).map(async ([name, url]) => {
        try {
          const r = await request(`${url}/ready`, { headersTimeout: 2000, bodyTimeout: 2000 });
          await r.body.dump();
          services[name] = r.statusCode === 200 ? 'up' : 'not ready';
        } catch {
          services[name] = 'down';
        }
      }),
    );
    return { services };
  });

  /**
   * The person's Transaction Token for `scope`, for `agent` (its SPIFFE ID) when the request is
   * delegated (the token service then decides for person ∩ agent), or the refusal to send: the
   * policy's reason and details when the policy refused, as the reference answers.
   */
  async function personToken(
    user: string,
    scope: string,
    agent?: string,
  ): Promise<string | { status: number; reason: string; details?: unknown; txn?: string }> {
    const idToken = o.idp.mint(personId(user));
    let res;
    try {
      res = await tokenClient.call('/token', {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: TOKEN_EXCHANGE,
          requested_token_type: TXN_TOKEN_TYPE,
          audience: o.trustDomain,
          scope,
          subject_token: idToken,
          subject_token_type: ID_TOKEN_TYPE,
          ...(agent ? { requested_actor: agent } : {}),
        }).toString(),
      });
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'token service unavailable');
      return { status: 503, reason: 'token_service_unavailable' };
    }
    const body = res.body as
      { access_token?: unknown; error?: unknown; txn?: unknown; decision?: unknown } | undefined;
    if (res.status === 200 && typeof body?.access_token === 'string') return body.access_token;
    logger.info(
      { status: res.status, error: String(body?.error ?? '').slice(0, 64) },
      'token service refused',
    );
    if (res.status >= 500) return { status: 503, reason: 'token_service_unavailable' };
    const d = body?.decision as { reason?: unknown; details?: unknown } | undefined;
    const txn = typeof body?.txn === 'string' ? { txn: body.txn.slice(0, 64) } : {};
    if (typeof d?.reason === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(d.reason)) {
      return { status: 403, reason: d.reason, details: d.details, ...txn };
    }
    return { status: 403, reason: agent ? 'delegation_refused' : 'token_refused', ...txn };
  }

  /** The refusal answer of an access route, shaped as the document service's. */
  const refusal = (
    user: string,
    t: { reason: string; details?: unknown; txn?: string },
    agent?: string,
  ) => ({
    granted: false,
    reason: t.reason,
    ...(t.details !== undefined ? { details: t.details } : {}),
    user: personId(user),
    ...(agent ? { agent } : {}),
    ...(t.txn ? { txn: t.txn } : {}),
  });

  function publish(user: string, e: Omit<DecisionEvent, 'user' | 'at'>) {
    const event: DecisionEvent = { ...e, user, at: new Date().toISOString() };
    const line = `event: decision\ndata: ${JSON.stringify(event)}\n\n`;
    for (const [res, who] of subscribers) if (who === user) res.write(line);
  }

  async function answer(
    reply: FastifyReply,
    user: string,
    event: Omit<DecisionEvent, 'user' | 'at' | 'granted' | 'reason'>,
    call: () => Promise<{ status: number; body: unknown }>,
  ) {
    let a;
    try {
      a = await call();
    } catch {
      return sendProblem(reply, 'unavailable');
    }
    const body = a.body as { granted?: unknown; reason?: unknown } | undefined;
    if (typeof body?.granted === 'boolean') {
      publish(user, { ...event, granted: body.granted, reason: String(body.reason ?? '') });
    }
    return reply.code(a.status).send(a.body);
  }

  const ACCESS_FIELDS = new Set(['document_id', 'agent_id', 'autonomous']);
  /** Body checks shared by the access routes; the person never comes from the body. */
  function accessBody(req: FastifyRequest, reply: FastifyReply, needAgent: boolean) {
    const b = req.body as Record<string, unknown> | undefined;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) {
      refuse(reply, 'bad_request', 'bad_body', 'body must be a JSON object');
      return undefined;
    }
    if ('user_id' in b || 'user' in b || 'user_spiffe_id' in b) {
      refuse(
        reply,
        'bad_request',
        'user_in_body',
        'the person is the logged-in user; do not send user_id',
      );
      return undefined;
    }
    for (const k of Object.keys(b)) {
      if (!ACCESS_FIELDS.has(k)) {
        refuse(reply, 'bad_request', 'unknown_field', 'unknown field in body');
        return undefined;
      }
    }
    if (typeof b.document_id !== 'string' || !DOCUMENT_ID.test(b.document_id)) {
      refuse(reply, 'bad_request', 'bad_document', 'document_id is required');
      return undefined;
    }
    if (needAgent && (typeof b.agent_id !== 'string' || !NAME.test(b.agent_id))) {
      refuse(reply, 'bad_request', 'bad_agent', 'agent_id is required');
      return undefined;
    }
    if (b.autonomous !== undefined && typeof b.autonomous !== 'boolean') {
      refuse(reply, 'bad_request', 'bad_body', 'autonomous must be a boolean');
      return undefined;
    }
    return {
      documentId: b.document_id,
      agentId: b.agent_id as string | undefined,
      autonomous: b.autonomous === true,
    };
  }

  app.post('/api/access-direct', async (req, reply) => {
    const user = (req as { user?: string }).user!;
    const b = accessBody(req, reply, false);
    if (!b) return reply;
    if (b.agentId !== undefined || b.autonomous)
      return refuse(reply, 'bad_request', 'unknown_field');
    const token = await personToken(user, `documents:read:${b.documentId}`);
    if (typeof token !== 'string') {
      publish(user, {
        mode: 'direct',
        document: b.documentId,
        granted: false,
        reason: token.reason,
      });
      return reply.code(token.status).send(refusal(user, token));
    }
    return answer(reply, user, { mode: 'direct', document: b.documentId }, () =>
      userClient.json('/access', { document_id: b.documentId }, { [TXN_TOKEN_HEADER]: token }),
    );
  });

  app.post('/api/access-delegated', async (req, reply) => {
    const user = (req as { user?: string }).user!;
    const b = accessBody(req, reply, true);
    if (!b) return reply;
    const agent = b.agentId!;
    const path = `/agents/${encodeURIComponent(agent)}/access`;
    if (b.autonomous) {
      // The reference's 13th scenario: the agent asks on its own, with no person's token.
      return answer(reply, user, { mode: 'autonomous', agent, document: b.documentId }, () =>
        agentClient.json(path, { document_id: b.documentId }),
      );
    }
    const agentId = `spiffe://${o.trustDomain}/agent/${agent}`;
    const scope = `documents:read:${b.documentId}`;
    let token = await personToken(user, scope, agentId);
    if (typeof token !== 'string' && token.status === 403 && token.details === undefined) {
      // Refused for the agent but not by the policy (no consent, an agent unknown here): the
      // person's own token, and the agent service answers as it always has (404 for an
      // unknown agent; its exchange is refused again for want of consent).
      token = await personToken(user, scope);
    }
    if (typeof token !== 'string') {
      publish(user, {
        mode: 'delegated',
        agent,
        document: b.documentId,
        granted: false,
        reason: token.reason,
      });
      return reply.code(token.status).send(refusal(user, token, agentId));
    }
    return answer(reply, user, { mode: 'delegated', agent, document: b.documentId }, () =>
      agentClient.json(path, { document_id: b.documentId }, { [TXN_TOKEN_HEADER]: token }),
    );
  });

  app.get('/events', async (req, reply) => {
    const user = (req as { user?: string }).user!;
    let open = 0;
    for (const who of subscribers.values()) if (who === user) open++;
    if (open >= MAX_STREAMS_PER_PERSON)
      return refuse(reply, 'too_many_requests', 'too_many_streams');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    res.write(': connected\n\n');
    subscribers.set(res, user);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    ping.unref();
    req.raw.on('close', () => {
      clearInterval(ping);
      subscribers.delete(res);
    });
  });

  // People's third-party tokens: stored through the broker, never returned (see people-tokens.ts).
  const CONNECTION = {
    type: 'object',
    properties: {
      provider: { type: 'string' },
      stored: { type: 'boolean' },
      updated_at: { type: 'string' },
    },
  } as const;
  const connectionSchema = { response: { 200: CONNECTION } };
  const providerOf = (req: FastifyRequest): string | undefined => {
    const p = (req.params as { provider?: unknown }).provider;
    return typeof p === 'string' && o.peopleTokens?.providers.includes(p) ? p : undefined;
  };
  const connection = async (user: string, provider: string) => {
    const st = await o.peopleTokens!.status(personId(user), provider);
    return { provider, stored: st.stored, ...(st.updatedAt ? { updated_at: st.updatedAt } : {}) };
  };
  const tokensUnavailable = (reply: FastifyReply, err: unknown) => {
    // The cause may name a path or status; never the token (no route logs the body).
    logger.warn({ err: (err as Error).message }, 'people tokens backend unavailable');
    return sendProblem(reply, 'unavailable');
  };

  app.get(
    '/api/secrets',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              connected: { type: 'boolean' },
              providers: { type: 'array', items: CONNECTION },
            },
          },
        },
      },
    },
    async (req, reply) => {
      const user = (req as { user?: string }).user!;
      reply.header('cache-control', 'no-store');
      if (!o.peopleTokens) return { connected: false, providers: [] };
      try {
        return {
          connected: true,
          providers: await Promise.all(o.peopleTokens.providers.map((p) => connection(user, p))),
        };
      } catch (err) {
        return tokensUnavailable(reply, err);
      }
    },
  );

  app.get('/api/secrets/:provider', { schema: connectionSchema }, async (req, reply) => {
    const provider = providerOf(req);
    if (!provider) return sendProblem(reply, 'not_found');
    reply.header('cache-control', 'no-store');
    try {
      return await connection((req as { user?: string }).user!, provider);
    } catch (err) {
      return tokensUnavailable(reply, err);
    }
  });

  app.put(
    '/api/secrets/:provider',
    {
      // The schema's additionalProperties would silently drop a field; refuse it instead.
      preValidation: async (req, reply) => {
        const b = req.body;
        if (typeof b === 'object' && b !== null && Object.keys(b).some((k) => k !== 'token'))
          return refuse(reply, 'bad_request', 'unknown_field', 'send {token}');
      },
      schema: {
        body: {
          type: 'object',
          required: ['token'],
          additionalProperties: false,
          properties: {
            token: { type: 'string', minLength: 1, maxLength: 8192, pattern: '^\\S+$' },
          },
        },
        ...connectionSchema,
      },
    },
    async (req, reply) => {
      const user = (req as { user?: string }).user!;
      const provider = providerOf(req);
      if (!provider) return sendProblem(reply, 'not_found');
      const txn = await personToken(user, o.peopleTokens!.storeScope(provider));
      if (typeof txn !== 'string')
        return txn.status === 403
          ? refuse(reply, 'authorization_failed', txn.reason)
          : sendProblem(reply, 'unavailable');
      try {
        await o.peopleTokens!.store(provider, (req.body as { token: string }).token, txn);
      } catch (err) {
        if (err instanceof PeopleTokenInvalid)
          return refuse(reply, 'bad_request', 'token_invalid', 'the token was not accepted');
        if (err instanceof PeopleTokensRefused)
          return refuse(reply, 'authorization_failed', 'broker_refused');
        return tokensUnavailable(reply, err);
      }
      logger.info({ user, provider }, 'third-party token stored');
      reply.header('cache-control', 'no-store');
      try {
        return await connection(user, provider);
      } catch {
        return { provider, stored: true };
      }
    },
  );

  app.delete('/api/secrets/:provider', { schema: connectionSchema }, async (req, reply) => {
    const user = (req as { user?: string }).user!;
    const provider = providerOf(req);
    if (!provider) return sendProblem(reply, 'not_found');
    try {
      await o.peopleTokens!.remove(personId(user), provider);
    } catch (err) {
      return tokensUnavailable(reply, err);
    }
    logger.info({ user, provider }, 'third-party token removed');
    return reply.header('cache-control', 'no-store').send({ provider, stored: false });
  });

  // An agent acting for the person calls a provider through the egress broker: the person's
  // token (the call scope) goes to the agent service, which narrows it to the agent.
  app.post('/api/agents/:agent/egress/:provider', async (req, reply) => {
    const user = (req as { user?: string }).user!;
    const provider = providerOf(req);
    const agent = (req.params as { agent: string }).agent;
    const scope = provider ? o.peopleTokens?.callScope?.(provider) : undefined;
    if (!provider || !scope || !NAME.test(agent)) return sendProblem(reply, 'not_found');
    const b = req.body as Record<string, unknown> | undefined;
    if (typeof b !== 'object' || b === null || Object.keys(b).some((k) => k !== 'path'))
      return refuse(reply, 'bad_request', 'bad_body', 'send {path}');
    if (typeof b.path !== 'string' || b.path.length === 0 || b.path.length > 512)
      return refuse(reply, 'bad_request', 'bad_path', 'path is required');
    const token = await personToken(user, scope);
    if (typeof token !== 'string')
      return reply.code(token.status).send({ granted: false, reason: token.reason });
    let a;
    try {
      a = await agentClient.json(
        `/agents/${encodeURIComponent(agent)}/egress/${encodeURIComponent(provider)}`,
        { path: b.path },
        { [TXN_TOKEN_HEADER]: token },
      );
    } catch {
      return sendProblem(reply, 'unavailable');
    }
    return reply.code(a.status).header('cache-control', 'no-store').send(a.body);
  });

  await app.register(uiPlugin);
  await app.register(platformApi, {
    backends: o.platform ?? {},
    personId,
    isAuditor: (req) => (req as { auditor?: boolean }).auditor === true,
  });

  const probes = Fastify({ logController: new LogController({ disableRequestLogging: true }) });
  await probes.register(probesPlugin, {
    registry,
    ready: { svid: () => o.svidSource.getX509Svid() !== undefined },
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
  const url = `${scheme}://${formatHostPort(shown(host), port)}`;
  publicUrl = (o.publicUrl ?? url).replace(/\/+$/, '');
  ownOrigins = [url, new URL(publicUrl).origin];
  if (oidcLogin) {
    oidcLogin
      .warmUp()
      .then(() => logger.info({ issuer: oidcLogin.issuer }, 'OpenID Provider discovered'))
      .catch((err: Error) =>
        logger.warn(
          { issuer: oidcLogin.issuer, err: err.message },
          'OpenID Provider discovery failed; retried at the next login',
        ),
      );
  }
  ownHosts = new Set(
    [shown(host), 'localhost', '127.0.0.1', '[::1]', o.advertiseHost]
      .filter((h): h is string => typeof h === 'string')
      .map((h) => formatHostPort(h, port)),
  );
  let closed: Promise<void> | undefined;
  return {
    url,
    healthUrl: `http://${formatHostPort(shown(healthHost), healthPort)}`,
    close() {
      closed ??= (async () => {
        for (const res of subscribers.keys()) res.end();
        subscribers.clear();
        await probes.close();
        await app.close();
        await Promise.all([tokenClient.close(), userClient.close(), agentClient.close()]);
      })();
      return closed;
    },
  };
}

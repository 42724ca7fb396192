import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TXN_TOKEN_HEADER, type TxnToken, type TxnTokenVerifier } from '@precinct/delegation';
import { parseAndValidateJwtSvid, type JwtBundleSource } from '@precinct/spiffe';
import { SecretsError } from './errors.js';
import { silentLogger, type SecretsLogger } from './http.js';
import { peopleTokenKey } from './people.js';
import type { VaultSession } from './session.js';

/** A third-party API the broker may call with a person's token. */
export interface EgressProvider {
  /** Base URL; the agent's path is appended (e.g. `https://api.github.com`). */
  baseUrl: string;
  /** Header that carries the token. Default `authorization`, value `Bearer <token>`. */
  header?: string;
  /** Formats the header value. Default `Bearer ${token}`. */
  format?: (token: string) => string;
}

/** What the policy check decides on. */
export interface EgressRequest {
  /** `store` (a person saves their token) or `call` (an agent uses it). */
  action: 'store' | 'call';
  /** The person: the Transaction Token's subject. */
  person: string;
  /** The agent acting for them (the verified caller), undefined for `store`. */
  agent: string | undefined;
  /** The calling workload's proved SPIFFE ID (for `store`, the person's front end). */
  caller: string;
  provider: string;
  method: string;
  path: string;
  scope: string[];
  txn: TxnToken;
}

/** One audit event per decision on a verified Transaction Token, keyed by `txn`. */
export interface EgressAuditEvent {
  txn: string;
  action: 'store' | 'call';
  outcome: 'released' | 'stored' | 'denied';
  person: string;
  agent: string | undefined;
  caller: string;
  provider: string;
  method: string;
  path: string;
  /** Bounded reason label for denials. */
  reason?: string;
}

export interface EgressBrokerOptions {
  /** The broker's own Vault/OpenBao session; its policy alone may read `people/*`. */
  session: VaultSession;
  providers: Record<string, EgressProvider>;
  /** Verifies the `Txn-Token` header (createTxnTokenVerifier). */
  txnTokens: TxnTokenVerifier;
  /** The calling workload's SPIFFE ID, proved (JWT-SVID, mTLS); undefined when unproved. */
  authenticateCaller: (req: IncomingMessage) => Promise<string | undefined>;
  /** The policy check, after the token and caller checks passed. */
  authorize: (req: EgressRequest) => boolean | Promise<boolean>;
  /** Written before a token is released or stored; if it throws, nothing is released. */
  audit: (event: EgressAuditEvent) => void | Promise<void>;
  /**
   * KV v2 mount. Default `secret`; people's tokens live at `people/<key>/<provider>`, the key
   * being `peopleTokenKey(<the Transaction Token's subject>)`.
   */
  kvMount?: string;
  /** Largest request body passed through, in bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  logger?: SecretsLogger;
  fetch?: typeof globalThis.fetch;
}

/** Provider names become a path segment in the secrets manager and in the broker's routes. */
const PROVIDER = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const PROBLEM = 'application/problem+json';

class Denied extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

const TITLES: Record<number, string> = {
  400: 'bad request',
  401: 'authentication failed',
  403: 'authorization failed',
  404: 'not found',
  413: 'request too large',
  503: 'service unavailable',
};

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > max) throw new Denied(413, 'body_too_large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * The egress broker: people store third-party tokens (written to the secrets manager, never
 * returned), and agents acting for them call the third-party API through the broker, which
 * injects the token. An agent must prove its own SPIFFE ID (authenticateCaller) and present a
 * Transaction Token whose subject is the person and whose current actor is that same agent;
 * then the policy check runs, the release is audited under the `txn`, and the request goes out.
 * The agent gets the API's status, content type and body, never the token.
 *
 * Routes: `PUT /v1/people/<provider>/token` (body `{"token": "..."}`, the person's own
 * Transaction Token without an actor) and `<METHOD> /v1/egress/<provider>/<path>`.
 */
export function createEgressBroker(opts: EgressBrokerOptions) {
  const log = opts.logger ?? silentLogger;
  const doFetch = opts.fetch ?? globalThis.fetch;
  const kvMount = opts.kvMount ?? 'secret';
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  for (const name of Object.keys(opts.providers)) {
    if (!PROVIDER.test(name))
      throw new TypeError(`secrets: invalid egress provider name "${name}"`);
  }

  /** The person's token path, or a 403 for a subject no path can hold. */
  function tokenPath(person: string, provider: string): string {
    try {
      return `people/${peopleTokenKey(person)}/${provider}`;
    } catch (err) {
      if (err instanceof SecretsError) throw new Denied(403, 'person_unsupported');
      throw err;
    }
  }

  async function verify(req: IncomingMessage): Promise<{ caller: string; txn: TxnToken }> {
    const caller = await opts.authenticateCaller(req).catch(() => undefined);
    if (!caller) throw new Denied(401, 'caller_unauthenticated');
    const header = req.headers[TXN_TOKEN_HEADER];
    if (typeof header !== 'string' || header.length === 0)
      throw new Denied(401, 'txn_token_missing');
    try {
      return { caller, txn: await opts.txnTokens.verify(header) };
    } catch (err) {
      throw new Denied(401, `txn_token_${(err as { reason?: string }).reason ?? 'invalid'}`);
    }
  }

  async function policy(e: EgressRequest, caller: string): Promise<void> {
    tokenPath(e.person, e.provider);
    const ok = await Promise.resolve(opts.authorize(e)).catch(() => false);
    if (!ok) {
      await audit(e, caller, 'denied', 'policy');
      throw new Denied(403, 'policy');
    }
  }

  async function audit(
    e: EgressRequest,
    caller: string,
    outcome: EgressAuditEvent['outcome'],
    reason?: string,
  ) {
    try {
      await opts.audit({
        txn: e.txn.txn,
        action: e.action,
        outcome,
        person: e.person,
        agent: e.agent,
        caller,
        provider: e.provider,
        method: e.method,
        path: e.path,
        ...(reason ? { reason } : {}),
      });
    } catch {
      if (outcome !== 'denied') throw new Denied(503, 'audit_unavailable');
    }
  }

  async function store(req: IncomingMessage, provider: string): Promise<number> {
    const { caller, txn } = await verify(req);
    const e: EgressRequest = {
      action: 'store',
      person: txn.subject,
      agent: undefined,
      caller,
      provider,
      method: 'PUT',
      path: '',
      scope: txn.scope,
      txn,
    };
    // Only the person stores their token: a token naming an agent cannot.
    if (txn.actor !== undefined) {
      await audit(e, caller, 'denied', 'actor_present');
      throw new Denied(403, 'actor_present');
    }
    let token: unknown;
    try {
      token = (JSON.parse((await readBody(req, 64 * 1024)).toString('utf8')) as { token?: unknown })
        .token;
    } catch (err) {
      if (err instanceof Denied) throw err;
      throw new Denied(400, 'body_not_json');
    }
    if (typeof token !== 'string' || token.length === 0 || token.length > 16 * 1024)
      throw new Denied(400, 'token_invalid');
    await policy(e, caller);
    await audit(e, caller, 'stored');
    await opts.session.writeKv(tokenPath(txn.subject, provider), { token }, { mount: kvMount });
    log.info({ txn: txn.txn, person: txn.subject, provider }, 'third-party token stored');
    return 204;
  }

  async function call(
    req: IncomingMessage,
    res: ServerResponse,
    provider: string,
    path: string,
  ): Promise<void> {
    const p = opts.providers[provider]!;
    const { caller, txn } = await verify(req);
    const method = req.method ?? 'GET';
    const e: EgressRequest = {
      action: 'call',
      person: txn.subject,
      agent: txn.actor,
      caller,
      provider,
      method,
      path,
      scope: txn.scope,
      txn,
    };
    // The current actor must be the agent that proved who it is; no actor = no delegation.
    if (txn.actor === undefined || !sameString(txn.actor, caller)) {
      const reason = txn.actor === undefined ? 'no_delegation' : 'actor_mismatch';
      await audit(e, caller, 'denied', reason);
      throw new Denied(403, reason);
    }
    const body = method === 'GET' || method === 'HEAD' ? undefined : await readBody(req, maxBody);
    await policy(e, caller);
    let token: string;
    try {
      const kv = await opts.session.readKv(tokenPath(txn.subject, provider), { mount: kvMount });
      if (typeof kv.data.token !== 'string') throw new Denied(403, 'no_token');
      token = kv.data.token;
    } catch (err) {
      if (err instanceof Denied) throw err;
      const code = (err as SecretsError).code;
      if (code === 'ERR_SECRETS_NOT_FOUND') {
        await audit(e, caller, 'denied', 'no_token');
        throw new Denied(403, 'no_token');
      }
      throw new Denied(503, 'secrets_unavailable');
    }
    await audit(e, caller, 'released');
    const headers: Record<string, string> = {};
    const ct = req.headers['content-type'];
    if (typeof ct === 'string') headers['content-type'] = ct;
    headers.accept = typeof req.headers.accept === 'string' ? req.headers.accept : '*/*';
    headers[p.header ?? 'authorization'] = p.format ? p.format(token) : `Bearer ${token}`;
    let upstream: Response;
    try {
      upstream = await doFetch(
        new URL(path, p.baseUrl.endsWith('/') ? p.baseUrl : `${p.baseUrl}/`),
        {
          method,
          headers,
          body,
          redirect: 'manual', // a redirect must not carry the token elsewhere
          signal: AbortSignal.timeout(30_000),
        },
      );
    } catch {
      throw new Denied(503, 'upstream_unreachable');
    }
    const answer = Buffer.from(await upstream.arrayBuffer());
    log.info(
      {
        txn: txn.txn,
        person: txn.subject,
        agent: txn.actor,
        provider,
        method,
        status: upstream.status,
      },
      'third-party call released',
    );
    res.statusCode = upstream.status;
    const uct = upstream.headers.get('content-type');
    if (uct) res.setHeader('content-type', uct);
    res.setHeader('cache-control', 'no-store');
    res.end(answer);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://broker');
      const m = /^\/v1\/(people|egress)\/([^/]+)(\/.*)?$/.exec(url.pathname);
      if (!m) throw new Denied(404, 'route');
      const [, kind, provider, rest = ''] = m;
      if (!provider || !Object.hasOwn(opts.providers, provider)) throw new Denied(404, 'provider');
      if (kind === 'people') {
        if (rest !== '/token' || req.method !== 'PUT') throw new Denied(404, 'route');
        res.statusCode = await store(req, provider);
        res.end();
        return;
      }
      const sub = rest.replace(/^\//, '') + url.search;
      if (sub.split('/').some((s) => s === '..' || s === '.')) throw new Denied(400, 'path');
      await call(req, res, provider, sub);
    } catch (err) {
      const d = err instanceof Denied ? err : new Denied(503, 'internal');
      if (!(err instanceof Denied))
        log.warn({ code: (err as SecretsError).code }, 'egress broker error');
      log.info({ status: d.status, reason: d.reason }, 'egress request refused');
      res.statusCode = d.status;
      res.setHeader('content-type', PROBLEM);
      res.end(
        JSON.stringify({
          type: 'about:blank',
          title: TITLES[d.status] ?? 'error',
          status: d.status,
        }),
      );
    }
  }

  return {
    handle,
    /** Listens on `host:port` (default 127.0.0.1, a free port). */
    async listen(port = 0, host = '127.0.0.1'): Promise<{ url: string; close(): Promise<void> }> {
      const server = createServer((req, res) => void handle(req, res));
      await new Promise<void>((resolve) => server.listen(port, host, resolve));
      const a = server.address() as AddressInfo;
      return {
        url: `http://${host.includes(':') ? `[${host}]` : host}:${a.port}`,
        close: () =>
          new Promise<void>((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      };
    },
  };
}

/** Authenticates callers by a JWT-SVID in `Authorization: Bearer`, for `audience`. */
export function jwtSvidCaller(opts: { bundles: JwtBundleSource; audience: string }) {
  return async (req: IncomingMessage): Promise<string | undefined> => {
    const h = req.headers.authorization;
    if (typeof h !== 'string' || !h.startsWith('Bearer ')) return undefined;
    try {
      return parseAndValidateJwtSvid(h.slice(7), opts.bundles, [opts.audience]).id.toString();
    } catch {
      return undefined;
    }
  };
}

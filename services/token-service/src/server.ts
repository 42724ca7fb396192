import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  authorizeMemberOf,
  tlsServerOptions,
  type X509BundleSource,
  type X509SvidSource,
} from '@precinct/spiffe';
import { spiffeFastify } from '@precinct/spiffe/fastify';
import { createLogger, formatHostPort, listen, type Logger } from '@precinct/runtime';
import { probesPlugin, sendProblem } from '@precinct/runtime/http';
import type { ConsentStore } from './consent.js';
import { TokenExchangeError, type ExchangeFailureReason } from './errors.js';
import {
  createTokenExchange,
  tokenHash,
  type ExchangeDecision,
  type GrantScope,
  type TokenExchange,
} from './exchange.js';
import { parseTokenForm } from './form.js';
import { SigningKeyRing } from './keys.js';
import type { PersonAuthenticator } from './person.js';

/** Where services fetch the token service's public keys (on the mTLS port). */
export const JWKS_PATH = '/.well-known/jwks.json';
/** The RFC 8693 token endpoint. */
export const TOKEN_PATH = '/token';

const LIMITS = { bodyBytes: 16 * 1024, parameters: 32 };

export interface TokenServiceOptions {
  /** The service's own X.509-SVID (e.g. an X509Source): presented to callers. */
  svidSource: X509SvidSource;
  /** Trust bundles for authenticating callers. */
  bundleSource: X509BundleSource;
  /** Who can prove a person (an OIDC ID token verifier, ...). */
  persons: PersonAuthenticator[];
  consent: ConsentStore;
  grantScope: GrantScope;
  /** Whether a caller is an agent workload (acting for the person, becomes `act.sub`). */
  isAgent: (callerId: string) => boolean;
  /** Which workloads may request tokens at all. Default: every workload of the trust domain. */
  mayRequest?: (callerId: string) => boolean;
  /** Token lifetime in seconds, at most 300. Default 300. */
  ttlSeconds?: number;
  /** Signing key rotation period in seconds. Default 3600. */
  keyRotationSeconds?: number;
  /** mTLS listen address. Default `::`, port 0. */
  host?: string;
  port?: number;
  /** Plain-HTTP /health, /ready, /metrics. Default `host`, port 0. */
  healthHost?: string;
  healthPort?: number;
  /** Host in the printed URLs when listening on a wildcard address. Default localhost. */
  advertiseHost?: string;
  logger?: Logger;
  registry?: Registry;
  /** Current time in ms. Default Date.now. */
  clock?: () => number;
  /**
   * Every exchange's outcome, allow or deny, with hashes of the tokens: wire it to the audit
   * store (see `exchangeAuditEvents`). Not awaited; failures are logged and counted in
   * `precinct_token_exchange_decision_sink_failures_total`.
   */
  onDecision?: (decision: ExchangeDecision) => void | Promise<void>;
  /** Policy refusals tell the caller the policy's reason and details (see `createTokenExchange`). */
  explainRefusals?: boolean;
}

export interface TokenService {
  /** `https://host:port` of the mTLS endpoint. */
  url: string;
  /** `http://host:port` of the probes. */
  healthUrl: string;
  /** The token endpoint and the JWKS, full URLs. */
  tokenUrl: string;
  jwksUrl: string;
  trustDomain: string;
  /** `iss` of the tokens: the service's own SPIFFE ID. */
  issuer: string;
  keys: SigningKeyRing;
  close(): Promise<void>;
}

interface Metrics {
  sinkFailures: Counter;
  issued: Counter<'kind'>;
  refused: Counter<'error' | 'reason'>;
  duration: Histogram<'outcome'>;
}

function metrics(registry: Registry): Metrics {
  return {
    sinkFailures: new Counter({
      name: 'precinct_token_exchange_decision_sink_failures_total',
      help: 'Exchange decisions the onDecision sink (the audit trail) failed to take',
      registers: [registry],
    }),
    issued: new Counter({
      name: 'precinct_txn_tokens_issued_total',
      help: 'Transaction Tokens issued, by kind (initial, replacement)',
      labelNames: ['kind'],
      registers: [registry],
    }),
    refused: new Counter({
      name: 'precinct_token_exchange_refused_total',
      help: 'Token exchange requests refused, by OAuth error and bounded reason',
      labelNames: ['error', 'reason'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'precinct_token_exchange_seconds',
      help: 'Time to answer a token exchange request',
      labelNames: ['outcome'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}

const tokenResponseSchema = {
  200: {
    type: 'object',
    properties: {
      access_token: { type: 'string' },
      issued_token_type: { type: 'string' },
      token_type: { type: 'string' },
      expires_in: { type: 'integer' },
      scope: { type: 'string' },
    },
    required: ['access_token', 'issued_token_type', 'token_type'],
    additionalProperties: false,
  },
};

/** Maps a Fastify/parser error on the token endpoint to an RFC 6749 `invalid_request`. */
function requestError(err: { code?: string; statusCode?: number }): TokenExchangeError {
  let reason: ExchangeFailureReason = 'form_encoding';
  let description = 'the request is not a valid form';
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    reason = 'form_too_large';
    description = 'the request body is too large';
  } else if (
    err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ||
    err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH'
  ) {
    reason = 'form_media_type';
    description = 'the body must be application/x-www-form-urlencoded';
  }
  return new TokenExchangeError('invalid_request', reason, description);
}

async function buildApp(
  exchange: TokenExchange,
  keys: SigningKeyRing,
  tlsOptions: ReturnType<typeof tlsServerOptions>,
  logger: Logger,
  m: Metrics,
): Promise<FastifyInstance> {
  const app = Fastify({
    https: tlsOptions,
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: LIMITS.bodyBytes,
  });
  // spiffeServer (installed by the plugin) hands only authenticated connections of this
  // trust domain to Fastify: every request here has a verified peer SPIFFE ID.
  await app.register(spiffeFastify, { tlsOptions });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'buffer', bodyLimit: LIMITS.bodyBytes },
    (_req, body, done) => {
      try {
        done(
          null,
          parseTokenForm(body as Buffer, {
            maxBytes: LIMITS.bodyBytes,
            maxParameters: LIMITS.parameters,
          }),
        );
      } catch (err) {
        done(err as Error, undefined);
      }
    },
  );

  // When each request arrived, for the duration histogram (kept off the request object).
  const startedAt = new WeakMap<object, number>();
  const refuse = (err: TokenExchangeError, callerId: string | undefined, started: number) => {
    m.refused.inc({ error: err.error, reason: err.reason });
    m.duration.observe({ outcome: 'refused' }, (performance.now() - started) / 1000);
    logger.info(
      { error: err.error, reason: err.reason, caller: callerId },
      'token exchange refused',
    );
  };

  app.setErrorHandler((err, req, reply) => {
    const isToken = req.routeOptions.url === TOKEN_PATH;
    const status = (err as { statusCode?: number }).statusCode;
    if (err instanceof TokenExchangeError || (isToken && status !== undefined && status < 500)) {
      const e = err instanceof TokenExchangeError ? err : requestError(err as { code?: string });
      refuse(e, req.spiffeId?.toString(), startedAt.get(req.raw) ?? performance.now());
      return reply
        .code(e.status)
        .header('cache-control', 'no-store')
        .header('pragma', 'no-cache')
        .type('application/json')
        .send(e.body());
    }
    if (status !== undefined && status < 500) return sendProblem(reply, 'bad_request');
    logger.error({ err: (err as Error).message }, 'unexpected error');
    if (isToken) {
      return reply
        .code(500)
        .header('cache-control', 'no-store')
        .send({ error: 'server_error', error_description: 'internal error' });
    }
    return sendProblem(reply, 'internal');
  });
  app.setNotFoundHandler((_req, reply) => sendProblem(reply, 'not_found'));

  app.addHook('onRequest', async (req) => {
    startedAt.set(req.raw, performance.now());
  });

  app.post(TOKEN_PATH, { schema: { response: tokenResponseSchema } }, async (req, reply) => {
    const started = startedAt.get(req.raw) ?? performance.now();
    const id = req.spiffeId;
    if (!id) {
      throw new TokenExchangeError(
        'invalid_client',
        'no_client_certificate',
        'client authentication failed',
      );
    }
    if (!(req.body instanceof Map)) {
      throw new TokenExchangeError(
        'invalid_request',
        'form_media_type',
        'the body must be application/x-www-form-urlencoded',
      );
    }
    const out = await exchange.exchange(req.body as Map<string, string>, {
      id: id.toString(),
      trustDomain: id.trustDomain.name,
    });
    m.issued.inc({ kind: out.kind });
    m.duration.observe({ outcome: 'issued' }, (performance.now() - started) / 1000);
    // Never the token itself: its hash correlates with downstream logs (draft 10.2).
    logger.info(
      {
        kind: out.kind,
        txn: out.txn,
        req_wl: out.requestingWorkload,
        act: out.actor,
        scope: out.scope.join(' '),
        exp: out.expiresAt,
        token_sha256: tokenHash(out.response.access_token),
      },
      'transaction token issued',
    );
    return reply
      .header('cache-control', 'no-store')
      .header('pragma', 'no-cache')
      .send(out.response);
  });

  app.get(JWKS_PATH, async (_req, reply) =>
    // Short caching: verifiers see a new key within a minute, and the next key is published a
    // whole rotation period before it signs.
    reply.header('cache-control', 'public, max-age=60').send(keys.jwks()),
  );
  return app;
}

/**
 * Starts the token service: the RFC 8693 token endpoint and the JWKS on an mTLS port that
 * admits only workloads of its own trust domain, and probes on a separate plain port.
 */
export async function startTokenService(o: TokenServiceOptions): Promise<TokenService> {
  const logger = o.logger ?? createLogger('token-service');
  const svid = o.svidSource.getX509Svid();
  const issuer = svid.id.toString();
  const trustDomain = svid.id.trustDomain.name;
  const ttl = o.ttlSeconds ?? 300;
  const clock = o.clock ?? Date.now;
  const keys = new SigningKeyRing({
    maxTokenLifetimeSeconds: ttl,
    clock,
    ...(o.keyRotationSeconds !== undefined ? { rotationSeconds: o.keyRotationSeconds } : {}),
  });
  const registry = o.registry ?? new Registry();
  if (!o.registry) collectDefaultMetrics({ register: registry });
  const m = metrics(registry);
  const exchange = createTokenExchange({
    trustDomain,
    issuer,
    keys,
    persons: o.persons,
    consent: o.consent,
    grantScope: o.grantScope,
    isAgent: o.isAgent,
    ...(o.mayRequest ? { mayRequest: o.mayRequest } : {}),
    ttlSeconds: ttl,
    clock,
    ...(o.onDecision ? { onDecision: o.onDecision } : {}),
    onDecisionError: (err) => {
      m.sinkFailures.inc();
      logger.error({ err: (err as Error)?.message ?? String(err) }, 'decision sink failed');
    },
    explainRefusals: o.explainRefusals === true,
  });
  const tlsOptions = tlsServerOptions(o.svidSource, o.bundleSource, authorizeMemberOf(trustDomain));
  const app = await buildApp(exchange, keys, tlsOptions, logger, m);
  const probes = Fastify({ logController: new LogController({ disableRequestLogging: true }) });
  await probes.register(probesPlugin, {
    registry,
    ready: {
      svid: () => o.svidSource.getX509Svid() !== undefined,
      'signing-key': () => keys.current() !== undefined,
    },
  });
  const host = o.host ?? '::';
  let port: number;
  let healthPort: number;
  try {
    await app.ready();
    await probes.ready();
    port = await listen(app.server, { host, port: o.port ?? 0 });
    healthPort = await listen(probes.server, {
      host: o.healthHost ?? host,
      port: o.healthPort ?? 0,
    });
  } catch (err) {
    await app.close();
    await probes.close();
    throw err;
  }
  const shown = (h: string) =>
    h === '::' || h === '0.0.0.0' ? (o.advertiseHost ?? 'localhost') : h;
  const url = `https://${formatHostPort(shown(host), port)}`;
  let closed: Promise<void> | undefined;
  return {
    url,
    healthUrl: `http://${formatHostPort(shown(o.healthHost ?? host), healthPort)}`,
    tokenUrl: `${url}${TOKEN_PATH}`,
    jwksUrl: `${url}${JWKS_PATH}`,
    trustDomain,
    issuer,
    keys,
    close() {
      closed ??= (async () => {
        await probes.close();
        await app.close();
      })();
      return closed;
    },
  };
}

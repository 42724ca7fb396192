import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { rootCertificates } from 'node:tls';
import {
  connect,
  credsAuthenticator,
  type Msg,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import { createLogger, listen, serviceAccountPaths, type Logger } from '@precinct/runtime';
import { Authorizer, type ServiceAccountTokenVerifier } from './authorizer.js';
import type { NatsCalloutConfig } from './config.js';
import { ConfigError } from './errors.js';

import { createMetrics, type CalloutMetrics } from './metrics.js';
import { createProbeServer } from './probes.js';
import { serviceAccountInformer, type ServiceAccountSource } from './serviceaccounts.js';

const AUTH_SUBJECT = '$SYS.REQ.USER.AUTH';
const XKEY_HEADER = 'Nats-Server-Xkey';
const { tokenPath: SA_TOKEN_PATH, caPath: SA_CA_PATH } = serviceAccountPaths();
/** Requests decided at once; beyond this the server's auth timeout answers for us. */
const MAX_IN_FLIGHT = 1024;

/** The key store of @precinct/kube's JWKS verifier, as far as readiness needs it. */
interface KeyStore {
  status(): {
    keys: number;
    loadedAt: number | undefined;
    failing: boolean;
    fetching: boolean;
  };
  refresh(throwOnFailure: boolean): Promise<void>;
}

/** Replaceable parts, for tests and embedding. Defaults are built from the config. */
export interface NatsCalloutDeps {
  /** Default: @precinct/kube createJwksVerifier from `config.token`. */
  verifier?: ServiceAccountTokenVerifier;
  /** Default: an informer on ServiceAccounts through @kubernetes/client-node. */
  serviceAccounts?: ServiceAccountSource;
  logger?: Logger;
}

/** Readiness as served on /ready. */
export interface NatsCalloutStatus {
  ready: boolean;
  nats: 'connected' | 'disconnected';
  serviceAccounts: 'synced' | 'not_synced' | 'stale';
  cacheSize: number;
  /**
   * The token verification keys: `not_loaded` until a first fetch succeeds, `stale` once they
   * could not be refreshed for longer than JWKS_MAX_STALE, `external` for a verifier passed in
   * deps (not judged here).
   */
  jwks: 'loaded' | 'not_loaded' | 'stale' | 'external';
}

/** A running callout. */
export interface NatsCallout {
  /** The bound health/metrics port. */
  port: number;
  /** The account public key (goes in the server's `auth_callout.issuer`). */
  issuer: string;
  status(): NatsCalloutStatus;
  metrics: CalloutMetrics;
  /** Drains the subscription (in-flight decisions finish), closes NATS, the cache and HTTP. Idempotent. */
  close(): Promise<void>;
}

async function defaultVerifier(
  config: NatsCalloutConfig,
): Promise<{ verifier: ServiceAccountTokenVerifier; keys: KeyStore }> {
  const { createJwksVerifier, cachingVerifier } = await import('@precinct/kube');
  const t = config.token;
  let ca: string | Buffer | undefined = t.caPem;
  let bearerToken: string | undefined;
  if (t.inCluster && t.jwksUrl?.startsWith('https://kubernetes.default.svc')) {
    // The API server serves its JWKS to authenticated callers, over its own CA.
    try {
      ca ??= readFileSync(SA_CA_PATH);
      bearerToken = readFileSync(SA_TOKEN_PATH, 'utf8').trim();
    } catch {
      throw new ConfigError([
        `K8S_IN_CLUSTER is true but no ServiceAccount is mounted (${SA_TOKEN_PATH}); outside a cluster set K8S_IN_CLUSTER=false, JWT_ISSUER and JWKS_URL or JWKS_PATH`,
      ]);
    }
  }
  if (t.extraRootsPem) {
    // `ca` replaces Node's roots: keep them (or the CA configured above) and add
    // SSL_CERT_FILE / SSL_CERT_DIR, one PEM bundle.
    const base = ca !== undefined ? [ca.toString()] : rootCertificates;
    ca = [...base, ...t.extraRootsPem].join('\n');
  }
  const inner = createJwksVerifier({
    issuer: t.issuer,
    audiences: [t.audience],
    ...(t.jwksUrl ? { jwksUrl: t.jwksUrl } : {}),
    ...(t.jwksPath ? { jwksPath: t.jwksPath } : {}),
    ...(ca ? { ca } : {}),
    ...(bearerToken ? { bearerToken } : {}),
    minRefreshIntervalMs: (t.retryIntervalSeconds ?? 10) * 1000,
  });
  // A workload reconnecting (or every workload after a NATS restart) presents the same token
  // again: the cache skips the signature check, never past the token's exp. The ServiceAccount
  // lookup and the permissions are still computed on every connect.
  return { verifier: cachingVerifier(inner, { maxEntries: 10_000 }), keys: inner.jwks };
}

async function defaultServiceAccounts(
  config: NatsCalloutConfig,
  logger: Logger,
  metrics: CalloutMetrics,
): Promise<ServiceAccountSource> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (config.kube.kubeconfigPath) kc.loadFromFile(config.kube.kubeconfigPath);
  else if (config.kube.inCluster) kc.loadFromCluster();
  else kc.loadFromDefault();
  return serviceAccountInformer({
    kubeConfig: kc,
    ...(config.kube.namespace ? { namespace: config.kube.namespace } : {}),
    logger,
    onChange: (s) => {
      metrics.cacheSize.set(s.size);
      metrics.cacheSynced.set(s.synced ? 1 : 0);
      metrics.kubeApiHealthy.set(s.healthy ? 1 : 0);
    },
    onRestart: () => metrics.watchRestarts.inc(),
  });
}

/**
 * Starts the callout: health/metrics HTTP, the ServiceAccount cache, and a NATS connection
 * that answers `$SYS.REQ.USER.AUTH` in the configured queue group. Resolves once the HTTP port
 * is bound; NATS and the cache come up in the background (watch /ready), and the NATS
 * connection reconnects forever.
 */
export async function startNatsCallout(
  config: NatsCalloutConfig,
  deps: NatsCalloutDeps = {},
): Promise<NatsCallout> {
  const logger = deps.logger ?? createLogger('nats-callout', config.logLevel);
  const metrics = createMetrics();
  for (const w of config.warnings ?? []) logger.warn(w);
  let verifier: ServiceAccountTokenVerifier;
  let keys: KeyStore | undefined;
  if (deps.verifier) verifier = deps.verifier;
  else ({ verifier, keys } = await defaultVerifier(config));
  const serviceAccounts =
    deps.serviceAccounts ?? (await defaultServiceAccounts(config, logger, metrics));
  const authorizer = new Authorizer({
    signingKeySeed: config.signingKeySeed,
    account: config.account,
    ...(config.xkeySeed ? { xkeySeed: config.xkeySeed } : {}),
    verifier,
    serviceAccounts,
    userJwtMaxTtlSeconds: config.userJwtMaxTtlSeconds,
    sharedInbox: config.sharedInbox,
    logger,
    metrics,
  });

  let nc: NatsConnection | undefined;
  let sub: Subscription | undefined;
  let connected = false;
  let closed = false;
  let inFlight = 0;
  let wakeRetry: (() => void) | undefined;

  // The keys are loaded at start and kept fresh here, so that readiness says whether tokens
  // can be verified before the first client arrives, and recovers without one.
  const maxStaleMs = (config.token.maxStaleSeconds ?? 600) * 1000;
  // A healthy key set is refetched this often: rotations appear within it (unknown kids sooner).
  const refreshMs = (config.token.refreshIntervalSeconds ?? 300) * 1000;
  const jwksState = (): NatsCalloutStatus['jwks'] => {
    if (!keys) return 'external';
    const k = keys.status();
    if (k.keys === 0 || k.loadedAt === undefined) return 'not_loaded';
    if (k.failing && Date.now() - k.loadedAt > maxStaleMs) return 'stale';
    return 'loaded';
  };
  let lastJwks: NatsCalloutStatus['jwks'] | undefined;
  let failing = false;
  const upkeep = async () => {
    if (!keys || closed) return;
    const k = keys.status();
    const due = k.keys === 0 || k.failing || Date.now() - (k.loadedAt ?? 0) >= refreshMs;
    if (due && !k.fetching) {
      try {
        await keys.refresh(true);
        failing = false;
      } catch (err) {
        // Said once per outage. The cause names the endpoint and what failed (TLS, status,
        // JSON), never a token.
        if (!failing) {
          const cause = (err as Error).cause as Error | undefined;
          logger.warn({ err: cause?.message ?? (err as Error).message }, 'jwks fetch failed');
        }
        failing = true;
      }
    }
    const state = jwksState();
    if (state !== lastJwks) {
      if (state === 'loaded') logger.info({ keys: keys.status().keys }, 'jwks loaded');
      else logger.warn({ jwks: state }, 'token keys unavailable: not ready');
      lastJwks = state;
    }
    metrics.jwksKeys.set(keys.status().keys);
  };
  const keysTimer = keys
    ? setInterval(() => void upkeep(), (config.token.retryIntervalSeconds ?? 10) * 1000)
    : undefined;
  keysTimer?.unref();
  void upkeep();

  const status = (): NatsCalloutStatus => {
    const s = serviceAccounts.status();
    const jwks = jwksState();
    metrics.cacheSize.set(s.size);
    metrics.cacheSynced.set(s.synced ? 1 : 0);
    metrics.kubeApiHealthy.set(s.healthy ? 1 : 0);
    metrics.natsConnected.set(connected ? 1 : 0);
    metrics.jwksReady.set(jwks === 'loaded' || jwks === 'external' ? 1 : 0);
    return {
      ready: connected && s.synced && (jwks === 'loaded' || jwks === 'external') && !closed,
      nats: connected ? 'connected' : 'disconnected',
      serviceAccounts: !s.synced ? 'not_synced' : s.healthy ? 'synced' : 'stale',
      cacheSize: s.size,
      jwks,
    };
  };

  const http: Server = createProbeServer({ status, registry: metrics.registry });
  const port = await listen(http, config.http);

  const auth =
    config.natsAuth.kind === 'creds'
      ? { authenticator: credsAuthenticator(config.natsAuth.creds) }
      : config.natsAuth.kind === 'token'
        ? { token: config.natsAuth.token }
        : { user: config.natsAuth.user, pass: config.natsAuth.pass };

  // As nats.go in the reference: SSL_CERT_FILE / SSL_CERT_DIR extend the roots of a TLS
  // connection to NATS. Only for tls:// URLs: nats.js refuses a plain server when given TLS
  // options.
  const extraRoots = config.token.extraRootsPem;
  const natsTls =
    extraRoots && config.natsServers.some((u) => u.startsWith('tls://'))
      ? { tls: { ca: [...rootCertificates, ...extraRoots].join('\n') } }
      : {};

  const handle = (msg: Msg) => {
    if (!msg.reply) return;
    if (inFlight >= MAX_IN_FLIGHT) {
      metrics.requests.inc({ result: 'dropped', reason: 'overloaded' });
      return;
    }
    inFlight++;
    const xkey = msg.headers?.get(XKEY_HEADER) || undefined;
    authorizer
      .decide(msg.data, xkey)
      .then((d) => {
        if (d.response) msg.respond(d.response);
      })
      .catch(() => {})
      .finally(() => inFlight--);
  };

  const connectLoop = async () => {
    // The first connect also retries forever: the callout may start before NATS does.
    nc = undefined;
    while (!closed) {
      try {
        nc = await connect({
          servers: config.natsServers,
          name: 'precinct-nats-callout',
          ...auth,
          ...natsTls,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          noEcho: true,
        });
        break;
      } catch (err) {
        if (closed) return;
        logger.warn({ err: (err as Error).message }, 'nats connect failed; retrying');
        await new Promise<void>((r) => {
          wakeRetry = r;
          setTimeout(r, 1_000).unref();
        });
      }
    }
    if (!nc) return;
    if (closed) {
      await nc.close().catch(() => {});
      return;
    }
    connected = true;
    logger.info({ server: nc.getServer() }, 'connected to nats');
    sub = nc.subscribe(AUTH_SUBJECT, {
      queue: config.queueGroup,
      callback: (err, msg) => {
        if (err) {
          logger.error({ err: err.message }, 'auth subscription error');
          return;
        }
        handle(msg);
      },
    });
    const conn = nc;
    // nats.js gives up after repeated authorization errors (e.g. a rotated password); start
    // over rather than stay disconnected for good.
    void conn.closed().then((err) => {
      connected = false;
      if (closed) return;
      logger.error(
        { err: err instanceof Error ? err.message : undefined },
        'nats connection closed; reconnecting',
      );
      connecting = connectLoop().catch(() => {});
    });
    void (async () => {
      for await (const s of conn.status()) {
        if (s.type === 'disconnect') {
          connected = false;
          logger.warn({ server: s.server }, 'disconnected from nats');
        } else if (s.type === 'reconnect') {
          connected = true;
          logger.info({ server: s.server }, 'reconnected to nats');
        } else if (s.type === 'error') {
          logger.warn({ err: s.error.message }, 'nats error');
        }
      }
    })().catch(() => {});
  };
  let connecting: Promise<void> = connectLoop().catch((err: unknown) => {
    logger.error({ err: (err as Error).message }, 'nats connection loop failed');
  });

  let closing: Promise<void> | undefined;
  return {
    port,
    issuer: authorizer.issuer,
    status,
    metrics,
    close() {
      closing ??= (async () => {
        closed = true;
        if (keysTimer) clearInterval(keysTimer);
        wakeRetry?.();
        // A connect attempt in progress sees `closed` and closes what it opened.
        await Promise.race([connecting, new Promise((r) => setTimeout(r, 2_000).unref())]);
        if (nc && !nc.isClosed()) {
          // drain() unsubscribes and lets in-flight responses go out before closing.
          await sub?.drain().catch(() => {});
          await new Promise<void>((r) => {
            const check = () => (inFlight === 0 ? r() : setTimeout(check, 10).unref());
            check();
          });
          await nc.close().catch(() => {});
        }
        connected = false;
        await serviceAccounts.close();
        (verifier as { close?: () => void }).close?.();
        await new Promise<void>((r) => http.close(() => r()));
        http.closeAllConnections();
      })();
      return closing;
    },
  };
}

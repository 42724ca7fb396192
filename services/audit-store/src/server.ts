import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Authorizer, TokenVerifier } from '@precinct/kube';
import type { DelegationVerifier } from '@precinct/delegation';
import {
  authorizeAny,
  tlsServerOptions,
  type Authorizer as SpiffeAuthorizer,
  type X509BundleSource,
  type X509SvidSource,
} from '@precinct/spiffe';
import {
  advertisedHost,
  advertisedUrl,
  createLogger,
  listen,
  podNamespace,
  type Logger,
} from '@precinct/runtime';
import { buildAuditApp } from './app.js';
import { createPgDb, createPgliteDb, type Db } from './db.js';
import { DEFAULT_TIME_WINDOW } from './events.js';
import { loadSigningKey } from './export.js';
import type { AuthzTarget } from './http/auth.js';
import type { TimeWindow } from './input.js';
import { migrate } from './migrations.js';
import { probeRoutes } from './routes/probes.js';
import { AuditRepository } from './store.js';

export { DEFAULT_TOKEN_AUDIENCE, type AuthzTarget } from './http/auth.js';

export interface AuditStoreOptions {
  /** PostgreSQL URL; otherwise PGlite (in `dataDir`, else in memory). Ignored when `db` is set. */
  databaseUrl?: string;
  dataDir?: string;
  /** A database the caller owns (not closed by `close()`). */
  db?: Db;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /**
   * The host others use to reach the store, in `url` and `healthUrl` (`advertisedUrl()` of
   * `@precinct/runtime`: it wins when set; else the listen host, `localhost` for a wildcard).
   */
  advertiseHost?: string;
  /**
   * Kubernetes auth: bearer ServiceAccount tokens (TokenReview/JWKS) and SubjectAccessReview.
   * With `spiffe`, only the authorizer is used (RBAC for the SPIFFE ID). `false` only for
   * local development (writers are `anonymous`, or their SPIFFE ID with `spiffe`).
   */
  auth: { verifier: TokenVerifier; authorizer: Authorizer } | false;
  /**
   * SPIFFE mTLS on the main port: every caller presents an X.509-SVID that chains to its
   * trust domain's bundle; `written_by` is its SPIFFE ID and RBAC is asked for that ID as a
   * Kubernetes User (groups: its trust domain, `spiffe://<td>`). Bearer tokens are then not
   * used. Probes move to a plain-HTTP port (`healthPort`), since they cannot present an SVID.
   */
  spiffe?: {
    svidSource: X509SvidSource;
    bundleSource: X509BundleSource;
    /** A TLS-level gate before RBAC. Default: any SVID that verifies. */
    authorizer?: SpiffeAuthorizer;
    /** Plain-HTTP port for /healthz, /readyz, /metrics. Default 0 (a free port). */
    healthPort?: number;
    /** Host for the probe port. Default: the main host. */
    healthHost?: string;
  };
  /**
   * Verifies `Precinct-Delegation` tokens (an agent writing for a person): the token's actor
   * must be the verified caller; its subject is recorded as `on_behalf_of`. Without it, a
   * request carrying the header is refused rather than recorded without the person.
   */
  delegation?: DelegationVerifier;
  authz?: Partial<AuthzTarget>;
  /** Chain hashes become HMAC-SHA256 under this key. */
  hashKey?: Buffer;
  /** PKCS#8 PEM Ed25519 key signing exports; default: an ephemeral key. */
  signingKeyPem?: string | Buffer;
  logger?: Logger;
  /** How often the retention job runs; 0 disables it. Default 1 h. */
  retentionIntervalMs?: number;
  /**
   * How long an `Idempotency-Key` is remembered (a retry later than this writes again).
   * Default 24 h; expired keys are removed by the retention job.
   */
  idempotencyTtlMs?: number;
  /** Most events one export may hold (it is signed as a whole). Default 100,000. */
  maxExportEvents?: number;
  /**
   * Audiences a bearer token must name (one of them) to be accepted: the store's own, so a
   * writer never hands it a credential that also works against the Kubernetes API. The
   * verifier must check them too (TokenReview `spec.audiences`, a JWKS verifier's
   * `audiences`); the store refuses an identity whose `audiences` name none of these (401).
   * Default `['data-storage-service']` (Kubernaut's DataStorage audience).
   */
  tokenAudiences?: readonly string[];
  /**
   * How far in the past an `event_timestamp` may lie. Default: the default retention, 2555
   * days. An event past its own `retention_days` is refused too.
   */
  maxEventAgeMs?: number;
  /** How far in the future an `event_timestamp` may lie (writers' clock skew). Default 5 min. */
  maxClockSkewMs?: number;
  /**
   * How often monthly partitions are created ahead (also once at start). Writes never create
   * partitions: the month being written and the months up to the accepted skew have one
   * already; older months' rows go to the default partition. Default 1 h.
   */
  partitionIntervalMs?: number;
}

export interface AuditStore {
  url: string;
  port: number;
  /** With `spiffe`: the plain-HTTP probe/metrics address. */
  healthUrl?: string;
  /** Exports are signed by this key; give it to `verify-export`. */
  publicKeyPem: string;
  /** Runs the retention job once; resolves with the number of events deleted. */
  runRetention(now?: Date): Promise<number>;
  close(): Promise<void>;
}

/** Namespace of the store's own pod, for the default SubjectAccessReview namespace. */
export function defaultNamespace(env: NodeJS.ProcessEnv = process.env): string {
  return podNamespace(env) ?? 'default';
}

/** Starts the audit store: migrates, listens, runs the retention job. */
export async function startAuditStore(o: AuditStoreOptions): Promise<AuditStore> {
  const logger = o.logger ?? createLogger('audit-store');
  const host = o.host ?? '::';
  // Before anything opens or listens: a malformed advertise host fails start-up, not later.
  advertisedHost(host, o.advertiseHost);
  if (o.spiffe) advertisedHost(o.spiffe.healthHost ?? host, o.advertiseHost);
  const ownsDb = !o.db;
  const db = o.db ?? (o.databaseUrl ? createPgDb(o.databaseUrl) : await createPgliteDb(o.dataDir));
  try {
    await migrate(db);
    const repo = new AuditRepository(db, o.hashKey, logger);
    const timeWindow: TimeWindow = {
      maxAgeMs: o.maxEventAgeMs ?? DEFAULT_TIME_WINDOW.maxAgeMs,
      maxSkewMs: o.maxClockSkewMs ?? DEFAULT_TIME_WINDOW.maxSkewMs,
    };
    for (const [k, v] of Object.entries(timeWindow))
      if (!Number.isSafeInteger(v) || v < 0)
        throw new TypeError(`${k} must be a whole number >= 0`);
    // Enough months ahead that the latest accepted timestamp (now + skew) has its partition,
    // with a month to spare for a partition job that fails once.
    const monthsAhead = 1 + Math.ceil(timeWindow.maxSkewMs / (28 * 86_400_000));
    const ensurePartitions = () => repo.ensurePartitionsAhead(new Date(), monthsAhead);
    await ensurePartitions();
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const signingKey = loadSigningKey(o.signingKeyPem);
    const authz: AuthzTarget = {
      resource: 'services',
      name: 'data-storage-service',
      namespace: defaultNamespace(),
      ...Object.fromEntries(Object.entries(o.authz ?? {}).filter(([, v]) => v !== undefined)),
    };
    const spiffeTls = o.spiffe
      ? tlsServerOptions(
          o.spiffe.svidSource,
          o.spiffe.bundleSource,
          o.spiffe.authorizer ?? authorizeAny(),
        )
      : undefined;
    const app = await buildAuditApp(repo, db, {
      auth: o.auth,
      ...(spiffeTls ? { spiffeTls } : {}),
      ...(o.delegation ? { delegation: o.delegation } : {}),
      authz,
      signingKey,
      logger,
      registry,
      maxExportEvents: o.maxExportEvents ?? 100_000,
      ...(o.tokenAudiences ? { tokenAudiences: o.tokenAudiences } : {}),
      timeWindow,
    });
    await app.ready();
    const port = await listen(app.server, { host, port: o.port ?? 0 });
    let probes: FastifyInstance | undefined;
    let healthUrl: string | undefined;
    if (o.spiffe) {
      probes = Fastify({ logController: new LogController({ disableRequestLogging: true }) });
      await probes.register(probeRoutes, { db, registry });
      try {
        await probes.ready();
        const hp = await listen(probes.server, {
          host: o.spiffe.healthHost ?? host,
          port: o.spiffe.healthPort ?? 0,
        });
        healthUrl = advertisedUrl({
          scheme: 'http',
          bindHost: o.spiffe.healthHost ?? host,
          port: hp,
          advertiseHost: o.advertiseHost,
        });
      } catch (err) {
        await app.close();
        await probes.close();
        throw err;
      }
    }
    const idemTtl = o.idempotencyTtlMs ?? 24 * 3_600_000;
    const runRetention = async (at?: Date) => {
      await repo.expireIdempotencyKeys(at ?? new Date(), idemTtl);
      const n = await repo.applyRetention(at);
      if (n > 0) logger.info({ deleted: n }, 'retention deleted expired events');
      return n;
    };
    const interval = o.retentionIntervalMs ?? 3_600_000;
    const timer =
      interval > 0
        ? setInterval(() => {
            runRetention().catch((err: unknown) =>
              logger.warn({ err: (err as Error).message }, 'retention run failed'),
            );
          }, interval).unref()
        : undefined;
    const partitionInterval = o.partitionIntervalMs ?? 3_600_000;
    const partitionTimer =
      partitionInterval > 0
        ? setInterval(() => {
            ensurePartitions().catch((err: unknown) =>
              logger.warn({ err: (err as Error).message }, 'partition job failed'),
            );
          }, partitionInterval).unref()
        : undefined;
    let closed: Promise<void> | undefined;
    return {
      url: advertisedUrl({
        scheme: spiffeTls ? 'https' : 'http',
        bindHost: host,
        port,
        advertiseHost: o.advertiseHost,
      }),
      port,
      ...(healthUrl ? { healthUrl } : {}),
      publicKeyPem: signingKey.publicKeyPem,
      runRetention,
      close() {
        closed ??= (async () => {
          if (timer) clearInterval(timer);
          if (partitionTimer) clearInterval(partitionTimer);
          await probes?.close();
          await app.close();
          if (ownsDb) await db.close();
        })();
        return closed;
      },
    };
  } catch (err) {
    if (ownsDb) await db.close().catch(() => {});
    throw err;
  }
}

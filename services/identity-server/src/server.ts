import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import {
  advertisedHost,
  advertisedUrl,
  createLogger,
  listen,
  type ListenOptions,
  type Logger,
} from '@precinct/runtime';
import type { ObjectWatch } from '@precinct/kube';
import { DEFAULT_MAX_BINDING_MS, WorkloadSockets, type TokenVerifier } from './attestation.js';
import { KeyManager, type KeyType, type RotationEvent } from './authority.js';
import { systemClock, type Clock } from './clock.js';
import { EntryRegistry } from './entries.js';
import { IdentityServerError } from './errors.js';
import { FederatedBundles, type FederationPeer } from './federation.js';
import { createAdminApp, createBundleEndpointApp, createHealthApp, createOidcApp } from './http.js';
import { createMetrics, type IdentityMetrics } from './metrics.js';
import { parseTrustDomain } from './spiffe-id.js';
import { openStore } from './store.js';
import { workloadApiServiceDefinition } from '@precinct/spiffe/workloadapi';
import { workloadApiImplementation } from './workload-api.js';

/** Options of {@link startIdentityServer}. */
export interface IdentityServerOptions {
  /** The trust domain this server is the authority for, e.g. `example.org`. */
  trustDomain: string;
  /**
   * Keys (keys.json, 0600), the embedded database, the admin token and the sockets. Without
   * it, keys and the admin token live in memory, the database and the sockets in a temp dir,
   * all gone after close().
   */
  dataDir?: string;
  /** PostgreSQL instead of the embedded PGlite. */
  databaseUrl?: string;
  /** The shared Workload API socket, where unattested callers get PermissionDenied. */
  socketPath?: string;
  /** Parent (0700) of the per-workload sockets. Default `<dataDir>/workloads`. */
  socketDir?: string;
  /** Admin and attestation API. Default `::` port 0. */
  admin?: ListenOptions;
  /** OIDC discovery provider. Default `::` port 0. */
  oidc?: ListenOptions;
  /** Serve the OIDC discovery provider over HTTPS with this certificate (issuer `https://`). */
  oidcTls?: { certPem: string; keyPem: string };
  /** /health, /ready, /metrics. Default `::` port 0. */
  health?: ListenOptions;
  /**
   * Host other processes dial (OIDC issuer, admin URL). Default: `localhost` for a listener on
   * a wildcard address, else the address it is bound to.
   */
  advertiseHost?: string;
  /** Admin bearer token; default: read or create `<dataDir>/admin.token` (0600). */
  adminToken?: string;
  /** Verifies workloads' ServiceAccount tokens; without it attestation is refused. */
  verifier?: TokenVerifier;
  /** The audience `verifier` expects; a refused attestation's 401 names it. */
  attestAudience?: string;
  /**
   * Watches (owned by the caller) that end a binding when its ServiceAccount (by uid) or bound
   * pod is deleted; while the ServiceAccount watch is stale, bindings are suspended. Without
   * it a binding lasts until the token's exp or `maxBindingMs`.
   */
  revocation?: {
    serviceAccounts: ObjectWatch;
    pods?: ObjectWatch;
    /** How long attestation waits for the watch to see a new ServiceAccount. Default 5 s. */
    waitMs?: number;
  };
  /** A binding's longest life, whatever the token's exp; re-attestation extends it. Default 1 h. */
  maxBindingMs?: number;
  /** How long a revoked binding's socket answers PermissionDenied before it goes. Default 5 s. */
  socketLingerMs?: number;
  /**
   * The SPIFFE bundle endpoint (https_web profile): this trust domain's bundle on HTTPS with a
   * web-PKI certificate, for peers that federate with it.
   */
  bundleEndpoint?: {
    listen?: ListenOptions;
    certPem: string;
    keyPem: string;
    /** `spiffe_refresh_hint`; default 300 s. Keep it well under the CA's prepare-to-activate gap. */
    refreshHintSeconds?: number;
  };
  /** Trust domains whose bundles this server fetches and hands to entries that federate with them. */
  federation?: FederationPeer[];
  /**
   * Upstream CA (self-signed root and its key, PEM): the server's CAs become intermediates it
   * signs, and workloads' bundles hold this root.
   */
  upstreamCa?: { certPem: string; keyPem: string };
  caTtlMs?: number;
  jwtKeyTtlMs?: number;
  caKeyType?: KeyType;
  workloadKeyType?: KeyType;
  clock?: Clock;
  /** For the SVID refresh jitter. */
  random?: () => number;
  logger?: Logger;
}

/** A running identity server. */
export interface IdentityServer {
  trustDomain: string;
  /** `unix://` address of the shared Workload API socket. */
  workloadApiAddress: string;
  adminUrl: string;
  adminToken: string;
  /** OIDC issuer URL (`http(s)://<advertise-host>:<port>`). */
  issuer: string;
  healthUrl: string;
  /** `https://<advertise-host>:<port>` of the bundle endpoint, when enabled. */
  bundleEndpointUrl: string | undefined;
  /** Federated trust domains' bundles. */
  federation: FederatedBundles;
  keys: KeyManager;
  entries: EntryRegistry;
  metrics: IdentityMetrics;
  /** Runs a rotation step now (the server also does on its own timer). */
  rotate(): Promise<RotationEvent[]>;
  /** Stops every listener and socket, closes the store. Idempotent. */
  close(): Promise<void>;
}

const ANY: ListenOptions = { host: '::', port: 0 };

async function readOrCreateToken(path: string): Promise<string> {
  try {
    const t = (await readFile(path, 'utf8')).trim();
    await chmod(path, 0o600);
    if (t.length >= 32) return t;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const t = randomBytes(32).toString('base64url');
  await writeFile(path, `${t}\n`, { mode: 0o600 });
  return t;
}

/**
 * Starts the identity server: keys, entries, the shared Workload API socket, the admin and
 * attestation API, the OIDC provider and the health port. Resolves once all listen.
 */
export async function startIdentityServer(opts: IdentityServerOptions): Promise<IdentityServer> {
  const trustDomain = parseTrustDomain(opts.trustDomain);
  const logger = opts.logger ?? createLogger('identity-server');
  const clock = opts.clock ?? systemClock;
  if (opts.advertiseHost !== undefined) {
    // A bad advertise host fails start-up before anything is created, not after the first bind.
    try {
      advertisedHost('::', opts.advertiseHost);
    } catch (err) {
      throw new IdentityServerError('ERR_CONFIG_INVALID', (err as Error).message);
    }
  }
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    let workDir: string;
    if (opts.dataDir) {
      workDir = opts.dataDir;
      await mkdir(workDir, { recursive: true, mode: 0o700 });
      await chmod(workDir, 0o700);
    } else {
      workDir = join(tmpdir(), `precinct-id-${randomBytes(6).toString('hex')}`);
      await mkdir(workDir, { mode: 0o700 });
      cleanups.push(() => rm(workDir, { recursive: true, force: true }));
    }
    const metrics = createMetrics();
    const keys = await KeyManager.open({
      trustDomain,
      clock,
      ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
      ...(opts.caTtlMs ? { caTtlMs: opts.caTtlMs } : {}),
      ...(opts.jwtKeyTtlMs ? { jwtKeyTtlMs: opts.jwtKeyTtlMs } : {}),
      ...(opts.caKeyType ? { caKeyType: opts.caKeyType } : {}),
      ...(opts.upstreamCa ? { upstream: opts.upstreamCa } : {}),
    });
    const db = await openStore({
      databaseUrl: opts.databaseUrl,
      dir: join(workDir, 'db'),
      onIdleError: (err) =>
        logger.warn({ reason: err.message }, 'PostgreSQL dropped an idle connection'),
    });
    cleanups.push(() => db.close());
    const entries = await EntryRegistry.open(db, trustDomain);
    const adminToken =
      opts.adminToken ??
      (opts.dataDir
        ? await readOrCreateToken(join(opts.dataDir, 'admin.token'))
        : randomBytes(32).toString('base64url'));

    const events = new EventEmitter();
    events.setMaxListeners(0);
    const federation = new FederatedBundles(opts.federation ?? [], clock, logger, trustDomain);
    federation.on('change', () => events.emit('bundle'));
    cleanups.push(() => federation.close());
    entries.setMaxListeners(0);
    let issuer = '';
    const implementation = (resolve: Parameters<typeof workloadApiImplementation>[1]) =>
      workloadApiImplementation(
        {
          entries,
          keys,
          clock,
          metrics,
          logger,
          events,
          workloadKeyType: opts.workloadKeyType ?? 'ec-p256',
          federation,
          get jwtIssuer() {
            return issuer;
          },
          ...(opts.random ? { random: opts.random } : {}),
          // Called only by requests, after `sockets` below exists.
          available: () => sockets.available(),
        },
        resolve,
      );

    // The shared socket: anyone who can reach it may call, nobody attested on it gets an SVID.
    const socketPath = opts.socketPath ?? join(workDir, 'public', 'api.sock');
    // 0700 like everything under the data dir: the shared socket grants nothing, but nothing
    // there is for other users either.
    await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
    await rm(socketPath, { force: true });
    const shared = new grpc.Server();
    shared.addService(
      workloadApiServiceDefinition(),
      implementation(() => undefined),
    );
    await new Promise<void>((res, rej) =>
      shared.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (e) =>
        e ? rej(e) : res(),
      ),
    );
    await chmod(socketPath, 0o600);
    cleanups.push(() => {
      shared.forceShutdown();
    });

    if (opts.verifier && !opts.revocation) {
      logger.warn(
        { maxBindingMs: opts.maxBindingMs ?? DEFAULT_MAX_BINDING_MS },
        'no revocation watch: a deleted ServiceAccount keeps its binding until its token expires or the binding cap',
      );
    }
    const sockets = new WorkloadSockets({
      socketDir: opts.socketDir ?? join(workDir, 'workloads'),
      verifier: opts.verifier,
      clock,
      metrics,
      logger,
      implementation,
      onEnd: () => events.emit('binding'),
      ...(opts.revocation ? { revocation: opts.revocation } : {}),
      ...(opts.maxBindingMs !== undefined ? { maxBindingMs: opts.maxBindingMs } : {}),
      ...(opts.socketLingerMs !== undefined ? { socketLingerMs: opts.socketLingerMs } : {}),
    });
    cleanups.push(() => sockets.close());

    const apps: FastifyInstance[] = [];
    // Resolves with the URL others dial: advertise host, else loopback for a wildcard bind,
    // else the bind address (@precinct/runtime's one rule).
    const serve = async (app: FastifyInstance, l: ListenOptions, scheme: 'http' | 'https') => {
      apps.push(app);
      cleanups.push(() => app.close());
      await app.ready();
      const port = await listen(app.server, l);
      return advertisedUrl({ scheme, bindHost: l.host, port, advertiseHost: opts.advertiseHost });
    };
    const adminUrl = await serve(
      createAdminApp({
        entries,
        sockets,
        adminToken,
        logger,
        ...(opts.attestAudience ? { attestAudience: opts.attestAudience } : {}),
      }),
      opts.admin ?? ANY,
      'http',
    );
    issuer = await serve(
      createOidcApp({
        keys,
        issuer: () => issuer,
        logger,
        ...(opts.oidcTls ? { tls: opts.oidcTls } : {}),
      }),
      opts.oidc ?? ANY,
      opts.oidcTls ? 'https' : 'http',
    );
    let ready = false;
    const healthUrl = await serve(
      createHealthApp({
        metrics,
        // Keys and entries loaded, rotation armed; and the store answers.
        ready: { server: () => ready, store: () => db.ping() },
        logger,
      }),
      opts.health ?? ANY,
      'http',
    );
    let bundleEndpointUrl: string | undefined;
    if (opts.bundleEndpoint) {
      const be = opts.bundleEndpoint;
      bundleEndpointUrl = await serve(
        createBundleEndpointApp({
          keys,
          certPem: be.certPem,
          keyPem: be.keyPem,
          refreshHintSeconds: be.refreshHintSeconds ?? 300,
          logger,
        }),
        be.listen ?? ANY,
        'https',
      );
    }
    // Peers are fetched once before we report ready; a peer that is down is retried later.
    await federation.start();
    if (opts.dataDir)
      await writeFile(join(opts.dataDir, 'admin.url'), `${adminUrl}\n`, { mode: 0o600 });

    // Rotation: on a timer at the next due step (5 ms late, as timers may fire a millisecond
    // early); each step that changes the published keys re-sends bundles (and SVIDs) to every
    // open stream.
    let closed = false;
    let cancelRotation = () => {};
    const rotate = async () => {
      const ev = await keys.rotate();
      for (const e of ev) metrics.rotations.inc({ event: e });
      if (ev.length > 0) {
        logger.info({ events: ev }, 'keys rotated');
        events.emit('bundle');
      }
      return ev;
    };
    const arm = () => {
      if (closed) return;
      cancelRotation();
      cancelRotation = clock.setTimeout(
        () => {
          rotate()
            .catch((err: unknown) => logger.error({ err }, 'key rotation failed'))
            .finally(arm);
        },
        Math.max(10, keys.nextRotationAt() - clock.now() + 5),
      );
    };
    arm();
    cleanups.push(() => {
      closed = true;
      cancelRotation();
    });
    ready = true;
    logger.info({ trustDomain, socketPath, adminUrl, issuer }, 'identity server started');

    let closing: Promise<void> | undefined;
    return {
      trustDomain,
      workloadApiAddress: `unix://${socketPath}`,
      adminUrl,
      adminToken,
      issuer,
      healthUrl,
      bundleEndpointUrl,
      federation,
      keys,
      entries,
      metrics,
      rotate: async () => {
        const ev = await rotate();
        arm();
        return ev;
      },
      close: () => (closing ??= cleanup()),
    };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

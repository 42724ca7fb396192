import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  advertisedHost,
  advertisedUrl,
  createLogger,
  formatHostPort,
  listen,
  type ListenOptions,
  type Logger,
} from '@precinct/runtime';
import { KubeApi } from './api.js';
import { ADMIN_USER, Authenticator } from './auth.js';
import { bootstrap } from './bootstrap.js';
import { KubeDevError } from './errors.js';
import { renderKubeconfig, writeSecretFile } from './kubeconfig.js';
import { issueServingCertificate } from './pki.js';
import { ObjectStore } from './store.js';
import { acceptIssuer, loadTrust } from './trust.js';

/** Options of {@link startKubeDev}. */
export interface KubeDevOptions {
  /** Where to listen. Default `::` (dual-stack) on a free port (0). */
  listen?: ListenOptions;
  /**
   * Host written into the kubeconfig and the issuer URL. Default `localhost` for a wildcard
   * `listen` host, else that host.
   */
  advertiseHost?: string;
  /** Keeps objects, CA, signing key and admin token across restarts. Default: in memory. */
  dataDir?: string;
  /** Where to write the kubeconfig. Default `<dataDir>/kubeconfig`, or a fresh temp dir. */
  kubeconfigPath?: string;
  /**
   * Let anonymous callers read OIDC discovery and the JWKS, by binding the built-in
   * `system:service-account-issuer-discovery` ClusterRole to `system:unauthenticated` (the
   * standard way to open it on a real cluster). Default false: like a default cluster, only
   * authenticated callers (ServiceAccounts, the admin) may read them. `precinct up` sets it
   * so verifiers outside the cluster (nats-callout with JWKS_URL) need no credential.
   */
  anonymousIssuerDiscovery?: boolean;
  logger?: Logger;
}

/** A running kube-dev. */
export interface KubeDev {
  /** `https://<advertise-host>:<port>`, the API server URL in the kubeconfig. */
  url: string;
  port: number;
  kubeconfigPath: string;
  /** The ServiceAccount token issuer; equals `url`. Discovery at `${issuer}/.well-known/openid-configuration`. */
  issuer: string;
  /** The CA that signed the serving certificate (PEM), for clients and JWKS fetchers. */
  caPem: string;
  /** Bearer token of `kube-dev-admin` (group system:masters). */
  adminToken: string;
  /** Stops listening, ends watches and removes a temp kubeconfig dir. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts kube-dev: a Kubernetes API server for ServiceAccounts, TokenRequest, TokenReview,
 * SubjectAccessReview, RBAC and OIDC discovery, over HTTPS with its own CA. Resolves once it
 * answers requests and the kubeconfig is written.
 */
export async function startKubeDev(opts: KubeDevOptions = {}): Promise<KubeDev> {
  const log = opts.logger ?? createLogger('kube-dev', process.env.LOG_LEVEL ?? 'warn');
  const listenOpts = opts.listen ?? { host: '::', port: 0 };
  // @precinct/runtime's one rule: --advertise-host, else localhost for a wildcard bind, else
  // the bind address. Checked before anything is created.
  let advertiseHost: string;
  try {
    advertiseHost = advertisedHost(listenOpts.host, opts.advertiseHost);
  } catch (err) {
    throw new KubeDevError('ERR_KUBE_DEV_CONFIG', (err as Error).message);
  }
  const dataDir = opts.dataDir;
  if (dataDir) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  let tempDir: string | undefined;
  let kubeconfigPath = opts.kubeconfigPath ?? (dataDir ? join(dataDir, 'kubeconfig') : undefined);
  if (!kubeconfigPath) {
    tempDir = mkdtempSync(join(tmpdir(), 'precinct-kube-dev-'));
    kubeconfigPath = join(tempDir, 'kubeconfig');
  }

  const { ca, key, adminToken } = await loadTrust(dataDir);
  let store: ObjectStore;
  try {
    store = new ObjectStore(dataDir && join(dataDir, 'state.json'));
  } catch (err) {
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }

  const serving = await issueServingCertificate(ca, [advertiseHost]);
  // The API handler is attached once the port (and so the issuer) is known.
  let api: KubeApi | undefined = undefined;
  const server: Server = createServer(
    { key: serving.keyPem, cert: serving.certPem, minVersion: 'TLSv1.2', maxHeaderSize: 64 * 1024 },
    (req, res) => {
      if (api) api.handle(req, res);
      else res.destroy();
    },
  );
  server.keepAliveTimeout = 60_000;
  let port: number;
  try {
    port = await listen(server, listenOpts);
  } catch (err) {
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    throw new KubeDevError(
      'ERR_KUBE_DEV_LISTEN',
      `cannot listen on ${formatHostPort(listenOpts.host, listenOpts.port)}`,
      { cause: err },
    );
  }
  const url = advertisedUrl({
    scheme: 'https',
    bindHost: listenOpts.host,
    port,
    advertiseHost: opts.advertiseHost,
  });
  const issuer = url;

  const accepted = acceptIssuer(dataDir, issuer);

  const authenticator = new Authenticator({
    store,
    key,
    issuer,
    acceptedIssuers: accepted,
    adminToken,
    log,
  });
  api = new KubeApi({
    store,
    key,
    issuer,
    authenticator,
    log,
    serverAddress: formatHostPort(advertiseHost, port),
  });
  bootstrap(api.objects, store, opts.anonymousIssuerDiscovery === true);
  api.objects.aggregateClusterRoles();
  store.compact();
  store.save();

  writeSecretFile(
    kubeconfigPath,
    renderKubeconfig({ server: url, caPem: ca.certPem, token: adminToken, user: ADMIN_USER }),
  );
  log.info({ url, kubeconfig: kubeconfigPath, issuer }, 'kube-dev ready');

  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    kubeconfigPath,
    issuer,
    caPem: ca.certPem,
    adminToken,
    close() {
      closed ??= (async () => {
        api?.closeWatches();
        store.closeWatchers();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        try {
          store.save();
        } catch (err) {
          log.warn({ err }, 'could not save state on close');
        }
        if (tempDir) rmSync(tempDir, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findPeer, requirePeer } from './peers.js';
import { processGroup } from './process.js';
import { tempDir } from './tmp.js';

/** A real kube-apiserver (with etcd, and optionally kube-controller-manager) started by a test. */
export interface KubeApiserver {
  /** `https://127.0.0.1:<port>`; also the ServiceAccount issuer and the API audience. */
  url: string;
  issuer: string;
  port: number;
  /** The self-signed serving certificate (and its CA) the apiserver generated, PEM. */
  caPem: string;
  /** Static token of user `admin` in group `system:masters`. */
  adminToken: string;
  /** The ServiceAccount signing key (PKCS#8 PEM), for tests that forge tokens. */
  serviceAccountKeyPem: string;
  /** Admin kubeconfig (mode 0600) in the temp dir. */
  kubeconfigPath: string;
  /** Whether kube-controller-manager runs beside it (aggregation, default ServiceAccounts). */
  controllers: boolean;
  /** The logs so far, for assertion messages. */
  log(): string;
  /** Stops every process and removes the temp dir. Idempotent. */
  close(): Promise<void>;
}

export interface KubeApiserverOptions {
  /**
   * Run kube-controller-manager with the clusterrole-aggregation, serviceaccount and
   * serviceaccount-token controllers, when it is present. Default true.
   */
  controllers?: boolean;
  /** How long to wait for `/readyz`. Default 90 s (a cold start on 2 cores takes ~20 s). */
  startTimeoutMs?: number;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function get(url: string, token: string, ca?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        headers: { authorization: `Bearer ${token}` },
        ...(ca ? { ca } : { rejectUnauthorized: false }),
        agent: false,
        timeout: 5000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * Starts etcd and a real kube-apiserver on 127.0.0.1 (free ports, a fresh temp dir): RBAC
 * authorization, a static admin token, its own ServiceAccount signing key and issuer
 * `https://127.0.0.1:<port>`, anonymous requests allowed (the default), and, unless disabled,
 * kube-controller-manager with the controllers that aggregate ClusterRoles and create each
 * namespace's `default` ServiceAccount. Resolves once `/readyz` answers 200 (and, with the
 * controllers, once `default/default` exists).
 */
export async function startKubeApiserver(opts: KubeApiserverOptions = {}): Promise<KubeApiserver> {
  // Free ports are found by binding and releasing them, so another test's server can take one
  // in between; a start that fails that way gets one more try on fresh ports.
  try {
    return await startOnce(opts);
  } catch (err) {
    if (!(err instanceof Error) || !/address already in use|bind:/i.test(err.message)) throw err;
    return startOnce(opts);
  }
}

async function startOnce(opts: KubeApiserverOptions): Promise<KubeApiserver> {
  const etcdBin = requirePeer('etcd');
  const apiBin = requirePeer('kube-apiserver');
  const kcmBin = opts.controllers === false ? undefined : findPeer('kube-controller-manager');
  const tmp = tempDir('precinct-kube-apiserver-');
  const dir = tmp.path;
  const group = processGroup(dir);
  const run = group.start;
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      await group.stop();
      tmp.cleanup();
    })());

  try {
    const [etcdPort, peerPort, port] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    run('etcd', etcdBin, [
      '--data-dir',
      join(dir, 'etcd'),
      '--listen-client-urls',
      etcdUrl,
      '--advertise-client-urls',
      etcdUrl,
      '--listen-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${peerPort}`,
      '--log-level',
      'error',
      '--quota-backend-bytes',
      String(256 * 1024 * 1024),
    ]);

    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = join(dir, 'sa.key');
    const saPub = join(dir, 'sa.pub');
    writeFileSync(saKey, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    writeFileSync(saPub, publicKey.export({ format: 'pem', type: 'spki' }), { mode: 0o600 });
    const adminToken = randomBytes(32).toString('base64url');
    const tokens = join(dir, 'tokens.csv');
    writeFileSync(tokens, `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
    const url = `https://127.0.0.1:${port}`;
    const certDir = join(dir, 'certs');
    run('kube-apiserver', apiBin, [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${certDir}`,
      '--endpoint-reconciler-type=none',
      '--authorization-mode=RBAC',
      `--token-auth-file=${tokens}`,
      `--service-account-issuer=${url}`,
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      '--service-cluster-ip-range=10.96.0.0/24',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      '--v=0',
    ]);

    const deadline = Date.now() + (opts.startTimeoutMs ?? 90_000);
    const exited = group.exited;
    let caPem = '';
    for (;;) {
      if (exited()) throw new Error(`kube-apiserver or etcd exited:\n${group.log().slice(-4000)}`);
      if (Date.now() > deadline)
        throw new Error(`kube-apiserver not ready in time:\n${group.log().slice(-4000)}`);
      const crt = join(certDir, 'apiserver.crt');
      if (!caPem && existsSync(crt)) caPem = readFileSync(crt, 'utf8');
      if (caPem && (await get(`${url}/readyz`, adminToken, caPem)) === 200) break;
      await sleep(250);
    }

    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfigPath,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'real',
            cluster: {
              server: url,
              'certificate-authority-data': Buffer.from(caPem).toString('base64'),
            },
          },
        ],
        users: [{ name: 'admin', user: { token: adminToken } }],
        contexts: [{ name: 'real', context: { cluster: 'real', user: 'admin' } }],
        'current-context': 'real',
      }),
      { mode: 0o600 },
    );

    if (kcmBin) {
      run('kube-controller-manager', kcmBin, [
        `--kubeconfig=${kubeconfigPath}`,
        '--controllers=clusterrole-aggregation,serviceaccount,serviceaccount-token',
        `--service-account-private-key-file=${saKey}`,
        `--root-ca-file=${join(certDir, 'apiserver.crt')}`,
        '--use-service-account-credentials=false',
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${await freePort()}`,
        `--cert-dir=${join(dir, 'kcm-certs')}`,
        '--v=0',
      ]);
      // Ready when the serviceaccount controller has created default/default.
      for (;;) {
        if (exited())
          throw new Error(`kube-controller-manager exited:\n${group.log().slice(-4000)}`);
        if (Date.now() > deadline)
          throw new Error(
            `kube-controller-manager not ready in time:\n${group.log().slice(-4000)}`,
          );
        const s = await get(
          `${url}/api/v1/namespaces/default/serviceaccounts/default`,
          adminToken,
          caPem,
        );
        if (s === 200) break;
        await sleep(250);
      }
    }

    return {
      url,
      issuer: url,
      port,
      caPem,
      adminToken,
      serviceAccountKeyPem: readFileSync(saKey, 'utf8'),
      kubeconfigPath,
      controllers: !!kcmBin,
      log: group.log,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

// Shared by the revocation tests: kube-dev with kubectl, bounded polling, and a TCP relay whose
// connections a test can cut to simulate a lost watch.
import { execFile } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { requirePeer } from '@precinct/testing';
import type { KubeDev } from '@precinct/kube-dev';

const run = promisify(execFile);

/** Runs kubectl against kube-dev (a real client, as an operator would delete things). */
export async function kubectl(kube: KubeDev, ...args: string[]): Promise<string> {
  const { stdout } = await run(requirePeer('kubectl'), [
    '--kubeconfig',
    kube.kubeconfigPath,
    ...args,
  ]);
  return stdout;
}

/**
 * Polls `fn` until it returns a truthy value or `timeoutMs` passes (then throws naming `what`).
 * A bound on how long a test waits, never an assertion about how fast something was.
 */
export async function eventually<T>(
  fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`, { cause: last });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function kubeConfigOf(kube: KubeDev, server?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  if (server) {
    const cluster = kc.getCurrentCluster()!;
    kc.loadFromOptions({
      clusters: kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server } : c)),
      users: kc.users,
      contexts: kc.contexts,
      currentContext: kc.currentContext,
    });
  }
  return kc;
}

export async function tokenFor(
  core: k8s.CoreV1Api,
  namespace: string,
  name: string,
  audiences: string[],
  pod?: { name: string; uid: string },
): Promise<string> {
  const r = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: {
      spec: {
        audiences,
        // A year: revocation must not wait for exp.
        expirationSeconds: 365 * 86400,
        ...(pod
          ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.name, uid: pod.uid } }
          : {}),
      },
    },
  });
  return r.status!.token;
}

/**
 * A TCP relay to `target` on loopback. `cut()` ends every relayed connection; while `blocked`,
 * new connections are closed at once (the API looks unreachable). TLS passes through untouched.
 */
export async function startRelay(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  let blocked = false;
  const server: Server = createServer((client) => {
    if (blocked) return void client.destroy();
    const upstream = createConnection(target);
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}`,
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    set blocked(v: boolean) {
      blocked = v;
      if (v) this.cut();
    },
    get blocked() {
      return blocked;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

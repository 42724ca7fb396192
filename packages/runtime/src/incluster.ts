import { existsSync, readFileSync } from 'node:fs';
import { formatHostPort } from './listen.js';

/** Where the kubelet mounts a pod's ServiceAccount token, cluster CA and namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The files of a pod's mounted ServiceAccount. */
export interface ServiceAccountPaths {
  /** The projected token; the kubelet rotates it, so read it again for each use. */
  tokenPath: string;
  /** The cluster CA bundle (PEM) that signs the API server's certificate. */
  caPath: string;
  /** The pod's namespace, one line. */
  namespacePath: string;
}

/**
 * The ServiceAccount files under `root` (default: the real filesystem). `root` lets a test
 * point at a temp dir laid out like a pod, e.g. `${tmp}/var/run/secrets/...`.
 */
export function serviceAccountPaths(root = ''): ServiceAccountPaths {
  const dir = `${root.replace(/\/+$/, '')}${SERVICE_ACCOUNT_DIR}`;
  return {
    tokenPath: `${dir}/token`,
    caPath: `${dir}/ca.crt`,
    namespacePath: `${dir}/namespace`,
  };
}

/** How a pod reaches its cluster's API server with its own ServiceAccount. */
export interface InClusterCredentials extends ServiceAccountPaths {
  /** KUBERNETES_SERVICE_HOST, without brackets. */
  host: string;
  /** KUBERNETES_SERVICE_PORT, default 443. */
  port: number;
  /** `https://host:port` (IPv6 bracketed): the API server URL. */
  server: string;
}

/**
 * The in-cluster credentials when this process runs in a pod: KUBERNETES_SERVICE_HOST is set
 * and the ServiceAccount token is mounted. `undefined` when either is missing (not in a pod,
 * or `automountServiceAccountToken: false`), so the caller decides what to fall back to and
 * says so. A KUBERNETES_SERVICE_PORT that is not a port number is an error, never replaced by
 * the default.
 */
export function inClusterCredentials(
  env: NodeJS.ProcessEnv = process.env,
  root = '',
): InClusterCredentials | undefined {
  const rawHost = env.KUBERNETES_SERVICE_HOST?.trim();
  if (!rawHost) return undefined;
  const paths = serviceAccountPaths(root);
  if (!existsSync(paths.tokenPath)) return undefined;
  const host = rawHost.startsWith('[') && rawHost.endsWith(']') ? rawHost.slice(1, -1) : rawHost;
  const rawPort = env.KUBERNETES_SERVICE_PORT?.trim();
  let port = 443;
  if (rawPort !== undefined && rawPort !== '') {
    if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) < 1 || Number(rawPort) > 65535) {
      throw new TypeError(
        `KUBERNETES_SERVICE_PORT must be a port number from 1 to 65535, got "${rawPort}"`,
      );
    }
    port = Number(rawPort);
  }
  return { ...paths, host, port, server: `https://${formatHostPort(host, port)}` };
}

/**
 * This pod's namespace: POD_NAMESPACE (set from the downward API), else the mounted
 * ServiceAccount's namespace file, else `undefined` (not in a pod).
 */
export function podNamespace(env: NodeJS.ProcessEnv = process.env, root = ''): string | undefined {
  const fromEnv = env.POD_NAMESPACE?.trim();
  if (fromEnv) return fromEnv;
  try {
    const ns = readFileSync(serviceAccountPaths(root).namespacePath, 'utf8').trim();
    return ns || undefined;
  } catch {
    return undefined;
  }
}

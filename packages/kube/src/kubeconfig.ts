import { existsSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { inClusterCredentials, type InClusterCredentials } from '@precinct/runtime';
import { KubeConfigError } from './errors.js';
import { clientNode } from './client-node.js';

/**
 * KUBECONFIG first (the first existing file of a `:`-separated list), then in-cluster (the
 * mounted token and CA with KUBERNETES_SERVICE_HOST/PORT). Anything else is an error that says
 * what was tried: silently talking to some default cluster is never right for an authorizer.
 */
export function loadKubeConfig(
  env: NodeJS.ProcessEnv = process.env,
  inClusterPrefix = '',
): KubeConfig {
  const kc = new (clientNode().KubeConfig)();
  const list = env.KUBECONFIG?.split(':').filter(Boolean) ?? [];
  if (list.length > 0) {
    const file = list.find((f) => existsSync(f));
    if (!file) throw new KubeConfigError(`KUBECONFIG names no existing file (${env.KUBECONFIG})`);
    try {
      kc.loadFromFile(file);
    } catch (err) {
      throw new KubeConfigError(`could not load kubeconfig ${file}`, { cause: err });
    }
    if (!kc.getCurrentCluster()) {
      throw new KubeConfigError(`kubeconfig ${file} has no current cluster`);
    }
    return kc;
  }
  // @precinct/runtime's in-cluster rule: KUBERNETES_SERVICE_HOST set and the token mounted.
  let inCluster: InClusterCredentials | undefined;
  try {
    inCluster = inClusterCredentials(env, inClusterPrefix);
  } catch (err) {
    throw new KubeConfigError((err as Error).message, { cause: err });
  }
  if (inCluster) {
    const saved = {
      host: process.env.KUBERNETES_SERVICE_HOST,
      port: process.env.KUBERNETES_SERVICE_PORT,
    };
    // client-node reads these two from process.env only.
    process.env.KUBERNETES_SERVICE_HOST = inCluster.host;
    process.env.KUBERNETES_SERVICE_PORT = String(inCluster.port);
    try {
      kc.loadFromCluster(inClusterPrefix || undefined);
    } finally {
      if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
      else process.env.KUBERNETES_SERVICE_HOST = saved.host;
      if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT;
      else process.env.KUBERNETES_SERVICE_PORT = saved.port;
    }
    return kc;
  }
  throw new KubeConfigError(
    'no Kubernetes credentials: set KUBECONFIG, or run in a pod with a mounted ServiceAccount',
  );
}

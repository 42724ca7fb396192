import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface KubeconfigOptions {
  server: string;
  caPem: string;
  token: string;
  user: string;
  namespace?: string;
}

const q = (s: string) => JSON.stringify(s);

/**
 * A kubeconfig with one cluster, user and context named kube-dev. Written as YAML whose scalars
 * are JSON strings, so no YAML library is needed and any value is quoted safely.
 */
export function renderKubeconfig(o: KubeconfigOptions): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: kube-dev',
    '    cluster:',
    `      server: ${q(o.server)}`,
    `      certificate-authority-data: ${q(Buffer.from(o.caPem).toString('base64'))}`,
    'users:',
    `  - name: ${q(o.user)}`,
    '    user:',
    `      token: ${q(o.token)}`,
    'contexts:',
    '  - name: kube-dev',
    '    context:',
    '      cluster: kube-dev',
    `      user: ${q(o.user)}`,
    `      namespace: ${q(o.namespace ?? 'default')}`,
    'current-context: kube-dev',
    '',
  ].join('\n');
}

/** Writes a secret file atomically with mode 0600 (also when it already existed). */
export function writeSecretFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

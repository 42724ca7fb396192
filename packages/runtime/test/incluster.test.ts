import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  inClusterCredentials,
  podNamespace,
  serviceAccountPaths,
  SERVICE_ACCOUNT_DIR,
} from '@precinct/runtime';

/** A temp dir laid out like a pod's filesystem, with the files asked for. */
function fakePod(t: { after(fn: () => void): void }, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'precinct-incluster-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, SERVICE_ACCOUNT_DIR), { recursive: true });
  for (const [name, body] of Object.entries(files)) {
    writeFileSync(join(root, SERVICE_ACCOUNT_DIR, name), body);
  }
  return root;
}

test('serviceAccountPaths: the kubelet mount, optionally under a root', () => {
  assert.deepEqual(serviceAccountPaths(), {
    tokenPath: '/var/run/secrets/kubernetes.io/serviceaccount/token',
    caPath: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
    namespacePath: '/var/run/secrets/kubernetes.io/serviceaccount/namespace',
  });
  assert.equal(
    serviceAccountPaths('/tmp/x/').tokenPath,
    '/tmp/x/var/run/secrets/kubernetes.io/serviceaccount/token',
  );
});

test('inClusterCredentials: host, port and paths from the environment and the mount', (t) => {
  const root = fakePod(t, { token: 'tok', 'ca.crt': 'pem', namespace: 'ns' });
  const table: [env: NodeJS.ProcessEnv, want: { host: string; port: number; server: string }][] = [
    [
      { KUBERNETES_SERVICE_HOST: '10.96.0.1' },
      { host: '10.96.0.1', port: 443, server: 'https://10.96.0.1:443' },
    ],
    [
      { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '6443' },
      { host: '10.96.0.1', port: 6443, server: 'https://10.96.0.1:6443' },
    ],
    [
      { KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '443' },
      { host: 'fd00:10:96::1', port: 443, server: 'https://[fd00:10:96::1]:443' },
    ],
    [
      { KUBERNETES_SERVICE_HOST: '[fd00::1]', KUBERNETES_SERVICE_PORT: '' },
      { host: 'fd00::1', port: 443, server: 'https://[fd00::1]:443' },
    ],
  ];
  for (const [env, want] of table) {
    const got = inClusterCredentials(env, root);
    assert.ok(got, JSON.stringify(env));
    assert.deepEqual(
      { host: got.host, port: got.port, server: got.server },
      want,
      JSON.stringify(env),
    );
    assert.deepEqual(
      { tokenPath: got.tokenPath, caPath: got.caPath, namespacePath: got.namespacePath },
      serviceAccountPaths(root),
    );
  }
});

test('inClusterCredentials: undefined outside a pod, an error on a bad port', (t) => {
  const withToken = fakePod(t, { token: 'tok' });
  const withoutToken = fakePod(t, { 'ca.crt': 'pem' });
  // Positive control: the same environment with the token mounted is in a pod.
  assert.ok(inClusterCredentials({ KUBERNETES_SERVICE_HOST: '10.96.0.1' }, withToken));
  assert.equal(
    inClusterCredentials({ KUBERNETES_SERVICE_HOST: '10.96.0.1' }, withoutToken),
    undefined,
  );
  assert.equal(inClusterCredentials({}, withToken), undefined);
  assert.equal(inClusterCredentials({ KUBERNETES_SERVICE_HOST: '  ' }, withToken), undefined);
  for (const port of ['http', '0', '65536', '-1', '443x']) {
    assert.throws(
      () =>
        inClusterCredentials(
          { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: port },
          withToken,
        ),
      (e: Error) => e instanceof TypeError && /KUBERNETES_SERVICE_PORT/.test(e.message),
      port,
    );
  }
});

test('podNamespace: POD_NAMESPACE, then the mounted file, else undefined', (t) => {
  const root = fakePod(t, { namespace: 'team-a\n' });
  const empty = fakePod(t, { namespace: '  \n' });
  const none = fakePod(t, {});
  assert.equal(podNamespace({ POD_NAMESPACE: 'from-env' }, root), 'from-env');
  assert.equal(podNamespace({}, root), 'team-a');
  assert.equal(podNamespace({ POD_NAMESPACE: '' }, root), 'team-a');
  assert.equal(podNamespace({}, empty), undefined);
  assert.equal(podNamespace({}, none), undefined);
});

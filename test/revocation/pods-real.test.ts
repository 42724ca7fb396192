// Pod-bound tokens against a real kube-apiserver (kube-dev serves no pods): deleting the pod a
// workload's token is bound to ends that workload's binding; another pod of the same
// ServiceAccount keeps its own.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import {
  createTokenReviewVerifier,
  watchPods,
  watchServiceAccounts,
  type ObjectWatch,
} from '@precinct/kube';
import { startIdentityServer, type IdentityServer } from '@precinct/identity-server';
import { WorkloadApiClient } from '@precinct/spiffe/workloadapi';
import { peerSkip, startKubeApiserver, type KubeApiserver } from '@precinct/testing';
import { createLogger } from '@precinct/runtime';
import { eventually, tokenFor } from './support.js';

const NS = 'team-a';
const AUD = 'precinct';
const TD = 'example.org';
const quiet = () => createLogger('revocation-test', process.env.TEST_LOG_LEVEL ?? 'silent');
const skip = peerSkip('kube-apiserver', 'etcd');

describe('pod-bound bindings (real kube-apiserver)', { skip }, () => {
  let api: KubeApiserver;
  let core: k8s.CoreV1Api;
  let server: IdentityServer;
  const watches: ObjectWatch[] = [];
  const clients: WorkloadApiClient[] = [];

  before(async () => {
    api = await startKubeApiserver({ controllers: false });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 'api' } },
    });
    const serviceAccounts = watchServiceAccounts({ kubeConfig: kc, logger: quiet() });
    const pods = watchPods({ kubeConfig: kc, logger: quiet() });
    watches.push(serviceAccounts, pods);
    await Promise.all([serviceAccounts.ready(), pods.ready()]);
    assert.equal(pods.state, 'synced', 'a real API server serves pods');
    server = await startIdentityServer({
      trustDomain: TD,
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      verifier: createTokenReviewVerifier({ kubeConfig: kc, audiences: [AUD] }),
      revocation: { serviceAccounts, pods },
      logger: quiet(),
    });
    await server.entries.create({
      spiffeId: `spiffe://${TD}/ns/${NS}/sa/api`,
      selectors: [`k8s:ns:${NS}`, 'k8s:sa:api'],
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.close();
    for (const w of watches) w.close();
    await api?.close();
  });

  const createPod = async (name: string) => {
    // Never scheduled (no scheduler runs), so a delete removes it at once.
    const p = await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name },
        spec: {
          serviceAccountName: 'api',
          automountServiceAccountToken: false,
          containers: [{ name: 'c', image: 'registry.invalid/none' }],
        },
      },
    });
    return { name, uid: p.metadata!.uid! };
  };
  const attest = async (token: string) => {
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    return { status: res.status, body: (await res.json()) as { address: string } };
  };
  const jwt = (c: WorkloadApiClient) =>
    c.fetchJwtSvid({ audience: 'x' }).then(
      (s) => s.id.toString(),
      (e: { code?: string }) => e.code,
    );

  test('deleting the bound pod ends that binding only', async () => {
    const pod1 = await createPod('api-1');
    const pod2 = await createPod('api-2');
    const bindings = [];
    for (const pod of [pod1, pod2]) {
      const a = await attest(await tokenFor(core, NS, 'api', [AUD], pod));
      assert.equal(a.status, 200);
      const c = new WorkloadApiClient({ address: a.body.address });
      clients.push(c);
      assert.equal(await jwt(c), `spiffe://${TD}/ns/${NS}/sa/api`);
      bindings.push(c);
    }
    const [c1, c2] = bindings as [WorkloadApiClient, WorkloadApiClient];
    await core.deleteNamespacedPod({ namespace: NS, name: 'api-1', gracePeriodSeconds: 0 });
    await eventually(
      async () => (await jwt(c1)) === 'ERR_WORKLOADAPI_PERMISSION_DENIED',
      'the deleted pod’s binding to end',
    );
    // Control: the other pod of the same ServiceAccount is still served.
    assert.equal(await jwt(c2), `spiffe://${TD}/ns/${NS}/sa/api`);
    const revoked = await server.metrics.registry.getSingleMetricAsString(
      'precinct_identity_bindings_revoked_total',
    );
    assert.match(revoked, /reason="pods_deleted"} 1/);
  });
});

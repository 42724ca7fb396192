// Attestation against a real Kubernetes auth API (kube-dev over HTTPS): ServiceAccount tokens
// minted by TokenRequest, bound to a pod, verified by TokenReview.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import { createTokenReviewVerifier } from '@precinct/kube';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import { md, quietLogger, rawClient, reader } from './support.js';

const AUDIENCE = 'precinct';

describe('Kubernetes attestation with kube-dev', () => {
  let kube: KubeDev;
  let server: IdentityServer;
  let core: k8s.CoreV1Api;

  // kube-dev, like kube-apiserver, binds a token only to a pod that exists and runs as the
  // ServiceAccount, and uses that pod's uid; the `uid` arguments below are ignored.
  const podUids = new Map<string, string>();
  const ensurePod = async (namespace: string, name: string, serviceAccountName: string) => {
    const key = `${namespace}/${name}`;
    if (!podUids.has(key)) {
      const p = await core.createNamespacedPod({
        namespace,
        body: {
          metadata: { name },
          spec: { serviceAccountName, containers: [{ name: 'c', image: 'app' }] },
        },
      });
      podUids.set(key, p.metadata!.uid!);
    }
    return podUids.get(key)!;
  };
  const tokenFor = async (
    namespace: string,
    name: string,
    audiences: string[],
    podArg?: { name: string; uid: string },
  ) => {
    const pod = podArg && { name: podArg.name, uid: await ensurePod(namespace, podArg.name, name) };
    const r = await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: {
        spec: {
          audiences,
          expirationSeconds: 3600,
          ...(pod
            ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.name, uid: pod.uid } }
            : {}),
        },
      },
    });
    return r.status!.token;
  };
  const attest = async (token: string) => {
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    return {
      status: res.status,
      body: (await res.json()) as { address: string; selectors: string[] },
    };
  };

  before(async () => {
    kube = await startKubeDev({
      listen: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      logger: quietLogger(),
    });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    core = kc.makeApiClient(k8s.CoreV1Api);
    for (const ns of ['team-a', 'team-b'])
      await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedServiceAccount({
      namespace: 'team-a',
      body: { metadata: { name: 'api' } },
    });
    await core.createNamespacedServiceAccount({
      namespace: 'team-b',
      body: { metadata: { name: 'worker' } },
    });
    server = await startIdentityServer({
      trustDomain: 'example.org',
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      verifier: createTokenReviewVerifier({ kubeConfig: kc, audiences: [AUDIENCE] }),
      logger: quietLogger(),
    });
    await server.entries.create({
      spiffeId: 'spiffe://example.org/ns/team-a/sa/api',
      selectors: ['k8s:ns:team-a', 'k8s:sa:api', 'k8s:pod-name:api-1'],
    });
  });
  after(async () => {
    await server?.close();
    await kube?.close();
  });

  test('a pod-bound token for the right audience gets the entry; selectors come from the token', async () => {
    const token = await tokenFor('team-a', 'api', [AUDIENCE], {
      name: 'api-1',
      uid: '6f1e0c8a-0000-4000-8000-000000000001',
    });
    const r = await attest(token);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.selectors, [
      'k8s:ns:team-a',
      'k8s:sa:api',
      'k8s:pod-name:api-1',
      `k8s:pod-uid:${podUids.get('team-a/api-1')}`,
    ]);
    const c = rawClient(r.body.address);
    try {
      const s = reader(c.FetchX509SVID({}, md()));
      const msg = await s.next();
      s.cancel();
      assert.deepEqual(
        msg.svids.map((x) => x.spiffe_id),
        ['spiffe://example.org/ns/team-a/sa/api'],
      );
    } finally {
      c.close();
    }
  });

  test("another ServiceAccount's token is attested but never gets that entry", async () => {
    const token = await tokenFor('team-b', 'worker', [AUDIENCE], {
      name: 'api-1',
      uid: '6f1e0c8a-0000-4000-8000-000000000002',
    });
    const r = await attest(token);
    assert.equal(r.status, 200);
    const c = rawClient(r.body.address);
    try {
      await assert.rejects(reader(c.FetchX509SVID({}, md())).next(), {
        code: 7 /* PERMISSION_DENIED */,
      });
    } finally {
      c.close();
    }
  });

  test('a token for another audience, or the same pod unbound, is refused or unentitled', async () => {
    const wrongAud = await tokenFor('team-a', 'api', ['someone-else'], {
      name: 'api-1',
      uid: '6f1e0c8a-0000-4000-8000-000000000003',
    });
    assert.equal((await attest(wrongAud)).status, 401);
    const refused = (await server.metrics.attestationFailures.get()).values;
    assert.ok(
      refused.some((v) => v.labels.reason?.toString().startsWith('ERR_TOKEN_') && v.value >= 1),
    );
    // Positive control of the same shape: only the audience differs.
    const rightAud = await tokenFor('team-a', 'api', [AUDIENCE], {
      name: 'api-1',
      uid: '6f1e0c8a-0000-4000-8000-000000000003',
    });
    assert.equal((await attest(rightAud)).status, 200);
    // Not bound to a pod: no k8s:pod-name selector, so the entry (which requires it) is not served.
    const unbound = await tokenFor('team-a', 'api', [AUDIENCE]);
    const r = await attest(unbound);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.selectors, ['k8s:ns:team-a', 'k8s:sa:api']);
  });
});

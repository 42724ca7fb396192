// Revocation in the identity server, end to end: a workload attests with a real ServiceAccount
// token from kube-dev, fetches SVIDs over its own Workload API socket with the SDK client, and an
// operator deletes the ServiceAccount with kubectl. The binding, its open streams and its socket
// end; a recreated ServiceAccount of the same name inherits nothing.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import {
  createTokenReviewVerifier,
  watchPods,
  watchServiceAccounts,
  type ObjectWatch,
} from '@precinct/kube';
import { startIdentityServer, type IdentityServer } from '@precinct/identity-server';
import { WorkloadApiClient, type X509Context } from '@precinct/spiffe/workloadapi';
import { peerSkip } from '@precinct/testing';
import { createLogger } from '@precinct/runtime';
import { eventually, kubeConfigOf, kubectl, startRelay, tokenFor } from './support.js';

const NS = 'team-a';
const AUD = 'precinct';
const TD = 'example.org';
const PERMISSION_DENIED = 7;
const quiet = () => createLogger('revocation-test', process.env.TEST_LOG_LEVEL ?? 'silent');

interface Started {
  server: IdentityServer;
  watches: ObjectWatch[];
  close(): Promise<void>;
}

async function startServer(
  kube: KubeDev,
  watchServer: string,
  staleAfterMs: number,
): Promise<Started> {
  const kc = kubeConfigOf(kube);
  const watchKc = kubeConfigOf(kube, watchServer);
  const opts = {
    kubeConfig: watchKc,
    logger: quiet(),
    retryMs: 100,
    staleAfterMs,
  };
  const serviceAccounts = watchServiceAccounts(opts);
  const pods = watchPods(opts);
  const server = await startIdentityServer({
    trustDomain: TD,
    admin: { host: '127.0.0.1', port: 0 },
    oidc: { host: '127.0.0.1', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    advertiseHost: '127.0.0.1',
    verifier: createTokenReviewVerifier({ kubeConfig: kc, audiences: [AUD] }),
    revocation: { serviceAccounts, pods },
    socketLingerMs: 3000,
    logger: quiet(),
  });
  await serviceAccounts.ready();
  await pods.ready();
  return {
    server,
    watches: [serviceAccounts, pods],
    async close() {
      await server.close();
      serviceAccounts.close();
      pods.close();
    },
  };
}

async function attest(server: IdentityServer, token: string) {
  const res = await fetch(`${server.adminUrl}/v1/attest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { address: string; socketPath: string },
  };
}

const code = (e: unknown) => (e as { code?: string }).code;
const jwtOk = (c: WorkloadApiClient) =>
  c.fetchJwtSvid({ audience: 'audit-store' }).then((s) => s.id.toString());
const jwtError = (c: WorkloadApiClient) =>
  c.fetchJwtSvid({ audience: 'audit-store' }).then(() => 'ok', code);

/** Opens a FetchX509SVID stream through the SDK and records its updates and how it ended. */
function openStream(client: WorkloadApiClient) {
  const updates: X509Context[] = [];
  const ends: number[] = [];
  const stop = new AbortController();
  void client
    .watchX509Context({ onUpdate: (u) => updates.push(u) }, stop.signal, (c) => ends.push(c))
    .catch(() => undefined);
  return { updates, ends, stop: () => stop.abort() };
}

describe('identity server revocation (kube-dev, SDK client over unix sockets)', () => {
  let kube: KubeDev;
  let core: k8s.CoreV1Api;
  // One server for both tests (PGlite's initdb is the slow part of a start); its watches go
  // through a relay the second test cuts, while TokenReview goes straight to kube-dev.
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let s: Started;
  const createSa = (name: string) =>
    core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name } } });
  const spiffeId = (sa: string) => `spiffe://${TD}/ns/${NS}/sa/${sa}`;
  const register = (s: IdentityServer, sa: string) =>
    s.entries.create({ spiffeId: spiffeId(sa), selectors: [`k8s:ns:${NS}`, `k8s:sa:${sa}`] });

  before(async () => {
    kube = await startKubeDev({
      listen: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      logger: quiet(),
    });
    core = kubeConfigOf(kube).makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    relay = await startRelay({ host: '127.0.0.1', port: Number(new URL(kube.url).port) });
    s = await startServer(kube, relay.url, 1000);
  });
  after(async () => {
    await s?.close();
    await relay?.close();
    await kube?.close();
  });

  test(
    'kubectl delete serviceaccount ends the binding, its stream and its socket; a recreated one inherits nothing',
    { skip: peerSkip('kubectl') },
    async (t) => {
      for (const n of ['api', 'neighbour']) await createSa(n);
      const clients: WorkloadApiClient[] = [];
      const client = (address: string) => {
        const c = new WorkloadApiClient({ address, backoff: { initialMs: 100, maxMs: 200 } });
        clients.push(c);
        return c;
      };
      try {
        for (const n of ['api', 'neighbour']) await register(s.server, n);
        // Not bound to a pod (kube-dev may check bound pods exist; pods: pods-real.test.ts).
        const token = await tokenFor(core, NS, 'api', [AUD]);
        const a = await attest(s.server, token);
        assert.equal(a.status, 200);
        const n = await attest(s.server, await tokenFor(core, NS, 'neighbour', [AUD]));
        assert.equal(n.status, 200);
        const api = client(a.body.address);
        const neighbour = client(n.body.address);

        // Positive control: both are served, X.509 (streamed) and JWT.
        const stream = openStream(api);
        await eventually(() => stream.updates.length > 0, 'the first X.509-SVID');
        assert.equal(stream.updates[0]!.svids[0]!.id.toString(), spiffeId('api'));
        assert.equal(await jwtOk(api), spiffeId('api'));
        assert.equal(await jwtOk(neighbour), spiffeId('neighbour'));

        await kubectl(kube, 'delete', 'serviceaccount', 'api', '-n', NS);
        const deletedAt = performance.now();
        await eventually(
          async () => (await jwtError(api)) === 'ERR_WORKLOADAPI_PERMISSION_DENIED',
          'the next call on the revoked socket to get PermissionDenied',
        );
        // Reported, not asserted: how long revocation took on this machine.
        t.diagnostic(
          `PermissionDenied ${Math.round(performance.now() - deletedAt)} ms after kubectl returned`,
        );
        await eventually(() => stream.ends.includes(PERMISSION_DENIED), 'the open stream to end');
        assert.equal(stream.ends[0], PERMISSION_DENIED);
        stream.stop();
        // Control: the neighbour's binding is untouched.
        assert.equal(await jwtOk(neighbour), spiffeId('neighbour'));
        await eventually(() => !existsSync(a.body.socketPath), 'the socket to be removed');
        const revoked = (await s.server.metrics.registry.getSingleMetricAsString(
          'precinct_identity_bindings_revoked_total',
        )) as string;
        assert.match(revoked, /reason="serviceaccounts_deleted"} 1/);

        // Recreated under the same name: a new uid. The old token and socket stay dead.
        await kubectl(kube, 'create', 'serviceaccount', 'api', '-n', NS);
        assert.equal((await attest(s.server, token)).status, 401);
        assert.notEqual(await jwtError(client(a.body.address)), 'ok');
        // Positive control: the new ServiceAccount's own token gets a new socket and SVIDs.
        const fresh = await attest(s.server, await tokenFor(core, NS, 'api', [AUD]));
        assert.equal(fresh.status, 200);
        assert.notEqual(fresh.body.socketPath, a.body.socketPath);
        assert.equal(await jwtOk(client(fresh.body.address)), spiffeId('api'));
      } finally {
        for (const c of clients) c.close();
      }
    },
  );

  test('a lost watch suspends bindings past its bound (Unavailable, attestation 503), then resumes and catches up', async () => {
    for (const n of ['steady', 'lost']) await createSa(n);
    const clients: WorkloadApiClient[] = [];
    try {
      for (const n of ['steady', 'lost']) await register(s.server, n);
      const steadyToken = await tokenFor(core, NS, 'steady', [AUD]);
      const bound = await Promise.all(
        [steadyToken, await tokenFor(core, NS, 'lost', [AUD])].map((t) => attest(s.server, t)),
      );
      const [steady, lost] = bound.map((b) => {
        assert.equal(b.status, 200);
        const c = new WorkloadApiClient({ address: b.body.address });
        clients.push(c);
        return c;
      }) as [WorkloadApiClient, WorkloadApiClient];
      assert.equal(await jwtOk(steady), spiffeId('steady'));

      relay.blocked = true;
      await eventually(
        async () => (await jwtError(steady)) === 'ERR_WORKLOADAPI_UNAVAILABLE',
        'bindings to be suspended',
      );
      // Attestation fails closed too (TokenReview itself still works: it does not use the relay).
      assert.equal((await attest(s.server, steadyToken)).status, 503);
      // Deleted while nobody watches: caught by the re-list.
      await core.deleteNamespacedServiceAccount({ namespace: NS, name: 'lost' });

      relay.blocked = false;
      await eventually(async () => (await jwtError(steady)) === 'ok', 'the binding to resume');
      assert.equal(await jwtError(lost), 'ERR_WORKLOADAPI_PERMISSION_DENIED');
      assert.equal((await attest(s.server, steadyToken)).status, 200);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

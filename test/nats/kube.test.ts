// End-to-end with kube-dev issuing real ServiceAccount tokens: the callout runs with its
// production defaults (createJwksVerifier over the issuer's JWKS, an informer on ServiceAccounts
// through the kubeconfig), against a real nats-server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import {
  loadConfig,
  serviceAccountInformer,
  startNatsCallout,
  type NatsCallout,
} from '@precinct/nats-callout';
import { createLogger } from '@precinct/runtime';
import { peerSkip, startNatsServer, tempDir, type NatsServer } from '@precinct/testing';
import {
  ACCOUNT,
  CALLOUT_USER,
  connectWorkload,
  expectPermissionViolation,
  newKeys,
  requestCount,
  serverConfig,
  waitFor,
  type CalloutKeys,
} from './harness.js';

const skip = peerSkip('nats-server');

describe('nats-callout with kube-dev tokens and a ServiceAccount informer', { skip }, () => {
  const dir = tempDir('nats-callout-kube-');
  const open: NatsConnection[] = [];
  let keys: CalloutKeys;
  let kube: KubeDev;
  let core: CoreV1Api;
  let server: NatsServer;
  let callout: NatsCallout;
  let env: Record<string, string> = {};

  const token = async (namespace: string, name: string, audience = 'nats') => {
    const r = await core.createNamespacedServiceAccountToken({
      namespace,
      name,
      body: { spec: { audiences: [audience], expirationSeconds: 600 } },
    });
    return r.status!.token;
  };
  const workload = async (namespace: string, name: string) => {
    const nc = await connectWorkload(
      server,
      await token(namespace, name),
      `_INBOX_${namespace}_${name}`,
    );
    open.push(nc);
    return nc;
  };
  const setAnnotations = async (
    namespace: string,
    name: string,
    annotations: Record<string, string>,
  ) => {
    const sa = await core.readNamespacedServiceAccount({ namespace, name });
    sa.metadata!.annotations = annotations;
    await core.replaceNamespacedServiceAccount({ namespace, name, body: sa });
  };
  const ready = async () =>
    (await (await fetch(`http://127.0.0.1:${callout.port}/ready`)).json()) as Record<
      string,
      unknown
    >;

  before(async () => {
    if (skip) return;
    keys = newKeys();
    kube = await startKubeDev({
      listen: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      anonymousIssuerDiscovery: true, // as precinct up: the callout reads the JWKS without a token
      dataDir: join(dir.path, 'kube'),
      logger: createLogger('kube-dev', 'silent'),
    });
    const kc = new KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    for (const ns of ['team-a', 'team-b']) {
      await core.createNamespace({ body: { metadata: { name: ns } } });
    }
    await core.createNamespacedServiceAccount({
      namespace: 'team-a',
      body: { metadata: { name: 'worker' } },
    });
    await core.createNamespacedServiceAccount({
      namespace: 'team-b',
      body: { metadata: { name: 'reader' } },
    });

    server = await startNatsServer(serverConfig(keys));
    const seedFile = join(dir.path, 'account.seed');
    writeFileSync(seedFile, keys.accountSeed, { mode: 0o600 });
    const caFile = join(dir.path, 'kube-ca.pem');
    writeFileSync(caFile, kube.caPem);
    env = {
      HOST: '127.0.0.1',
      PORT: '0',
      NATS_URL: `nats://${CALLOUT_USER}:${keys.calloutPassword}@127.0.0.1:${server.port}`,
      NATS_SIGNING_KEY_FILE: seedFile,
      NATS_ACCOUNT: ACCOUNT,
      K8S_IN_CLUSTER: 'false',
      KUBECONFIG: kube.kubeconfigPath,
      JWT_ISSUER: kube.issuer,
      JWKS_CA_FILE: caFile,
      LOG_LEVEL: 'silent',
    };
    const config = loadConfig(env);
    // Production defaults: no verifier or ServiceAccount source injected.
    callout = await startNatsCallout(config, {
      logger: createLogger('nats-callout-test', process.env.PRECINCT_TEST_LOG ?? 'silent'),
    });
    await waitFor(() => callout.status().ready, 'callout ready (nats connected, cache synced)');
  });
  after(async () => {
    await Promise.all(open.map((nc) => nc.close().catch(() => {})));
    await callout?.close();
    await server?.close();
    await kube?.close();
    dir.cleanup();
  });

  test('a workload with a kube-dev token connects and uses its namespace; others are refused', async () => {
    const nc = await workload('team-a', 'worker');
    const sub = nc.subscribe('team-a.x', { max: 1 });
    await nc.flush();
    nc.publish('team-a.x', 'ok');
    for await (const m of sub) assert.equal(m.string(), 'ok');
    assert.deepEqual(await ready(), {
      ready: true,
      nats: 'connected',
      serviceAccounts: 'synced',
      cacheSize: (await core.listServiceAccountForAllNamespaces()).items.length,
      jwks: 'loaded',
    });
    // Negative: a kube-dev token for another audience.
    await assert.rejects(connectWorkload(server, await token('team-a', 'worker', 'vault')));
  });

  test('annotation grant and removal through the watch take effect at the next connect', async () => {
    const reader = await workload('team-b', 'reader');
    const got: string[] = [];
    reader.subscribe('team-b.events', {
      callback: (_e, m) => {
        got.push(m.string());
      },
    });
    await reader.flush();
    await setAnnotations('team-a', 'worker', { 'nats.io/allowed-pub-subjects': 'team-b.events' });
    // The informer delivers the change; each new connection gets the permissions of that moment.
    await waitFor(async () => {
      const nc = await workload('team-a', 'worker');
      nc.publish('team-b.events', 'granted');
      await nc.flush();
      await new Promise((r) => setTimeout(r, 50));
      return got.includes('granted');
    }, 'the grant to reach the callout');

    await setAnnotations('team-a', 'worker', {});
    await waitFor(async () => {
      const nc = await workload('team-a', 'worker');
      try {
        await expectPermissionViolation(nc, 'publish', 'team-b.events', () =>
          nc.publish('team-b.events', 'revoked?'),
        );
        return true;
      } catch {
        return false;
      }
    }, 'the removal to reach the callout');
  });

  test('a deleted ServiceAccount is refused although its token is still valid', async () => {
    await core.createNamespacedServiceAccount({
      namespace: 'team-a',
      body: { metadata: { name: 'temp' } },
    });
    const t = await token('team-a', 'temp');
    await waitFor(async () => {
      try {
        open.push(await connectWorkload(server, t));
        return true;
      } catch {
        return false;
      }
    }, 'the new ServiceAccount admitted (positive control)');
    await core.deleteNamespacedServiceAccount({ namespace: 'team-a', name: 'temp' });
    const before = await requestCount(callout, 'denied', 'unknown_service_account');
    await waitFor(async () => {
      try {
        open.push(await connectWorkload(server, t));
        return false;
      } catch {
        return true;
      }
    }, 'the deleted ServiceAccount refused');
    assert.ok((await requestCount(callout, 'denied', 'unknown_service_account')) > before);
  });

  test('K8S_NAMESPACE limits the watch to one namespace', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const source = serviceAccountInformer({
      kubeConfig: kc,
      namespace: 'team-b',
      logger: createLogger('informer-test', 'silent'),
    });
    try {
      await source.ready(15_000);
      assert.ok(source.get('team-b', 'reader'), 'team-b/reader is watched');
      assert.equal(source.get('team-a', 'worker'), undefined);
      const inTeamB = (await core.listNamespacedServiceAccount({ namespace: 'team-b' })).items;
      assert.equal(source.status().size, inTeamB.length);
    } finally {
      await source.close();
    }
  });

  test('a Kubernetes API outage keeps the last synced cache, and says so', async () => {
    const t = await token('team-a', 'worker');
    await kube.close();
    await waitFor(
      async () => (await ready()).serviceAccounts === 'stale',
      '/ready to report stale',
    );
    const r = await ready();
    assert.equal(r.ready, true);
    const metrics = await (await fetch(`http://127.0.0.1:${callout.port}/metrics`)).text();
    assert.match(metrics, /^nats_callout_kube_api_healthy 0$/m);
    // Tokens still verify offline (keys already fetched) and the cache still answers.
    open.push(await connectWorkload(server, t, '_INBOX_team-a_worker'));
    await waitFor(async () => {
      const text = await (await fetch(`http://127.0.0.1:${callout.port}/metrics`)).text();
      return /^nats_callout_watch_restarts_total [1-9]/m.test(text);
    }, 'a watch restart attempt');

    // The API comes back (same port, same data): the cache re-syncs on its own.
    kube = await startKubeDev({
      listen: { host: '127.0.0.1', port: kube.port },
      advertiseHost: '127.0.0.1',
      anonymousIssuerDiscovery: true, // as precinct up: the callout reads the JWKS without a token
      dataDir: join(dir.path, 'kube'),
      logger: createLogger('kube-dev', 'silent'),
    });
    await waitFor(
      async () => (await ready()).serviceAccounts === 'synced',
      '/ready to report synced',
      40_000,
    );
  });

  test('`precinct nats-callout` runs from the environment and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['cli/bin/precinct.js', 'nats-callout'], {
      env: { PATH: process.env.PATH ?? '', ...env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor(() => /on port (\d+)/.test(out), `the port line (stderr: ${err})`, 30_000);
      const port = Number(/on port (\d+)/.exec(out)![1]);
      assert.match(out, new RegExp(`issuer ${keys.accountPublic}`));
      await waitFor(
        async () => (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200,
        'the command ready',
        30_000,
      );
      // Both the in-process callout and the command answer; either admits the workload.
      const nc = await workload('team-a', 'worker');
      await nc.flush();
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, err);
    assert.ok(!err.includes(keys.accountSeed), 'seed in output');
  });
});

// @precinct/kube's ServiceAccount watch and the cachingVerifier eviction it drives, against the
// real local Kubernetes API (kube-dev), ServiceAccounts deleted with kubectl.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import {
  cachingVerifier,
  createJwksVerifier,
  createTokenReviewVerifier,
  evictOnServiceAccountChange,
  requireLiveServiceAccount,
  watchPods,
  watchServiceAccounts,
  type ObjectWatch,
  type TokenVerifier,
  type WatchedObject,
} from '@precinct/kube';
import { peerSkip, tempDir } from '@precinct/testing';
import { createLogger } from '@precinct/runtime';
import { eventually, kubeConfigOf, kubectl, startRelay, tokenFor } from './support.js';

const NS = 'team-a';
const AUD = 'precinct';
const quiet = () => createLogger('revocation-test', process.env.TEST_LOG_LEVEL ?? 'silent');

/** kube-dev's JWKS document, fetched as the API server's own admin. */
function kubeJwks(kube: KubeDev): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${kube.issuer}/openid/v1/jwks`,
      {
        ca: kube.caPem,
        headers: {
          authorization: `Bearer ${kube.adminToken}`,
          accept: 'application/jwk-set+json, application/json',
        },
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`JWKS: ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Counts the inner verifications, so a test can tell a cache hit from a fresh TokenReview. */
function counting(inner: TokenVerifier) {
  const calls = new Map<string, number>();
  return {
    calls,
    async verify(token: string) {
      const id = await inner.verify(token);
      calls.set(id.serviceAccountName, (calls.get(id.serviceAccountName) ?? 0) + 1);
      return id;
    },
  };
}

describe('ServiceAccount watch and cache eviction (kube-dev)', () => {
  let kube: KubeDev;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  const watches: ObjectWatch[] = [];

  const createSa = (name: string) =>
    core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name } } });
  const uidOf = async (name: string) =>
    (await core.readNamespacedServiceAccount({ namespace: NS, name })).metadata!.uid!;

  before(async () => {
    kube = await startKubeDev({
      listen: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      logger: quiet(),
    });
    kc = kubeConfigOf(kube);
    core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
  });
  after(async () => {
    for (const w of watches) w.close();
    await kube?.close();
  });

  test(
    'a cached token of a deleted ServiceAccount is refused once the watch sees it go; others stay cached',
    { skip: peerSkip('kubectl') },
    async () => {
      for (const n of ['doomed', 'bystander']) await createSa(n);
      const watch = watchServiceAccounts({ kubeConfig: kc, logger: quiet() });
      watches.push(watch);
      await watch.ready();
      assert.equal(watch.state, 'synced');
      const inner = counting(createTokenReviewVerifier({ kubeConfig: kc, audiences: [AUD] }));
      const cache = cachingVerifier(inner);
      const unwire = evictOnServiceAccountChange(cache, watch);
      // The same deletion seen by a cache without a watch: the bug this fixes.
      const unwatched = cachingVerifier(
        createTokenReviewVerifier({ kubeConfig: kc, audiences: [AUD] }),
      );
      try {
        const doomed = await tokenFor(core, NS, 'doomed', [AUD]);
        const bystander = await tokenFor(core, NS, 'bystander', [AUD]);
        assert.equal((await cache.verify(doomed)).serviceAccountName, 'doomed');
        assert.equal((await cache.verify(bystander)).serviceAccountName, 'bystander');
        assert.equal((await unwatched.verify(doomed)).serviceAccountName, 'doomed');
        // Cache hits: no new TokenReview.
        await cache.verify(doomed);
        assert.equal(inner.calls.get('doomed'), 1);
        const oldUid = await uidOf('doomed');

        await kubectl(kube, 'delete', 'serviceaccount', 'doomed', '-n', NS);
        await eventually(
          () =>
            cache.verify(doomed).then(
              () => false,
              (e: { code?: string }) => e.code === 'ERR_TOKEN_REJECTED',
            ),
          'the cached token of the deleted ServiceAccount to be refused',
        );
        assert.equal(watch.status({ namespace: NS, name: 'doomed', uid: oldUid }), 'gone');
        // Positive control: the unrelated ServiceAccount is still served from the cache.
        const before = inner.calls.get('bystander');
        assert.equal((await cache.verify(bystander)).serviceAccountName, 'bystander');
        assert.equal(inner.calls.get('bystander'), before);
        // Without the watch the deleted ServiceAccount's token is still accepted from cache.
        assert.equal((await unwatched.verify(doomed)).serviceAccountName, 'doomed');

        // Recreated with the same name: a new uid; the old token stays dead, a new one works.
        await kubectl(kube, 'create', 'serviceaccount', 'doomed', '-n', NS);
        const newUid = await uidOf('doomed');
        assert.notEqual(newUid, oldUid);
        await assert.rejects(cache.verify(doomed), { code: 'ERR_TOKEN_REJECTED' });
        const fresh = await tokenFor(core, NS, 'doomed', [AUD]);
        assert.equal((await cache.verify(fresh)).uid, newUid);
        await eventually(
          () => watch.status({ namespace: NS, name: 'doomed', uid: newUid }) === 'live',
          'the watch to see the new ServiceAccount',
        );
        assert.equal(watch.status({ namespace: NS, name: 'doomed', uid: oldUid }), 'gone');
      } finally {
        unwire();
        cache.close?.();
        unwatched.close?.();
      }
    },
  );

  test(
    'offline (JWKS) verification refuses a deleted ServiceAccount only behind requireLiveServiceAccount',
    { skip: peerSkip('kubectl') },
    async (t) => {
      for (const n of ['offline', 'offline-control']) await createSa(n);
      const watch = watchServiceAccounts({ kubeConfig: kc, logger: quiet() });
      watches.push(watch);
      await watch.ready();
      // The keys from a file: this test is about the guard, not about fetching keys.
      const dir = tempDir('precinct-revocation-jwks-');
      t.after(dir.cleanup);
      const jwksPath = join(dir.path, 'jwks.json');
      writeFileSync(jwksPath, await kubeJwks(kube));
      const jwks = () => createJwksVerifier({ issuer: kube.issuer, audiences: [AUD], jwksPath });
      const guarded = requireLiveServiceAccount(cachingVerifier(jwks()), watch);
      const plain = cachingVerifier(jwks());
      const token = await tokenFor(core, NS, 'offline', [AUD]);
      const control = await tokenFor(core, NS, 'offline-control', [AUD]);
      assert.equal((await guarded.verify(token)).serviceAccountName, 'offline');
      assert.equal((await guarded.verify(control)).serviceAccountName, 'offline-control');
      await kubectl(kube, 'delete', 'serviceaccount', 'offline', '-n', NS);
      await eventually(
        () =>
          guarded.verify(token).then(
            () => false,
            (e: { code?: string }) => e.code === 'ERR_TOKEN_REJECTED',
          ),
        'the guarded verifier to refuse the deleted ServiceAccount',
      );
      // Control: its neighbour is still accepted; a bare JWKS verifier still accepts the
      // deleted one (its signature is as valid as before): why the guard exists.
      assert.equal((await guarded.verify(control)).serviceAccountName, 'offline-control');
      assert.equal((await plain.verify(token)).serviceAccountName, 'offline');
      guarded.close?.();
      plain.close?.();
    },
  );

  test('eviction by namespace/name and uid leaves a recreated ServiceAccount of the same name alone', async () => {
    const ids = new Map<string, { uid: string; name: string }>([
      ['t-old', { uid: 'uid-old', name: 'svc' }],
      ['t-new', { uid: 'uid-new', name: 'svc' }],
      ['t-other', { uid: 'uid-other', name: 'other' }],
    ]);
    let calls = 0;
    const cache = cachingVerifier({
      async verify(token) {
        calls++;
        const i = ids.get(token)!;
        return {
          username: `system:serviceaccount:${NS}:${i.name}`,
          uid: i.uid,
          groups: [],
          namespace: NS,
          serviceAccountName: i.name,
          audiences: [AUD],
          extra: {},
          source: 'jwks',
        };
      },
    });
    for (const t of ids.keys()) await cache.verify(t);
    assert.equal(cache.size, 3);
    assert.equal(cache.evictServiceAccount({ namespace: NS, name: 'svc', uid: 'uid-old' }), 1);
    assert.equal(cache.size, 2);
    calls = 0;
    await cache.verify('t-new');
    await cache.verify('t-other');
    assert.equal(calls, 0, 'the other uid and the other ServiceAccount are still cached');
    await cache.verify('t-old');
    assert.equal(calls, 1, 'the evicted one is verified afresh');
    // Without a uid, every incarnation of the name goes.
    assert.equal(cache.evictServiceAccount({ namespace: NS, name: 'svc' }), 2);
    assert.equal(cache.size, 1);
  });

  test('a verification in flight when its ServiceAccount is evicted is refused and not cached', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    const cache = cachingVerifier({
      async verify() {
        calls++;
        await gate;
        return {
          username: `system:serviceaccount:${NS}:slow`,
          uid: 'uid-slow',
          groups: [],
          namespace: NS,
          serviceAccountName: 'slow',
          audiences: [AUD],
          extra: {},
          source: 'jwks',
        };
      },
    });
    const pending = cache.verify('t');
    // An eviction of another ServiceAccount concerns it not (positive control below).
    cache.evictServiceAccount({ namespace: NS, name: 'unrelated' });
    cache.evictServiceAccount({ namespace: NS, name: 'slow', uid: 'uid-slow' });
    release();
    await assert.rejects(pending, { code: 'ERR_TOKEN_REJECTED' });
    assert.equal(cache.size, 0);
    // Control: the same verification with no eviction in between is cached.
    const ok = await cache.verify('t');
    assert.equal(ok.serviceAccountName, 'slow');
    assert.equal(cache.size, 1);
    assert.equal(calls, 2);
  });

  test('a dropped watch resumes and reports deletions it missed; past the bound it fails closed, then re-lists', async () => {
    for (const n of ['gap-1', 'gap-2', 'steady']) await createSa(n);
    const relay = await startRelay({ host: '127.0.0.1', port: Number(new URL(kube.url).port) });
    const watch = watchServiceAccounts({
      kubeConfig: kubeConfigOf(kube, relay.url),
      staleAfterMs: 1500,
      retryMs: 100,
      logger: quiet(),
    });
    watches.push(watch);
    const deleted: WatchedObject[] = [];
    const events: string[] = [];
    watch.on('deleted', (o) => deleted.push(o));
    watch.on('stale', () => events.push('stale'));
    watch.on('synced', () => events.push('synced'));
    try {
      await watch.ready();
      const gap1 = { namespace: NS, name: 'gap-1', uid: await uidOf('gap-1') };
      const gap2 = { namespace: NS, name: 'gap-2', uid: await uidOf('gap-2') };
      const steady = { namespace: NS, name: 'steady', uid: await uidOf('steady') };
      assert.equal(watch.status(gap1), 'live');

      // A cut connection: the deletion happens while the watch is reconnecting, and arrives
      // when it resumes (from its resourceVersion, or by a re-list).
      relay.cut();
      await core.deleteNamespacedServiceAccount({ namespace: NS, name: 'gap-1' });
      await eventually(() => deleted.some((d) => d.uid === gap1.uid), 'the missed DELETED');
      assert.equal(watch.status(gap1), 'gone');
      assert.equal(watch.status(steady), 'live');

      // Unreachable past staleAfterMs: nothing counts as live (fail closed).
      relay.blocked = true;
      await eventually(() => watch.state === 'stale', 'the watch to go stale');
      assert.equal(watch.status(steady), 'unknown');
      assert.ok(events.includes('stale'));
      // Meanwhile gap-2 is deleted and recreated under the same name.
      await core.deleteNamespacedServiceAccount({ namespace: NS, name: 'gap-2' });
      await createSa('gap-2');
      const gap2b = { ...gap2, uid: await uidOf('gap-2') };
      relay.blocked = false;
      await eventually(() => watch.state === 'synced', 'the watch to re-list');
      assert.equal(events.at(-1), 'synced');
      assert.ok(
        deleted.some((d) => d.uid === gap2.uid),
        'the replaced uid is reported deleted',
      );
      assert.equal(watch.status(gap2), 'gone');
      assert.equal(watch.status(gap2b), 'live');
      assert.equal(watch.status(steady), 'live');
    } finally {
      watch.close();
      await relay.close();
    }
  });

  test('a watch the API refuses (no RBAC) fails closed; granted list and watch, it syncs', async () => {
    await createSa('watcher');
    const base = kubeConfigOf(kube);
    const asWatcher = new k8s.KubeConfig();
    asWatcher.loadFromOptions({
      clusters: base.clusters,
      users: [
        {
          name: 'watcher',
          token: await tokenFor(core, NS, 'watcher', [kube.issuer]),
        },
      ],
      contexts: [{ name: 'watcher', cluster: base.getCurrentCluster()!.name, user: 'watcher' }],
      currentContext: 'watcher',
    });
    const steady = { namespace: NS, name: 'watcher', uid: await uidOf('watcher') };
    const refused = watchServiceAccounts({
      kubeConfig: asWatcher,
      staleAfterMs: 300,
      retryMs: 100,
      logger: quiet(),
    });
    watches.push(refused);
    await eventually(() => refused.state === 'stale', 'the refused watch to fail closed');
    assert.equal(refused.status(steady), 'unknown');
    refused.close();

    // Control: the same identity, granted list and watch, gets a current view.
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'watch-serviceaccounts' },
        rules: [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['list', 'watch'] }],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'watcher-watches-serviceaccounts' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'watch-serviceaccounts',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'watcher', namespace: NS }],
      },
    });
    const granted = watchServiceAccounts({ kubeConfig: asWatcher, logger: quiet() });
    watches.push(granted);
    await eventually(() => granted.state === 'synced', 'the granted watch to sync');
    assert.equal(granted.status(steady), 'live');
  });

  test('the pod watch follows pods where kube-dev serves them, and says unsupported where not', async () => {
    const pods = watchPods({ kubeConfig: kc, logger: quiet() });
    watches.push(pods);
    await pods.ready();
    // kube-dev is gaining pods; before that, it answers 404 and the watch stops cleanly.
    if (pods.state === 'synced') {
      const deleted: WatchedObject[] = [];
      pods.on('deleted', (o) => deleted.push(o));
      const p = await core.createNamespacedPod({
        namespace: NS,
        body: {
          metadata: { name: 'short-lived' },
          spec: { serviceAccountName: 'default', containers: [{ name: 'c', image: 'none' }] },
        },
      });
      const ref = { namespace: NS, name: 'short-lived', uid: p.metadata!.uid! };
      await eventually(() => pods.status(ref) === 'live', 'the watch to see the pod');
      await core.deleteNamespacedPod({ namespace: NS, name: 'short-lived', gracePeriodSeconds: 0 });
      await eventually(() => deleted.some((d) => d.uid === ref.uid), 'the pod deletion');
      assert.equal(pods.status(ref), 'gone');
    } else {
      assert.equal(pods.state, 'unsupported');
    }
    // Control: the same client lists ServiceAccounts fine.
    const sas = watchServiceAccounts({ kubeConfig: kc, logger: quiet() });
    watches.push(sas);
    await sas.ready();
    assert.equal(sas.state, 'synced');
  });
});

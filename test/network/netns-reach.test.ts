// The network rules, checked from a second network namespace (a stand-in for a container or
// another machine): servers listen dual-stack by default, and what they print for others to
// dial (kubeconfig, OIDC issuer, URLs) uses the advertised host. Unmodified kubectl runs inside
// the namespace; HTTP clients there are plain Node. A server bound to loopback is the negative
// control: unreachable from the namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  loadKubeConfig,
} from '@precinct/kube';
import { startAuditStore, type AuditStore } from '@precinct/audit-store';
import { startIdentityServer, type IdentityServer } from '@precinct/identity-server';
import {
  createNetnsHost,
  findPeer,
  netnsSkip,
  peerSkip,
  tempDir,
  type NetnsHost,
} from '@precinct/testing';

const skip = netnsSkip() || peerSkip('kubectl');

describe('reachable from another network namespace', { skip }, () => {
  let ns: NetnsHost;
  let kd: KubeDev;
  let store: AuditStore;
  let loopbackStore: AuditStore;
  let identity: IdentityServer;
  const dir = tempDir('precinct-netns-');

  const kubectlInNs = (...args: string[]) =>
    ns.exec(findPeer('kubectl')!, ['--kubeconfig', kd.kubeconfigPath, ...args]);

  /** A one-line fetch run by Node inside the namespace; prints `status body`. */
  const fetchFromNs = (url: string, init: RequestInit = {}) =>
    ns.exec(
      process.execPath,
      [
        '-e',
        `fetch(${JSON.stringify(url)}, ${JSON.stringify(init)})` +
          '.then(async (r) => console.log(r.status, await r.text()))' +
          '.catch((e) => { console.error(String(e.cause ?? e)); process.exit(3); })',
      ],
      { timeoutMs: 20_000 },
    );

  before(async () => {
    ns = createNetnsHost();
    kd = await startKubeDev({
      listen: { host: '::', port: 0 },
      advertiseHost: ns.hostAddress4,
      dataDir: join(dir.path, 'kube'),
    });
    const kc = loadKubeConfig({ KUBECONFIG: kd.kubeconfigPath });
    const auth = {
      verifier: cachingVerifier(
        createTokenReviewVerifier({ kubeConfig: kc, audiences: ['data-storage-service'] }),
      ),
      authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig: kc }),
    };
    store = await startAuditStore({
      port: 0,
      advertiseHost: ns.hostAddress4,
      auth,
      authz: { namespace: 'default' },
      retentionIntervalMs: 0,
    });
    loopbackStore = await startAuditStore({
      host: '127.0.0.1',
      port: 0,
      auth,
      retentionIntervalMs: 0,
    });
    identity = await startIdentityServer({
      trustDomain: 'netns.test',
      advertiseHost: ns.hostAddress4,
      dataDir: join(dir.path, 'identity'),
    });
  });
  after(async () => {
    await identity?.close();
    await loopbackStore?.close();
    await store?.close();
    await kd?.close();
    ns?.close();
    dir.cleanup();
  });

  test('kubectl in the namespace uses the printed kubeconfig as is', async () => {
    const kubeconfig = readFileSync(kd.kubeconfigPath, 'utf8');
    assert.match(
      kubeconfig,
      new RegExp(`server: "?https://${ns.hostAddress4.replace(/\./g, '\\.')}:`),
    );
    const r = await kubectlInNs('create', 'token', 'default', '-n', 'default');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  test('a workload in the namespace writes to the audit store over IPv4 and IPv6', async () => {
    const tok = await kubectlInNs(
      'create',
      'token',
      'default',
      '-n',
      'default',
      '--audience',
      'data-storage-service',
    );
    assert.equal(tok.code, 0, tok.stderr);
    // Grant the writer tier to default/default.
    const admin = join(dir.path, 'rbac.yaml');
    writeFileSync(
      admin,
      [
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: Role',
        'metadata: { name: audit-writer, namespace: default }',
        'rules:',
        "  - { apiGroups: [''], resources: [services], resourceNames: [data-storage-service], verbs: [get, create] }",
        '---',
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: RoleBinding',
        'metadata: { name: audit-writer, namespace: default }',
        'roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: audit-writer }',
        'subjects: [{ kind: ServiceAccount, name: default, namespace: default }]',
        '',
      ].join('\n'),
    );
    const applied = await kubectlInNs('apply', '-f', admin);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(store.url, new RegExp(`^http://${ns.hostAddress4.replace(/\./g, '\\.')}:`));
    const port = new URL(store.url).port;
    for (const host of [ns.hostAddress4, `[${ns.hostAddress6}]`]) {
      const r = await fetchFromNs(`http://${host}:${port}/api/v1/audit/events`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${tok.stdout.trim()}`,
        },
        body: JSON.stringify({
          event_type: 'netns.write',
          event_category: 'test',
          event_action: 'write',
          event_outcome: 'success',
          correlation_id: 'netns',
        }),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^201 /, host);
      assert.match(r.stdout, /"written_by":"system:serviceaccount:default:default"/);
    }
  });

  test('the identity server’s OIDC issuer is dialable from the namespace', async () => {
    assert.match(identity.issuer, new RegExp(`//${ns.hostAddress4.replace(/\./g, '\\.')}:`));
    const d = await fetchFromNs(`${identity.issuer}/.well-known/openid-configuration`);
    assert.equal(d.code, 0, d.stderr);
    const doc = JSON.parse(d.stdout.replace(/^200 /, '')) as { issuer: string; jwks_uri: string };
    assert.equal(doc.issuer, identity.issuer);
    const k = await fetchFromNs(doc.jwks_uri);
    assert.match(k.stdout, /^200 \{"keys":\[/);
  });

  test('negative control: a server bound to loopback is not reachable from the namespace', async () => {
    const port = new URL(loopbackStore.url).port;
    const r = await fetchFromNs(`http://${ns.hostAddress4}:${port}/healthz`);
    assert.notEqual(r.code, 0, `unexpectedly reachable: ${r.stdout}`);
    // ...while it does answer on this host.
    assert.equal((await fetch(`${loopbackStore.url}/healthz`)).status, 200);
  });
});

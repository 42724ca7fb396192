// The chart's manifests against a real kube-apiserver v1.37 + etcd: `kubectl apply
// --dry-run=server --validate=strict`, then a real apply, then SubjectAccessReviews asking the
// apiserver whether each ServiceAccount may do what its service calls (and nothing it does not).
// ClusterSPIFFEID and PodMonitor are validated against minimal CRDs written for these tests
// (test/deploy/crds): the real ones belong to spire-controller-manager and prometheus-operator.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { peerSkip, requirePeer, startKubeApiserver, type KubeApiserver } from '@precinct/testing';
import { ROOT, parseManifests, renderText, type RenderOptions } from './support/helm.js';

const skip = peerSkip('helm', 'kubectl', 'kube-apiserver', 'etcd');

let api: KubeApiserver | undefined;

async function kubectl(args: string[], input?: string): Promise<{ ok: boolean; out: string }> {
  const bin = requirePeer('kubectl');
  return new Promise((resolve) => {
    const child = execFile(
      bin,
      ['--kubeconfig', api!.kubeconfigPath, ...args],
      { maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ ok: !err, out: `${stdout}${stderr}` }),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

async function must(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input);
  assert.ok(r.ok, `kubectl ${args.join(' ')}:\n${r.out}`);
  return r.out;
}

/** A real SubjectAccessReview for a ServiceAccount, answered by the apiserver's RBAC authorizer. */
async function allowed(
  sa: { namespace: string; name: string },
  need: { verb: string; group: string; resource: string; namespace?: string },
): Promise<boolean> {
  const a = { verb: need.verb, group: need.group, resource: need.resource };
  const review = {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user: `system:serviceaccount:${sa.namespace}:${sa.name}`,
      groups: [
        'system:serviceaccounts',
        `system:serviceaccounts:${sa.namespace}`,
        'system:authenticated',
      ],
      resourceAttributes: { ...a, namespace: need.namespace ?? '' },
    },
  };
  const out = await must(['create', '-o', 'json', '-f', '-'], JSON.stringify(review));
  return (JSON.parse(out) as { status: { allowed?: boolean } }).status.allowed === true;
}

interface Need {
  component: string;
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
}

/** What each service calls on the Kubernetes API (see docs/production.md, RBAC). */
const needs = (watchNamespace = ''): Need[] => [
  // audit store: TokenReview (token mode), SubjectAccessReview (every request, both modes)
  {
    component: 'audit-store',
    verb: 'create',
    group: 'authentication.k8s.io',
    resource: 'tokenreviews',
  },
  {
    component: 'audit-store',
    verb: 'create',
    group: 'authorization.k8s.io',
    resource: 'subjectaccessreviews',
  },
  // NATS callout: the ServiceAccount informer
  ...['get', 'list', 'watch'].map((verb) => ({
    component: 'nats-callout',
    verb,
    group: '',
    resource: 'serviceaccounts',
    namespace: watchNamespace,
  })),
];

/** Permissions no component of the chart may hold (least privilege, checked the same way). */
const forbidden: Need[] = [
  {
    component: 'token-service',
    verb: 'create',
    group: 'authentication.k8s.io',
    resource: 'tokenreviews',
  },
  { component: 'token-service', verb: 'list', group: '', resource: 'serviceaccounts' },
  { component: 'nats-callout', verb: 'list', group: '', resource: 'secrets' },
  {
    component: 'nats-callout',
    verb: 'create',
    group: 'authentication.k8s.io',
    resource: 'tokenreviews',
  },
  { component: 'audit-store', verb: 'list', group: '', resource: 'serviceaccounts' },
  { component: 'audit-store', verb: 'get', group: '', resource: 'secrets', namespace: 'precinct' },
];

/** The chart's object names: `<release>-precinct-<component>`, or `<release>-<component>`. */
const saName = (release: string, component: string) =>
  `${release.includes('precinct') ? release : `${release}-precinct`}-${component}`;

/** The needs a release's ServiceAccounts lack, one line each. */
async function missingPermissions(
  release: string,
  namespace: string,
  list: Need[],
): Promise<string[]> {
  const missing: string[] = [];
  for (const n of list) {
    const sa = { namespace, name: saName(release, n.component) };
    // The ServiceAccount exists: a misspelled name would make every answer "no" vacuously.
    await must(['get', '-n', namespace, `serviceaccount/${sa.name}`, '-o', 'name']);
    if (!(await allowed(sa, n)))
      missing.push(
        `${sa.name}: ${n.verb} ${n.group || 'core'}/${n.resource}${n.namespace ? ` in ${n.namespace}` : ''}`,
      );
  }
  return missing;
}

const CLUSTER_SCOPED = new Set([
  'ClusterRole',
  'ClusterRoleBinding',
  'ClusterSPIFFEID',
  'Namespace',
  'CustomResourceDefinition',
]);
const RELEASES: Array<{ name: string; namespace: string; render: RenderOptions }> = [
  { name: 'precinct', namespace: 'precinct', render: { values: ['required'] } },
  { name: 'full', namespace: 'full', render: { values: ['required', 'everything'] } },
  { name: 'tok', namespace: 'tok', render: { values: ['required', 'token-mode'] } },
  { name: 'norbac', namespace: 'norbac', render: { values: ['required', 'broken-rbac'] } },
];

describe('chart against a real kube-apiserver', { skip }, () => {
  const rendered = new Map<string, string>();

  before(async () => {
    // Render first (cheap), then start the apiserver without controllers: RBAC's bootstrap
    // roles (system:auth-delegator) come from the apiserver itself.
    for (const r of RELEASES)
      rendered.set(
        r.name,
        await renderText({ ...r.render, release: r.name, namespace: r.namespace }),
      );
    api = await startKubeApiserver({ controllers: false });
    for (const crd of ['clusterspiffeid', 'podmonitor'])
      await must(['apply', '--server-side', '-f', join(ROOT, 'test/deploy/crds', `${crd}.yaml`)]);
    await must([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/clusterspiffeids.spire.spiffe.io',
      'crd/podmonitors.monitoring.coreos.com',
    ]);
    for (const ns of [...RELEASES.map((r) => r.namespace), 'apps'])
      await must(['create', 'namespace', ns]);
  });

  after(async () => {
    await api?.close();
  });

  for (const r of RELEASES) {
    test(`${r.name}: apply --dry-run=server, then a real apply, accepted with strict field validation`, async () => {
      // Namespaced objects get the release namespace unless the chart names one (the callout's
      // Role in its watch namespace), as `helm install --namespace` does.
      const docs = await parseManifests(rendered.get(r.name)!);
      for (const d of docs) if (!CLUSTER_SCOPED.has(d.kind)) d.metadata.namespace ??= r.namespace;
      const text = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs });
      const base = ['apply', '--validate=strict', '-f', '-'];
      const dry = await must([...base.slice(0, 1), '--dry-run=server', ...base.slice(1)], text);
      assert.match(dry, /\(server dry run\)/);
      await must(base, text);
      // Everything rendered exists now.
      const names = (await must(['get', '-o', 'name', '-f', '-'], text)).trim().split('\n');
      assert.equal(names.length, docs.length, names.join('\n'));
    });
  }

  test('server-side validation is not vacuous: a misspelled ClusterSPIFFEID field and a bad probe port are refused', async () => {
    const text = rendered.get('precinct')!;
    assert.match(text, /spiffeIDTemplate:/);
    const typo = await kubectl(
      ['apply', '--dry-run=server', '--validate=strict', '-n', 'precinct', '-f', '-'],
      text.replaceAll('spiffeIDTemplate:', 'spiffeIdTemplate:'),
    );
    assert.equal(typo.ok, false);
    assert.match(
      typo.out,
      /unknown field "spec.spiffeIdTemplate"|spiffeIDTemplate: Required value/,
    );
    const badPort = await kubectl(
      ['apply', '--dry-run=server', '--validate=strict', '-n', 'precinct', '-f', '-'],
      text.replace('port: health', 'port: not_a_valid_port_name'),
    );
    assert.equal(badPort.ok, false);
    assert.match(badPort.out, /Invalid value: "not_a_valid_port_name"/);
  });

  test('SubjectAccessReview: each ServiceAccount may do what its service calls', async () => {
    assert.deepEqual(await missingPermissions('precinct', 'precinct', needs()), []);
    assert.deepEqual(await missingPermissions('tok', 'tok', needs()), []);
    // In token mode the audit store also watches ServiceAccounts (revocation evicts cached
    // tokens); in SPIFFE mode it must not (the forbidden list checks release `precinct`).
    const watchSa = ['get', 'list', 'watch'].map((verb) => ({
      component: 'audit-store',
      verb,
      group: '',
      resource: 'serviceaccounts',
    }));
    assert.deepEqual(await missingPermissions('tok', 'tok', watchSa), []);
    assert.equal((await missingPermissions('precinct', 'precinct', watchSa)).length, 3);
    // The callout of `full` watches one namespace with a Role: allowed there, nowhere else.
    assert.deepEqual(await missingPermissions('full', 'full', needs('apps')), []);
    assert.equal((await missingPermissions('full', 'full', needs('precinct'))).length, 3);
    assert.equal((await missingPermissions('full', 'full', needs(''))).length, 3);
  });

  test('SubjectAccessReview: the demo document service SPIFFE ID may write to the audit store (spiffe mode); the other demo services may not', async () => {
    // What the audit store asks for an mTLS caller: its SPIFFE ID as a User, the trust domain as
    // a Group, get + create on services/data-storage-service in the store's namespace.
    const may = async (sa: string, verb: string) => {
      const review = {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: `spiffe://example.org/ns/full/sa/full-precinct-${sa}`,
          groups: ['spiffe://example.org'],
          resourceAttributes: {
            verb,
            group: '',
            resource: 'services',
            name: 'data-storage-service',
            namespace: 'full',
          },
        },
      };
      const out = await must(['create', '-o', 'json', '-f', '-'], JSON.stringify(review));
      return (JSON.parse(out) as { status: { allowed?: boolean } }).status.allowed === true;
    };
    for (const verb of ['get', 'create']) {
      assert.equal(await may('document-service', verb), true, verb);
      for (const other of ['user-service', 'agent-service', 'policy-service', 'dashboard'])
        assert.equal(await may(other, verb), false, `${other} ${verb}`);
    }
  });

  test('SubjectAccessReview: and nothing else (least privilege)', async () => {
    for (const n of forbidden) {
      assert.equal(
        await allowed({ namespace: 'precinct', name: `precinct-${n.component}` }, n),
        false,
        JSON.stringify(n),
      );
    }
  });

  test('SubjectAccessReview control: without the chart RBAC every need is reported missing', async () => {
    assert.deepEqual(await missingPermissions('norbac', 'norbac', needs()), [
      'norbac-precinct-audit-store: create authentication.k8s.io/tokenreviews',
      'norbac-precinct-audit-store: create authorization.k8s.io/subjectaccessreviews',
      'norbac-precinct-nats-callout: get core/serviceaccounts',
      'norbac-precinct-nats-callout: list core/serviceaccounts',
      'norbac-precinct-nats-callout: watch core/serviceaccounts',
    ]);
  });
});

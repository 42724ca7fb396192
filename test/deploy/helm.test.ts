// deploy/helm/precinct rendered by a real helm: `helm lint --strict`, `helm template` for a
// matrix of values, and the checks of support/checks.ts on every rendering. Every check has a
// positive control: a deliberately broken values file (or rendering) that it must catch.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDemoData } from '@precinct/policy';
import { peerSkip } from '@precinct/testing';
import {
  checkDemoCalls,
  checkHardening,
  checkImages,
  checkNetworkPolicySelectors,
  checkProbes,
  podTemplates,
  type K8sObject,
} from './support/checks.js';
import { CHART, helm, render, valuesFile } from './support/helm.js';

const skip = peerSkip('helm');

/** The values combinations every check must pass on (each list is applied in order). */
const MATRIX: Record<string, string[]> = {
  defaults: ['required'],
  everything: ['required', 'everything'],
  'token mode, host socket, no policies': ['required', 'token-mode'],
};

const byKind = (docs: K8sObject[], kind: string) => docs.filter((d) => d.kind === kind);
const named = (docs: K8sObject[], kind: string, suffix: string) => {
  const d = docs.find((x) => x.kind === kind && x.metadata.name.endsWith(suffix));
  assert.ok(d, `${kind} *${suffix} rendered`);
  return d;
};
const clone = (docs: K8sObject[]) => JSON.parse(JSON.stringify(docs)) as K8sObject[];

describe('helm chart deploy/helm/precinct', { skip }, () => {
  test('helm lint --strict passes for every values combination', async () => {
    for (const [name, values] of Object.entries(MATRIX)) {
      const r = await helm([
        'lint',
        '--strict',
        CHART,
        ...values.flatMap((v) => ['--values', valuesFile(v)]),
      ]);
      assert.ok(r.ok, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  test('without the required values: helm template fails, lint names each one (control)', async () => {
    const r = await helm(['lint', '--strict', CHART]);
    for (const v of [
      'auditStore.database.existingSecret',
      'natsCallout.nats.account',
      'natsCallout.nats.signingKey.existingSecret',
      'natsCallout.nats.credentials.existingSecret',
      'tokenService.oidc.issuer',
      'tokenService.oidc.clientId',
      'tokenService.oidc.jwks',
    ])
      assert.match(r.stdout + r.stderr, new RegExp(`Fail: ${v.replace(/\./g, '\\.')} is required`));
    await assert.rejects(render({ values: [] }), /is required/);
  });

  for (const [name, values] of Object.entries(MATRIX)) {
    test(`${name}: probes, images, NetworkPolicy selectors and hardening pass`, async () => {
      const docs = await render({ values });
      assert.ok(podTemplates(docs).length >= 3, 'pod templates rendered');
      assert.deepEqual(checkProbes(docs), []);
      assert.deepEqual(checkImages(docs), []);
      assert.deepEqual(checkNetworkPolicySelectors(docs), []);
      assert.deepEqual(checkHardening(docs), []);
    });
  }

  test('probe check: catches an HTTP probe on the audit store mTLS port (values)', async () => {
    const docs = await render({ values: ['required', 'broken-probe'] });
    const problems = checkProbes(docs);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(
      problems[0]!,
      /Deployment\/precinct-audit-store container audit-store: readinessProbe targets mTLS port 8443/,
    );
  });

  test('probe check: catches a TCP probe on the token service mTLS port (values)', async () => {
    const problems = checkProbes(await render({ values: ['required', 'broken-tcp-probe'] }));
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /token-service: livenessProbe targets mTLS port 8443/);
  });

  test('probe check: catches a probe on an mTLS port found from the args, whatever its name', async () => {
    const docs = clone(await render({ values: ['required', 'everything'] }));
    const demo = named(docs, 'Deployment', 'document-service');
    const c = (demo.spec as { template: { spec: { containers: Array<Record<string, unknown>> } } })
      .template.spec.containers[0]!;
    (c.ports as Array<{ name: string }>)[0]!.name = 'web'; // renamed, still the --listen port
    c.readinessProbe = { httpGet: { path: '/ready', port: 'web' } };
    assert.deepEqual(checkProbes(docs), [
      'Deployment/precinct-document-service container document-service: readinessProbe targets mTLS port 8084',
    ]);
  });

  test('image check: helm refuses tag latest and an empty tag; the check catches them in manifests', async () => {
    for (const tag of ['latest', 'LATEST']) {
      await assert.rejects(render({ set: [`image.tag=${tag}`] }), /image tag must be a version/);
    }
    await assert.rejects(
      render({ values: ['required', 'everything'], set: ['policy.opa.image.tag=latest'] }),
      /policy\.opa\.image: image tag must be a version/,
    );
    const docs = await render();
    const images = podTemplates(docs).flatMap((t) =>
      t.template.spec.containers.map((c) => c.image),
    );
    assert.ok(
      images.every((i) => i === 'ghcr.io/precinct/precinct:0.1.0'),
      images.join(' '),
    );
    for (const bad of [
      'ghcr.io/precinct/precinct:latest',
      'ghcr.io/precinct/precinct',
      'localhost:5000/precinct',
      '',
    ]) {
      const broken = clone(docs);
      podTemplates(broken)[0]!.template.spec.containers[0]!.image = bad;
      assert.equal(checkImages(broken).length, 1, `caught ${JSON.stringify(bad)}`);
    }
    const pinned = clone(docs);
    podTemplates(pinned)[0]!.template.spec.containers[0]!.image =
      `ghcr.io/precinct/precinct@sha256:${'a'.repeat(64)}`;
    assert.deepEqual(checkImages(pinned), [], 'a digest without a tag is a pinned image');
  });

  test('NetworkPolicy check: catches an allow for chart pods that do not exist (values)', async () => {
    const problems = checkNetworkPolicySelectors(
      await render({ values: ['required', 'broken-netpol'] }),
    );
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(
      problems[0]!,
      /NetworkPolicy\/precinct-audit-store: peer .*no-such-component.* matches no pod template/,
    );
  });

  test('NetworkPolicy check: catches a policy whose own selector matches no pod', async () => {
    const docs = await render({ values: ['required'], set: ['tokenService.enabled=false'] });
    assert.deepEqual(
      checkNetworkPolicySelectors(docs),
      [],
      'a disabled component takes its policy with it',
    );
    const broken = clone(docs);
    const np = named(broken, 'NetworkPolicy', 'nats-callout');
    (np.spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector.matchLabels[
      'app.kubernetes.io/component'
    ] = 'nats-calout';
    assert.deepEqual(checkNetworkPolicySelectors(broken), [
      'NetworkPolicy/precinct-nats-callout: podSelector matches no pod template',
    ]);
  });

  test('hardening check: catches a writable root filesystem and a missing request', async () => {
    const docs = clone(await render());
    const c = podTemplates(docs)[0]!.template.spec.containers[0]! as unknown as {
      securityContext: { readOnlyRootFilesystem: boolean };
      resources: { requests: Record<string, string> };
    };
    c.securityContext.readOnlyRootFilesystem = false;
    delete c.resources.requests.cpu;
    assert.equal(checkHardening(docs).length, 2, checkHardening(docs).join('\n'));
  });

  test('token service: one replica, Recreate, and more replicas are refused (in-memory keys)', async () => {
    const d = named(await render(), 'Deployment', 'token-service');
    assert.equal((d.spec as { replicas: number }).replicas, 1);
    assert.deepEqual((d.spec as { strategy: unknown }).strategy, { type: 'Recreate' });
    await assert.rejects(
      render({ set: ['tokenService.replicas=2'] }),
      /tokenService\.replicas must be 1/,
    );
  });

  test('ClusterSPIFFEIDs derive IDs from namespace and ServiceAccount only, per component', async () => {
    const docs = await render({ values: ['required', 'everything'] });
    const ids = byKind(docs, 'ClusterSPIFFEID');
    const templates = new Map(
      ids.map((i) => [i.metadata.name, (i.spec as { spiffeIDTemplate: string }).spiffeIDTemplate]),
    );
    const nsSa =
      'spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}';
    for (const c of [
      'audit-store',
      'token-service',
      'user-service',
      'agent-service',
      'document-service',
      'policy-service',
      'dashboard',
    ]) {
      assert.equal(templates.get(`precinct-precinct-${c}`), nsSa, c);
    }
    for (const agent of ['gpt4', 'claude', 'summarizer'])
      assert.equal(
        templates.get(`precinct-precinct-agent-service-${agent}`),
        `spiffe://{{ .TrustDomain }}/agent/${agent}`,
      );
    for (const t of templates.values()) assert.doesNotMatch(t, /UID|\.PodMeta\.Name\b|NodeMeta/);
    for (const i of ids) {
      const spec = i.spec as {
        namespaceSelector: { matchLabels: Record<string, string> };
        className: string;
      };
      assert.deepEqual(spec.namespaceSelector.matchLabels, {
        'kubernetes.io/metadata.name': 'precinct',
      });
      assert.equal(spec.className, 'spire-system-spire');
    }
    // Every workload that mounts the Workload API socket is selected by a ClusterSPIFFEID.
    for (const { owner, template } of podTemplates(docs)) {
      const vols =
        (template.spec as { volumes?: Array<{ name: string; csi?: { driver: string } }> })
          .volumes ?? [];
      const csi = vols.find((v) => v.name === 'spiffe-workload-api');
      if (!csi) continue;
      assert.equal(csi.csi?.driver, 'csi.spiffe.io', owner.metadata.name);
      const labels = template.metadata?.labels ?? {};
      assert.ok(
        ids.some((i) =>
          Object.entries(
            (i.spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector
              .matchLabels,
          ).every(([k, v]) => labels[k] === v),
        ),
        `${owner.metadata.name} has a ClusterSPIFFEID`,
      );
    }
  });

  test("demo: each pod runs `precinct demo <service>` and names every peer by a Service URL and its ServiceAccount's SPIFFE ID; NetworkPolicies allow exactly those calls", async () => {
    const docs = await render({ values: ['required', 'everything'] });
    const demo = podTemplates(docs).filter(
      (t) => t.template.spec.containers[0]!.args?.[0] === 'demo',
    );
    assert.deepEqual(demo.map((t) => t.template.spec.containers[0]!.args![1]).sort(), [
      'agent-service',
      'dashboard',
      'document-service',
      'policy-service',
      'user-service',
    ]);
    assert.deepEqual(checkDemoCalls(docs), []);
    // Who calls whom, read from the args: the demo's call graph, nothing more.
    const calls = new Set<string>();
    for (const t of demo) {
      const args = t.template.spec.containers[0]!.args!;
      for (const a of args) {
        const m = /^https:\/\/precinct-([a-z-]+)\.precinct\.svc:\d+$/.exec(a);
        if (m) calls.add(`${args[1]} -> ${m[1]}`);
      }
    }
    assert.deepEqual([...calls].sort(), [
      'agent-service -> document-service',
      'agent-service -> token-service',
      'dashboard -> agent-service',
      'dashboard -> token-service',
      'dashboard -> user-service',
      'document-service -> audit-store',
      'document-service -> policy-service',
      'document-service -> token-service',
      'user-service -> document-service',
      'user-service -> token-service',
    ]);
    // Ingress on each demo service's main port comes from its callers only.
    for (const t of demo) {
      const self = t.template.spec.containers[0]!.args![1]!;
      const np = named(docs, 'NetworkPolicy', `-${self}`).spec as {
        ingress: Array<{
          from?: Array<{ podSelector?: { matchLabels: Record<string, string> } }>;
          ports: Array<{ port: number }>;
        }>;
      };
      const port = Number(/:(\d+)$/.exec(t.template.spec.containers[0]!.args![3]!)![1]);
      const from = np.ingress
        .filter((r) => r.ports.some((p) => p.port === port) && r.from)
        .flatMap((r) =>
          r.from!.map((f) => f.podSelector?.matchLabels['app.kubernetes.io/component']),
        )
        .sort();
      const callers = [...calls]
        .filter((c) => c.endsWith(`-> ${self}`))
        .map((c) => c.split(' ')[0])
        .sort();
      assert.deepEqual(from, callers, `${self} ingress on ${port}`);
    }
  });

  test('demo: the token service takes people from the dashboard (its JWKS URL, egress to it) and consent for the demo (the policy decides the scopes); off with demo.dashboardIdp=false', async () => {
    const docs = await render({
      values: ['required', 'everything'],
      set: ['tokenService.grants=null'],
    });
    const token = named(docs, 'Deployment', '-token-service').spec as {
      template: { spec: { containers: Array<{ args: string[] }> } };
    };
    const args = token.template.spec.containers[0]!.args;
    const jwks = args[args.indexOf('--oidc-jwks') + 1]!;
    assert.equal(jwks, 'http://precinct-dashboard.precinct.svc:8080/.well-known/jwks.json');
    assert.equal(args[args.indexOf('--oidc-issuer') + 1], 'https://dashboard.precinct.local');
    const np = named(docs, 'NetworkPolicy', '-token-service').spec as {
      egress: Array<{
        to: Array<{ podSelector?: { matchLabels: Record<string, string> } }>;
        ports: Array<{ port: number }>;
      }>;
    };
    assert.ok(
      np.egress.some(
        (r) =>
          r.to.some(
            (t) => t.podSelector?.matchLabels['app.kubernetes.io/component'] === 'dashboard',
          ) && r.ports.some((p) => p.port === 8080),
      ),
      'egress to the dashboard on 8080',
    );
    const grantsOf = (d: K8sObject[]) =>
      JSON.parse(
        (
          named(d, 'ConfigMap', '-token-service-grants') as unknown as {
            data: Record<string, string>;
          }
        ).data['grants.json']!,
      ) as {
        people?: Record<string, string[]>;
        agents?: Record<string, string[]>;
        consent: Record<string, string[]>;
      };
    // The policy decides the demo's scopes: the grants file is consent only.
    const grants = grantsOf(docs);
    assert.deepEqual(Object.keys(grants), ['consent']);
    assert.deepEqual(grants.consent['spiffe://example.org/user/carol'], [
      'spiffe://example.org/agent/gpt4',
      'spiffe://example.org/agent/claude',
    ]);
    // Control: with the grants file deciding, it grants the demo's people and agents every scope.
    const byFile = grantsOf(
      await render({
        values: ['required', 'everything'],
        set: ['tokenService.grants=null', 'tokenService.policy.decides=grants'],
      }),
    );
    assert.equal(byFile.people!['spiffe://example.org/user/alice']?.length, 7);
    assert.deepEqual(Object.keys(byFile.agents!).sort(), [
      'spiffe://example.org/agent/claude',
      'spiffe://example.org/agent/gpt4',
      'spiffe://example.org/agent/summarizer',
    ]);
    assert.deepEqual(byFile.consent, grants.consent);
    // Control: without the dashboard as identity provider, tokenService.oidc is used as given.
    const own = await render({
      values: ['required', 'everything'],
      set: ['demo.dashboardIdp=false'],
    });
    const ownArgs = (named(own, 'Deployment', '-token-service').spec as typeof token).template.spec
      .containers[0]!.args;
    assert.equal(ownArgs[ownArgs.indexOf('--oidc-issuer') + 1], 'https://idp.example.org');
    assert.ok(!ownArgs.includes(jwks));
  });

  test('token service: the policy decides the scope with the demo (Wasm + the demo data ConfigMap, an OPA sidecar, or an OPA URL); refusals go to the audit store', async () => {
    type Pod = {
      template: {
        spec: {
          containers: Array<{
            name: string;
            args: string[];
            env?: Array<{ name: string }>;
            volumeMounts?: Array<{ name: string; mountPath: string }>;
          }>;
          volumes: Array<{ name: string; configMap?: { name: string } }>;
        };
      };
    };
    const pod = (d: K8sObject[]) => named(d, 'Deployment', '-token-service').spec as Pod;
    const arg = (args: string[], f: string) =>
      args.includes(f) ? args[args.indexOf(f) + 1] : undefined;
    const egressPorts = (d: K8sObject[], component: string) =>
      (
        named(d, 'NetworkPolicy', '-token-service').spec as {
          egress: Array<{
            to: Array<{ podSelector?: { matchLabels: Record<string, string> } }>;
            ports: Array<{ port: number }>;
          }>;
        }
      ).egress
        .filter((r) =>
          r.to.some((t) => t.podSelector?.matchLabels['app.kubernetes.io/component'] === component),
        )
        .flatMap((r) => r.ports.map((p) => p.port));

    // Wasm: the demo's policy data in a ConfigMap, mounted where --policy-data reads it.
    const wasm = await render({ values: ['required', 'everything'], set: ['policy.engine=wasm'] });
    const w = pod(wasm).template.spec;
    const args = w.containers[0]!.args;
    assert.equal(arg(args, '--policy'), 'wasm');
    assert.equal(arg(args, '--policy-data'), '/etc/precinct/policy/policy-data.json');
    assert.equal(arg(args, '--opa-url'), undefined);
    const mount = w.containers[0]!.volumeMounts!.find(
      (m) => m.mountPath === '/etc/precinct/policy',
    )!;
    const volume = w.volumes.find((v) => v.name === mount.name)!;
    const cm = named(wasm, 'ConfigMap', '-token-service-policy-data') as unknown as {
      metadata: { name: string };
      data: Record<string, string>;
    };
    assert.equal(volume.configMap!.name, cm.metadata.name);
    // Exactly the data `precinct demo policy-service` decides on, in the chart's trust domain.
    const demo = loadDemoData();
    assert.deepEqual(JSON.parse(cm.data['policy-data.json']!), {
      precinct: { ...demo.precinct, trust_domain: 'example.org' },
    });
    assert.equal(w.containers.length, 1, 'no sidecar with the Wasm');
    // Refusals to the audit store: its Service, its ServiceAccount's SPIFFE ID, egress to it.
    const audit = arg(args, '--audit-store')!;
    const m = /^https:\/\/([^.]+)\.precinct\.svc:(\d+)$/.exec(audit)!;
    assert.ok(m, audit);
    const svc = named(wasm, 'Service', '-audit-store');
    assert.equal(svc.metadata.name, m[1]);
    const auditPod = named(wasm, 'Deployment', '-audit-store').spec as {
      template: { spec: { serviceAccountName: string } };
    };
    assert.equal(
      arg(args, '--audit-store-id'),
      `spiffe://example.org/ns/precinct/sa/${auditPod.template.spec.serviceAccountName}`,
    );
    assert.deepEqual(egressPorts(wasm, 'audit-store'), [Number(m[2])]);

    // OPA as a sidecar on loopback (policy.engine=opa), with the policy ConfigMap.
    const sidecar = pod(await render({ values: ['required', 'everything'] })).template.spec;
    const sArgs = sidecar.containers[0]!.args;
    assert.equal(arg(sArgs, '--policy'), 'opa');
    assert.equal(arg(sArgs, '--opa-url'), 'http://127.0.0.1:8181');
    assert.equal(arg(sArgs, '--policy-data'), undefined);
    const opa = sidecar.containers.find((c) => c.name === 'opa')!;
    assert.ok(opa.args.includes('--addr=127.0.0.1:8181'));
    assert.ok(sidecar.volumes.some((v) => v.configMap?.name === 'precinct-policy'));

    // An OPA server elsewhere: its URL, and egress to the peers given on its port.
    const remoteDocs = await render({
      values: ['required', 'everything'],
      set: [
        'tokenService.policy.opaUrl=http://opa.policy.svc:8282',
        'tokenService.policy.opaPeers[0].podSelector.matchLabels.app\\.kubernetes\\.io/component=opa',
      ],
    });
    const remote = pod(remoteDocs).template.spec;
    assert.equal(arg(remote.containers[0]!.args, '--opa-url'), 'http://opa.policy.svc:8282');
    assert.equal(remote.containers.length, 1, 'no sidecar with an OPA URL');
    assert.deepEqual(egressPorts(remoteDocs, 'opa'), [8282]);

    // Controls: without the demo the grants file decides (no policy flags, grants as given);
    // asking for the Wasm policy there without data is refused.
    const plain = pod(await render()).template.spec.containers[0]!.args;
    assert.equal(arg(plain, '--policy'), undefined);
    assert.ok(plain.includes('--grants'));
    await assert.rejects(
      render({ set: ['tokenService.policy.decides=policy'] }),
      /tokenService\.policy\.data or tokenService\.policy\.existingDataConfigMap is required/,
    );
    const own = pod(
      await render({
        set: [
          'tokenService.policy.decides=policy',
          'tokenService.policy.existingDataConfigMap=my-policy-data',
          'tokenService.grants=null',
        ],
      }),
    ).template.spec;
    assert.equal(arg(own.containers[0]!.args, '--policy'), 'wasm');
    assert.ok(own.volumes.some((v) => v.configMap?.name === 'my-policy-data'));
    // Without an audit store in spiffe mode there is nowhere to write refusals.
    const tokenMode = pod(await render({ values: ['required', 'token-mode'] })).template.spec;
    assert.equal(arg(tokenMode.containers[0]!.args, '--audit-store'), undefined);
  });

  test('demo: the dashboard with an OpenID Provider reads its client secret from a Secret file and may reach the provider', async () => {
    const set = ['demo.oidc.issuer=https://op.example.org', 'demo.oidc.existingSecret=dash-oidc'];
    const docs = await render({ values: ['required', 'everything'], set });
    const d = named(docs, 'Deployment', '-dashboard').spec as {
      template: {
        spec: {
          containers: Array<{ args: string[]; volumeMounts: Array<{ name: string }> }>;
          volumes: Array<{ name: string; secret?: { secretName: string } }>;
        };
      };
    };
    const c = d.template.spec.containers[0]!;
    assert.equal(c.args[c.args.indexOf('--oidc-issuer') + 1], 'https://op.example.org');
    assert.equal(
      c.args[c.args.indexOf('--oidc-client-secret-file') + 1],
      '/etc/precinct/oidc/client-secret',
    );
    assert.ok(!c.args.includes('--demo-users-from'), 'one identity source at a time');
    assert.equal(
      d.template.spec.volumes.find((v) => v.name === 'oidc')?.secret?.secretName,
      'dash-oidc',
    );
    assert.ok(!c.args.some((a) => a.includes('dash-oidc')), 'the secret is a file, not an arg');
    const np = named(docs, 'NetworkPolicy', '-dashboard').spec as {
      egress: Array<{ to: Array<{ ipBlock?: unknown }>; ports: Array<{ port: number }> }>;
    };
    assert.ok(
      np.egress.some((r) => r.to.some((t) => t.ipBlock) && r.ports.some((p) => p.port === 443)),
    );
    assert.deepEqual(checkDemoCalls(docs), []);
    assert.deepEqual(checkNetworkPolicySelectors(docs), []);
    assert.deepEqual(checkHardening(docs), []);
    assert.deepEqual(checkProbes(docs), []);
    await assert.rejects(
      render({ values: ['required', 'everything'], set: [set[0]!] }),
      /demo\.oidc\.existingSecret is required/,
    );
  });

  test('demo call check controls: a missing egress, a missing ingress and a wrong peer ID are caught', async () => {
    const docs = await render({ values: ['required', 'everything'] });
    type Rule = {
      to?: Array<{ podSelector?: { matchLabels: Record<string, string> } }>;
      from?: Rule['to'];
    };
    const component = (r: Rule, k: 'to' | 'from') =>
      r[k]?.[0]?.podSelector?.matchLabels['app.kubernetes.io/component'];
    const noEgress = clone(docs);
    const docsNp = named(noEgress, 'NetworkPolicy', '-document-service').spec as { egress: Rule[] };
    docsNp.egress = docsNp.egress.filter((r) => component(r, 'to') !== 'policy-service');
    assert.deepEqual(checkDemoCalls(noEgress), [
      'Deployment/precinct-document-service --policy-service https://precinct-policy-service.precinct.svc:8085: no egress to Deployment/precinct-policy-service on port 8085',
    ]);
    const noIngress = clone(docs);
    const policyNp = named(noIngress, 'NetworkPolicy', '-policy-service').spec as {
      ingress: Rule[];
    };
    policyNp.ingress = policyNp.ingress.filter((r) => component(r, 'from') !== 'document-service');
    assert.deepEqual(checkDemoCalls(noIngress), [
      'Deployment/precinct-document-service --policy-service https://precinct-policy-service.precinct.svc:8085: Deployment/precinct-policy-service takes no ingress from it on port 8085',
    ]);
    const wrongId = clone(docs);
    const args = (
      named(wrongId, 'Deployment', '-user-service').spec as {
        template: { spec: { containers: Array<{ args: string[] }> } };
      }
    ).template.spec.containers[0]!.args;
    const i = args.indexOf('--document-service-id');
    args[i + 1] = args[i + 1]!.replace('document-service', 'policy-service');
    assert.deepEqual(checkDemoCalls(wrongId), [
      'Deployment/precinct-user-service --document-service https://precinct-document-service.precinct.svc:8084: --document-service-id spiffe://example.org/ns/precinct/sa/precinct-policy-service is not the ServiceAccount precinct-document-service',
    ]);
    await assert.rejects(
      render({ values: ['required', 'everything'], set: ['tokenService.enabled=false'] }),
      /demo\.enabled needs tokenService\.enabled/,
    );
  });

  test('RBAC as rendered: auth-delegator for the audit store, serviceaccounts get/list/watch for the callout', async () => {
    const docs = await render();
    const crb = byKind(docs, 'ClusterRoleBinding');
    const delegator = crb.find(
      (b) => (b.roleRef as { name: string }).name === 'system:auth-delegator',
    );
    assert.deepEqual(JSON.parse(JSON.stringify(delegator?.subjects)), [
      { kind: 'ServiceAccount', name: 'precinct-audit-store', namespace: 'precinct' },
    ]);
    const role = named(docs, 'ClusterRole', 'nats-callout') as unknown as { rules: unknown };
    assert.deepEqual(JSON.parse(JSON.stringify(role.rules)), [
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list', 'watch'] },
    ]);
    const scoped = await render({ values: ['required', 'everything'] });
    assert.equal(byKind(scoped, 'ClusterRole').length, 0, 'watchNamespace: a Role, no ClusterRole');
    assert.equal(named(scoped, 'Role', 'nats-callout').metadata.namespace, 'apps');
    assert.equal(
      byKind(await render({ values: ['required', 'broken-rbac'] }), 'ClusterRoleBinding').length,
      0,
    );
  });

  test('scaling: PDBs for replicated components, HPAs when asked, one queue group', async () => {
    const docs = await render({ values: ['required', 'everything'] });
    const pdbs = byKind(docs, 'PodDisruptionBudget')
      .map((p) => p.metadata.name)
      .sort();
    assert.deepEqual(pdbs, ['precinct-audit-store', 'precinct-nats-callout']);
    const hpas = byKind(docs, 'HorizontalPodAutoscaler')
      .map((p) => p.metadata.name)
      .sort();
    assert.deepEqual(hpas, ['precinct-audit-store', 'precinct-nats-callout']);
    const callout = named(docs, 'Deployment', 'nats-callout');
    const env = (
      callout.spec as {
        template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } };
      }
    ).template.spec.containers[0]!.env;
    assert.equal(env.find((e) => e.name === 'NATS_QUEUE_GROUP')?.value, 'nats-callout');
    assert.equal(
      (callout.spec as { replicas?: number }).replicas,
      undefined,
      'the HPA owns replicas',
    );
  });
});

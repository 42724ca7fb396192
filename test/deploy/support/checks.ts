// Checks over rendered Kubernetes manifests (plain objects from `helm template`). Each returns
// a list of problems, one line each; an empty list means the manifests pass.

/** A rendered object; only the fields the checks read are typed. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

interface Port {
  name?: string;
  containerPort: number;
}
interface Probe {
  httpGet?: { port: number | string; scheme?: string };
  tcpSocket?: { port: number | string };
  grpc?: { port: number };
  exec?: unknown;
}
interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  ports?: Port[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
}
interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: { containers: Container[]; initContainers?: Container[] };
}
interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

/** Every pod template of the manifests, with the object that holds it. */
export function podTemplates(
  docs: K8sObject[],
): Array<{ owner: K8sObject; template: PodTemplate }> {
  const out: Array<{ owner: K8sObject; template: PodTemplate }> = [];
  for (const d of docs) {
    if (WORKLOADS.has(d.kind)) out.push({ owner: d, template: d.spec!.template as PodTemplate });
    if (d.kind === 'Pod')
      out.push({
        owner: d,
        template: { metadata: d.metadata, spec: d.spec as PodTemplate['spec'] },
      });
  }
  return out;
}

const where = (o: K8sObject, c?: Container) =>
  `${o.kind}/${o.metadata.name}${c ? ` container ${c.name}` : ''}`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

const portOf = (hostPort: string | undefined) =>
  hostPort === undefined ? undefined : Number(/:(\d+)$/.exec(hostPort)?.[1]);

/**
 * The container ports that require a client certificate (SPIFFE mTLS), from what the program
 * is told to do rather than from port names: `token-service --listen`, `audit-store --spiffe
 * --listen`, a demo service's `--listen`; and any port named `mtls`.
 */
export function mtlsPorts(c: Container): Set<number> {
  const args = [...(c.command ?? []), ...(c.args ?? [])];
  const out = new Set<number>();
  const sub = args.find((a) => ['token-service', 'audit-store', 'demo'].includes(a));
  const mtls =
    sub === 'token-service' ||
    sub === 'demo' ||
    (sub === 'audit-store' && args.includes('--spiffe'));
  if (mtls) {
    const p = portOf(flag(args, '--listen'));
    out.add(p ?? (sub === 'token-service' ? 8443 : 8080));
  }
  for (const p of c.ports ?? []) if (p.name === 'mtls') out.add(p.containerPort);
  return out;
}

/** Probes must target a declared plain port: never an mTLS port, by HTTP, gRPC or TCP. */
export function checkProbes(docs: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const { owner, template } of podTemplates(docs)) {
    for (const c of template.spec.containers) {
      const mtls = mtlsPorts(c);
      for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
        const probe = c[kind];
        if (!probe) continue;
        const ref = probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
        if (ref === undefined) continue; // exec probes dial nothing
        const number =
          typeof ref === 'number'
            ? ref
            : (c.ports ?? []).find((p) => p.name === ref)?.containerPort;
        if (number === undefined) {
          problems.push(
            `${where(owner, c)}: ${kind} names port ${ref}, which the container does not declare`,
          );
        } else if (mtls.has(number)) {
          problems.push(`${where(owner, c)}: ${kind} targets mTLS port ${number}`);
        } else if (probe.httpGet?.scheme === 'HTTPS') {
          problems.push(`${where(owner, c)}: ${kind} is HTTPS; health ports are plain HTTP`);
        }
      }
    }
  }
  return problems;
}

/** Every image has a version tag or a digest; `latest` and untagged references are refused. */
export function checkImages(docs: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const { owner, template } of podTemplates(docs)) {
    for (const c of [...template.spec.containers, ...(template.spec.initContainers ?? [])]) {
      const image = c.image ?? '';
      const [name, digest] = image.split('@');
      const last = (name ?? '').split('/').pop() ?? '';
      const tag = last.includes(':') ? last.slice(last.indexOf(':') + 1) : '';
      if (!image) problems.push(`${where(owner, c)}: no image`);
      else if (tag.toLowerCase() === 'latest')
        problems.push(`${where(owner, c)}: image tag latest (${image})`);
      else if (!tag && !digest)
        problems.push(`${where(owner, c)}: image without tag or digest (${image})`);
      else if (digest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(digest))
        problems.push(`${where(owner, c)}: malformed digest (${image})`);
    }
  }
  return problems;
}

/** Whether a label selector matches a label set (Kubernetes semantics; `{}` matches all). */
export function selectorMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const val = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(val!)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(val!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: unknown;
}

/**
 * Every NetworkPolicy selects at least one pod template of the chart, and every peer selector
 * that names the chart's pods (`app.kubernetes.io/part-of: precinct`, same namespace) matches
 * one too: a policy for pods that do not exist protects nothing, and an allow for peers that do
 * not exist silently denies.
 */
export function checkNetworkPolicySelectors(docs: K8sObject[]): string[] {
  const problems: string[] = [];
  const labelSets = podTemplates(docs).map((t) => t.template.metadata?.labels ?? {});
  const matchesSome = (sel: LabelSelector) => labelSets.some((l) => selectorMatches(sel, l));
  for (const np of docs.filter((d) => d.kind === 'NetworkPolicy')) {
    const spec = np.spec as {
      podSelector: LabelSelector;
      ingress?: Array<{ from?: Peer[] }>;
      egress?: Array<{ to?: Peer[] }>;
    };
    if (!matchesSome(spec.podSelector)) {
      problems.push(`NetworkPolicy/${np.metadata.name}: podSelector matches no pod template`);
    }
    const peers = [
      ...(spec.ingress ?? []).flatMap((r) => r.from ?? []),
      ...(spec.egress ?? []).flatMap((r) => r.to ?? []),
    ];
    for (const p of peers) {
      if (!p.podSelector || p.namespaceSelector) continue;
      if (p.podSelector.matchLabels?.['app.kubernetes.io/part-of'] !== 'precinct') continue;
      if (!matchesSome(p.podSelector)) {
        problems.push(
          `NetworkPolicy/${np.metadata.name}: peer ${JSON.stringify(p.podSelector)} matches no pod template`,
        );
      }
    }
  }
  return problems;
}

/** Every pod template runs non-root with a read-only root filesystem and no extra capabilities. */
export function checkHardening(docs: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const { owner, template } of podTemplates(docs)) {
    const pod = template.spec as { securityContext?: { runAsNonRoot?: boolean } };
    for (const c of template.spec.containers as Array<
      Container & {
        securityContext?: {
          readOnlyRootFilesystem?: boolean;
          allowPrivilegeEscalation?: boolean;
          capabilities?: { drop?: string[] };
        };
        resources?: { requests?: Record<string, string> };
      }
    >) {
      const sc = c.securityContext ?? {};
      if (pod.securityContext?.runAsNonRoot !== true)
        problems.push(`${where(owner, c)}: not runAsNonRoot`);
      if (sc.readOnlyRootFilesystem !== true)
        problems.push(`${where(owner, c)}: root filesystem writable`);
      if (sc.allowPrivilegeEscalation !== false)
        problems.push(`${where(owner, c)}: privilege escalation allowed`);
      if (!sc.capabilities?.drop?.includes('ALL'))
        problems.push(`${where(owner, c)}: capabilities not dropped`);
      if (!c.resources?.requests?.cpu || !c.resources.requests.memory)
        problems.push(`${where(owner, c)}: no cpu/memory requests`);
    }
  }
  return problems;
}

interface NetworkPolicyRule {
  from?: Array<{ podSelector?: LabelSelector; namespaceSelector?: LabelSelector }>;
  to?: Array<{ podSelector?: LabelSelector; namespaceSelector?: LabelSelector }>;
  ports?: Array<{ port?: number | string; protocol?: string }>;
}
interface NetworkPolicySpec {
  podSelector: LabelSelector;
  ingress?: NetworkPolicyRule[];
  egress?: NetworkPolicyRule[];
}

/** Whether `rules` let pods with `peer` labels through on `port` (pod selectors of this namespace). */
function admits(rules: NetworkPolicyRule[], peer: Record<string, string>, port: number): boolean {
  return rules.some(
    (r) =>
      (r.ports === undefined || r.ports.some((p) => p.port === undefined || p.port === port)) &&
      (r.from ?? r.to ?? []).some(
        (x) =>
          x.namespaceSelector === undefined &&
          x.podSelector !== undefined &&
          selectorMatches(x.podSelector, peer),
      ),
  );
}

/**
 * What a `precinct demo` pod calls, from its args (`--<peer> https://<service>.<ns>.svc:<port>
 * --<peer>-id spiffe://<td>/ns/<ns>/sa/<account>`): the Service exists and has that port, it
 * selects pods running as that ServiceAccount, and the NetworkPolicies let the caller out to
 * those pods and them take it in, on the port the Service targets.
 */
export function checkDemoCalls(docs: K8sObject[]): string[] {
  const problems: string[] = [];
  const policies = docs.filter((d) => d.kind === 'NetworkPolicy');
  const policiesFor = (labels: Record<string, string>) =>
    policies
      .map((p) => p.spec as unknown as NetworkPolicySpec)
      .filter((p) => selectorMatches(p.podSelector, labels));
  const templates = podTemplates(docs);
  for (const { owner, template } of templates) {
    const c = template.spec.containers[0]!;
    const args = [...(c.command ?? []), ...(c.args ?? [])];
    if (args[0] !== 'demo') continue;
    const me = template.metadata?.labels ?? {};
    for (let i = 0; i < args.length - 1; i++) {
      const m = /^--([a-z-]+)$/.exec(args[i]!);
      const url = /^https:\/\/([^.]+)\.([^.]+)\.svc:(\d+)$/.exec(args[i + 1]!);
      if (!m || !url) continue;
      const [, svcName, , portText] = url;
      const what = `${where(owner)} --${m[1]} ${args[i + 1]}`;
      const id = flag(args, `--${m[1]}-id`);
      const service = docs.find((d) => d.kind === 'Service' && d.metadata.name === svcName);
      const servicePort = (
        service?.spec as { ports?: Array<{ port: number; targetPort?: number | string }> }
      )?.ports?.find((p) => p.port === Number(portText));
      if (!service || !servicePort) {
        problems.push(`${what}: no Service ${svcName} with port ${portText}`);
        continue;
      }
      const selector = (service.spec as { selector: Record<string, string> }).selector;
      const targets = templates.filter((t) =>
        selectorMatches({ matchLabels: selector }, t.template.metadata?.labels ?? {}),
      );
      if (targets.length === 0) {
        problems.push(`${what}: Service ${svcName} selects no pod template`);
        continue;
      }
      for (const t of targets) {
        const account = (t.template.spec as { serviceAccountName?: string }).serviceAccountName;
        if (!id?.endsWith(`/sa/${account}`))
          problems.push(`${what}: --${m[1]}-id ${id} is not the ServiceAccount ${account}`);
        const tc = t.template.spec.containers[0]!;
        const target = servicePort.targetPort ?? servicePort.port;
        const port =
          typeof target === 'number'
            ? target
            : (tc.ports ?? []).find((p) => p.name === target)?.containerPort;
        if (port === undefined) {
          problems.push(`${what}: target port ${String(target)} not declared`);
          continue;
        }
        const theirs = t.template.metadata?.labels ?? {};
        const out = policiesFor(me);
        if (out.length > 0 && !out.some((p) => admits(p.egress ?? [], theirs, port)))
          problems.push(`${what}: no egress to ${where(t.owner)} on port ${port}`);
        const inn = policiesFor(theirs);
        if (inn.length > 0 && !inn.some((p) => admits(p.ingress ?? [], me, port)))
          problems.push(`${what}: ${where(t.owner)} takes no ingress from it on port ${port}`);
      }
    }
  }
  return problems;
}

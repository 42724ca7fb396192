// `startDemo`: the five services of the agent-delegation demo in one process, each with its own
// SVID from the Workload API, wired to an already running token service (and audit store). It
// composes the demo's services with the dashboard, so it lives here, above the services: a
// service never imports another (`precinct up` and the tests use it; `precinct demo <service>`
// runs each part as its own process instead).
import {
  DEMO_PORTS,
  agentSpiffeId,
  demoPolicyData,
  startAgentService,
  startDocumentService,
  startPolicyService,
  startUserService,
  type AgentServiceOptions,
  type DemoPorts,
  type DocumentService,
  type ServiceHandle,
  type TokenServiceRef,
} from '@precinct/demo';
import {
  DashboardIdp,
  startDashboard,
  type DashboardOptions,
  type PlatformBackends,
} from '@precinct/dashboard';
import type { PolicyData, PolicyEngine } from '@precinct/policy';
import { createLogger, type Logger } from '@precinct/runtime';
import { X509Source } from '@precinct/spiffe/workloadapi';

/** A Workload API address (`unix:///...`, `tcp://...`) or an X509Source the caller owns. */
export type WorkloadIdentity = string | X509Source;

export interface DemoOptions {
  trustDomain: string;
  /** Each service's identity. The agent service's workload also holds the agents' SVIDs. */
  workloadApi: {
    dashboard: WorkloadIdentity;
    userService: WorkloadIdentity;
    agentService: WorkloadIdentity;
    documentService: WorkloadIdentity;
    policyService: WorkloadIdentity;
  };
  /** The token service: `https://` URL and its SPIFFE ID (also the tokens' issuer). */
  tokenService: TokenServiceRef;
  /**
   * The ID-token signer the token service trusts for people (pass `idp.jwks()` and `idp.issuer`
   * to its OIDC person authenticator, `idp.audience` as its client id). See `createDemoIdp`.
   */
  idp: DashboardIdp;
  /** The audit store's mTLS URL and SPIFFE ID; the document service writes every decision. */
  audit?: { url: string; spiffeId: string };
  /** Decides; `wasmPolicy()` or `opaServerPolicy({url: OPA_URL})`. */
  policy: PolicyEngine;
  /** The policy's data (people, agents, documents). Default: `demoPolicyData(trustDomain)`. */
  data?: PolicyData;
  /** Backends of the dashboard's platform views (workloads, audit, Kubernetes, consent). */
  platform?: PlatformBackends;
  /** The dashboard's identity source and roles: an OpenID Provider, auditors, people's tokens. */
  dashboard?: Pick<DashboardOptions, 'oidc' | 'auditors' | 'publicUrl' | 'peopleTokens'>;
  /** The egress broker, when one runs: the agent service calls providers through it. */
  egressBroker?: AgentServiceOptions['egressBroker'];
  /** JSON file with the demo people's passwords; created 0600 when missing. */
  demoUsersFile: string;
  /** Ports; 0 picks a free one. Default DEMO_PORTS. */
  ports?: Partial<DemoPorts>;
  host?: string;
  advertiseHost?: string;
  logger?: Logger;
}

export interface Demo {
  urls: {
    dashboard: string;
    userService: string;
    agentService: string;
    documentService: string;
    policyService: string;
  };
  healthUrls: Demo['urls'];
  spiffeIds: Omit<Demo['urls'], 'dashboard'> & { dashboard: string; agents: string[] };
  /** Waits until every decision so far is in the audit store. */
  flushAudit(): Promise<void>;
  close(): Promise<void>;
}

/** The dashboard's ID-token signer for people, to hand to both the token service and startDemo. */
export function createDemoIdp(o: { issuer?: string; audience?: string } = {}): DashboardIdp {
  return new DashboardIdp({
    issuer: o.issuer ?? 'https://dashboard.precinct.local',
    audience: o.audience ?? 'precinct-token-service',
  });
}

async function source(w: WorkloadIdentity, owned: X509Source[]): Promise<X509Source> {
  if (typeof w !== 'string') return w;
  const s = await X509Source.create({ address: w, timeoutMs: 20_000 });
  owned.push(s);
  return s;
}

/**
 * Starts the policy, document, user and agent services and the dashboard, in dependency order.
 * Every service's SPIFFE ID is read from its own SVID; the allow-lists are built from them.
 */
export async function startDemo(o: DemoOptions): Promise<Demo> {
  const td = o.trustDomain;
  const data = o.data ?? demoPolicyData(td);
  if (data.precinct.trust_domain !== td) {
    throw new Error(
      `demo: the policy data's trust domain is ${data.precinct.trust_domain}, not ${td}; people and agents would all be unknown`,
    );
  }
  const ports = { ...DEMO_PORTS, ...o.ports };
  const base = o.logger ?? createLogger('demo');
  const log = (name: string) => base.child({ service: name });
  const owned: X509Source[] = [];
  const started: Array<{ close(): Promise<void> }> = [];
  const listen = (port: number, healthPort: number) => ({
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.advertiseHost !== undefined ? { advertiseHost: o.advertiseHost } : {}),
    port,
    healthPort,
  });
  try {
    const src = {
      dashboard: await source(o.workloadApi.dashboard, owned),
      user: await source(o.workloadApi.userService, owned),
      agent: await source(o.workloadApi.agentService, owned),
      document: await source(o.workloadApi.documentService, owned),
      policy: await source(o.workloadApi.policyService, owned),
    };
    const id = (s: X509Source) => s.getX509Svid().id.toString();
    const agents = Object.keys(data.precinct.agents).map((a) => agentSpiffeId(td, a));
    const held = new Set(src.agent.getX509Svids().map((s) => s.id.toString()));
    const missing = agents.filter((a) => !held.has(a));
    if (missing.length > 0) {
      throw new Error(`demo: the agent service's workload holds no SVID for ${missing.join(', ')}`);
    }
    const bundles = src.document;
    const policy = await startPolicyService({
      svidSource: src.policy,
      bundleSource: src.policy,
      policy: o.policy,
      callers: [id(src.document)],
      logger: log('policy-service'),
      ...listen(ports.policyService, ports.policyServiceHealth),
    });
    started.push(policy);
    const documents: DocumentService = await startDocumentService({
      svidSource: src.document,
      bundleSource: bundles,
      trustDomain: td,
      data,
      tokenService: o.tokenService,
      policyService: policy,
      userService: id(src.user),
      agents,
      ...(o.audit ? { audit: o.audit } : {}),
      logger: log('document-service'),
      ...listen(ports.documentService, ports.documentServiceHealth),
    });
    started.push(documents);
    const common = {
      trustDomain: td,
      data,
      tokenService: o.tokenService,
      documentService: documents,
      callers: [id(src.dashboard)],
    };
    const users: ServiceHandle = await startUserService({
      ...common,
      svidSource: src.user,
      bundleSource: src.user,
      logger: log('user-service'),
      ...listen(ports.userService, ports.userServiceHealth),
    });
    started.push(users);
    const agentSvc: ServiceHandle = await startAgentService({
      ...common,
      // The agent service serves as its own identity (the entry for its service account).
      svidSource: {
        getX509Svid: () =>
          src.agent.getX509Svids().find((s) => !agents.includes(s.id.toString())) ??
          src.agent.getX509Svid(),
        getX509Svids: () => src.agent.getX509Svids(),
      } as never,
      bundleSource: src.agent,
      ...(o.egressBroker ? { egressBroker: o.egressBroker } : {}),
      logger: log('agent-service'),
      ...listen(ports.agentService, ports.agentServiceHealth),
    });
    started.push(agentSvc);
    const dashboard = await startDashboard({
      svidSource: src.dashboard,
      bundleSource: src.dashboard,
      trustDomain: td,
      tokenService: o.tokenService,
      userService: users,
      agentService: agentSvc,
      idp: o.idp,
      demoUsersFile: o.demoUsersFile,
      people: Object.keys(data.precinct.users),
      statusTargets: {
        'user-service': users.healthUrl,
        'agent-service': agentSvc.healthUrl,
        'document-service': documents.healthUrl,
        'policy-service': policy.healthUrl,
      },
      logger: log('dashboard'),
      ...(o.platform ? { platform: o.platform } : {}),
      ...o.dashboard,
      ...listen(ports.dashboard, ports.dashboardHealth),
    });
    started.push(dashboard);
    let closed: Promise<void> | undefined;
    return {
      urls: {
        dashboard: dashboard.url,
        userService: users.url,
        agentService: agentSvc.url,
        documentService: documents.url,
        policyService: policy.url,
      },
      healthUrls: {
        dashboard: dashboard.healthUrl,
        userService: users.healthUrl,
        agentService: agentSvc.healthUrl,
        documentService: documents.healthUrl,
        policyService: policy.healthUrl,
      },
      spiffeIds: {
        dashboard: id(src.dashboard),
        userService: users.spiffeId,
        agentService: agentSvc.spiffeId,
        documentService: documents.spiffeId,
        policyService: policy.spiffeId,
        agents,
      },
      flushAudit: () => documents.flushAudit(),
      close() {
        closed ??= (async () => {
          for (const s of started.reverse()) await s.close();
          for (const s of owned) await s.close();
        })();
        return closed;
      },
    };
  } catch (err) {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
    for (const s of owned) await s.close().catch(() => undefined);
    throw err;
  }
}

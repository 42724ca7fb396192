import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import type { IdentityServer } from '@precinct/identity-server';
import { AuditClient, startAuditStore, type Db } from '@precinct/audit-store';
import {
  opaServerPolicy,
  parseDocumentScope,
  policyGrantScope,
  wasmPolicy,
} from '@precinct/policy';
import { authorizeOneOf } from '@precinct/spiffe';
import {
  MemoryConsentStore,
  createOidcPersonAuthenticator,
  exchangeAuditEvents,
  startTokenService,
} from '@precinct/token-service';
import { CoreV1Api } from '@kubernetes/client-node';
import { auditStoreBackend, x509SourcesBackend, type PlatformBackends } from '@precinct/dashboard';
import { buildPermissions } from '@precinct/nats-callout';
import { MtlsClient, DEMO_CONSENT, demoPolicyData } from '@precinct/demo';
import { parseHttpUrl, type Logger } from '@precinct/runtime';
import { startLocalWorkload, type LocalWorkload } from './workloads.js';
import { natsClients } from './nats.js';
import { createDemoIdp, startDemo, type Demo, type DemoOptions } from './demo.js';
import type { PartState } from './state.js';
import { BROKER_SERVICE_ACCOUNT, callScope, type EgressContext } from './secrets-platform.js';
import type { GrantScope } from '@precinct/token-service';
import type { PeopleTokensBackend } from '@precinct/dashboard';

/**
 * The delegated-access half of `precinct up`: the token service, the policy (Wasm, or the OPA
 * server at OPA_URL), the demo's user, agent, document and policy services and the dashboard,
 * each with its own SVID attested through kube-dev like a pod, and an mTLS front of the audit
 * store (same database) that the document service writes every decision to.
 */

export const DEMO_NAMESPACE = 'precinct-demo';
const AGENTS = ['gpt4', 'claude', 'summarizer'];

export interface DemoPlatformPorts {
  tokenService: number;
  tokenServiceHealth: number;
  auditMtls: number;
  auditMtlsHealth: number;
  dashboard: number;
  userService: number;
  agentService: number;
  documentService: number;
  policyService: number;
  dashboardHealth: number;
  userServiceHealth: number;
  agentServiceHealth: number;
  documentServiceHealth: number;
  policyServiceHealth: number;
}

export interface DemoPlatform {
  demo: Demo;
  tokenServiceUrl: string;
  auditMtlsUrl: string;
  policyEngine: string;
  parts: PartState[];
  close(): Promise<void>;
}

export async function startDemoPlatform(o: {
  trustDomain: string;
  kubeConfig: KubeConfig;
  identity: IdentityServer;
  auditDb: Db;
  auditSigningKeyPem: Buffer;
  dataDir: string;
  advertiseHost: string;
  ports: DemoPlatformPorts;
  logger: (name: string) => Logger;
  opaUrl?: string;
  /** nats-server's monitoring URL, when NATS runs: the dashboard's NATS view. */
  natsMonitorUrl?: string;
  /** The dashboard's identity source (an OpenID Provider) and auditors; see `precinct up --help`. */
  dashboard?: DemoOptions['dashboard'];
  /** Wraps the token service's scope decision (e.g. people's-token scopes, secrets-platform.ts). */
  wrapGrantScope?: (inner: GrantScope) => GrantScope;
  /**
   * People's third-party tokens: started once the token service runs (the egress broker needs
   * its keys), before the dashboard, which gets the backend for /api/secrets.
   */
  peopleTokens?: (
    ctx: EgressContext,
  ) => Promise<{ backend: PeopleTokensBackend; broker: { url: string; spiffeId: string } }>;
}): Promise<DemoPlatform> {
  const closers: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const td = o.trustDomain;
    const sid = (sa: string) => `spiffe://${td}/ns/${DEMO_NAMESPACE}/sa/${sa}`;
    const workloadLog = o.logger('workloads');
    const workload = async (sa: string, extra: string[] = []): Promise<LocalWorkload> => {
      const w = await startLocalWorkload({
        kubeConfig: o.kubeConfig,
        identity: o.identity,
        namespace: DEMO_NAMESPACE,
        serviceAccount: sa,
        spiffeIds: [sid(sa), ...extra],
        logger: workloadLog,
      });
      closers.push(() => w.close());
      return w;
    };
    const names = [
      'token-service',
      'audit-store',
      'dashboard',
      'user-service',
      'document-service',
      'policy-service',
    ] as const;
    const w = {} as Record<(typeof names)[number] | 'agent-service', LocalWorkload>;
    for (const n of names) w[n] = await workload(n);
    w['agent-service'] = await workload(
      'agent-service',
      AGENTS.map((a) => `spiffe://${td}/agent/${a}`),
    );

    const data = demoPolicyData(td);
    const policy = o.opaUrl
      ? opaServerPolicy({ url: parseHttpUrl(o.opaUrl, 'OPA_URL').toString() })
      : await wasmPolicy({ data });

    const idp = createDemoIdp();
    const consent = new MemoryConsentStore();
    for (const [person, agents] of Object.entries(DEMO_CONSENT)) {
      consent.grant(
        `spiffe://${td}/user/${person}`,
        agents.map((a) => `spiffe://${td}/agent/${a}`),
      );
    }
    // The scope is decided by the same policy the document service asks, so a scope it refuses
    // never reaches a token; refused exchanges go to the audit store's mTLS front, written as
    // the token service (set once that front is up; refusals before it are only logged).
    const policyGrant = policyGrantScope(policy);
    const exchangeAudit: { client?: AuditClient } = {};
    const tokenService = await startTokenService({
      svidSource: w['token-service'].source,
      bundleSource: w['token-service'].source,
      persons: [
        createOidcPersonAuthenticator({
          issuer: idp.issuer,
          clientId: idp.audience,
          jwks: idp.jwks() as never,
          algorithms: ['ES256'],
        }),
      ],
      consent,
      grantScope: o.wrapGrantScope ? o.wrapGrantScope(policyGrant) : policyGrant,
      explainRefusals: true,
      onDecision: async (d) => {
        // Refusals only: a granted exchange leads to the document service's own decision.
        const audit = exchangeAudit.client;
        if (!audit || d.decision === 'allow') return;
        const events = exchangeAuditEvents(d, {
          resourceOf: (scope) => {
            const t = parseDocumentScope(scope);
            return t && { type: 'document', id: t.document, action: t.action };
          },
        });
        await Promise.all(events.map((e) => audit.write(e)));
      },
      isAgent: (id) => id.startsWith(`spiffe://${td}/agent/`),
      mayRequest: (id) => id === sid('dashboard') || id.startsWith(`spiffe://${td}/agent/`),
      port: o.ports.tokenService,
      healthPort: o.ports.tokenServiceHealth,
      advertiseHost: o.advertiseHost,
      logger: o.logger('token-service'),
    });
    closers.push(() => tokenService.close());

    // The audit store's mTLS front, on the same database as the bearer-token one.
    const auditMtls = await startAuditStore({
      db: o.auditDb,
      port: o.ports.auditMtls,
      advertiseHost: o.advertiseHost,
      auth: false,
      signingKeyPem: o.auditSigningKeyPem,
      spiffe: {
        svidSource: w['audit-store'].source,
        bundleSource: w['audit-store'].source,
        // The document and token services write; the dashboard reads for its audit view.
        // The egress broker writes its decisions too, when one runs.
        authorizer: authorizeOneOf(
          sid('document-service'),
          sid('token-service'),
          sid('dashboard'),
          ...(o.peopleTokens ? [sid(BROKER_SERVICE_ACCOUNT)] : []),
        ),
        healthPort: o.ports.auditMtlsHealth,
      },
      logger: o.logger('audit-store-mtls'),
    });
    closers.push(() => auditMtls.close());
    const exchangeAuditPeer = new MtlsClient(
      w['token-service'].source,
      w['token-service'].source,
      sid('audit-store'),
    );
    exchangeAudit.client = new AuditClient({
      url: auditMtls.url,
      fetch: exchangeAuditPeer.fetch,
      flushIntervalMs: 200,
    });
    closers.push(async () => {
      await exchangeAudit.client?.close();
      await exchangeAuditPeer.close();
    });

    // The dashboard's platform views, read through the same identities a cluster would use.
    const auditReader = new MtlsClient(w.dashboard.source, w.dashboard.source, sid('audit-store'));
    closers.push(() => auditReader.close());
    const core = o.kubeConfig.makeApiClient(CoreV1Api);
    const platform: PlatformBackends = {
      workloads: x509SourcesBackend(
        Object.values(w).map((x) => x.source),
        td,
      ),
      audit: auditStoreBackend({ url: auditMtls.url, dispatcher: auditReader.dispatcher }),
      kube: {
        serviceAccounts: async () =>
          (await core.listServiceAccountForAllNamespaces()).items.map((sa) => {
            const namespace = sa.metadata?.namespace ?? '';
            const name = sa.metadata?.name ?? '';
            const annotations = sa.metadata?.annotations ?? {};
            const { permissions } = buildPermissions({
              namespace,
              serviceAccount: name,
              annotations,
            });
            return {
              namespace,
              name,
              annotations,
              spiffeId: `spiffe://${td}/ns/${namespace}/sa/${name}`,
              nats: { pub: permissions.pub, sub: permissions.sub },
            };
          }),
      },
      ...(o.natsMonitorUrl
        ? {
            nats: {
              clients: () =>
                natsClients(o.natsMonitorUrl!, td, async (namespace, name) => {
                  const sa = await core.readNamespacedServiceAccount({ namespace, name });
                  return sa.metadata?.annotations ?? {};
                }),
            },
          }
        : {}),
      consent: {
        store: consent,
        agents: async () => AGENTS.map((a) => `spiffe://${td}/agent/${a}`),
      },
    };

    const peopleTokens = o.peopleTokens
      ? await o.peopleTokens({
          tokenService: { issuer: tokenService.issuer, jwks: () => tokenService.keys.jwks() },
          dashboardAddress: w.dashboard.address,
          dashboardSource: w.dashboard.source,
          audit: { url: auditMtls.url, spiffeId: sid('audit-store') },
        })
      : undefined;
    const demo = await startDemo({
      platform,
      ...(o.dashboard || peopleTokens
        ? {
            dashboard: {
              ...o.dashboard,
              ...(peopleTokens ? { peopleTokens: peopleTokens.backend } : {}),
            },
          }
        : {}),
      ...(peopleTokens ? { egressBroker: { ...peopleTokens.broker, scope: callScope } } : {}),
      trustDomain: td,
      workloadApi: {
        dashboard: w.dashboard.source,
        userService: w['user-service'].source,
        agentService: w['agent-service'].source,
        documentService: w['document-service'].source,
        policyService: w['policy-service'].source,
      },
      tokenService: { url: tokenService.url, spiffeId: tokenService.issuer },
      idp,
      audit: { url: auditMtls.url, spiffeId: sid('audit-store') },
      policy,
      data,
      demoUsersFile: join(o.dataDir, 'demo-users.json'),
      ports: {
        dashboard: o.ports.dashboard,
        userService: o.ports.userService,
        agentService: o.ports.agentService,
        documentService: o.ports.documentService,
        policyService: o.ports.policyService,
        dashboardHealth: o.ports.dashboardHealth,
        userServiceHealth: o.ports.userServiceHealth,
        agentServiceHealth: o.ports.agentServiceHealth,
        documentServiceHealth: o.ports.documentServiceHealth,
        policyServiceHealth: o.ports.policyServiceHealth,
      },
      advertiseHost: o.advertiseHost,
      logger: o.logger('demo'),
    });
    closers.push(() => demo.close());

    const parts: PartState[] = [
      {
        name: 'token-service',
        url: tokenService.url,
        healthUrl: `${tokenService.healthUrl}/ready`,
      },
      { name: 'audit-store-mtls', url: auditMtls.url },
      {
        name: 'dashboard',
        url: demo.urls.dashboard,
        healthUrl: `${demo.healthUrls.dashboard}/ready`,
      },
      {
        name: 'user-service',
        url: demo.urls.userService,
        healthUrl: `${demo.healthUrls.userService}/ready`,
      },
      {
        name: 'agent-service',
        url: demo.urls.agentService,
        healthUrl: `${demo.healthUrls.agentService}/ready`,
      },
      {
        name: 'document-service',
        url: demo.urls.documentService,
        healthUrl: `${demo.healthUrls.documentService}/ready`,
      },
      {
        name: 'policy-service',
        url: demo.urls.policyService,
        healthUrl: `${demo.healthUrls.policyService}/ready`,
      },
    ];
    return {
      demo,
      tokenServiceUrl: tokenService.url,
      auditMtlsUrl: auditMtls.url,
      policyEngine: o.opaUrl ? `OPA server ${o.opaUrl}` : 'in-process Wasm',
      parts,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

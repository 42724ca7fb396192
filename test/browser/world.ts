// The dashboard under test with every platform view wired to real parts: the demo world from
// test/demo (identity server, token service, demo services), an audit store on a PGlite
// database this file owns (so a test can tamper with a stored event the way someone with
// database access would), the token service's consent store, and the workloads' live SVIDs.
import { authorizeOneOf } from '@precinct/spiffe';
import { startAuditStore, type AuditStore } from '@precinct/audit-store';
import { ANNOTATIONS, buildPermissions } from '@precinct/nats-callout';
import { startDemo, type Demo } from '../../cli/src/demo.js';
import { wasmPolicy } from '@precinct/policy';
import {
  auditStoreBackend,
  x509SourcesBackend,
  startDashboard,
  type Dashboard,
  type DashboardOptions,
  type PlatformBackends,
  type ServiceAccountView,
} from '@precinct/dashboard';
import { createPgliteDb, type Db } from '@precinct/audit-store';
import {
  AGENT_NAMES,
  SERVICE_ACCOUNTS,
  TD,
  agentId,
  clientAs,
  quiet,
  sid,
  startWorld,
  type World,
} from '../demo/support.js';

export interface BrowserWorld {
  world: World;
  db: Db;
  audit: AuditStore;
  demo: Demo;
  dashboard: Dashboard;
  close(): Promise<void>;
}

/** What `precinct up` would wire, from this world's parts. */
function platformOf(
  world: World,
  audit: AuditStore,
): { backends: PlatformBackends; close: () => Promise<void> } {
  const sources = Object.values(world.sources);
  const reader = clientAs(world.sources.auditor, sid('audit-store'));
  const annotations: Record<string, Record<string, string>> = {
    'document-service': { [ANNOTATIONS.allowedPub]: 'audit.events.>' },
    'agent-service': {
      [ANNOTATIONS.allowedSub]: 'agents.requests.>',
      [ANNOTATIONS.deniedPub]: 'audit.>',
    },
  };
  const backends: PlatformBackends = {
    workloads: x509SourcesBackend(sources, TD),
    audit: auditStoreBackend({ url: audit.url, dispatcher: reader.dispatcher }),
    kube: {
      serviceAccounts: async () =>
        SERVICE_ACCOUNTS.map((name): ServiceAccountView => {
          const a = annotations[name] ?? {};
          const { permissions } = buildPermissions({
            namespace: 'demo',
            serviceAccount: name,
            annotations: a,
          });
          return {
            namespace: 'demo',
            name,
            annotations: a,
            spiffeId: sid(name),
            nats: { pub: permissions.pub, sub: permissions.sub },
          };
        }),
    },
    consent: { store: world.consent, agents: async () => AGENT_NAMES.map(agentId) },
  };
  return { backends, close: () => reader.dispatcher.close() };
}

/**
 * `extra`: further dashboard options (an OpenID Provider, people's tokens, auditors), or a
 * function of the started world that returns them.
 */
export async function startBrowserWorld(
  extra: Partial<DashboardOptions> | ((world: World) => Promise<Partial<DashboardOptions>>) = {},
): Promise<BrowserWorld> {
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const world = await startWorld();
    closers.unshift(() => world.close());
    const db = await createPgliteDb();
    closers.unshift(() => db.close());
    const audit = await startAuditStore({
      db,
      host: '127.0.0.1',
      port: 0,
      auth: false,
      spiffe: {
        svidSource: world.sources['audit-store'],
        bundleSource: world.sources['audit-store'],
        authorizer: authorizeOneOf(sid('document-service'), sid('token-service'), sid('auditor')),
        healthHost: '127.0.0.1',
      },
      retentionIntervalMs: 0,
      logger: quiet(),
    });
    closers.unshift(() => audit.close());
    // The token service's refusals (a person's token the policy refused) go here too.
    closers.unshift(world.auditExchangesTo({ url: audit.url, spiffeId: sid('audit-store') }));
    // The demo services again, writing to this audit store (the world's writes to its own).
    const demo = await startDemo({
      trustDomain: TD,
      workloadApi: {
        dashboard: world.sources.dashboard,
        userService: world.sources['user-service'],
        agentService: world.sources['agent-service'],
        documentService: world.sources['document-service'],
        policyService: world.sources['policy-service'],
      },
      tokenService: { url: world.tokenService.url, spiffeId: world.tokenService.issuer },
      idp: world.idp,
      audit: { url: audit.url, spiffeId: sid('audit-store') },
      policy: await wasmPolicy(),
      demoUsersFile: world.usersFile,
      ports: {
        dashboard: 0,
        userService: 0,
        agentService: 0,
        documentService: 0,
        policyService: 0,
        dashboardHealth: 0,
        userServiceHealth: 0,
        agentServiceHealth: 0,
        documentServiceHealth: 0,
        policyServiceHealth: 0,
      },
      host: '127.0.0.1',
      logger: quiet(),
    });
    closers.unshift(() => demo.close());
    const platform = platformOf(world, audit);
    closers.unshift(platform.close);
    const more = typeof extra === 'function' ? await extra(world) : extra;
    const dashboard = await startDashboard({
      svidSource: world.sources.dashboard,
      bundleSource: world.sources.dashboard,
      trustDomain: TD,
      tokenService: { url: world.tokenService.url, spiffeId: world.tokenService.issuer },
      userService: { url: demo.urls.userService, spiffeId: demo.spiffeIds.userService },
      agentService: { url: demo.urls.agentService, spiffeId: demo.spiffeIds.agentService },
      idp: world.idp,
      demoUsersFile: world.usersFile,
      host: '127.0.0.1',
      port: 0,
      healthHost: '127.0.0.1',
      healthPort: 0,
      logger: quiet(),
      platform: platform.backends,
      ...more,
    });
    closers.unshift(() => dashboard.close());
    return {
      world,
      db,
      audit,
      demo,
      dashboard,
      async close() {
        for (const c of closers) await c();
      },
    };
  } catch (err) {
    for (const c of closers) await c().catch(() => undefined);
    throw err;
  }
}

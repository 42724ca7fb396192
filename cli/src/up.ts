import { resolve, join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import {
  createLogger,
  parseDatabaseUrl,
  parseDuration,
  parseFlags,
  redactUrl,
  UsageError,
  waitForShutdown,
  type Command,
  type FlagSpec,
  type Logger,
} from '@precinct/runtime';
import { startKubeDev } from '@precinct/kube-dev';
import { startIdentityServer } from '@precinct/identity-server';
import { createPgDb, createPgliteDb, startAuditStore } from '@precinct/audit-store';
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  evictOnServiceAccountChange,
  loadKubeConfig,
  watchPods,
  watchServiceAccounts,
} from '@precinct/kube';
import { createDelegationVerifier } from '@precinct/delegation';
import {
  LOCAL_AUDIT_AUDIENCE,
  LOCAL_DELEGATION_ISSUER,
  localDelegationKeys,
} from './delegation.js';
import { acquireLock, LOG_DIR, removeState, writeState, type PartState } from './state.js';
import { findNatsServer, startLocalNats } from './nats.js';
import { ATTEST_AUDIENCE } from './workloads.js';
import { startDemoPlatform } from './demo-platform.js';
import {
  DEFAULT_EGRESS_PROVIDERS,
  SECRETS_DISABLED_ROW,
  egressGrantScope,
  parseEgressProviders,
  secretsManagerFromEnv,
  startEgressBroker,
  startSecretsPlatform,
  type EgressBroker,
} from './secrets-platform.js';
import { VaultAdmin } from '@precinct/secrets';

/** The trust domain of the local platform. */
const TRUST_DOMAIN = 'precinct.local';

const SUMMARY = 'Start the whole local platform and print where everything is.';

/**
 * Fixed default ports, so URLs, the kubeconfig and the OIDC issuer stay the same from one
 * start to the next. Each has a flag; 0 picks any free port (tests use that).
 */
const PORTS = {
  'kube-port': ['6443', 'the local Kubernetes auth API (kube-dev)'],
  'audit-port': ['8070', 'the audit store'],
  'identity-port': ['8060', "the identity server's admin and attestation API"],
  'oidc-port': ['8061', "the identity server's OIDC discovery (JWT-SVID issuer)"],
  'identity-health-port': ['8062', "the identity server's /health, /ready, /metrics"],
  'nats-port': ['4222', 'nats-server (when one >= 2.10 is found)'],
  'nats-callout-health-port': ['8063', "the NATS callout's /health, /ready, /metrics"],
  'token-port': ['8443', 'the token service (Transaction Tokens, SVID mTLS)'],
  'token-health-port': ['8081', "the token service's /health, /ready, /metrics"],
  'audit-mtls-port': ['8071', "the audit store's SVID mTLS front (the demo's decisions)"],
  'audit-mtls-health-port': ['8072', "the audit store mTLS front's /healthz, /readyz"],
  'dashboard-port': ['8080', 'the dashboard (web UI and its API)'],
  'user-service-port': ['8082', 'the demo user-service (mTLS)'],
  'agent-service-port': ['8083', 'the demo agent-service (mTLS)'],
  'document-service-port': ['8084', 'the demo document-service (mTLS)'],
  'policy-service-port': ['8085', 'the demo policy service (mTLS, OPA-compatible API)'],
  'dashboard-health-port': ['9080', "the dashboard's /health, /ready, /metrics"],
  'user-service-health-port': ['9082', "the user-service's /health, /ready, /metrics"],
  'agent-service-health-port': ['9083', "the agent-service's /health, /ready, /metrics"],
  'document-service-health-port': ['9084', "the document-service's /health, /ready, /metrics"],
  'policy-service-health-port': ['9085', "the policy service's /health, /ready, /metrics"],
  'records-service-port': ['8086', 'the records service (mTLS; with a secrets manager)'],
  'records-service-health-port': ['9086', "the records service's /health, /ready, /metrics"],
  'egress-broker-port': [
    '8087',
    "the egress broker (mTLS; people's tokens, with a secrets manager)",
  ],
  'egress-broker-health-port': ['9087', "the egress broker's /health, /ready"],
} as const;

type PortFlag = keyof typeof PORTS;

function portFlags(): Record<PortFlag, FlagSpec> {
  const out = {} as Record<PortFlag, FlagSpec>;
  for (const [name, [def, what]] of Object.entries(PORTS) as Array<
    [PortFlag, readonly [string, string]]
  >) {
    out[name] = {
      type: 'string',
      description: `port of ${what} (0 = any free port)`,
      default: def,
      placeholder: 'PORT',
      kind: 'port',
    };
  }
  return out;
}

/**
 * One pino logger per service, writing to `<dataDir>/logs/<name>.log` (0600), and to stderr as
 * well with --verbose: the banner stays readable and `precinct logs` finds everything.
 */
function serviceLogger(logDir: string, name: string, verbose: boolean): Logger {
  const file = createWriteStream(join(logDir, `${name}.log`), { flags: 'a', mode: 0o600 });
  return createLogger(name, process.env.LOG_LEVEL ?? 'info', verbose ? [file, 2] : file);
}

const list = (v: unknown) =>
  typeof v === 'string'
    ? v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
    : undefined;

/**
 * The dashboard's identity source and auditors from up's flags. The client secret comes from a
 * file or the environment, never from a flag's value (it would show in `ps`).
 */
function dashboardFlags(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): NonNullable<Parameters<typeof startDemoPlatform>[0]['dashboard']> {
  const auditors = list(flags.auditors);
  const issuer = flags['oidc-issuer'];
  if (typeof issuer !== 'string' || issuer === '') return auditors ? { auditors } : {};
  const file = flags['oidc-client-secret-file'];
  const secret =
    typeof file === 'string' && file !== ''
      ? readFileSync(resolve(file), 'utf8').trim()
      : env.PRECINCT_OIDC_CLIENT_SECRET;
  if (!secret)
    throw new UsageError(
      '--oidc-issuer needs the client secret in --oidc-client-secret-file or PRECINCT_OIDC_CLIENT_SECRET',
    );
  const groups = list(flags['oidc-auditor-groups']);
  return {
    ...(auditors ? { auditors } : {}),
    oidc: {
      issuer,
      clientId: String(flags['oidc-client-id']),
      clientSecret: secret,
      usernameClaim: String(flags['oidc-username-claim']),
      ...(groups ? { auditorGroups: groups } : {}),
      ...(flags['oidc-logout-at-provider'] === true ? { endProviderSession: true } : {}),
    },
  };
}

function table(rows: Array<[string, string]>): string[] {
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`);
}

export const upCommand: Command = {
  name: 'up',
  summary: SUMMARY,
  async run(argv) {
    const flags = parseFlags(
      'up',
      SUMMARY,
      argv,
      {
        'data-dir': {
          type: 'string',
          description: 'where state lives between runs (one running up per folder)',
          default: '.precinct',
          placeholder: 'DIR',
        },
        'advertise-host': {
          type: 'string',
          description: 'host other processes (containers, namespaces) use to reach the services',
          default: 'localhost',
          placeholder: 'HOST',
        },
        ...portFlags(),
        verbose: { type: 'boolean', description: 'stream every service log to stderr too' },
        'no-nats': {
          type: 'boolean',
          description: 'do not start nats-server and the NATS callout',
        },
        'records-lease-ttl': {
          type: 'string',
          description:
            "lease TTL of the records service's PostgreSQL credentials (with VAULT_ADDR)",
          default: '5m',
          placeholder: 'DURATION',
          kind: 'duration',
        },
        'oidc-issuer': {
          type: 'string',
          description:
            'people sign in to the dashboard at this OpenID Provider instead of demo passwords',
          placeholder: 'URL',
        },
        'oidc-client-id': {
          type: 'string',
          description: "the dashboard's client id at the provider",
          default: 'precinct-dashboard',
          placeholder: 'ID',
        },
        'oidc-client-secret-file': {
          type: 'string',
          description: 'file holding the client secret (or PRECINCT_OIDC_CLIENT_SECRET)',
          placeholder: 'FILE',
        },
        'oidc-username-claim': {
          type: 'string',
          description: 'the ID token or userinfo claim naming the person',
          default: 'preferred_username',
          placeholder: 'CLAIM',
        },
        'oidc-auditor-groups': {
          type: 'string',
          description:
            "members of these provider groups (comma-separated, 'groups' claim) are auditors",
          placeholder: 'GROUPS',
        },
        'oidc-logout-at-provider': {
          type: 'boolean',
          description: 'log out at the provider too (register <dashboard URL>/ as post-logout URI)',
        },
        auditors: {
          type: 'string',
          description:
            "people who may read the dashboard's Audit view (comma-separated; default: the admin department, bob)",
          placeholder: 'NAMES',
        },
        'egress-provider': {
          type: 'string',
          multiple: true,
          description:
            'a third-party API people store tokens for and agents call through the egress broker (repeatable; with VAULT_ADDR; default github=https://api.github.com)',
          placeholder: 'NAME=URL',
        },
        'records-lease-max-ttl': {
          type: 'string',
          description:
            "max TTL of the records service's credentials: renewed until then, then rotated",
          default: '1h',
          placeholder: 'DURATION',
          kind: 'duration',
        },
      },
      [
        'Environment: DATABASE_URL (PostgreSQL for every store instead of embedded PGlite),',
        'OPA_URL (an OPA server with the demo policy instead of the in-process Wasm),',
        'VAULT_ADDR + VAULT_TOKEN (OpenBao/Vault and an admin token for set-up; needs DATABASE_URL):',
        'the records service on leased PostgreSQL credentials and the egress broker (docs/secrets.md),',
        'LOG_LEVEL (default info). Logs go to <data-dir>/logs/<service>.log: `npx precinct logs`.',
        'From another terminal: `npx precinct status`, `npx precinct down`.',
      ].join('\n'),
    );
    if (!flags) return;
    const started = Date.now();
    const dataDir = resolve(String(flags['data-dir']));
    const advertiseHost = String(flags['advertise-host']);
    const port = (f: PortFlag) => Number(flags[f]);
    const databaseUrl = process.env.DATABASE_URL
      ? parseDatabaseUrl(process.env.DATABASE_URL)
      : undefined;
    const verbose = flags.verbose === true;
    const secretsManager = secretsManagerFromEnv(process.env, databaseUrl);
    const leaseTtl = parseDuration(String(flags['records-lease-ttl']), '--records-lease-ttl');
    const leaseMaxTtl = parseDuration(
      String(flags['records-lease-max-ttl']),
      '--records-lease-max-ttl',
    );
    if (leaseTtl < 1 || leaseMaxTtl < leaseTtl) {
      throw new UsageError('--records-lease-ttl must be >= 1s and <= --records-lease-max-ttl');
    }
    const dashboardOptions = dashboardFlags(flags, process.env);
    const given = flags['egress-provider'];
    const egressProviders = parseEgressProviders(
      Array.isArray(given) && given.length > 0 ? given.map(String) : DEFAULT_EGRESS_PROVIDERS,
    );

    const release = acquireLock(dataDir);
    const logDir = join(dataDir, LOG_DIR);
    mkdirSync(logDir, { recursive: true, mode: 0o700 });
    const parts: PartState[] = [];
    const closers: Array<() => Promise<void>> = [];
    const stopAll = async () => {
      for (const close of closers.reverse()) await close().catch(() => undefined);
      removeState(dataDir);
      release();
    };
    const upLog = serviceLogger(logDir, 'up', verbose);
    let banner: string[];
    try {
      const kube = await startKubeDev({
        listen: { host: '::', port: port('kube-port'), setting: '--kube-port' },
        advertiseHost,
        dataDir: resolve(dataDir, 'kube-dev'),
        kubeconfigPath: resolve(dataDir, 'kubeconfig'),
        logger: serviceLogger(logDir, 'kube-dev', verbose),
        // Verifiers outside the cluster (nats-callout with JWKS_URL) read the JWKS without a token.
        anonymousIssuerDiscovery: true,
      });
      closers.push(() => kube.close());
      parts.push({
        name: 'kube-dev',
        url: kube.url,
        healthUrl: `${kube.url}/readyz`,
        caFile: resolve(dataDir, 'kube-dev', 'ca.crt'),
      });

      // Workloads attest with a projected ServiceAccount token (audience `precinct`), which
      // the identity server checks by TokenReview against kube-dev.
      const kubeConfig = loadKubeConfig({ KUBECONFIG: kube.kubeconfigPath });
      // Revocation: deleting a ServiceAccount (or a pod a token is bound to) ends the
      // identity server's bindings resting on it and evicts the audit store's cached tokens.
      const watchLog = serviceLogger(logDir, 'revocation', verbose);
      const serviceAccounts = watchServiceAccounts({ kubeConfig, logger: watchLog });
      const pods = watchPods({ kubeConfig, logger: watchLog });
      closers.push(async () => {
        serviceAccounts.close();
        pods.close();
      });
      await Promise.all([serviceAccounts.ready(), pods.ready()]);
      const identity = await startIdentityServer({
        trustDomain: TRUST_DOMAIN,
        dataDir: resolve(dataDir, 'identity-server'),
        ...(databaseUrl ? { databaseUrl } : {}),
        advertiseHost,
        admin: { host: '::', port: port('identity-port'), setting: '--identity-port' },
        oidc: { host: '::', port: port('oidc-port'), setting: '--oidc-port' },
        health: {
          host: '::',
          port: port('identity-health-port'),
          setting: '--identity-health-port',
        },
        logger: serviceLogger(logDir, 'identity-server', verbose),
        verifier: createTokenReviewVerifier({ kubeConfig, audiences: [ATTEST_AUDIENCE] }),
        attestAudience: ATTEST_AUDIENCE,
        revocation: { serviceAccounts, pods },
      });
      closers.push(() => identity.close());
      parts.push(
        {
          name: 'identity-server',
          url: identity.adminUrl,
          healthUrl: `${identity.healthUrl}/ready`,
        },
        {
          name: 'oidc-issuer',
          url: identity.issuer,
          healthUrl: `${identity.issuer}/.well-known/openid-configuration`,
        },
        {
          name: 'workload-api',
          url: identity.workloadApiAddress,
          healthUrl: `${identity.healthUrl}/ready`,
        },
      );
      // One entry per ServiceAccount that `up` creates or that every namespace has.
      const wanted = `spiffe://${TRUST_DOMAIN}/ns/default/sa/default`;
      if (!identity.entries.list().some((e) => e.spiffeId === wanted)) {
        await identity.entries.create({
          spiffeId: wanted,
          selectors: ['k8s:ns:default', 'k8s:sa:default'],
        });
      }

      // The audit store, writers authenticated by TokenReview (tokens for the store's own
      // audience only) and authorized by SubjectAccessReview against kube-dev; exports signed
      // with a key kept in the data dir so they verify across restarts.
      const auditDir = resolve(dataDir, 'audit-store');
      mkdirSync(auditDir, { recursive: true, mode: 0o700 });
      const keyPath = resolve(auditDir, 'export-signing-key.pem');
      if (!existsSync(keyPath)) {
        const { privateKey } = generateKeyPairSync('ed25519');
        writeFileSync(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }), {
          mode: 0o600,
        });
      }
      // Delegation tokens from the local issuer (`precinct delegate`) become on_behalf_of.
      const delegationKeys = await localDelegationKeys(dataDir, true);
      const auditVerifier = cachingVerifier(
        createTokenReviewVerifier({ kubeConfig, audiences: [LOCAL_AUDIT_AUDIENCE] }),
      );
      const stopEviction = evictOnServiceAccountChange(auditVerifier, serviceAccounts);
      closers.push(async () => stopEviction());
      // One database for the audit store's two fronts (bearer tokens here, SVID mTLS for the
      // demo's services below); up owns it and closes it after both.
      const auditDb = databaseUrl
        ? createPgDb(databaseUrl)
        : await createPgliteDb(resolve(auditDir, 'db'));
      closers.push(() => auditDb.close());
      const audit = await startAuditStore({
        db: auditDb,
        port: port('audit-port'),
        advertiseHost,
        signingKeyPem: readFileSync(keyPath),
        logger: serviceLogger(logDir, 'audit-store', verbose),
        auth: {
          verifier: auditVerifier,
          authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig }),
        },
        tokenAudiences: [LOCAL_AUDIT_AUDIENCE],
        delegation: createDelegationVerifier({
          issuer: LOCAL_DELEGATION_ISSUER,
          audience: LOCAL_AUDIT_AUDIENCE,
          jwks: delegationKeys.jwks,
        }),
      });
      closers.push(() => audit.close());
      parts.push({ name: 'audit-store', url: audit.url, healthUrl: `${audit.url}/readyz` });

      // NATS with the auth callout: ServiceAccount tokens (audience `nats`) become NATS users.
      let natsRow: [string, string];
      let natsMonitorUrl: string | undefined;
      const found = flags['no-nats'] ? { missing: 'not started (--no-nats)' } : findNatsServer();
      if ('path' in found) {
        const nats = await startLocalNats({
          binary: found.path,
          dir: resolve(dataDir, 'nats'),
          logFile: join(logDir, 'nats-server.log'),
          port: port('nats-port'),
          healthPort: port('nats-callout-health-port'),
          advertiseHost,
          kube: {
            url: kube.url,
            issuer: kube.issuer,
            caFile: resolve(dataDir, 'kube-dev', 'ca.crt'),
            kubeconfigPath: kube.kubeconfigPath,
          },
          logger: serviceLogger(logDir, 'nats-callout', verbose),
        });
        closers.push(() => nats.close());
        natsMonitorUrl = nats.monitorUrl || undefined;
        parts.push(
          { name: 'nats-server', url: nats.url, pid: nats.pid },
          { name: 'nats-callout', url: nats.healthUrl, healthUrl: nats.healthUrl },
        );
        natsRow = [
          'nats',
          `${nats.url}   nats-server ${found.version}, auth callout (token audience nats)`,
        ];
      } else {
        natsRow = ['nats', found.missing];
      }

      // The delegated-access platform: token service, policy, the demo's services, dashboard.
      const demoRows: Array<[string, string]> = [];
      // People's third-party tokens: the egress broker starts with the dashboard when a secrets
      // manager is configured (it needs the token service's keys; the dashboard needs its URL).
      const egressRef: { broker?: EgressBroker } = {};
      const sm = secretsManager;
      const egressHooks = sm
        ? {
            wrapGrantScope: (inner: Parameters<typeof egressGrantScope>[0]) =>
              egressGrantScope(inner, {
                providers: Object.keys(egressProviders),
                isPerson: (s) => s.startsWith(`spiffe://${TRUST_DOMAIN}/user/`),
              }),
            peopleTokens: async (ctx: Parameters<typeof startEgressBroker>[0]['ctx']) => {
              const broker = await startEgressBroker({
                config: sm,
                admin: new VaultAdmin({
                  address: sm.address,
                  token: sm.adminToken,
                  ...(sm.namespace ? { namespace: sm.namespace } : {}),
                }),
                trustDomain: TRUST_DOMAIN,
                kubeConfig,
                identity,
                providers: egressProviders,
                ctx,
                advertiseHost,
                ports: {
                  broker: port('egress-broker-port'),
                  brokerHealth: port('egress-broker-health-port'),
                },
                logger: (name) => serviceLogger(logDir, name, verbose),
              });
              closers.push(() => broker.close());
              egressRef.broker = broker;
              return { backend: broker.peopleTokens, broker };
            },
          }
        : {};
      if (!flags['no-demo']) {
        const platform = await startDemoPlatform({
          trustDomain: TRUST_DOMAIN,
          kubeConfig,
          identity,
          auditDb,
          auditSigningKeyPem: readFileSync(keyPath),
          dataDir,
          advertiseHost,
          ...(process.env.OPA_URL ? { opaUrl: process.env.OPA_URL } : {}),
          ...(natsMonitorUrl ? { natsMonitorUrl } : {}),
          dashboard: dashboardOptions,
          ...egressHooks,
          logger: (name) => serviceLogger(logDir, name, verbose),
          ports: {
            tokenService: port('token-port'),
            tokenServiceHealth: port('token-health-port'),
            auditMtls: port('audit-mtls-port'),
            auditMtlsHealth: port('audit-mtls-health-port'),
            dashboard: port('dashboard-port'),
            userService: port('user-service-port'),
            agentService: port('agent-service-port'),
            documentService: port('document-service-port'),
            policyService: port('policy-service-port'),
            dashboardHealth: port('dashboard-health-port'),
            userServiceHealth: port('user-service-health-port'),
            agentServiceHealth: port('agent-service-health-port'),
            documentServiceHealth: port('document-service-health-port'),
            policyServiceHealth: port('policy-service-health-port'),
          },
        });
        closers.push(() => platform.close());
        parts.push(...platform.parts);
        if (egressRef.broker) parts.push(...egressRef.broker.parts);
        demoRows.push(
          ['token-service', `${platform.tokenServiceUrl}   Transaction Tokens (SVID mTLS)`],
          ['policy', platform.policyEngine],
          [
            'demo services',
            `user ${platform.demo.urls.userService}, agent ${platform.demo.urls.agentService}, document ${platform.demo.urls.documentService}, policy ${platform.demo.urls.policyService}`,
          ],
          [
            'dashboard',
            dashboardOptions.oidc
              ? `${platform.demo.urls.dashboard}   sign in at ${dashboardOptions.oidc.issuer} (redirect URI ${platform.demo.urls.dashboard}/api/auth/oidc/callback)`
              : `${platform.demo.urls.dashboard}   sign in as alice, bob or carol (passwords: ${join(dataDir, 'demo-users.json')})`,
          ],
        );
      }

      // The records service on leased credentials, only when a secrets manager is configured.
      let secretsRows: Array<[string, string]> = [SECRETS_DISABLED_ROW];
      if (secretsManager) {
        const secrets = await startSecretsPlatform({
          config: secretsManager,
          trustDomain: TRUST_DOMAIN,
          kubeConfig,
          identity,
          db: auditDb,
          advertiseHost,
          ports: {
            records: port('records-service-port'),
            recordsHealth: port('records-service-health-port'),
          },
          leaseTtlSeconds: leaseTtl,
          leaseMaxTtlSeconds: leaseMaxTtl,
          // The ServiceAccount the banner's "Try:" lines use.
          callers: [wanted],
          logger: (name) => serviceLogger(logDir, name, verbose),
        });
        closers.push(() => secrets.close());
        parts.push(...secrets.parts);
        secretsRows = [...secrets.banner, ...(egressRef.broker?.banner ?? [])];
      }

      writeState(dataDir, {
        pid: process.pid,
        startedAt: new Date(started).toISOString(),
        dataDir,
        parts,
      });
      const storage = databaseUrl
        ? `PostgreSQL ${redactUrl(databaseUrl)}`
        : `PGlite in ${resolve(auditDir, 'db')}`;
      banner = [
        `Precinct is up (${((Date.now() - started) / 1000).toFixed(1)} s). State, logs and keys: ${dataDir}`,
        '',
        ...table([
          ['kube-dev', `${kube.url}   kubeconfig ${kube.kubeconfigPath}`],
          ['identity-server', `${identity.adminUrl}   trust domain ${TRUST_DOMAIN}`],
          ['  Workload API', `${identity.workloadApiAddress}   (attest first: POST /v1/attest)`],
          ['  OIDC issuer', identity.issuer],
          ['audit-store', `${audit.url}   ${storage}`],
          ['delegation', `issuer ${LOCAL_DELEGATION_ISSUER} (npx precinct delegate --help)`],
          natsRow,
          ...demoRows,
          ...secretsRows,
        ]),
        '',
        'Try:',
        `  export KUBECONFIG=${kube.kubeconfigPath}`,
        '  kubectl create token default --audience data-storage-service   # a token for the audit store',
        '  kubectl auth can-i get pods --as=system:serviceaccount:default:default',
        `  npx precinct status${flags['data-dir'] === '.precinct' ? '' : ` --data-dir ${dataDir}`}`,
        `  npx precinct logs${flags['data-dir'] === '.precinct' ? '' : ` --data-dir ${dataDir}`}`,
        '',
        'Ctrl-C (or `npx precinct down`) stops everything.',
      ];
    } catch (err) {
      await stopAll();
      throw err;
    }
    console.log(banner.join('\n'));
    upLog.info({ ms: Date.now() - started }, 'platform up');
    const signal = await waitForShutdown();
    const stopping = Date.now();
    await stopAll();
    console.log(
      `Precinct stopped${signal ? ` (${signal})` : ''} in ${((Date.now() - stopping) / 1000).toFixed(1)} s; state kept in ${dataDir}.`,
    );
  },
};

import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import type { IdentityServer } from '@precinct/identity-server';
import { UsageError, type Logger } from '@precinct/runtime';
import {
  RotatingPool,
  VaultAdmin,
  VaultSession,
  createEgressBroker,
  peopleTokenKey,
  workloadPolicy,
  type EgressAuditEvent,
  type EgressProvider,
} from '@precinct/secrets';
import { createTxnTokenVerifier } from '@precinct/delegation';
import { authorizeMemberOf, peerSpiffeId, spiffeServer, tlsServerOptions } from '@precinct/spiffe';
import { JwtSource, type X509Source } from '@precinct/spiffe/workloadapi';
import { AuditClient } from '@precinct/audit-store';
import { brokerPeopleTokens, type PeopleTokensBackend } from '@precinct/dashboard';
import type { GrantScope } from '@precinct/token-service';
import {
  LEASE_EXPIRY_METRIC,
  RECORDS_GRANTS,
  RECORDS_SCHEMA,
  MtlsClient,
  startRecordsService,
} from '@precinct/demo';
import { startLocalWorkload } from './workloads.js';
import type { PartState } from './state.js';

/**
 * The secrets half of `precinct up`, when a secrets manager is configured: OpenBao/Vault is set
 * up for the local identity server (JWT auth trusting its OIDC discovery, a role and policy for
 * the records service, the database secrets engine on DATABASE_URL's PostgreSQL), then the
 * records service starts with its own SVID (attested through kube-dev like every demo workload),
 * logs in with its JWT-SVID and serves on leased, rotating PostgreSQL credentials. Every name is
 * prefixed `precinct-` so a shared server's other mounts and roles are left alone.
 */

/** JWT auth mount trusting the local identity server. */
export const SECRETS_JWT_MOUNT = 'precinct-jwt';
/** Database secrets engine mount. */
export const SECRETS_DATABASE_MOUNT = 'precinct-database';
/** The audience workloads ask their JWT-SVID for when logging in. */
export const SECRETS_AUDIENCE = 'vault';
/** KV v2 mount holding people's third-party tokens (`people/<peopleTokenKey>/<provider>`). */
export const EGRESS_KV_MOUNT = 'precinct-people';
/** JWT role, policy and database role of the records service (one name for the three). */
const RECORDS_ROLE = 'precinct-records';
/** The database connection the engine manages roles on. */
const DB_CONNECTION = 'precinct';
const NAMESPACE = 'precinct-demo';
const SERVICE_ACCOUNT = 'records-service';

/**
 * The least an admin token (VAULT_TOKEN) needs for `up`'s set-up, as an ACL policy: the root
 * token is not required. docs/secrets.md shows it; the test runs `up` with a token holding
 * only this policy.
 */
export const SECRETS_ADMIN_POLICY = `# JWT auth trusting the local identity server (enabling an auth method needs sudo)
path "sys/auth/${SECRETS_JWT_MOUNT}" { capabilities = ["create", "update", "sudo"] }
path "auth/${SECRETS_JWT_MOUNT}/config" { capabilities = ["create", "update"] }
path "auth/${SECRETS_JWT_MOUNT}/role/precinct-*" { capabilities = ["create", "update"] }
# the workloads' policies
path "sys/policies/acl/precinct-*" { capabilities = ["create", "update"] }
# the database secrets engine on DATABASE_URL
path "sys/mounts/${SECRETS_DATABASE_MOUNT}" { capabilities = ["create", "update"] }
path "${SECRETS_DATABASE_MOUNT}/config/*" { capabilities = ["create", "update"] }
path "${SECRETS_DATABASE_MOUNT}/roles/precinct-*" { capabilities = ["create", "update"] }
# people's third-party tokens (KV v2), for the egress broker
path "sys/mounts/${EGRESS_KV_MOUNT}" { capabilities = ["create", "update"] }
`;

/** A configured secrets manager: everything `up` needs to set it up and use it. */
export interface SecretsManagerConfig {
  /** OpenBao/Vault address (VAULT_ADDR). */
  address: string;
  /** Admin token for the set-up only (VAULT_TOKEN); workloads never see it. */
  adminToken: string;
  /** Enterprise/OpenBao namespace (VAULT_NAMESPACE), if any. */
  namespace?: string;
  /** The PostgreSQL server the database secrets engine manages roles on (DATABASE_URL). */
  databaseUrl: string;
}

/**
 * The secrets manager `up` uses, from the environment: undefined without VAULT_ADDR (nothing
 * changes); with it, VAULT_TOKEN and a server PostgreSQL in DATABASE_URL are required, and every
 * missing piece is reported at once (never a silent start without them).
 */
export function secretsManagerFromEnv(
  env: NodeJS.ProcessEnv,
  databaseUrl: string | undefined,
): SecretsManagerConfig | undefined {
  const address = env.VAULT_ADDR?.trim();
  if (!address) return undefined;
  const problems: string[] = [];
  try {
    const u = new URL(address);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    if (u.username || u.password) problems.push('VAULT_ADDR must not carry credentials');
  } catch {
    problems.push(`VAULT_ADDR must be an http(s) URL such as http://127.0.0.1:8200`);
  }
  const adminToken = env.VAULT_TOKEN?.trim();
  if (!adminToken) {
    problems.push(
      'VAULT_TOKEN is required with VAULT_ADDR (an admin token: up configures JWT auth, a policy and the database secrets engine with it)',
    );
  }
  if (!databaseUrl) {
    problems.push(
      'DATABASE_URL is required with VAULT_ADDR: the database secrets engine creates roles on a PostgreSQL server, and the embedded PGlite is not one (the secrets manager cannot connect to it). Set DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DB, or unset VAULT_ADDR',
    );
  } else {
    const u = new URL(databaseUrl);
    if (!u.username) {
      problems.push(
        'DATABASE_URL must name its user (postgres://USER:PASSWORD@HOST/DB): the secrets manager logs in as that user to create and drop leased roles',
      );
    }
  }
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
  return {
    address,
    adminToken: adminToken!,
    databaseUrl: databaseUrl!,
    ...(env.VAULT_NAMESPACE?.trim() ? { namespace: env.VAULT_NAMESPACE.trim() } : {}),
  };
}

/** The banner line when no secrets manager is configured. */
export const SECRETS_DISABLED_ROW: [string, string] = [
  'records-service',
  "off: set VAULT_ADDR, VAULT_TOKEN (admin) and DATABASE_URL to run it on leased PostgreSQL credentials, with the egress broker for people's third-party tokens (docs/secrets.md)",
];

/** Where the leased credentials connect: DATABASE_URL without its user and password. */
export function leasedPoolTarget(databaseUrl: string) {
  const u = new URL(databaseUrl);
  const socket = u.searchParams.get('host');
  const sslmode = u.searchParams.get('sslmode');
  return {
    host: socket ?? u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : 5432,
    database: decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username),
    ...(sslmode && sslmode !== 'disable' && sslmode !== 'prefer' && sslmode !== 'allow'
      ? { ssl: { rejectUnauthorized: sslmode === 'verify-full' || sslmode === 'verify-ca' } }
      : {}),
  };
}

/** DATABASE_URL as the engine's template: `{{username}}`/`{{password}}` stand for its admin. */
export function engineConnectionUrl(databaseUrl: string): string {
  const u = new URL(databaseUrl);
  return `postgresql://{{username}}:{{password}}@${u.host}${u.pathname}${u.search}`;
}

/** Runs one set-up step; its error names the step and the server, never a credential. */
async function step<T>(
  config: SecretsManagerConfig,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    // SecretsError and pg messages name the operation, path or SQLSTATE, never a credential.
    throw new Error(
      `secrets manager ${config.address}: ${what} failed: ${(err as Error).message.replace(/^secrets: /, '')}`,
      { cause: err },
    );
  }
}

/**
 * The set-up `up` makes with the admin token (JWT auth trusting `issuer`, the records table,
 * the database secrets engine and role, the records service's policy and JWT role). Safe to
 * run again against the same server: existing mounts are kept, the rest is rewritten.
 */
export async function configureSecretsManager(o: {
  config: SecretsManagerConfig;
  /** The identity server's OIDC issuer. */
  issuer: string;
  trustDomain: string;
  db: { query(sql: string, params?: unknown[]): Promise<unknown> };
  leaseTtlSeconds: number;
  leaseMaxTtlSeconds: number;
}): Promise<{ admin: VaultAdmin; spiffeId: string }> {
  const { config } = o;
  const spiffeId = `spiffe://${o.trustDomain}/ns/${NAMESPACE}/sa/${SERVICE_ACCOUNT}`;
  const admin = new VaultAdmin({
    address: config.address,
    token: config.adminToken,
    ...(config.namespace ? { namespace: config.namespace } : {}),
  });
  const db = new URL(config.databaseUrl);
  await step(config, 'JWT auth trusting the identity server', () =>
    admin.configureJwtAuth({ issuer: o.issuer, mount: SECRETS_JWT_MOUNT }),
  );
  await step(config, 'the records table', async () => {
    for (const sql of RECORDS_SCHEMA) await o.db.query(sql);
  });
  await step(config, 'the database secrets engine', async () => {
    await admin.enableDatabaseEngine(SECRETS_DATABASE_MOUNT);
    await admin.configurePostgres({
      name: DB_CONNECTION,
      mount: SECRETS_DATABASE_MOUNT,
      connectionUrl: engineConnectionUrl(config.databaseUrl),
      username: decodeURIComponent(db.username),
      password: decodeURIComponent(db.password),
      allowedRoles: [RECORDS_ROLE],
    });
    await admin.writeDatabaseRole({
      name: RECORDS_ROLE,
      db: DB_CONNECTION,
      mount: SECRETS_DATABASE_MOUNT,
      grants: [...RECORDS_GRANTS],
      ttlSeconds: o.leaseTtlSeconds,
      maxTtlSeconds: o.leaseMaxTtlSeconds,
    });
  });
  await step(config, 'the records service role and policy', async () => {
    await admin.writePolicy(
      RECORDS_ROLE,
      workloadPolicy({ databaseRoles: [RECORDS_ROLE], dbMount: SECRETS_DATABASE_MOUNT }),
    );
    await admin.writeWorkloadRole({
      role: RECORDS_ROLE,
      spiffeId,
      audience: SECRETS_AUDIENCE,
      policies: [RECORDS_ROLE],
      mount: SECRETS_JWT_MOUNT,
    });
  });
  return { admin, spiffeId };
}

export interface SecretsPlatform {
  parts: PartState[];
  banner: Array<[string, string]>;
  /** The admin client, for other set-up on the same server (e.g. the egress broker's role). */
  admin: VaultAdmin;
  close(): Promise<void>;
}

/**
 * Sets up the secrets manager and starts the records service. Rejects with an error naming the
 * step and the server (never a token or password) when the secrets manager or the database
 * refuses; nothing is left running then.
 */
export async function startSecretsPlatform(o: {
  config: SecretsManagerConfig;
  trustDomain: string;
  kubeConfig: KubeConfig;
  identity: IdentityServer;
  /** The platform's admin connection to DATABASE_URL (creates the records table). */
  db: { query(sql: string, params?: unknown[]): Promise<unknown> };
  advertiseHost: string;
  ports: { records: number; recordsHealth: number };
  /** Lease TTL and max TTL of the records service's database credentials, in seconds. */
  leaseTtlSeconds: number;
  leaseMaxTtlSeconds: number;
  /** SPIFFE IDs that may call the records service. */
  callers: string[];
  logger: (name: string) => Logger;
}): Promise<SecretsPlatform> {
  const { config } = o;
  const closers: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const log = o.logger('records-service');
    const { admin, spiffeId } = await configureSecretsManager({
      config,
      issuer: o.identity.issuer,
      trustDomain: o.trustDomain,
      db: o.db,
      leaseTtlSeconds: o.leaseTtlSeconds,
      leaseMaxTtlSeconds: o.leaseMaxTtlSeconds,
    });

    const workload = await startLocalWorkload({
      kubeConfig: o.kubeConfig,
      identity: o.identity,
      namespace: NAMESPACE,
      serviceAccount: SERVICE_ACCOUNT,
      spiffeIds: [spiffeId],
      logger: o.logger('workloads'),
    });
    closers.push(() => workload.close());
    const jwtSource = await JwtSource.create({ address: workload.address, timeoutMs: 20_000 });
    closers.push(() => jwtSource.close());
    const session = await step(config, 'login with the JWT-SVID', () =>
      VaultSession.login({
        address: config.address,
        ...(config.namespace ? { namespace: config.namespace } : {}),
        role: RECORDS_ROLE,
        audience: SECRETS_AUDIENCE,
        mount: SECRETS_JWT_MOUNT,
        jwtSource,
        logger: log,
      }),
    );
    closers.push(() => session.close());
    const pool = await step(config, 'leasing database credentials', () =>
      RotatingPool.create({
        session,
        role: RECORDS_ROLE,
        mount: SECRETS_DATABASE_MOUNT,
        pool: { ...leasedPoolTarget(config.databaseUrl), max: 4, connectionTimeoutMillis: 5_000 },
        logger: log,
      }),
    );
    closers.push(() => pool.close());
    const records = await startRecordsService({
      svidSource: workload.source,
      bundleSource: workload.source,
      database: {
        query: (text, values) => pool.query(text, values),
        ready: () => pool.ready(),
        credentialsExpireAt: () => pool.leaseExpiresAt,
        rotations: () => pool.rotations,
      },
      callers: o.callers,
      port: o.ports.records,
      healthPort: o.ports.recordsHealth,
      advertiseHost: o.advertiseHost,
      logger: log,
    });
    closers.push(() => records.close());
    const ttl = (s: number) => (s % 60 === 0 ? `${s / 60}m` : `${s}s`);
    return {
      admin,
      parts: [
        { name: 'records-service', url: records.url, healthUrl: `${records.healthUrl}/ready` },
      ],
      banner: [
        [
          'records-service',
          `${records.url}   PostgreSQL on credentials leased from ${config.address} with its JWT-SVID (lease ${ttl(o.leaseTtlSeconds)}, max ${ttl(o.leaseMaxTtlSeconds)})`,
        ],
        ['  callers', o.callers.join(', ')],
      ],
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * `precinct status`'s extra column for the records service: when its database lease expires,
 * read from the service's metrics (plain probe port). Undefined for other parts or when the
 * metric cannot be read.
 */
export async function recordsLeaseDetail(
  part: PartState,
  now = Date.now(),
): Promise<string | undefined> {
  if (part.name !== 'records-service' || !part.healthUrl) return undefined;
  try {
    const res = await fetch(part.healthUrl.replace(/\/ready$/, '/metrics'), {
      signal: AbortSignal.timeout(2_000),
    });
    const text = await res.text();
    const m = new RegExp(`^${LEASE_EXPIRY_METRIC} ([0-9.e+]+)$`, 'm').exec(text);
    if (!res.ok || !m) return undefined;
    const at = Number(m[1]) * 1000;
    const left = Math.round((at - now) / 1000);
    const when = new Date(at).toISOString().replace(/\.\d+Z$/, 'Z');
    return left > 0
      ? `database lease expires ${when} (in ${left} s)`
      : `database lease EXPIRED at ${when}`;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// People's third-party tokens under `up`: the egress broker (issue 13).

/** JWT role and policy of the egress broker: read and write people's tokens. */
const BROKER_ROLE = 'precinct-egress-broker';
/** JWT role and policy of the dashboard: people's tokens' metadata only (status, remove). */
const DASHBOARD_ROLE = 'precinct-dashboard';
/** The broker's ServiceAccount in the demo namespace (the audit store admits it as a writer). */
export const BROKER_SERVICE_ACCOUNT = 'egress-broker';
const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** The scope a person's Transaction Token needs to store a token for `provider`. */
export const storeScope = (provider: string) => `secrets:store:${provider}`;
/** The scope an agent's Transaction Token needs to call `provider` through the broker. */
export const callScope = (provider: string) => `egress:${provider}`;

/** The default `--egress-provider`. */
export const DEFAULT_EGRESS_PROVIDERS = ['github=https://api.github.com'];

/**
 * `--egress-provider NAME=URL` values (repeatable) as a provider table; every problem at once.
 * The URL is the API's base: the agent's path is appended; http is for loopback stand-ins.
 */
export function parseEgressProviders(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const problems: string[] = [];
  for (const v of values) {
    const eq = v.indexOf('=');
    const name = eq > 0 ? v.slice(0, eq) : '';
    const url = eq > 0 ? v.slice(eq + 1) : '';
    if (!PROVIDER_NAME.test(name)) {
      problems.push(
        `--egress-provider ${JSON.stringify(v)}: expected NAME=URL, NAME of lowercase letters, digits, - and _ (e.g. github=https://api.github.com)`,
      );
      continue;
    }
    if (Object.hasOwn(out, name)) {
      problems.push(`--egress-provider ${name} is given twice`);
      continue;
    }
    try {
      const u = new URL(url);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
      if (u.username || u.password || u.search || u.hash) throw new Error('extra');
      out[name] = u.toString();
    } catch {
      problems.push(
        `--egress-provider ${name}: the URL must be http(s), without credentials, query or fragment`,
      );
    }
  }
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
  return out;
}

/**
 * Wraps the platform's scope decision (the policy-backed grantScope) with people's-token scopes
 * for `providers`: `secrets:store:<provider>` to a person acting directly (the dashboard stores
 * their token with it), `egress:<provider>` to the person (so an agent's replacement exchange
 * can narrow to it; the broker refuses a call that names no agent) and to an agent acting for
 * them (the token service checked the person's consent before asking). Only subjects for which
 * `isPerson` holds get either; every other scope is the inner decision's, unchanged.
 */
export function egressGrantScope(
  inner: GrantScope,
  o: { providers: readonly string[]; isPerson: (subject: string) => boolean },
): GrantScope {
  const store = new Set(o.providers.map(storeScope));
  const call = new Set(o.providers.map(callScope));
  return async (r) => {
    const ours = r.requested.filter((s) => store.has(s) || call.has(s));
    const rest = r.requested.filter((s) => !store.has(s) && !call.has(s));
    const granted = ours.filter(
      (s) => o.isPerson(r.person) && (call.has(s) || r.agent === undefined),
    );
    if (rest.length === 0) return granted;
    const answer = await inner({ ...r, requested: rest });
    return Array.isArray(answer)
      ? [...answer, ...granted]
      : { ...answer, granted: [...answer.granted, ...granted] };
  };
}

/** The policies of the broker (people's tokens) and of the dashboard (their metadata only). */
export function egressPolicies(mount = EGRESS_KV_MOUNT) {
  return {
    broker: `path "${mount}/data/people/*" { capabilities = ["create", "update", "read"] }\n`,
    dashboard: `path "${mount}/metadata/people/*" { capabilities = ["read", "delete"] }\n`,
  };
}

/** The broker's set-up on the secrets manager: the KV mount, two policies, two JWT roles. */
async function configureEgress(
  config: SecretsManagerConfig,
  admin: VaultAdmin,
  ids: { broker: string; dashboard: string },
) {
  await step(
    config,
    "the people's tokens mount and the broker's and dashboard's roles",
    async () => {
      await admin.enableKvV2(EGRESS_KV_MOUNT);
      const p = egressPolicies();
      await admin.writePolicy(BROKER_ROLE, p.broker);
      await admin.writePolicy(DASHBOARD_ROLE, p.dashboard);
      for (const [role, spiffeId] of [
        [BROKER_ROLE, ids.broker],
        [DASHBOARD_ROLE, ids.dashboard],
      ] as const) {
        await admin.writeWorkloadRole({
          role,
          spiffeId,
          audience: SECRETS_AUDIENCE,
          policies: [role],
          mount: SECRETS_JWT_MOUNT,
        });
      }
    },
  );
}

/** What the demo platform hands the egress broker once the token service runs. */
export interface EgressContext {
  /** The token service: its SPIFFE ID (the tokens' `iss`) and its current public keys. */
  tokenService: { issuer: string; jwks(): JSONWebKeySet };
  /** The dashboard's Workload API address (its JWT-SVID logs in to the secrets manager). */
  dashboardAddress: string;
  /** The dashboard's X.509 SVIDs (its mTLS client certificate to the broker). */
  dashboardSource: X509Source;
  /** The audit store's mTLS front, which admits the broker as a writer. */
  audit?: { url: string; spiffeId: string };
}

/** An egress decision as an audit event, under its `txn` (indexed by person and agent). */
function auditEvent(e: EgressAuditEvent) {
  const denied = e.outcome === 'denied';
  return {
    event_type: `egress.${e.action}`,
    event_category: 'authorization',
    event_action: e.action === 'store' ? 'write' : 'use',
    event_outcome: denied ? ('failure' as const) : ('success' as const),
    actor_type: e.agent ? 'agent' : 'user',
    actor_id: e.agent ?? e.person,
    resource_type: 'third_party_token',
    resource_id: e.provider,
    correlation_id: e.txn,
    severity: denied ? 'warning' : 'info',
    ...(e.reason ? { error_code: e.reason } : {}),
    event_data: {
      decision: denied ? 'deny' : 'allow',
      reason: e.reason ?? e.outcome,
      outcome: e.outcome,
      txn: e.txn,
      on_behalf_of: e.person,
      agent: e.agent ?? null,
      caller: e.caller,
      method: e.method,
      path: e.path.slice(0, 512),
    },
  };
}

/** How long a release waits for the audit store to commit its event before refusing (503). */
const AUDIT_TIMEOUT_MS = 5_000;

export interface EgressBroker {
  url: string;
  spiffeId: string;
  /** The dashboard's /api/secrets backend, talking to this broker. */
  peopleTokens: PeopleTokensBackend;
  parts: PartState[];
  banner: Array<[string, string]>;
  close(): Promise<void>;
}

/**
 * Starts the egress broker for `up`: the secrets manager's set-up (a KV v2 mount for people's
 * tokens, the broker's role reading and writing them, the dashboard's role on their metadata
 * only), the broker with its own SVID (attested through kube-dev like every demo workload) on
 * SVID mTLS, and the dashboard's backend for /api/secrets. A store is accepted only from the
 * dashboard, for the person's own token; a call only from an agent of the trust domain whose
 * Transaction Token names it, with the provider's scope.
 */
export async function startEgressBroker(o: {
  config: SecretsManagerConfig;
  admin: VaultAdmin;
  trustDomain: string;
  kubeConfig: KubeConfig;
  identity: IdentityServer;
  /** Provider name -> API base URL (`parseEgressProviders`). */
  providers: Record<string, string>;
  ctx: EgressContext;
  advertiseHost: string;
  ports: { broker: number; brokerHealth: number };
  logger: (name: string) => Logger;
}): Promise<EgressBroker> {
  const { config, trustDomain: td } = o;
  const closers: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const log = o.logger('egress-broker');
    const brokerId = `spiffe://${td}/ns/${NAMESPACE}/sa/${BROKER_SERVICE_ACCOUNT}`;
    const dashboardId = o.ctx.dashboardSource.getX509Svid().id.toString();
    // The broker starts with the dashboard, before the records service's set-up: trust first.
    await step(config, 'JWT auth trusting the identity server', () =>
      o.admin.configureJwtAuth({ issuer: o.identity.issuer, mount: SECRETS_JWT_MOUNT }),
    );
    await configureEgress(config, o.admin, { broker: brokerId, dashboard: dashboardId });
    const workload = await startLocalWorkload({
      kubeConfig: o.kubeConfig,
      identity: o.identity,
      namespace: NAMESPACE,
      serviceAccount: BROKER_SERVICE_ACCOUNT,
      spiffeIds: [brokerId],
      logger: o.logger('workloads'),
    });
    closers.push(() => workload.close());
    const login = async (role: string, address: string) => {
      const jwtSource = await JwtSource.create({ address, timeoutMs: 20_000 });
      closers.push(() => jwtSource.close());
      const session = await step(config, `login with the JWT-SVID (${role})`, () =>
        VaultSession.login({
          address: config.address,
          ...(config.namespace ? { namespace: config.namespace } : {}),
          role,
          audience: SECRETS_AUDIENCE,
          mount: SECRETS_JWT_MOUNT,
          jwtSource,
          logger: log,
        }),
      );
      closers.push(() => session.close());
      return session;
    };
    const brokerSession = await login(BROKER_ROLE, workload.address);
    const dashboardSession = await login(DASHBOARD_ROLE, o.ctx.dashboardAddress);

    // Releases and stores wait for the audit store's commit; if it does not come, nothing is.
    let auditClient: AuditClient | undefined;
    if (o.ctx.audit) {
      const auditTls = new MtlsClient(workload.source, workload.source, o.ctx.audit.spiffeId);
      closers.push(() => auditTls.close());
      auditClient = new AuditClient({
        url: o.ctx.audit.url,
        fetch: auditTls.fetch,
        flushIntervalMs: 10,
        retryMaxMs: 1_000,
      });
      const c = auditClient;
      closers.push(() => c.close({ abort: true }));
    }
    const audit = async (e: EgressAuditEvent) => {
      log.info({ audit: e }, `egress ${e.action} ${e.outcome}`);
      if (!auditClient) return;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          auditClient.write(auditEvent(e)),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('audit store timeout')), AUDIT_TIMEOUT_MS);
          }),
        ]);
      } catch (err) {
        log.warn({ err: (err as Error).message, txn: e.txn }, 'egress audit write failed');
        throw err;
      } finally {
        clearTimeout(timer);
      }
    };

    const names = Object.keys(o.providers);
    const providers: Record<string, EgressProvider> = {};
    for (const n of names) providers[n] = { baseUrl: o.providers[n]! };
    const agentPrefix = `spiffe://${td}/agent/`;
    const personPrefix = `spiffe://${td}/user/`;
    const broker = createEgressBroker({
      session: brokerSession,
      kvMount: EGRESS_KV_MOUNT,
      providers,
      txnTokens: createTxnTokenVerifier({
        trustDomain: td,
        issuer: o.ctx.tokenService.issuer,
        // In process with the token service: its current keys, rotation included.
        jwks: (header, token) => createLocalJWKSet(o.ctx.tokenService.jwks())(header, token),
      }),
      authenticateCaller: async (req) => peerSpiffeId(req.socket)?.toString(),
      authorize: (r) =>
        r.person.startsWith(personPrefix) &&
        (r.action === 'store'
          ? r.caller === dashboardId && r.scope.includes(storeScope(r.provider))
          : r.agent !== undefined &&
            r.agent.startsWith(agentPrefix) &&
            r.scope.includes(callScope(r.provider))),
      // Every decision on a verified token, under its txn: the broker's log and the audit store.
      audit,
      logger: log,
    });
    const tlsOpts = tlsServerOptions(workload.source, workload.source, authorizeMemberOf(td));
    const server = spiffeServer(
      createHttpsServer(tlsOpts, (req, res) => void broker.handle(req, res)),
      tlsOpts,
    );
    // Probes on a plain port: the main one asks every caller for an SVID.
    const health = createServer((req, res) => {
      const known = req.url === '/health' || req.url === '/ready';
      const ok = req.url === '/health' || (req.url === '/ready' && brokerSession.ready());
      res.statusCode = known ? (ok ? 200 : 503) : 404;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable' }));
    });
    const listen = (srv: Server, port: number) =>
      new Promise<number>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(port, '::', () => resolve((srv.address() as AddressInfo).port));
      });
    const stop = (srv: Server) => () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      });
    const port = await listen(server, o.ports.broker);
    closers.push(stop(server));
    const healthPort = await listen(health, o.ports.brokerHealth);
    closers.push(stop(health));
    const host = o.advertiseHost.includes(':') ? `[${o.advertiseHost}]` : o.advertiseHost;
    const url = `https://${host}:${port}`;
    const healthUrl = `http://${host}:${healthPort}`;

    const dashboardToBroker = new MtlsClient(
      o.ctx.dashboardSource,
      o.ctx.dashboardSource,
      brokerId,
    );
    closers.push(() => dashboardToBroker.close());
    const peopleTokens = brokerPeopleTokens({
      brokerUrl: url,
      dispatcher: dashboardToBroker.dispatcher,
      providers: names,
      metadata: dashboardSession,
      kvMount: EGRESS_KV_MOUNT,
      // The broker's own path rule, so status and remove see what it stored.
      personKey: peopleTokenKey,
      storeScope,
      callScope,
    });
    log.info({ url, providers: names }, 'egress broker listening');
    return {
      url,
      spiffeId: brokerId,
      peopleTokens,
      parts: [{ name: 'egress-broker', url, healthUrl: `${healthUrl}/ready` }],
      banner: [
        [
          'egress-broker',
          `${url}   people's tokens for ${names.map((n) => `${n} ${o.providers[n]}`).join(', ')}, held in ${config.address} (${EGRESS_KV_MOUNT}/)`,
        ],
        [
          '  use',
          `people store a token on the dashboard's Connections page; agents acting for them call /v1/egress/<provider>/... (scope ${callScope('<provider>')})`,
        ],
      ],
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

import type { KubeConfig } from '@kubernetes/client-node';
import type { IdentityServer } from '@precinct/identity-server';
import { UsageError, type Logger } from '@precinct/runtime';
import { RotatingPool, VaultAdmin, VaultSession, workloadPolicy } from '@precinct/secrets';
import { JwtSource } from '@precinct/spiffe/workloadapi';
import {
  LEASE_EXPIRY_METRIC,
  RECORDS_GRANTS,
  RECORDS_SCHEMA,
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
  'off: set VAULT_ADDR, VAULT_TOKEN (admin) and DATABASE_URL to run it on leased PostgreSQL credentials (docs/secrets.md)',
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

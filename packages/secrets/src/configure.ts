import { SecretsError } from './errors.js';
import { VaultHttp, checkPath, type VaultHttpOptions } from './http.js';

/**
 * Set-up calls an operator makes with an admin token (`precinct secrets configure`, tests):
 * the JWT auth method trusting the SPIFFE issuer, one role + policy per workload, the database
 * secrets engine. Each is idempotent (a second run rewrites the same configuration).
 */
export class VaultAdmin {
  readonly http: VaultHttp;
  readonly #token: string;

  constructor(opts: VaultHttpOptions & { token: string }) {
    this.http = new VaultHttp(opts);
    this.#token = opts.token;
  }

  request(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) {
    return this.http.request(method, path, { token: this.#token, body });
  }

  /** Mounts an auth method or secrets engine at `path` unless something is mounted there. */
  async #mount(kind: 'auth' | 'mounts', path: string, type: string, options?: object) {
    try {
      await this.request('POST', `sys/${kind}/${checkPath(path)}`, {
        type,
        ...(options ? { options } : {}),
      });
    } catch (err) {
      // 400 "path is already in use": keep the existing mount (idempotent set-up).
      if (!(err instanceof SecretsError && err.status === 400)) throw err;
    }
  }

  /**
   * Enables JWT auth at `mount` (default `jwt`) trusting the SPIFFE issuer: OIDC discovery at
   * `issuer` (plain http is accepted for a loopback issuer; use https elsewhere), or its JWKS
   * with `jwksUrl`. JWT-SVIDs are ES256 or RS256 (JWT-SVID spec).
   */
  async configureJwtAuth(opts: {
    issuer: string;
    jwksUrl?: string;
    mount?: string;
    /** PEM CA for an https issuer with a private CA. */
    caPem?: string;
  }): Promise<void> {
    const mount = opts.mount ?? 'jwt';
    await this.#mount('auth', mount, 'jwt');
    const algs = ['ES256', 'ES384', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    const body = opts.jwksUrl
      ? {
          jwks_url: opts.jwksUrl,
          bound_issuer: opts.issuer,
          jwt_supported_algs: algs,
          ...(opts.caPem ? { jwks_ca_pem: opts.caPem } : {}),
        }
      : {
          oidc_discovery_url: opts.issuer,
          bound_issuer: opts.issuer,
          jwt_supported_algs: algs,
          ...(opts.caPem ? { oidc_discovery_ca_pem: opts.caPem } : {}),
        };
    await this.request('POST', `auth/${checkPath(mount)}/config`, body);
  }

  /** Writes an ACL policy. */
  async writePolicy(name: string, hcl: string): Promise<void> {
    await this.request('PUT', `sys/policies/acl/${checkPath(name)}`, { policy: hcl });
  }

  /**
   * One workload: a JWT role bound to its SPIFFE ID (`bound_subject`) and the audience, whose
   * tokens carry `policies`.
   */
  async writeWorkloadRole(opts: {
    role: string;
    spiffeId: string;
    audience: string;
    policies: string[];
    mount?: string;
    /** Token TTL and max TTL in seconds. Defaults 900 and 3600. */
    ttlSeconds?: number;
    maxTtlSeconds?: number;
    /**
     * Leeway on exp/nbf in seconds (Vault's default is 150 s for exp when unset); -1 disables
     * it. JWT-SVIDs are short-lived, so keep it small.
     */
    leewaySeconds?: number;
  }): Promise<void> {
    if (!opts.spiffeId.startsWith('spiffe://'))
      throw new TypeError('secrets: spiffeId must be a SPIFFE ID');
    await this.request(
      'POST',
      `auth/${checkPath(opts.mount ?? 'jwt')}/role/${checkPath(opts.role)}`,
      {
        role_type: 'jwt',
        user_claim: 'sub',
        bound_subject: opts.spiffeId,
        bound_audiences: [opts.audience],
        token_policies: opts.policies,
        token_ttl: opts.ttlSeconds ?? 900,
        token_max_ttl: opts.maxTtlSeconds ?? 3600,
        token_type: 'service',
        expiration_leeway: opts.leewaySeconds ?? 5,
        not_before_leeway: opts.leewaySeconds ?? 5,
        clock_skew_leeway: opts.leewaySeconds ?? 5,
      },
    );
  }

  /** Mounts a KV version 2 secrets engine at `mount` unless something is mounted there. */
  async enableKvV2(mount: string): Promise<void> {
    await this.#mount('mounts', mount, 'kv', { version: '2' });
  }

  /** Mounts the database secrets engine at `mount` (default `database`). */
  async enableDatabaseEngine(mount = 'database'): Promise<void> {
    await this.#mount('mounts', mount, 'database');
  }

  /**
   * A PostgreSQL connection Vault manages roles on. `connectionUrl` holds `{{username}}` and
   * `{{password}}` templates; the admin credentials go in their own fields (Vault keeps them).
   */
  async configurePostgres(opts: {
    name: string;
    connectionUrl: string;
    username: string;
    password: string;
    allowedRoles: string[];
    mount?: string;
  }): Promise<void> {
    await this.request(
      'POST',
      `${checkPath(opts.mount ?? 'database')}/config/${checkPath(opts.name)}`,
      {
        plugin_name: 'postgresql-database-plugin',
        connection_url: opts.connectionUrl,
        username: opts.username,
        password: opts.password,
        allowed_roles: opts.allowedRoles,
        verify_connection: true,
      },
    );
  }

  /**
   * A dynamic role: each lease is a new PostgreSQL login role created with `grants` (SQL run
   * after CREATE ROLE, `{{name}}` is the role) and dropped on revocation, after its sessions
   * are terminated.
   */
  async writeDatabaseRole(opts: {
    name: string;
    db: string;
    grants?: string[];
    ttlSeconds: number;
    maxTtlSeconds: number;
    mount?: string;
  }): Promise<void> {
    await this.request(
      'POST',
      `${checkPath(opts.mount ?? 'database')}/roles/${checkPath(opts.name)}`,
      {
        db_name: opts.db,
        creation_statements: [
          `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
          ...(opts.grants ?? []),
        ],
        revocation_statements: postgresRevocationStatements,
        default_ttl: opts.ttlSeconds,
        max_ttl: opts.maxTtlSeconds,
      },
    );
  }
}

/**
 * Revocation ends the role's sessions before dropping it: without pg_terminate_backend an open
 * connection outlives its lease (DROP ROLE would also fail while it is connected).
 */
export const postgresRevocationStatements = [
  `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';`,
  `REASSIGN OWNED BY "{{name}}" TO CURRENT_USER;`,
  `DROP OWNED BY "{{name}}";`,
  `DROP ROLE IF EXISTS "{{name}}";`,
];

/** The policy a workload needs: read its KV subtree, lease its database role. */
export function workloadPolicy(opts: {
  kvPaths?: string[];
  databaseRoles?: string[];
  kvMount?: string;
  dbMount?: string;
}): string {
  const kv = opts.kvMount ?? 'secret';
  const db = opts.dbMount ?? 'database';
  const parts: string[] = [];
  for (const p of opts.kvPaths ?? []) {
    parts.push(
      `path "${kv}/data/${checkPath(p.replace(/\/\*$/, ''))}${p.endsWith('/*') ? '/*' : ''}" {\n  capabilities = ["read"]\n}`,
    );
  }
  for (const r of opts.databaseRoles ?? []) {
    parts.push(`path "${db}/creds/${checkPath(r)}" {\n  capabilities = ["read"]\n}`);
  }
  if ((opts.databaseRoles ?? []).length > 0) {
    // Renewing is in Vault's default policy; revoking a lease the workload holds is not.
    parts.push(`path "sys/leases/revoke" {\n  capabilities = ["update"]\n}`);
  }
  return parts.join('\n');
}

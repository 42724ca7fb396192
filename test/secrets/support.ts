// Shared set-up for test/secrets: a real identity server (SVIDs over the Workload API, OIDC
// discovery), a real Vault in -dev mode, a real PostgreSQL with password authentication.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { JwtSource } from '@precinct/spiffe/workloadapi';
import {
  startIdentityServer,
  type IdentityServer,
  type TokenVerifier,
} from '@precinct/identity-server';
import {
  startPostgres,
  startVault,
  type PostgresServer,
  type VaultServer,
} from '@precinct/testing';
import { VaultAdmin } from '@precinct/secrets';

export const TD = 'secrets.test';
export const AUDIENCE = 'vault';
export const spiffeId = (sa: string) => `spiffe://${TD}/ns/apps/sa/${sa}`;

/** A log sink that keeps every line, to assert that no secret reaches a log. */
export function captureLogger() {
  const lines: string[] = [];
  const log = (level: string) => (obj: object, msg?: string) =>
    lines.push(JSON.stringify({ level, ...obj, msg }));
  return { lines, logger: { debug: log('debug'), info: log('info'), warn: log('warn') } };
}

/**
 * The identity server with a ServiceAccount-token verifier that knows one random token per
 * workload (attestation is not what these tests are about), and a JwtSource per workload.
 */
export async function startIdentity(
  workloads: string[],
  jwtSvidTtl: Record<string, number> = {},
  serverOpts: { jwtKeyTtlMs?: number } = {},
): Promise<{
  identity: IdentityServer;
  sources: Map<string, JwtSource>;
  /** Each workload's Workload API address (for an X509Source too). */
  addresses: Map<string, string>;
  close(): Promise<void>;
}> {
  const tokens = new Map<string, string>();
  for (const w of workloads) tokens.set(randomBytes(16).toString('hex'), w);
  const verifier: TokenVerifier = {
    async verify(token: string) {
      const sa = tokens.get(token);
      if (!sa) throw Object.assign(new Error('bad signature'), { code: 'ERR_TOKEN_SIGNATURE' });
      return {
        uid: `uid-${sa}`,
        namespace: 'apps',
        serviceAccountName: sa,
        expiresAt: new Date(Date.now() + 3_600_000),
      };
    },
  };
  const identity = await startIdentityServer({
    trustDomain: TD,
    admin: { host: '127.0.0.1', port: 0 },
    oidc: { host: '127.0.0.1', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    advertiseHost: '127.0.0.1',
    verifier,
    ...serverOpts,
  });
  const sources = new Map<string, JwtSource>();
  const addresses = new Map<string, string>();
  for (const [token, sa] of tokens) {
    await identity.entries.create({
      spiffeId: spiffeId(sa),
      selectors: ['k8s:ns:apps', `k8s:sa:${sa}`],
      ...(jwtSvidTtl[sa] ? { jwtSvidTtl: jwtSvidTtl[sa] } : {}),
    });
    const res = await fetch(`${identity.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (res.status !== 200) throw new Error(`attest ${sa}: ${res.status} ${await res.text()}`);
    const { address } = (await res.json()) as { address: string };
    addresses.set(sa, address);
    sources.set(sa, await JwtSource.create({ address, timeoutMs: 20_000 }));
  }
  return {
    identity,
    sources,
    addresses,
    async close() {
      for (const s of sources.values()) await s.close();
      await identity.close();
    },
  };
}

export async function startVaultWithJwtAuth(
  identity: IdentityServer,
): Promise<{ vault: VaultServer; admin: VaultAdmin }> {
  const vault = await startVault();
  const admin = new VaultAdmin({ address: vault.url, token: vault.rootToken });
  await admin.configureJwtAuth({ issuer: identity.issuer });
  return { vault, admin };
}

/**
 * PostgreSQL with scram-sha-256 on TCP (so leased passwords are really checked), trust on the
 * unix socket only. Returns the admin password Vault connects with.
 */
export async function startPostgresWithPasswords(): Promise<{
  pg: PostgresServer;
  adminPassword: string;
}> {
  const server = await startPostgres({ settings: { max_connections: '100' } });
  const adminPassword = randomBytes(18).toString('base64url');
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  await c.query(`ALTER ROLE postgres PASSWORD '${adminPassword}'`);
  await c.query('CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, v text)');
  await c.query("INSERT INTO items (v) VALUES ('one'), ('two')");
  writeFileSync(
    join(server.dir, 'data', 'pg_hba.conf'),
    'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n',
  );
  await c.query('SELECT pg_reload_conf()');
  await c.end();
  return { pg: server, adminPassword };
}

/** Polls `cond` until true; fails after `ms` (a bound on a hang, not a timing assertion). */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 60_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

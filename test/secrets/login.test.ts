// SVID login to a real Vault (-dev) with JWT-SVIDs from the real identity server's Workload API:
// KV v2 reads bound to the workload's role, renewal and re-login, refused forged, expired and
// mis-addressed SVIDs (each with its positive control), and no secret in any log or error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { peerSkip, type VaultServer } from '@precinct/testing';
import type { JwtSource } from '@precinct/spiffe/workloadapi';
import type { VaultAdmin } from '@precinct/secrets';
import { SecretsError, VaultSession, workloadPolicy } from '@precinct/secrets';
import { secretsCommand } from '../../cli/src/secrets.js';
import {
  AUDIENCE,
  captureLogger,
  spiffeId,
  startIdentity,
  startVaultWithJwtAuth,
  until,
} from './support.js';

const skip = peerSkip('vault');
let idp: Awaited<ReturnType<typeof startIdentity>>;
let vault: VaultServer;
let admin: VaultAdmin;
const sessions: VaultSession[] = [];
const { lines, logger } = captureLogger();
/** Every token, JWT and secret value that crossed the wire, to look for in logs and errors. */
const secrets = new Set<string>();
const errors: unknown[] = [];

/** fetch that records the credentials the client sends and receives. */
const recordingFetch: typeof fetch = async (input, init) => {
  const h = new Headers(init?.headers);
  if (h.get('x-vault-token')) secrets.add(h.get('x-vault-token')!);
  if (typeof init?.body === 'string') {
    const b = JSON.parse(init.body) as { jwt?: string };
    if (b.jwt) secrets.add(b.jwt);
  }
  const res = await fetch(input, init);
  const text = await res.clone().text();
  const m = /"client_token":"([^"]+)"/.exec(text);
  if (m) secrets.add(m[1]!);
  return res;
};

const KV_VALUE = `s3cr3t-${Math.random().toString(36).slice(2)}`;

async function session(
  sa: string,
  role = sa,
  extra: Partial<Parameters<typeof VaultSession.login>[0]> = {},
) {
  const s = await VaultSession.login({
    address: vault.url,
    role,
    audience: AUDIENCE,
    jwtSource: idp.sources.get(sa)! as JwtSource,
    logger,
    fetch: recordingFetch,
    ...extra,
  });
  sessions.push(s);
  return s;
}

async function refused(p: Promise<unknown>, code: string) {
  const err = await p.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  errors.push(err);
  assert.ok(err instanceof SecretsError, String(err));
  assert.equal(err.code, code);
}

before(async () => {
  if (skip) return;
  secrets.add(KV_VALUE);
  idp = await startIdentity(['orders', 'billing', 'shortlived'], { shortlived: 4 });
  ({ vault, admin } = await startVaultWithJwtAuth(idp.identity));
  for (const sa of ['orders', 'billing']) {
    await admin.writePolicy(sa, workloadPolicy({ kvPaths: [`apps/${sa}/*`] }));
    await admin.writeWorkloadRole({
      role: sa,
      spiffeId: spiffeId(sa),
      audience: AUDIENCE,
      policies: [sa],
    });
    await admin.request('POST', `secret/data/apps/${sa}/db`, {
      data: { password: `${KV_VALUE}-${sa}` },
    });
    secrets.add(`${KV_VALUE}-${sa}`);
  }
  await admin.writeWorkloadRole({
    role: 'shortlived',
    spiffeId: spiffeId('shortlived'),
    audience: AUDIENCE,
    policies: ['orders'],
    leewaySeconds: -1,
  });
  await admin.writeWorkloadRole({
    role: 'renewing',
    spiffeId: spiffeId('orders'),
    audience: AUDIENCE,
    policies: ['orders'],
    ttlSeconds: 2,
    maxTtlSeconds: 5,
  });
});

after(async () => {
  for (const s of sessions) await s.close();
  await vault?.close();
  await idp?.close();
});

describe('SVID login', { skip }, () => {
  test('a workload logs in with its JWT-SVID and reads its own KV v2 secret', async () => {
    const s = await session('orders');
    assert.ok(s.ready());
    const got = await s.readKv('apps/orders/db');
    assert.equal(got.data.password, `${KV_VALUE}-orders`);
    assert.equal(got.version, 1);
  });

  test("a workload cannot read another workload's secret (control: the owner can)", async () => {
    const orders = await session('orders');
    await refused(orders.readKv('apps/billing/db'), 'ERR_SECRETS_DENIED');
    const billing = await session('billing');
    assert.equal((await billing.readKv('apps/billing/db')).data.password, `${KV_VALUE}-billing`);
  });

  test("a workload cannot log in as another workload's role (bound_subject; control above)", async () => {
    await refused(session('billing', 'orders'), 'ERR_SECRETS_LOGIN');
    const ok = await session('orders', 'orders');
    assert.ok(ok.ready());
  });

  test('a JWT-SVID for another audience is refused (control: the configured one)', async () => {
    await refused(session('orders', 'orders', { audience: 'not-vault' }), 'ERR_SECRETS_LOGIN');
    assert.ok((await session('orders', 'orders', { audience: AUDIENCE })).ready());
  });

  test('a forged JWT-SVID (same header and claims, another key) is refused; the genuine one is accepted', async () => {
    const genuine = await idp.sources.get('orders')!.fetchJwtSvid({ audience: AUDIENCE });
    const [h, p] = genuine.token.split('.');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const sig = sign('sha256', Buffer.from(`${h}.${p}`), {
      key: privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    const forged = `${h}.${p}.${sig.toString('base64url')}`;
    secrets.add(forged);
    const login = (jwt: string) =>
      admin.http.request('POST', 'auth/jwt/login', { body: { role: 'orders', jwt } });
    await refused(login(forged), 'ERR_SECRETS_RESPONSE');
    const ok = await login(genuine.token);
    assert.ok(ok.auth?.client_token);
    secrets.add(ok.auth.client_token);
  });

  test('an expired JWT-SVID is refused (control: a fresh one from the same entry)', async () => {
    const src = idp.sources.get('shortlived')!;
    const old = await src.fetchJwtSvid({ audience: AUDIENCE });
    secrets.add(old.token);
    const login = (jwt: string) =>
      admin.http.request('POST', 'auth/jwt/login', { body: { role: 'shortlived', jwt } });
    await until(() => Date.now() > old.expiry.getTime() + 1_000, 'the SVID to expire');
    await refused(login(old.token), 'ERR_SECRETS_RESPONSE');
    const fresh = await src.fetchJwtSvid({ audience: AUDIENCE });
    const ok = await login(fresh.token);
    assert.ok(ok.auth?.client_token);
    secrets.add(ok.auth.client_token);
  });

  test('the token is renewed, and replaced by a fresh login at its max TTL', async () => {
    const s = await session('orders', 'renewing');
    await until(() => s.renewals >= 1 && s.logins >= 2, 'a renewal and a re-login', 30_000);
    assert.equal((await s.readKv('apps/orders/db')).data.password, `${KV_VALUE}-orders`);
  });

  test('a revoked token is replaced by a fresh login on the next request', async () => {
    const s = await session('orders');
    const before = s.logins;
    await s.readKv('apps/orders/db');
    // Revoke every token issued through the JWT login (as an operator would on an incident).
    await admin.request('PUT', 'sys/leases/revoke-prefix/auth/jwt/login', {});
    assert.equal((await s.readKv('apps/orders/db')).data.password, `${KV_VALUE}-orders`);
    assert.equal(s.logins, before + 1);
  });

  test('relogin() logs in again with a fresh JWT-SVID', async () => {
    const s = await session('orders');
    const before = s.logins;
    await s.relogin();
    assert.equal(s.logins, before + 1);
  });

  test('`precinct secrets configure` sets up the auth method, role and policy a workload logs in with', async () => {
    const env = { VAULT_ADDR: process.env.VAULT_ADDR, VAULT_TOKEN: process.env.VAULT_TOKEN };
    process.env.VAULT_ADDR = vault.url;
    process.env.VAULT_TOKEN = vault.rootToken;
    const log = console.log;
    console.log = () => {};
    try {
      await secretsCommand.run([
        'configure',
        `--issuer=${idp.identity.issuer}`,
        `--workload=cli-orders=${spiffeId('orders')}`,
        '--kv=cli-orders=apps/orders/*',
      ]);
    } finally {
      console.log = log;
      for (const [k, v] of Object.entries(env)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    const s = await session('orders', 'cli-orders');
    assert.equal((await s.readKv('apps/orders/db')).data.password, `${KV_VALUE}-orders`);
    await refused(s.readKv('apps/billing/db'), 'ERR_SECRETS_DENIED');
    await refused(session('billing', 'cli-orders'), 'ERR_SECRETS_LOGIN');
  });

  test('no token, JWT-SVID or secret value reaches a log line or an error', () => {
    assert.ok(lines.length > 0 && errors.length > 0 && secrets.size > 3);
    const text = [
      ...lines,
      ...errors.map((e) => {
        const all: string[] = [];
        for (let x: unknown = e; x; x = (x as { cause?: unknown }).cause) {
          all.push(String(x), (x as Error).stack ?? '', JSON.stringify(x));
        }
        return all.join('\n');
      }),
    ].join('\n');
    for (const s of secrets) assert.ok(!text.includes(s), 'a secret reached a log or error');
    // Control: the search itself finds what is there.
    assert.ok(text.includes('vault login'));
  });
});

// `precinct up` with a secrets manager configured, run as users run it (the precinct binary):
// a real Vault (-dev) and a real PostgreSQL (scram-sha-256, so leased passwords are checked).
// The records service logs in with its own JWT-SVID, serves on leased credentials through two
// rotations with zero failed requests; with Vault killed it turns not-ready before its lease
// expires, then refuses (503), and never serves on any other credential. People's third-party
// tokens: the egress broker runs too, a person stores a token through the dashboard API and an
// agent acting for them calls a local stand-in provider through the broker, which injects it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import {
  peerSkip,
  startVault,
  tempDir,
  type PostgresServer,
  type VaultServer,
} from '@precinct/testing';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { MtlsClient } from '@precinct/demo';
import { SecretsError, VaultAdmin } from '@precinct/secrets';
import pg from 'pg';
import { SECRETS_ADMIN_POLICY, configureSecretsManager } from '../../cli/src/secrets-platform.js';
import { startPostgresWithPasswords, until } from './support.js';

const bin = fileURLToPath(new URL('../../cli/bin/precinct.js', import.meta.url));
const skip = peerSkip('vault', 'postgres');
const RECORDS_ID = 'spiffe://precinct.local/ns/precinct-demo/sa/records-service';
const LEASE_TTL = 9; // s: a rotation every ~6 s (at 2/3), not-ready 1.5 s before expiry

let vault: VaultServer;
let server: PostgresServer;
let adminPassword: string;
let adminToken: string;
let upPorts: string[] = [];
let dir: ReturnType<typeof tempDir>;
let child: ChildProcess;
let out = '';
let source: X509Source;
let client: MtlsClient;
let recordsUrl: string;
let recordsHealth: string;
/** The stand-in third-party API: every request's path and credential, in order. */
let provider: Server;
const seen: Array<{ path: string; authorization: string }> = [];
let dashboard: string;
const tokens = {
  alice: `ghp_alice_${randomBytes(12).toString('hex')}`,
  carol: `ghp_carol_${randomBytes(12).toString('hex')}`,
};
/** Every dashboard response (status line, headers, body), searched for the tokens at the end. */
const answers: string[] = [];

const cli = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args, '--data-dir', dir.path], {
    encoding: 'utf8',
    timeout: 60_000,
  });

interface Part {
  name: string;
  url: string;
  healthy: boolean;
  detail?: string;
}
const status = (): Part[] => {
  const r = cli('status', '--json');
  return JSON.parse(r.stdout) as Part[];
};

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${recordsHealth}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} in metrics`);
  return Number(m[1]);
}
const leaseExpiresAt = async () =>
  (await metric('precinct_records_db_lease_expiry_seconds')) * 1000;

before(async () => {
  if (skip) return;
  vault = await startVault();
  const started = await startPostgresWithPasswords();
  server = started.pg;
  adminPassword = started.adminPassword;
  // up gets an admin token with the documented policy only, not the root token.
  const root = new VaultAdmin({ address: vault.url, token: vault.rootToken });
  await root.writePolicy('precinct-admin', SECRETS_ADMIN_POLICY);
  adminToken = (
    await root.request('POST', 'auth/token/create', { policies: ['precinct-admin'], ttl: '1h' })
  ).auth!.client_token;
  provider = createServer((req, res) => {
    seen.push({ path: req.url ?? '', authorization: req.headers.authorization ?? '' });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ login: 'octocat', path: req.url }));
  });
  await new Promise<void>((r) => provider.listen(0, '127.0.0.1', r));
  dir = tempDir();
  const help = spawnSync(process.execPath, [bin, 'up', '--help'], { encoding: 'utf8' }).stdout;
  const ports = [...help.matchAll(/--([a-z-]+-port) PORT/g)].map((m) => m[1]!);
  assert.ok(ports.includes('records-service-port'), help);
  upPorts = ports;
  child = spawn(
    process.execPath,
    [
      bin,
      'up',
      '--data-dir',
      dir.path,
      '--no-nats',
      '--egress-provider',
      `github=http://127.0.0.1:${(provider.address() as AddressInfo).port}`,
      '--records-lease-ttl',
      `${LEASE_TTL}s`,
      '--records-lease-max-ttl',
      `${LEASE_TTL}s`,
      ...upPorts.flatMap((p) => [`--${p}`, '0']),
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        VAULT_ADDR: vault.url,
        VAULT_TOKEN: adminToken,
        DATABASE_URL: `postgres://postgres:${encodeURIComponent(adminPassword)}@127.0.0.1:${server.port}/postgres`,
      },
    },
  );
  let err = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (err += c));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no banner in time:\n${out}\n${err}`)),
      240_000,
    );
    child.stdout!.on('data', () => {
      if (out.includes('Ctrl-C')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`up exited ${code}:\n${out}\n${err}`)));
  });
  const parts = status();
  recordsUrl = parts.find((p) => p.name === 'records-service')!.url;
  recordsHealth = new URL(
    JSON.parse(readFileSync(join(dir.path, 'up.json'), 'utf8')).parts.find(
      (p: { name: string }) => p.name === 'records-service',
    ).healthUrl,
  ).origin;

  // The caller: the default ServiceAccount, attested like a pod (token from kube-dev).
  const kubeconfig = /kubeconfig\s+(\S+)/.exec(out)![1]!;
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const sat = (
    await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
      name: 'default',
      namespace: 'default',
      body: { spec: { audiences: ['precinct'], expirationSeconds: 3600 } },
    })
  ).status!.token;
  const attest = await fetch(`${parts.find((p) => p.name === 'identity-server')!.url}/v1/attest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: sat }),
  });
  assert.equal(attest.status, 200);
  const { address } = (await attest.json()) as { address: string };
  source = await X509Source.create({ address, timeoutMs: 20_000 });
  client = new MtlsClient(source, source, RECORDS_ID);
  dashboard = parts.find((p) => p.name === 'dashboard')!.url;
});

/** Signs `user` in to the dashboard with the demo password; returns the session cookie. */
async function login(user: string): Promise<string> {
  const passwords = JSON.parse(readFileSync(join(dir.path, 'demo-users.json'), 'utf8')) as Record<
    string,
    string
  >;
  const r = await dashboardApi('', 'POST', '/api/auth/login', {
    username: user,
    password: passwords[user],
  });
  assert.equal(r.status, 200, r.text);
  return r.cookie.split(';')[0]!;
}

async function dashboardApi(cookie: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${dashboard}${path}`, {
    method,
    headers: {
      cookie,
      origin: dashboard,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  answers.push(`${res.status} ${JSON.stringify([...res.headers])} ${text}`);
  return {
    status: res.status,
    text,
    cookie: res.headers.get('set-cookie') ?? '',
    json: () => JSON.parse(text) as Record<string, unknown>,
  };
}

after(async () => {
  await client?.close();
  source?.close();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    child.kill('SIGKILL');
  }
  await vault?.close();
  await server?.close();
  await new Promise((r) => (provider ? provider.close(r) : r(undefined)));
  dir?.cleanup();
});

describe('precinct up with a secrets manager', { skip, timeout: 600_000 }, () => {
  test('banner and status list the records service and its lease', async () => {
    assert.match(out, /records-service\s+https:\/\/\S+\s+PostgreSQL on credentials leased from/);
    const p = status().find((x) => x.name === 'records-service');
    assert.ok(p, 'records-service in status');
    assert.equal(p.healthy, true);
    assert.match(p.detail ?? '', /^database lease expires \S+Z \(in \d+ s\)$/);
    const text = cli('status');
    assert.match(text.stdout, /records-service\s+healthy\s+https:\S+\s+database lease expires/);
  });

  test('routes: list, add, read one; bad input is a 4xx problem', async () => {
    const list = await client.json(`${recordsUrl}/records`);
    assert.equal(list.status, 200);
    const body = list.body as { records: Array<{ title: string }>; served_as: string };
    assert.ok(body.records.length >= 3, JSON.stringify(body));
    assert.match(body.served_as, /^v-/, 'a role the secrets manager created, not the admin');
    const added = await client.json(`${recordsUrl}/records`, { body: { title: 'from the test' } });
    assert.equal(added.status, 201);
    const rec = added.body as { id: string; created_by: string };
    assert.equal(rec.created_by, 'spiffe://precinct.local/ns/default/sa/default');
    const one = await client.json(`${recordsUrl}/records/${rec.id}`);
    assert.equal(one.status, 200);
    assert.equal((one.body as { title: string }).title, 'from the test');
    assert.deepEqual(one.body, added.body, 'the same fields when read back');
    assert.deepEqual(Object.keys(one.body as object).sort(), [
      'created_at',
      'created_by',
      'id',
      'title',
    ]);
    assert.ok(!Number.isNaN(Date.parse((one.body as { created_at: string }).created_at)));
    const again = (await client.json(`${recordsUrl}/records`)).body as { records: unknown[] };
    assert.deepEqual(again.records.at(-1), one.body, 'the newest record is listed last');
    assert.equal((await client.json(`${recordsUrl}/records/999999999`)).status, 404);
    for (const bad of ['0', 'abc', '1e3', '-1', '99999999999999999999']) {
      const r = await client.json(`${recordsUrl}/records/${bad}`);
      assert.equal(r.status, 400, bad);
      assert.equal((r.body as { status: number }).status, 400);
    }
    for (const body of [{}, { title: '' }, { title: 'x'.repeat(201) }, { title: 'a', extra: 1 }]) {
      const r = await client.json(`${recordsUrl}/records`, { body });
      assert.equal(r.status, 400, JSON.stringify(body));
    }
  });

  test('banner and status list the egress broker and its provider', () => {
    assert.match(
      out,
      /egress-broker\s+https:\/\/\S+\s+people's tokens for github http:\/\/127\.0\.0\.1:/,
    );
    const p = status().find((x) => x.name === 'egress-broker');
    assert.ok(p, 'egress-broker in status');
    assert.equal(p.healthy, true);
  });

  test('a person stores a token through the dashboard; an agent acting for her calls the provider with it, never seeing it', async () => {
    const alice = await login('alice');
    const none = await dashboardApi(alice, 'GET', '/api/secrets');
    assert.deepEqual(none.json(), {
      connected: true,
      providers: [{ provider: 'github', stored: false }],
    });
    const put = await dashboardApi(alice, 'PUT', '/api/secrets/github', { token: tokens.alice });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.json().stored, true);
    const got = await dashboardApi(alice, 'GET', '/api/secrets/github');
    assert.equal(got.json().stored, true);
    assert.match(String(got.json().updated_at), /^\d{4}-/);

    const before = seen.length;
    const call = await dashboardApi(alice, 'POST', '/api/agents/gpt4/egress/github', {
      path: 'user/repos',
    });
    assert.equal(call.status, 200, call.text);
    assert.deepEqual(call.json(), { login: 'octocat', path: '/user/repos' });
    assert.equal(seen.length, before + 1);
    assert.deepEqual(seen.at(-1), { path: '/user/repos', authorization: `Bearer ${tokens.alice}` });
    // Held under her SPIFFE ID's key, in the broker's mount; the dashboard's role reads metadata only.
    const root = new VaultAdmin({ address: vault.url, token: vault.rootToken });
    const kv = await root.request(
      'GET',
      'precinct-people/data/people/spiffe~precinct.local~user~alice/github',
    );
    assert.equal((kv.data as { data: { token: string } }).data.token, tokens.alice);
    const dashboardPolicy = await root.request('GET', 'sys/policies/acl/precinct-dashboard');
    assert.doesNotMatch(JSON.stringify(dashboardPolicy.data), /\/data\//);
  });

  test("another person's agent gets that person's token or nothing, never alice's (control: carol's own)", async () => {
    const before = seen.length;
    const bob = await login('bob');
    const refused = await dashboardApi(bob, 'POST', '/api/agents/gpt4/egress/github', {
      path: 'user',
    });
    assert.equal(refused.status, 403, refused.text);
    assert.equal(seen.length, before, 'the provider was not called for bob');
    // Carol did not let the summarizer act for her: refused even once she stored a token.
    const carol = await login('carol');
    const put = await dashboardApi(carol, 'PUT', '/api/secrets/github', { token: tokens.carol });
    assert.equal(put.status, 200, put.text);
    const noConsent = await dashboardApi(carol, 'POST', '/api/agents/summarizer/egress/github', {
      path: 'user',
    });
    assert.equal(noConsent.status, 403, noConsent.text);
    assert.equal(seen.length, before);
    const ok = await dashboardApi(carol, 'POST', '/api/agents/gpt4/egress/github', {
      path: 'user',
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(seen.at(-1)!.authorization, `Bearer ${tokens.carol}`);
  });

  test('egress decisions reach the audit store under their txn (read as bob, the auditor)', async () => {
    const bob = await login('bob');
    const gpt4 = encodeURIComponent('spiffe://precinct.local/agent/gpt4');
    const r = await dashboardApi(bob, 'GET', `/api/platform/audit/events?actor=${gpt4}`);
    assert.equal(r.status, 200, r.text);
    const events = (r.json().events as Array<Record<string, unknown>>).filter(
      (e) => e.resource_id === 'github',
    );
    assert.ok(
      events.some((e) => e.event_outcome === 'success' && e.decision === 'allow'),
      r.text,
    );
    assert.ok(
      events.some((e) => e.event_outcome === 'failure' && e.reason === 'no_token'),
      "bob's refused call",
    );
    for (const e of events) assert.match(String(e.correlation_id), /^\S{8,}$/);
  });

  test('bad input is a 4xx problem, and a removed token is no longer used (control: before removal)', async () => {
    const alice = await login('alice');
    for (const body of [{}, { path: '../admin' }, { path: 'a/../../b' }, { path: 'x', extra: 1 }]) {
      const r = await dashboardApi(alice, 'POST', '/api/agents/gpt4/egress/github', body);
      assert.ok(
        r.status >= 400 && r.status < 500,
        `${JSON.stringify(body)}: ${r.status} ${r.text}`,
      );
    }
    assert.equal(
      (await dashboardApi(alice, 'POST', '/api/agents/gpt4/egress/gitlab', { path: 'x' })).status,
      404,
    );
    assert.equal(
      (await dashboardApi('', 'POST', '/api/agents/gpt4/egress/github', { path: 'x' })).status,
      401,
    );
    assert.equal(
      (await dashboardApi(alice, 'POST', '/api/agents/gpt4/egress/github', { path: 'user' }))
        .status,
      200,
    );
    const del = await dashboardApi(alice, 'DELETE', '/api/secrets/github');
    assert.equal(del.status, 200, del.text);
    assert.equal((await dashboardApi(alice, 'GET', '/api/secrets/github')).json().stored, false);
    const before = seen.length;
    const after = await dashboardApi(alice, 'POST', '/api/agents/gpt4/egress/github', {
      path: 'user',
    });
    assert.equal(after.status, 403, after.text);
    assert.equal(seen.length, before);
  });

  test("no dashboard answer and no log carries a person's token (control: the releases are logged)", () => {
    assert.ok(answers.length > 10);
    for (const t of Object.values(tokens)) {
      assert.ok(!answers.some((a) => a.includes(t)), 'a token in a dashboard answer');
    }
    const logs = readdirSync(join(dir.path, 'logs'))
      .map((f) => readFileSync(join(dir.path, 'logs', f), 'utf8'))
      .join('\n');
    assert.match(logs, /egress call released/);
    for (const t of Object.values(tokens)) assert.ok(!logs.includes(t), 'a token in a log');
  });

  test('the set-up runs again against the same server (as a restart does)', async () => {
    const databaseUrl = `postgres://postgres:${encodeURIComponent(adminPassword)}@127.0.0.1:${server.port}/postgres`;
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const { spiffeId } = await configureSecretsManager({
        config: { address: vault.url, adminToken, databaseUrl },
        issuer: status().find((p) => p.name === 'oidc-issuer')!.url,
        trustDomain: 'precinct.local',
        db,
        leaseTtlSeconds: LEASE_TTL,
        leaseMaxTtlSeconds: LEASE_TTL,
      });
      assert.equal(spiffeId, RECORDS_ID);
      const n = await db.query<{ n: string }>('SELECT count(*) AS n FROM precinct_records');
      assert.equal(n.rows[0]!.n, '4', 'the seed rows were not added twice');
    } finally {
      await db.end();
    }
    assert.equal((await client.json(`${recordsUrl}/records`)).status, 200);
  });

  test('continuous requests through two credential rotations: zero failures', async () => {
    const users = new Set<string>();
    const failures: string[] = [];
    let ok = 0;
    let stop = false;
    const rotations0 = await metric('precinct_records_db_rotations');
    const worker = async () => {
      while (!stop) {
        try {
          const r = await client.json(`${recordsUrl}/records`);
          if (r.status !== 200) failures.push(`${r.status} ${JSON.stringify(r.body)}`);
          else {
            ok++;
            users.add((r.body as { served_as: string }).served_as);
          }
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const workers = [worker(), worker(), worker()];
    await until(
      async () => (await metric('precinct_records_db_rotations')) >= rotations0 + 2,
      'two rotations',
      120_000,
    );
    // Requests on the newest credentials too.
    await until(() => users.size >= 3, 'requests served by three leased users', 30_000);
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, []);
    assert.ok(ok > 0);
    for (const u of users) assert.match(u, /^v-/);
  });

  test('no admin credential in any service log (control: the rotations are logged)', () => {
    const logs = readdirSync(join(dir.path, 'logs'))
      .map((f) => readFileSync(join(dir.path, 'logs', f), 'utf8'))
      .join('\n');
    assert.match(logs, /database credentials rotated/);
    assert.ok(!logs.includes(adminPassword), 'the PostgreSQL admin password reached a log');
    assert.ok(!logs.includes(adminToken), 'the Vault admin token reached a log');
  });

  test('the admin token holds no more than the documented set-up policy', async () => {
    const admin = new VaultAdmin({ address: vault.url, token: adminToken });
    const err = await admin
      .writePolicy('other', 'path "secret/*" { capabilities = ["read"] }')
      .then(
        () => assert.fail('a policy outside precinct-* was written'),
        (e: unknown) => e,
      );
    assert.ok(err instanceof SecretsError);
    assert.equal(err.code, 'ERR_SECRETS_DENIED');
    await admin.writePolicy('precinct-control', 'path "secret/*" { capabilities = ["read"] }');
  });

  test('Vault down: serves on the current lease, not-ready before it expires, then 503, never another credential', async () => {
    const ready = async () => (await fetch(`${recordsHealth}/ready`)).status;
    assert.equal(await ready(), 200, 'control: ready while Vault is up');
    await vault.stop('SIGKILL');
    const expiresAt = await leaseExpiresAt();
    const served: Array<{ at: number; user: string }> = [];
    const refused: number[] = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const r = await client.json(`${recordsUrl}/records`);
        if (r.status === 200) {
          served.push({ at: Date.now(), user: (r.body as { served_as: string }).served_as });
        } else {
          assert.equal(r.status, 503);
          assert.equal((r.body as { title: string }).title, 'service unavailable');
          refused.push(Date.now());
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const w = worker();
    let notReadyAt = 0;
    await until(async () => {
      if ((await ready()) !== 503) return false;
      notReadyAt = Date.now();
      return true;
    }, 'not-ready');
    assert.ok(
      notReadyAt < expiresAt,
      `not-ready ${expiresAt - notReadyAt} ms before the lease expires`,
    );
    assert.equal(await leaseExpiresAt(), expiresAt, 'no new lease without Vault');
    await until(() => refused.some((t) => t >= expiresAt), 'requests refused after expiry', 30_000);
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await w;
    assert.ok(served.length > 0, 'control: served on the current lease after Vault went down');
    // One worker, one request at a time: once refused after expiry, never served again.
    const firstRefused = Math.min(...refused.filter((t) => t >= expiresAt));
    assert.ok(served.every((s) => s.at < firstRefused));
    assert.ok(served.every((s) => s.user === served[0]!.user && /^v-/.test(s.user)));
    const after = status().find((x) => x.name === 'records-service')!;
    assert.equal(after.healthy, false);
    assert.match(after.detail ?? '', /EXPIRED/);
  });

  test('the secrets manager back (an operator re-ran the set-up): ready again on a new lease', async () => {
    const before = await leaseExpiresAt();
    // -dev keeps nothing: the server comes back empty, as after losing its storage.
    await vault.start();
    const root = new VaultAdmin({ address: vault.url, token: vault.rootToken });
    await root.writePolicy('precinct-admin', SECRETS_ADMIN_POLICY);
    adminToken = (
      await root.request('POST', 'auth/token/create', { policies: ['precinct-admin'], ttl: '1h' })
    ).auth!.client_token;
    const databaseUrl = `postgres://postgres:${encodeURIComponent(adminPassword)}@127.0.0.1:${server.port}/postgres`;
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      await configureSecretsManager({
        config: { address: vault.url, adminToken, databaseUrl },
        issuer: status().find((p) => p.name === 'oidc-issuer')!.url,
        trustDomain: 'precinct.local',
        db,
        leaseTtlSeconds: LEASE_TTL,
        leaseMaxTtlSeconds: LEASE_TTL,
      });
    } finally {
      await db.end();
    }
    await until(
      async () => (await fetch(`${recordsHealth}/ready`)).status === 200,
      'ready again',
      60_000,
    );
    assert.ok((await leaseExpiresAt()) > before, 'a new lease');
    const r = await client.json(`${recordsUrl}/records`);
    assert.equal(r.status, 200);
    assert.match((r.body as { served_as: string }).served_as, /^v-/);
    assert.equal(status().find((x) => x.name === 'records-service')!.healthy, true);
  });

  test('precinct down revokes the lease in use: its PostgreSQL role is dropped', async () => {
    const r = await client.json(`${recordsUrl}/records`);
    const user = (r.body as { served_as: string }).served_as;
    const db = new pg.Client({
      connectionString: `postgres://postgres:${encodeURIComponent(adminPassword)}@127.0.0.1:${server.port}/postgres`,
    });
    await db.connect();
    try {
      const roles = async () =>
        (await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user])).rowCount;
      // Leased roles that could still log in (those of the crashed server's leases expired).
      const live = async () =>
        (
          await db.query(
            "SELECT 1 FROM pg_roles WHERE rolname LIKE 'v-%' AND rolvaliduntil > now()",
          )
        ).rowCount;
      assert.equal(await roles(), 1, 'control: the role exists while up runs');
      assert.ok((await live())! >= 1);
      const down = cli('down');
      assert.equal(down.status, 0, down.stderr);
      assert.equal(await roles(), 0);
      assert.equal(await live(), 0, 'every live lease revoked');
    } finally {
      await db.end();
    }
  });

  test('a secrets manager that does not answer: up fails naming it and the step, leaves nothing running', () => {
    const r = spawnSync(
      process.execPath,
      [bin, 'up', '--data-dir', dir.path, '--no-nats', ...upPorts.flatMap((p) => [`--${p}`, '0'])],
      {
        encoding: 'utf8',
        timeout: 300_000,
        env: {
          ...process.env,
          VAULT_ADDR: 'http://127.0.0.1:1',
          VAULT_TOKEN: adminToken,
          DATABASE_URL: `postgres://postgres:${encodeURIComponent(adminPassword)}@127.0.0.1:${server.port}/postgres`,
        },
      },
    );
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /secrets manager http:\/\/127\.0\.0\.1:1: JWT auth trusting the identity server failed: .*server unreachable/,
    );
    assert.ok(!r.stderr.includes(adminToken) && !r.stderr.includes(adminPassword));
    assert.doesNotMatch(r.stdout, /Precinct is up/);
    const st = cli('status');
    assert.equal(st.status, 2, 'nothing runs on the folder any more');
    assert.match(st.stderr, /no precinct up is running/);
  });
});

describe('precinct up: a secrets manager needs its token and a server PostgreSQL', () => {
  test('VAULT_ADDR without VAULT_TOKEN and DATABASE_URL: both named, nothing started', () => {
    const d = tempDir();
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, VAULT_ADDR: 'http://127.0.0.1:1' };
      delete env.VAULT_TOKEN;
      delete env.DATABASE_URL;
      const r = spawnSync(process.execPath, [bin, 'up', '--data-dir', d.path], {
        encoding: 'utf8',
        timeout: 60_000,
        env,
      });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /VAULT_TOKEN is required/);
      assert.match(r.stderr, /DATABASE_URL is required with VAULT_ADDR.*PGlite is not one/);
      assert.ok(!readdirSync(d.path).includes('up.lock'), 'nothing started');
      // The lease flags are checked as strictly (the suite above is the positive control).
      const bad = spawnSync(
        process.execPath,
        [bin, 'up', '--data-dir', d.path, '--records-lease-ttl', 'soon'],
        { encoding: 'utf8', timeout: 60_000, env },
      );
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /--records-lease-ttl must be a duration/);
    } finally {
      d.cleanup();
    }
  });
});

// The audit store with SPIFFE mTLS callers and delegation, end to end on real parts: kube-dev
// (TokenReview for attestation, RBAC for SPIFFE IDs as Users and trust domains as Groups), the
// identity server (SVIDs over the Workload API), @precinct/spiffe on both sides of the mTLS,
// and delegation tokens from @precinct/delegation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@precinct/testing';
import { Agent, fetch as undiciFetch } from 'undici';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  loadKubeConfig,
} from '@precinct/kube';
import { authorizeId, tlsClientOptions, undiciConnector } from '@precinct/spiffe';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { startIdentityServer, type IdentityServer } from '@precinct/identity-server';
import {
  createDelegationIssuer,
  createDelegationVerifier,
  generateDelegationKey,
  type DelegationIssuer,
} from '@precinct/delegation';
import { AuditClient, startAuditStore, type AuditStore } from '@precinct/audit-store';
import { grantAuditVerbs } from './support/rbac.js';

const TD = 'audit.test';
const NS = 'audit';
const APPS = 'apps';
const id = (sa: string) => `spiffe://${TD}/ns/${APPS}/sa/${sa}`;
const STORE_ID = id('store');
const AGENT_ID = id('agent');
const STRANGER_ID = id('stranger');
const DELEGATION_ISSUER = 'https://delegation.test';
const AUDIENCE = 'audit-store';

let kd: KubeDev;
let kc: KubeConfig;
let identity: IdentityServer;
let store: AuditStore;
let issuer: DelegationIssuer;
const sources = new Map<string, X509Source>();
const addresses = new Map<string, string>();
const agents: Agent[] = [];

const event = (corr: string) => ({
  event_type: 'agent.action',
  event_category: 'agent',
  event_action: 'refund',
  event_outcome: 'success' as const,
  correlation_id: corr,
  actor_type: 'user',
  actor_id: 'mallory', // a claim, never the attribution
  event_data: { amount: 5 },
});

/** fetch over SPIFFE mTLS as workload `sa`, accepting only the store's SPIFFE ID. */
function mtlsFetch(sa: string): typeof fetch {
  const src = sources.get(sa)!;
  const agent = new Agent({
    connect: undiciConnector(tlsClientOptions(src, src, authorizeId(STORE_ID))),
  });
  agents.push(agent);
  return ((input: string | URL, init?: RequestInit) =>
    undiciFetch(input, {
      ...(init as object),
      dispatcher: agent,
    })) as unknown as typeof fetch;
}

async function call(
  sa: string,
  path: string,
  init: { method?: string; json?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await mtlsFetch(sa)(new URL(path, store.url), {
    method: init.method ?? (init.json === undefined ? 'GET' : 'POST'),
    headers: {
      ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...init.headers,
    },
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function stored(corr: string): Promise<Array<Record<string, unknown>>> {
  const r = await call('agent', `/api/v1/audit/events?correlation_id=${corr}`);
  assert.equal(r.status, 200);
  return r.body.data as Array<Record<string, unknown>>;
}

before(async () => {
  kd = await startKubeDev({ listen: { host: '127.0.0.1', port: 0 }, advertiseHost: '127.0.0.1' });
  kc = loadKubeConfig({ KUBECONFIG: kd.kubeconfigPath });
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of [NS, APPS]) await core.createNamespace({ body: { metadata: { name } } });
  const sas = ['store', 'agent', 'stranger'];
  for (const name of sas)
    await core.createNamespacedServiceAccount({ namespace: APPS, body: { metadata: { name } } });
  const role = (name: string, verbs: string[], subject: { kind: string; name: string }) =>
    grantAuditVerbs(kc, NS, name, verbs, { apiGroup: 'rbac.authorization.k8s.io', ...subject });
  // The agent's SPIFFE ID may write; every workload of the trust domain may read.
  await role('audit-writer', ['get', 'create'], { kind: 'User', name: AGENT_ID });
  await role('audit-reader', ['get'], { kind: 'Group', name: `spiffe://${TD}` });

  identity = await startIdentityServer({
    trustDomain: TD,
    admin: { host: '127.0.0.1', port: 0 },
    oidc: { host: '127.0.0.1', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    verifier: cachingVerifier(
      createTokenReviewVerifier({ kubeConfig: kc, audiences: ['precinct'] }),
    ),
  });
  for (const sa of sas) {
    await identity.entries.create({
      spiffeId: id(sa),
      selectors: [`k8s:ns:${APPS}`, `k8s:sa:${sa}`],
    });
    const tok = await core.createNamespacedServiceAccountToken({
      name: sa,
      namespace: APPS,
      body: { spec: { audiences: ['precinct'], expirationSeconds: 3600 } },
    });
    const res = await fetch(`${identity.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: tok.status!.token }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const { address } = (await res.json()) as { address: string };
    addresses.set(sa, address);
    sources.set(sa, await X509Source.create({ address, timeoutMs: 20_000 }));
  }

  const key = await generateDelegationKey('ES256');
  issuer = createDelegationIssuer({ issuer: DELEGATION_ISSUER, alg: 'ES256', ...key });
  const storeSrc = sources.get('store')!;
  store = await startAuditStore({
    host: '127.0.0.1',
    port: 0,
    spiffe: { svidSource: storeSrc, bundleSource: storeSrc },
    auth: {
      verifier: cachingVerifier(createTokenReviewVerifier({ kubeConfig: kc })),
      authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig: kc }),
    },
    authz: { namespace: NS },
    delegation: createDelegationVerifier({
      issuer: DELEGATION_ISSUER,
      audience: AUDIENCE,
      jwks: await issuer.jwks(),
    }),
    retentionIntervalMs: 0,
  });
});

after(async () => {
  for (const a of agents) await a.close();
  await store?.close();
  for (const s of sources.values()) await s.close();
  await identity?.close();
  await kd?.close();
});

describe('SPIFFE callers', () => {
  test('a workload writes over mTLS and is attributed by its SPIFFE ID', async () => {
    const w = await call('agent', '/api/v1/audit/events', { json: event('sp-1') });
    assert.equal(w.status, 201, JSON.stringify(w.body));
    assert.equal(w.body.written_by, AGENT_ID);
    const [e] = await stored('sp-1');
    assert.equal(e!.written_by, AGENT_ID);
    assert.equal(e!.written_by_kind, 'spiffe');
    assert.equal(e!.on_behalf_of, null);
    assert.equal(e!.actor_id, 'mallory', "the body's actor is kept as the writer's claim");
  });

  test('RBAC decides per SPIFFE ID: a workload with only the group read grant cannot write', async () => {
    const w = await call('stranger', '/api/v1/audit/events', { json: event('sp-2') });
    assert.equal(w.status, 403);
    assert.equal(w.body.title, 'authorization failed');
    const r = await call('stranger', '/api/v1/audit/events?correlation_id=sp-1');
    assert.equal(r.status, 200, 'the trust-domain group binding lets it read');
    assert.equal((r.body.data as unknown[]).length, 1);
    assert.equal((await stored('sp-2')).length, 0);
  });

  test('identity headers and a bearer token do not change who is recorded', async () => {
    const w = await call('agent', '/api/v1/audit/events', {
      json: event('sp-3'),
      headers: {
        'x-spiffe-id': STRANGER_ID,
        'x-remote-user': 'admin',
        authorization: 'Bearer not-a-token',
      },
    });
    assert.equal(w.status, 201);
    assert.equal((await stored('sp-3'))[0]!.written_by, AGENT_ID);
  });

  test('a client without an SVID gets no HTTP at all; probes answer on the plain port', async () => {
    const u = new URL(store.url);
    const err = await new Promise<Error | undefined>((resolve) => {
      const s = tls.connect({
        host: u.hostname,
        port: Number(u.port),
        rejectUnauthorized: false,
      });
      s.on('secureConnect', () => {
        s.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
      });
      s.on('data', () => resolve(undefined));
      s.on('error', (e) => resolve(e));
      s.on('close', () => resolve(new Error('closed without an answer')));
    });
    assert.ok(err, 'no answer to a client without a certificate');
    assert.ok(store.healthUrl);
    for (const p of ['/healthz', '/readyz']) {
      const r = await fetch(new URL(p, store.healthUrl));
      assert.equal(r.status, 200, p);
    }
    assert.match(
      await (await fetch(new URL('/metrics', store.healthUrl))).text(),
      /precinct_audit_events_written_total/,
    );
    // Positive control for the refused client: the same request with an SVID is answered.
    assert.equal((await call('agent', '/healthz')).status, 200);
  });

  test('AuditClient writes over mTLS with a SPIFFE fetch', async () => {
    const client = new AuditClient({
      url: store.url,
      fetch: mtlsFetch('agent'),
      flushIntervalMs: 5,
    });
    await Promise.all([1, 2, 3].map(() => client.write(event('sp-client'))));
    await client.close();
    const rows = await stored('sp-client');
    assert.equal(rows.length, 3);
    assert.ok(rows.every((r) => r.written_by === AGENT_ID));
  });
});

describe('delegation: an agent writing for a person', () => {
  const withToken = (token: string, corr: string) =>
    call('agent', '/api/v1/audit/events', {
      json: event(corr),
      headers: { 'precinct-delegation': token },
    });

  test('a valid token naming the caller records the person as on_behalf_of, inside the chain', async () => {
    const token = await issuer.issue({ subject: 'alice', actors: [AGENT_ID], audience: AUDIENCE });
    const w = await withToken(token, 'dl-1');
    assert.equal(w.status, 201, JSON.stringify(w.body));
    const [e] = await stored('dl-1');
    assert.equal(e!.on_behalf_of, 'alice');
    assert.equal(e!.written_by, AGENT_ID);
    const v = await call('agent', '/api/v1/audit/verify-chain', {
      json: { correlation_id: 'dl-1' },
    });
    assert.equal(v.body.is_valid, true);
  });

  test('tokens that do not prove the delegation are refused and write nothing', async () => {
    const other = createDelegationIssuer({
      issuer: DELEGATION_ISSUER,
      alg: 'ES256',
      ...(await generateDelegationKey('ES256')),
    });
    const cases: Array<[string, string]> = [
      [
        'names another actor',
        await issuer.issue({ subject: 'alice', actors: [STRANGER_ID], audience: AUDIENCE }),
      ],
      [
        'the caller is only an earlier actor',
        await issuer.issue({
          subject: 'alice',
          actors: [STRANGER_ID, AGENT_ID],
          audience: AUDIENCE,
        }),
      ],
      [
        'another audience',
        await issuer.issue({ subject: 'alice', actors: [AGENT_ID], audience: 'payments' }),
      ],
      [
        'an unknown signing key',
        await other.issue({ subject: 'alice', actors: [AGENT_ID], audience: AUDIENCE }),
      ],
      ['garbage', 'not.a.token'],
    ];
    let i = 0;
    for (const [name, token] of cases) {
      const corr = `dl-bad-${i++}`;
      const w = await withToken(token, corr);
      assert.equal(w.status, 401, name);
      assert.equal(w.body.title, 'authentication failed', name);
      assert.equal((await stored(corr)).length, 0, name);
    }
    // Positive control with the same request shape.
    const ok = await withToken(
      await issuer.issue({ subject: 'bob', actors: [AGENT_ID, STRANGER_ID], audience: AUDIENCE }),
      'dl-ok',
    );
    assert.equal(ok.status, 201);
    assert.equal((await stored('dl-ok'))[0]!.on_behalf_of, 'bob');
  });
});

test('`precinct audit-store --spiffe --delegation-*` serves mTLS with delegation, probes on plain HTTP', async (t) => {
  const dir = tempDir('precinct-audit-spiffe-cli-');
  t.after(dir.cleanup);
  const jwksFile = join(dir.path, 'delegation-jwks.json');
  writeFileSync(jwksFile, JSON.stringify(await issuer.jwks()));
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const child = spawn(
    process.execPath,
    [
      '--import',
      './scripts/register-source.mjs',
      'cli/src/main.ts',
      'audit-store',
      '--spiffe',
      '--listen',
      '127.0.0.1:0',
      '--health-listen',
      '127.0.0.1:0',
      '--namespace',
      NS,
      '--delegation-issuer',
      DELEGATION_ISSUER,
      '--delegation-jwks',
      jwksFile,
      '--delegation-audience',
      AUDIENCE,
    ],
    {
      cwd: root,
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        HOST: '',
        PORT: '',
        DATABASE_URL: '',
        KUBECONFIG: kd.kubeconfigPath,
        SPIFFE_ENDPOINT_SOCKET: addresses.get('store')!,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const urls = await new Promise<{ main: string; probes: string }>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (https:\/\/\S+)/.exec(out);
      const p = /probes and metrics on (http:\/\/\S+)/.exec(out);
      if (m && p) resolve({ main: m[1]!, probes: p[1]! });
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  assert.equal((await fetch(new URL('/readyz', urls.probes))).status, 200);
  const token = await issuer.issue({ subject: 'dave', actors: [AGENT_ID], audience: AUDIENCE });
  const res = await mtlsFetch('agent')(new URL('/api/v1/audit/events', urls.main), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'precinct-delegation': token },
    body: JSON.stringify(event('cli-1')),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const q = await mtlsFetch('agent')(
    new URL('/api/v1/audit/events?correlation_id=cli-1', urls.main),
  );
  const [e] = ((await q.json()) as { data: Array<Record<string, unknown>> }).data;
  assert.deepEqual({ by: e!.written_by, obo: e!.on_behalf_of }, { by: AGENT_ID, obo: 'dave' });
  // RBAC is asked of kube-dev: the stranger may read but not write.
  const denied = await mtlsFetch('stranger')(new URL('/api/v1/audit/events', urls.main), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(event('cli-2')),
  });
  assert.equal(denied.status, 403);
});

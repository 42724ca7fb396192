// The demo's services and the dashboard as separate processes (`precinct demo <service>`, the
// way the Helm chart runs them), each attested at the identity server for its own Workload API
// address, with the token service as a process too (`precinct token-service --policy wasm`,
// its policy data and consent file shaped as the chart renders them, its refusals written to the
// audit store) and the audit store (SPIFFE mTLS): a handful of the 17 scenarios through the
// dashboard API (all 17 run in-process in scenarios.test.ts), refusals decided at the exchange,
// the decisions in the audit store, and the command's refusals of bad flags and wrong identities.
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '@precinct/testing';
import { authorizeOneOf } from '@precinct/spiffe';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { startIdentityServer, type IdentityServer } from '@precinct/identity-server';
import { startAuditStore, type AuditStore } from '@precinct/audit-store';
import { DEMO_CONSENT, MtlsClient, demoPolicyData, pickSvid } from '@precinct/demo';
import { wasmPolicy, type PolicyEngine } from '@precinct/policy';
import { SCENARIOS } from '../../packages/policy/test/scenarios.js';
import { DASHBOARD_CLIENT, startOidcPeer, type OidcPeer } from '../browser/oidc-peer.js';
import {
  AGENT_NAMES,
  Browser,
  TD,
  agentId,
  attestAddress,
  clientAs,
  quiet,
  sid,
} from './support.js';
import {
  demoConsentFile,
  jwksFileServer,
  spawnTokenService,
  runPrecinct,
  spawnDemo,
  startDemoProcesses,
  type DemoProcess,
  type DemoProcesses,
  type DemoService,
} from './processes.js';

const SERVICES: DemoService[] = [
  'policy-service',
  'document-service',
  'user-service',
  'agent-service',
  'dashboard',
];
/** A handful of the 17: direct allow and deny, delegated allow and deny, agent without a person. */
const PICKED = [1, 5, 9, 11, 13, 14];
const nameOf = (id: string | undefined) => id?.split('/').pop();
const PASSWORDS = {
  alice: 'alice-password-1',
  bob: 'bob-password-22',
  carol: 'carol-password-333',
};

/** Attestation stand-in: a ServiceAccount's token is its name (attestation is not under test). */
const verifier = {
  async verify(token: string) {
    if (!/^[a-z-]+$/.test(token))
      throw Object.assign(new Error('bad token'), { code: 'ERR_TOKEN_SIGNATURE' });
    return {
      namespace: 'demo',
      serviceAccountName: token,
      expiresAt: new Date(Date.now() + 3600_000),
    };
  },
};

describe('the demo as separate processes (precinct demo <service>)', () => {
  const dir = tempDir('precinct-demo-proc-');
  let identity: IdentityServer;
  let tokenService: Awaited<ReturnType<typeof spawnTokenService>>;
  let store: AuditStore;
  let auditor: X509Source;
  let jwks: Awaited<ReturnType<typeof jwksFileServer>>;
  let demo: DemoProcesses;
  let policy: PolicyEngine;
  let op: OidcPeer;
  let oidcDashboard: DemoProcess;
  const addresses = new Map<string, string>();
  const closers: Array<() => Promise<unknown>> = [];

  before(async () => {
    identity = await startIdentityServer({
      trustDomain: TD,
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      verifier,
      logger: quiet(),
    });
    closers.push(() => identity.close());
    const accounts = [...SERVICES, 'token-service', 'audit-store', 'auditor'];
    for (const sa of accounts)
      await identity.entries.create({
        spiffeId: sid(sa),
        selectors: ['k8s:ns:demo', `k8s:sa:${sa}`],
      });
    for (const a of AGENT_NAMES)
      await identity.entries.create({
        spiffeId: agentId(a),
        selectors: ['k8s:ns:demo', 'k8s:sa:agent-service'],
      });
    for (const sa of accounts) addresses.set(sa, await attestAddress(identity, sa));
    const own = async (sa: string) => {
      const s = await X509Source.create({ address: addresses.get(sa)!, timeoutMs: 20_000 });
      closers.push(() => s.close());
      return s;
    };
    const storeSource = await own('audit-store');
    auditor = await own('auditor');

    const jwksFile = join(dir.path, 'idp-jwks.json');
    const oidcJwksFile = join(dir.path, 'oidc-dashboard-jwks.json');
    jwks = await jwksFileServer(jwksFile, oidcJwksFile);
    closers.push(() => jwks.close());
    store = await startAuditStore({
      host: '127.0.0.1',
      port: 0,
      auth: false,
      spiffe: {
        svidSource: storeSource,
        bundleSource: storeSource,
        authorizer: authorizeOneOf(sid('document-service'), sid('token-service'), sid('auditor')),
        healthHost: '127.0.0.1',
      },
      retentionIntervalMs: 0,
      logger: quiet(),
    });
    closers.push(() => store.close());
    // The token service as the chart runs it: the policy decides the scope (the demo's policy
    // data, as the chart's ConfigMap), the grants file gives consent only, refusals are audited.
    const grantsFile = join(dir.path, 'grants.json');
    writeFileSync(grantsFile, demoConsentFile(TD, DEMO_CONSENT));
    const policyDataFile = join(dir.path, 'policy-data.json');
    writeFileSync(policyDataFile, JSON.stringify(demoPolicyData(TD)));
    tokenService = await spawnTokenService(
      [
        '--listen',
        '127.0.0.1:0',
        '--health-listen',
        '127.0.0.1:0',
        '--oidc-issuer',
        'https://dashboard.precinct.local',
        '--oidc-client-id',
        'precinct-token-service',
        '--oidc-jwks',
        jwks.url,
        '--agent-prefix',
        '/agent/',
        '--grants',
        grantsFile,
        '--policy',
        'wasm',
        '--policy-data',
        policyDataFile,
        '--audit-store',
        store.url,
        '--audit-store-id',
        sid('audit-store'),
      ],
      { SPIFFE_ENDPOINT_SOCKET: addresses.get('token-service')! },
    );
    closers.push(() => tokenService.stop());

    // Passwords the operator chose (the chart's demo.usersSecret), copied by the dashboard.
    const knownPasswords = join(dir.path, 'known-users.json');
    writeFileSync(knownPasswords, JSON.stringify(PASSWORDS), { mode: 0o600 });
    demo = await startDemoProcesses({
      identities: Object.fromEntries(
        SERVICES.map((s) => [s, { address: addresses.get(s)! }]),
      ) as Record<DemoService, { address: string }>,
      ids: Object.fromEntries(SERVICES.map((s) => [s, sid(s)])) as Record<DemoService, string>,
      tokenService: { url: tokenService.url, spiffeId: tokenService.spiffeId },
      audit: { url: store.url, spiffeId: sid('audit-store') },
      idpJwksFile: jwksFile,
      demoUsersFile: join(dir.path, 'demo-users.json'),
      demoUsersFrom: knownPasswords,
      trustDomain: TD,
    });
    closers.push(() => demo.close());

    // A second dashboard whose people come from a real OpenID Provider (the production shape),
    // started before any token exchange so the token service's first JWKS fetch has its key.
    op = await startOidcPeer({ alice: {}, bob: {} });
    closers.push(() => op.close());
    const secretFile = join(dir.path, 'oidc-client-secret');
    writeFileSync(secretFile, op.clientSecret(DASHBOARD_CLIENT), { mode: 0o600 });
    const p = demo.processes;
    oidcDashboard = await spawnDemo(
      'dashboard',
      [
        '--listen',
        '127.0.0.1:0',
        '--health-listen',
        '127.0.0.1:0',
        '--token-service',
        tokenService.url,
        '--token-service-id',
        tokenService.spiffeId,
        '--user-service',
        p['user-service'].url,
        '--user-service-id',
        sid('user-service'),
        '--agent-service',
        p['agent-service'].url,
        '--agent-service-id',
        sid('agent-service'),
        '--idp-jwks-out',
        oidcJwksFile,
        '--oidc-issuer',
        op.issuer,
        '--oidc-client-secret-file',
        secretFile,
        '--demo-users-file',
        join(dir.path, 'unused-users.json'),
      ],
      { SPIFFE_ENDPOINT_SOCKET: addresses.get('dashboard')! },
    );
    closers.push(() => oidcDashboard.stop());
    op.start(`${oidcDashboard.url}/api/auth/oidc/callback`);
    policy = await wasmPolicy();
  });

  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    dir.cleanup();
  });

  test('each process serves as its own SPIFFE ID and is ready on its plain health port', async () => {
    for (const s of SERVICES) {
      const p = demo.processes[s];
      assert.equal(p.spiffeId, sid(s));
      assert.equal(p.child.exitCode, null, `${s} runs`);
      const ready = await fetch(`${p.healthUrl}/ready`);
      assert.equal(ready.status, 200, `${s} ready`);
      if (s !== 'dashboard') assert.match(p.url, /^https:\/\//);
    }
    // The health URLs the dashboard was given: /api/status sees every service up.
    const b = new Browser(demo.dashboardUrl);
    const status = await b.request('GET', '/api/status');
    assert.equal(status.status, 200, JSON.stringify(status.body));
    assert.deepEqual(status.body.services, {
      'policy-service': 'up',
      'document-service': 'up',
      'user-service': 'up',
      'agent-service': 'up',
    });
  });

  test('an mTLS port refuses a client without a certificate and a workload not on its allow-list', async () => {
    const docs = demo.processes['document-service'];
    await assert.rejects(fetch(`${docs.url}/documents`), 'no client certificate, no connection');
    const asAuditor = clientAs(auditor, sid('document-service'));
    try {
      assert.equal((await asAuditor.json(`${docs.url}/documents`)).status, 403);
    } finally {
      await asAuditor.close();
    }
  });

  for (const n of PICKED) {
    const s = SCENARIOS.find((x) => x.n === n)!;
    test(`scenario ${s.name}`, async () => {
      const person = nameOf(s.input.person);
      const agent = nameOf(s.input.agent);
      // The dashboard copied the operator's passwords (0600) and people log in with them.
      const copied = join(dir.path, 'demo-users.json');
      assert.deepEqual(JSON.parse(readFileSync(copied, 'utf8')), PASSWORDS);
      assert.equal(statSync(copied).mode & 0o777, 0o600);
      const passwords: Record<string, string> = PASSWORDS;
      const who = person ?? 'alice';
      const browser = new Browser(demo.dashboardUrl);
      await browser.login(who, passwords[who]!);
      const r = agent
        ? await browser.request('POST', '/api/access-delegated', {
            agent_id: agent,
            document_id: s.input.document,
            ...(person ? {} : { autonomous: true }),
          })
        : await browser.request('POST', '/api/access-direct', { document_id: s.input.document });
      const expected = await policy.decide(s.input);
      assert.equal(expected.allow, s.allow);
      assert.equal(r.status, s.allow ? 200 : 403, JSON.stringify(r.body));
      assert.equal(r.body.granted, s.allow);
      assert.equal(r.body.reason, expected.reason);
      assert.deepEqual(r.body.details, expected.details);
      assert.equal(r.body.user, s.input.person);
      assert.equal(r.body.agent, s.input.agent);
    });
  }

  test('a dashboard process with an OpenID Provider: login at the provider, then a delegated access as that person', async () => {
    const base = oidcDashboard.url;
    const config = (await (await fetch(`${base}/api/auth/config`)).json()) as Record<
      string,
      unknown
    >;
    assert.equal(config.source, 'oidc');
    assert.equal(config.issuer, op.issuer);
    // Passwords are off here (control: the other dashboard takes alice's password).
    const withPassword = new Browser(base);
    const pw = await withPassword.request('POST', '/api/auth/login', {
      username: 'alice',
      password: PASSWORDS.alice,
    });
    assert.notEqual(pw.status, 200, JSON.stringify(pw.body));
    const begin = await fetch(`${base}/api/auth/oidc/login`, { redirect: 'manual' });
    assert.equal(begin.status, 302);
    const loginCookie = begin.headers
      .getSetCookie()
      .find((c) => c.startsWith('precinct_oidc='))!
      .split(';')[0]!;
    const back = await op.authorize(begin.headers.get('location')!, 'alice');
    const done = await fetch(back, { redirect: 'manual', headers: { cookie: loginCookie } });
    assert.equal(done.status, 302, await done.text());
    const session = done.headers
      .getSetCookie()
      .find((c) => c.startsWith('precinct_session='))!
      .split(';')[0]!;
    const browser = new Browser(base);
    browser.cookie = session;
    const s = SCENARIOS.find((x) => x.n === 9)!; // alice -> gpt4 -> DOC-001, allowed
    const r = await browser.request('POST', '/api/access-delegated', {
      agent_id: 'gpt4',
      document_id: s.input.document,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.granted, true);
    assert.equal(r.body.user, s.input.person);
    assert.equal(r.body.agent, s.input.agent);
  });

  /** Audit events matching `q`, polled until `enough` says so (writers batch; a liveness bound). */
  async function auditEvents(
    q: string,
    enough: (events: Array<Record<string, unknown>>) => boolean,
  ): Promise<Array<Record<string, unknown>>> {
    const reader = clientAs(auditor, sid('audit-store'));
    try {
      let events: Array<Record<string, unknown>> = [];
      for (let i = 0; i < 120; i++) {
        const r = await reader.json(`${store.url}/api/v1/audit/events?${q}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        events = (r.body as { data: Array<Record<string, unknown>> }).data;
        if (enough(events)) break;
        await new Promise((res) => setTimeout(res, 250));
      }
      return events;
    } finally {
      await reader.close();
    }
  }

  test('a delegated refusal comes from the exchange (the policy in the token service process), with the reference answer; a granted one reaches the document service', async () => {
    const browser = new Browser(demo.dashboardUrl);
    await browser.login('alice', PASSWORDS.alice);
    const deny = SCENARIOS.find((x) => x.n === 14)!; // alice -> summarizer -> DOC-001
    const allow = SCENARIOS.find((x) => x.n === 9)!; // alice -> gpt4 -> DOC-001
    const expected = await policy.decide(deny.input);
    assert.equal(expected.allow, false);
    const refused = await browser.request('POST', '/api/access-delegated', {
      agent_id: 'summarizer',
      document_id: deny.input.document,
    });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.granted, false);
    assert.equal(refused.body.reason, expected.reason);
    assert.equal(refused.body.reason, 'agent_lacks_capability');
    assert.deepEqual(refused.body.details, expected.details);
    assert.equal(refused.body.user, deny.input.person);
    assert.equal(refused.body.agent, deny.input.agent);
    const refusedTxn = String(refused.body.txn);
    assert.match(refusedTxn, /^[0-9a-f-]{36}$/, 'the transaction the exchange refused');
    // Positive control: the same person, document and route with an agent that may.
    const granted = await browser.request('POST', '/api/access-delegated', {
      agent_id: 'gpt4',
      document_id: allow.input.document,
    });
    assert.equal(granted.status, 200, JSON.stringify(granted.body));
    assert.equal(granted.body.granted, true);
    const grantedTxn = String(granted.body.txn);
    assert.match(grantedTxn, /^[0-9a-f-]{36}$/);

    // The refusal is the token service's, written by it; the document service never saw it.
    const byRefused = await auditEvents(`correlation_id=${refusedTxn}`, (e) => e.length > 0);
    assert.equal(byRefused.length, 1, JSON.stringify(byRefused));
    const e = byRefused[0]!;
    assert.equal(e.written_by, sid('token-service'));
    assert.equal(e.event_type, 'token.exchange');
    assert.equal(e.event_outcome, 'failure');
    assert.equal(e.error_code, expected.reason);
    assert.equal(e.actor_id, deny.input.agent);
    assert.equal(e.resource_type, 'document');
    assert.equal(e.resource_id, deny.input.document);
    const data = e.event_data as Record<string, unknown>;
    assert.equal(data.on_behalf_of, deny.input.person);
    assert.equal(data.reason, expected.reason);
    assert.deepEqual(data.details, expected.details);
    assert.match(String(data.subject_token_sha256), /^[0-9a-f]{64}$/);
    assert.doesNotMatch(JSON.stringify(e), /eyJ/, 'no raw token in the audit event');
    const byGranted = await auditEvents(`correlation_id=${grantedTxn}`, (x) => x.length > 0);
    assert.equal(byGranted.length, 1, JSON.stringify(byGranted));
    assert.equal(byGranted[0]!.written_by, sid('document-service'));
    assert.equal(byGranted[0]!.event_outcome, 'success');
  });

  test('the document service process wrote every decision that reached it to the audit store', async () => {
    // Refused scopes stop at the exchange now; allowed ones and the agent without a person
    // (no token to exchange) reach the document service.
    const reached = PICKED.filter((n) => {
      const s = SCENARIOS.find((x) => x.n === n)!;
      return s.allow || s.input.person === undefined;
    }).length;
    const events = await auditEvents(
      'event_type=demo.document.access&limit=100',
      (x) => x.length >= reached,
    );
    assert.ok(events.length >= reached, `${events.length} decisions recorded`);
    assert.ok(events.every((x) => x.written_by === sid('document-service')));
  });

  test('a peer pinned to another SPIFFE ID gets no answer: the document service fails closed (503)', async () => {
    // A second document service that expects the user service's identity at the policy port.
    const docs = demo.processes['document-service'];
    const policyUrl = demo.processes['policy-service'].url;
    const wrong = await spawnDemo(
      'document-service',
      [
        '--listen',
        '127.0.0.1:0',
        '--health-listen',
        '127.0.0.1:0',
        '--token-service',
        tokenService.url,
        '--token-service-id',
        tokenService.spiffeId,
        '--policy-service',
        policyUrl,
        '--policy-service-id',
        sid('user-service'),
        '--user-service-id',
        sid('user-service'),
      ],
      { SPIFFE_ENDPOINT_SOCKET: addresses.get('document-service')! },
    );
    const agentWorkload = await X509Source.create({
      address: addresses.get('agent-service')!,
      timeoutMs: 20_000,
    });
    // The agent without a person: the one call that reaches the policy without a token.
    const gpt4 = pickSvid(agentWorkload, agentId('gpt4'));
    const c = new MtlsClient(gpt4, agentWorkload, sid('document-service'));
    try {
      const control = await c.json(`${docs.url}/access`, { body: { document_id: 'DOC-001' } });
      assert.equal(control.status, 403, JSON.stringify(control.body));
      assert.equal((control.body as { reason: string }).reason, 'agent_without_person');
      const r = await c.json(`${wrong.url}/access`, { body: { document_id: 'DOC-001' } });
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal((r.body as { reason: string }).reason, 'policy_unavailable');
    } finally {
      await c.close();
      await agentWorkload.close();
      await wrong.stop();
    }
  });

  test('flags: every problem at once (exit 2); a trust domain other than the SVID one (exit 1)', async () => {
    const bad = await runPrecinct(
      [
        'demo',
        'document-service',
        '--listen',
        'nope',
        '--token-service',
        'http://x',
        '--agent-id',
        'x',
      ],
      { SPIFFE_ENDPOINT_SOCKET: '' },
    );
    assert.equal(bad.code, 2, bad.stderr);
    for (const m of [
      /--workload-api \(or SPIFFE_ENDPOINT_SOCKET\)/,
      /--listen must be HOST:PORT/,
      /--token-service needs --token-service-id/,
      /--token-service must be an https:\/\/ URL/,
      /--policy-service and --policy-service-id are required/,
      /--user-service-id is required/,
      /--agent-id must be a SPIFFE ID/,
    ])
      assert.match(bad.stderr, m);
    const help = await runPrecinct(['demo', 'policy', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: precinct demo policy-service/);
    assert.match(help.stdout, /--opa-url URL/);
    const td = await runPrecinct(
      [
        'demo',
        'policy-service',
        '--trust-domain',
        'other.example',
        '--caller',
        sid('document-service'),
      ],
      { SPIFFE_ENDPOINT_SOCKET: addresses.get('policy-service')! },
    );
    assert.equal(td.code, 1, td.stderr);
    // A passwords file that is not JSON: refused without quoting it (it would hold passwords).
    const badUsers = join(dir.path, 'bad-users.json');
    writeFileSync(badUsers, 'alice: hunter2-secret-value', { mode: 0o600 });
    const peer = (name: string) => [`--${name}`, 'https://127.0.0.1:1', `--${name}-id`, sid(name)];
    const users = await runPrecinct(
      [
        'demo',
        'dashboard',
        ...peer('token-service'),
        ...peer('user-service'),
        ...peer('agent-service'),
        '--listen',
        '127.0.0.1:0',
        '--health-listen',
        '127.0.0.1:0',
        '--demo-users-file',
        join(dir.path, 'unused.json'),
        '--demo-users-from',
        badUsers,
      ],
      { SPIFFE_ENDPOINT_SOCKET: addresses.get('dashboard')! },
    );
    assert.equal(users.code, 2, users.stderr);
    assert.match(users.stderr, /--demo-users-from .*: not JSON/);
    assert.doesNotMatch(users.stderr + users.stdout, /hunter2/);
    // OIDC without its client secret (never taken from a flag's value): refused, with the rest.
    const noSecret = await runPrecinct(
      ['demo', 'dashboard', '--oidc-issuer', 'https://op.example', '--public-url', 'nope'],
      { SPIFFE_ENDPOINT_SOCKET: '', PRECINCT_OIDC_CLIENT_SECRET: '' },
    );
    assert.equal(noSecret.code, 2, noSecret.stderr);
    for (const m of [
      /--oidc-issuer needs the client secret in --oidc-client-secret-file or PRECINCT_OIDC_CLIENT_SECRET/,
      /--public-url must be/,
      /--token-service and --token-service-id are required/,
      /--workload-api \(or SPIFFE_ENDPOINT_SOCKET\)/,
    ])
      assert.match(noSecret.stderr, m);
    assert.match(
      td.stderr,
      new RegExp(
        `is of trust domain ${TD.replace(/\./g, '\\.')}, not --trust-domain other\\.example`,
      ),
    );
  });
});

// The demo world on real parts: the identity server issuing SVIDs over the Workload API, the
// real token service, the Rego policy compiled to Wasm, the audit store (PGlite) taking SPIFFE
// mTLS callers, and the five demo services, all on loopback with ephemeral ports.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { tempDir } from '@precinct/testing';
import { createLogger, type Logger } from '@precinct/runtime';
import { authorizeOneOf } from '@precinct/spiffe';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { startIdentityServer, type IdentityServer } from '@precinct/identity-server';
import {
  MemoryConsentStore,
  createOidcPersonAuthenticator,
  exchangeAuditEvents,
  startTokenService,
  type TokenService,
} from '@precinct/token-service';
import { AuditClient } from '@precinct/audit-client';
import { startAuditStore, type AuditStore } from '@precinct/audit-store';
import {
  parseDocumentScope,
  policyGrantScope,
  wasmPolicy,
  type PolicyEngine,
} from '@precinct/policy';
import type { DashboardIdp } from '@precinct/dashboard';
import { DEMO_CONSENT, MtlsClient, demoPolicyData, demoServiceId } from '@precinct/demo';
import { createDemoIdp, startDemo, type Demo } from '../../cli/src/demo.js';

export const TD = 'demo.example.com';
export const FOREIGN_TD = 'foreign.example';
export const AGENT_NAMES = ['gpt4', 'claude', 'summarizer'] as const;
export const SERVICE_ACCOUNTS = [
  'dashboard',
  'user-service',
  'agent-service',
  'document-service',
  'policy-service',
  'token-service',
  'audit-store',
  'auditor',
  'intruder',
] as const;
export type Sa = (typeof SERVICE_ACCOUNTS)[number];
export const sid = (sa: string) => demoServiceId(TD, sa);
export const userId = (u: string) => `spiffe://${TD}/user/${u}`;
export const agentId = (a: string) => `spiffe://${TD}/agent/${a}`;

export const quiet = () => createLogger('demo-test', process.env.TEST_LOG_LEVEL ?? 'silent');

/** Attestation stand-in: each ServiceAccount's token is its name (attestation is not under test). */
const verifier = (namespace: string) => ({
  async verify(token: string) {
    if (!/^[a-z-]+$/.test(token))
      throw Object.assign(new Error('bad token'), { code: 'ERR_TOKEN_SIGNATURE' });
    return { namespace, serviceAccountName: token, expiresAt: new Date(Date.now() + 3600_000) };
  },
});

export async function attestAddress(identity: IdentityServer, sa: string): Promise<string> {
  const res = await fetch(`${identity.adminUrl}/v1/attest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: sa }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const { address } = (await res.json()) as { address: string };
  return address;
}

async function attest(identity: IdentityServer, sa: string): Promise<X509Source> {
  return X509Source.create({ address: await attestAddress(identity, sa), timeoutMs: 20_000 });
}

/** The audit store in a child process (see audit-child.ts); resolves with its URL. */
async function auditChild(
  address: string,
  allow: string[],
): Promise<{ url: string; close: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    ['--import', './scripts/register-source.mjs', 'test/demo/audit-child.ts'],
    {
      cwd: fileURLToPath(new URL('../../', import.meta.url)),
      env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: address, ALLOW: allow.join(',') },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /READY (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`audit child exited ${code}`)));
  });
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export interface World {
  identity: IdentityServer;
  foreignIdentity: IdentityServer;
  sources: Record<Sa, X509Source>;
  foreign: X509Source;
  tokenService: TokenService;
  consent: MemoryConsentStore;
  /** The audit store's mTLS URL. */
  store: Pick<AuditStore, 'url'>;
  idp: DashboardIdp;
  demo: Demo;
  usersFile: string;
  passwords: Record<string, string>;
  startDemoWith(policy: PolicyEngine, opts?: { audit?: boolean; logger?: Logger }): Promise<Demo>;
  /** Whether the token service's refusals go to the audit store(s). Default true. */
  auditExchanges: boolean;
  /**
   * Sends the token service's refusals to another audit store too (writing as the token
   * service, which that store must admit); resolves the returned stop function after flushing.
   */
  auditExchangesTo(store: { url: string; spiffeId: string }): () => Promise<void>;
  close(): Promise<void>;
}

export interface WorldOptions {
  /** Run the audit store in its own process (as deployed). Default: in this process. */
  auditInChild?: boolean;
}

export async function startWorld(wo: WorldOptions = {}): Promise<World> {
  const dir = tempDir('precinct-demo-');
  const closers: Array<() => Promise<unknown> | unknown> = [dir.cleanup];
  const quietOpts = { logger: quiet() };
  try {
    const identity = await startIdentityServer({
      trustDomain: TD,
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      verifier: verifier('demo'),
      ...quietOpts,
    });
    closers.unshift(() => identity.close());
    for (const sa of SERVICE_ACCOUNTS) {
      await identity.entries.create({
        spiffeId: sid(sa),
        selectors: ['k8s:ns:demo', `k8s:sa:${sa}`],
      });
    }
    // The agent service's workload also holds one SVID per agent.
    for (const a of AGENT_NAMES) {
      await identity.entries.create({
        spiffeId: agentId(a),
        selectors: ['k8s:ns:demo', 'k8s:sa:agent-service'],
      });
    }
    const foreignIdentity = await startIdentityServer({
      trustDomain: FOREIGN_TD,
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      verifier: verifier('demo'),
      ...quietOpts,
    });
    closers.unshift(() => foreignIdentity.close());
    // Same path as the real user service, another trust domain.
    await foreignIdentity.entries.create({
      spiffeId: `spiffe://${FOREIGN_TD}/ns/demo/sa/user-service`,
      selectors: ['k8s:ns:demo', 'k8s:sa:user-service'],
    });
    const sources = {} as Record<Sa, X509Source>;
    for (const sa of SERVICE_ACCOUNTS) {
      sources[sa] = await attest(identity, sa);
      closers.unshift(() => sources[sa].close());
    }
    const foreign = await attest(foreignIdentity, 'user-service');
    closers.unshift(() => foreign.close());
    assert.equal(sources['agent-service'].getX509Svids().length, 4);

    const idp = createDemoIdp();
    const consent = new MemoryConsentStore();
    for (const [person, agents] of Object.entries(DEMO_CONSENT)) {
      consent.grant(userId(person), agents.map(agentId));
    }
    // The token service decides scopes with the same policy the document service asks, tells
    // the dashboard why it refused, and writes its refusals to the audit store(s) as itself.
    const exchangeAudits = new Set<AuditClient>();
    const exchangeState = { audit: true };
    const auditExchangesTo = (target: { url: string; spiffeId: string }) => {
      const c = new MtlsClient(sources['token-service'], sources['token-service'], target.spiffeId);
      const audit = new AuditClient({ url: target.url, fetch: c.fetch, flushIntervalMs: 50 });
      exchangeAudits.add(audit);
      let stopped: Promise<void> | undefined;
      return () =>
        (stopped ??= (async () => {
          exchangeAudits.delete(audit);
          await audit.close();
          await c.close();
        })());
    };
    const resourceOf = (scope: string) => {
      const t = parseDocumentScope(scope);
      return t && { type: 'document', id: t.document, action: t.action };
    };
    const tokenService = await startTokenService({
      svidSource: sources['token-service'],
      bundleSource: sources['token-service'],
      persons: [
        createOidcPersonAuthenticator({
          issuer: idp.issuer,
          clientId: idp.audience,
          jwks: idp.jwks() as never,
          algorithms: ['ES256'],
        }),
      ],
      consent,
      grantScope: policyGrantScope(await wasmPolicy({ data: demoPolicyData(TD) })),
      explainRefusals: true,
      onDecision: async (d) => {
        // Refusals only: a granted exchange leads to the document service's own decision.
        if (!exchangeState.audit || d.decision === 'allow') return;
        const events = exchangeAuditEvents(d, { resourceOf });
        await Promise.all([...exchangeAudits].flatMap((a) => events.map((e) => a.write(e))));
      },
      isAgent: (id) => id.startsWith(`spiffe://${TD}/agent/`),
      mayRequest: (id) => id === sid('dashboard') || id.startsWith(`spiffe://${TD}/agent/`),
      host: '127.0.0.1',
      ...quietOpts,
    });
    closers.unshift(() => tokenService.close());

    let store: Pick<AuditStore, 'url'>;
    if (wo.auditInChild) {
      const child = await auditChild(await attestAddress(identity, 'audit-store'), [
        sid('document-service'),
        sid('token-service'),
        sid('auditor'),
      ]);
      closers.unshift(child.close);
      store = child;
    } else {
      const inProcess = await startAuditStore({
        host: '127.0.0.1',
        port: 0,
        auth: false,
        spiffe: {
          svidSource: sources['audit-store'],
          bundleSource: sources['audit-store'],
          // Writers and readers by certificate: the document and token services write, the
          // auditor reads.
          authorizer: authorizeOneOf(sid('document-service'), sid('token-service'), sid('auditor')),
          healthHost: '127.0.0.1',
        },
        retentionIntervalMs: 0,
        ...quietOpts,
      });
      closers.unshift(() => inProcess.close());
      store = inProcess;
    }
    closers.unshift(auditExchangesTo({ url: store.url, spiffeId: sid('audit-store') }));

    const usersFile = join(dir.path, 'demo-users.json');
    const startDemoWith = async (
      policy: PolicyEngine,
      opts: { audit?: boolean; logger?: Logger } = {},
    ) => {
      const d = await startDemo({
        trustDomain: TD,
        workloadApi: {
          dashboard: sources.dashboard,
          userService: sources['user-service'],
          agentService: sources['agent-service'],
          documentService: sources['document-service'],
          policyService: sources['policy-service'],
        },
        tokenService: { url: tokenService.url, spiffeId: tokenService.issuer },
        idp,
        ...(opts.audit === false
          ? {}
          : { audit: { url: store.url, spiffeId: sid('audit-store') } }),
        policy,
        demoUsersFile: usersFile,
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
        logger: opts.logger ?? quiet(),
      });
      closers.unshift(() => d.close());
      // Waiting for the audit trail includes the token service's decisions.
      const flushDemo = d.flushAudit.bind(d);
      d.flushAudit = async () => {
        await Promise.all([...exchangeAudits].map((a) => a.flush()));
        await flushDemo();
      };
      return d;
    };
    const demo = await startDemoWith(await wasmPolicy());
    const { readFileSync } = await import('node:fs');
    const passwords = JSON.parse(readFileSync(usersFile, 'utf8')) as Record<string, string>;
    return {
      identity,
      foreignIdentity,
      sources,
      foreign,
      tokenService,
      consent,
      store,
      idp,
      demo,
      usersFile,
      passwords,
      startDemoWith,
      get auditExchanges() {
        return exchangeState.audit;
      },
      set auditExchanges(on: boolean) {
        exchangeState.audit = on;
      },
      auditExchangesTo(target) {
        const stop = auditExchangesTo(target);
        closers.unshift(stop);
        return stop;
      },
      async close() {
        for (const c of closers) await c();
      },
    };
  } catch (err) {
    for (const c of closers) await Promise.resolve(c()).catch(() => undefined);
    throw err;
  }
}

/** A browser stand-in for the dashboard: keeps the cookie, sends a same-origin Origin. */
export class Browser {
  cookie: string | undefined;
  constructor(readonly base: string) {}

  async request(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
    const res = await fetch(new URL(path, this.base), {
      method,
      headers: {
        ...(method === 'POST' ? { origin: new URL(this.base).origin } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(this.cookie ? { cookie: this.cookie } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const setCookie = res.headers.get('set-cookie');
    if (setCookie) this.cookie = setCookie.split(';')[0];
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    };
  }

  async login(user: string, password: string): Promise<void> {
    const r = await this.request('POST', '/api/auth/login', { username: user, password });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
}

/** An mTLS client as workload `sa` (or any source), accepting only `serverId`. */
export function clientAs(source: X509Source, serverId: string, bundles?: X509Source): MtlsClient {
  return new MtlsClient(source, bundles ?? source, serverId);
}

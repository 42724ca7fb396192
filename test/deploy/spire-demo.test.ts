// The demo's services as separate processes (`precinct demo <service>`, unchanged) on two SPIFFE
// issuers, one table: a real SPIRE v1.13.3 (join_token node attestation, unix workload
// attestor) and our identity server. Under SPIRE every process of this test runs as one uid, so
// the agent serves each of them every entry of that uid and each process picks its own SVID by
// SPIFFE ID (`--spiffe-id`, with the entry's hint); an entry for another uid is the control that
// the attestor really selects. Under the identity server each process has its own Workload API
// address. With 30 s SVIDs, direct and delegated scenarios run through the dashboard until the
// services have presented rotated certificates: zero failed requests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { peerSkip, startSpire, tempDir, type Spire } from '@precinct/testing';
import { authorizeId, tlsClientOptions } from '@precinct/spiffe';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { startIdentityServer, type IdentityServer } from '@precinct/identity-server';
import {
  MemoryConsentStore,
  createOidcPersonAuthenticator,
  startTokenService,
  type TokenService,
} from '@precinct/token-service';
import { DEMO_CONSENT, demoGrantScope, demoPolicyData } from '@precinct/demo';
import { wasmPolicy } from '@precinct/policy';
import { createLogger } from '@precinct/runtime';
import { SCENARIOS } from '../../packages/policy/test/scenarios.js';
import { Browser } from '../demo/support.js';
import {
  inTrustDomain,
  jwksFileServer,
  startDemoProcesses,
  type DemoIdentity,
  type DemoProcesses,
  type DemoService,
} from '../demo/processes.js';

const SVID_TTL_SECONDS = 30;
const NS = 'demo';
const AGENTS = ['gpt4', 'claude', 'summarizer'];
const SERVICES: DemoService[] = [
  'policy-service',
  'document-service',
  'user-service',
  'agent-service',
  'dashboard',
];
/** Every workload of the test: the five processes, the token service, and the test's prober. */
const ACCOUNTS = [...SERVICES, 'token-service', 'prober'];
/** Direct allow and deny, delegated allow and deny, the agent without a person. */
const PICKED = [1, 5, 9, 13, 14].map((n) => SCENARIOS.find((s) => s.n === n)!);
const quiet = () => createLogger('spire-demo', process.env.TEST_LOG_LEVEL ?? 'silent');

interface Issuer {
  trustDomain: string;
  /** How the process of `sa` gets its SVID. */
  identity(sa: string): DemoIdentity;
  close(): Promise<void>;
}

const sidOf = (td: string, sa: string) => `spiffe://${td}/ns/${NS}/sa/${sa}`;
const agentOf = (td: string, a: string) => `spiffe://${td}/agent/${a}`;

const ISSUERS: Array<{ name: string; skip: string | false; start: () => Promise<Issuer> }> = [
  {
    name: 'SPIRE v1.13.3 (join_token, unix:uid, SVIDs picked by ID)',
    skip: peerSkip('spire-server', 'spire-agent'),
    start: async () => {
      const spire: Spire = await startSpire({ trustDomain: 'spire-demo.test' });
      try {
        const td = spire.trustDomain;
        const uid = process.getuid!();
        await spire.server([
          'entry',
          'create',
          '-parentID',
          spire.agentId,
          '-spiffeID',
          sidOf(td, 'other-uid'),
          '-selector',
          `unix:uid:${uid + 4242}`,
        ]);
        const ids = [
          ...ACCOUNTS.map((sa) => [sidOf(td, sa), sa]),
          ...AGENTS.map((a) => [agentOf(td, a), `agent-${a}`]),
        ];
        for (const [spiffeId, hint] of ids)
          await spire.createEntry({
            spiffeId: spiffeId!,
            selectors: [`unix:uid:${uid}`],
            x509SvidTtlSeconds: SVID_TTL_SECONDS,
            hint: hint!,
          });
        return {
          trustDomain: td,
          identity: (sa) => ({ address: spire.workloadAddress, spiffeId: sidOf(td, sa) }),
          close: () => spire.close(),
        };
      } catch (err) {
        await spire.close();
        throw err;
      }
    },
  },
  {
    name: 'precinct identity-server (one Workload API address per workload)',
    skip: false,
    start: async () => {
      const td = 'identity-demo.test';
      const identity: IdentityServer = await startIdentityServer({
        trustDomain: td,
        admin: { host: '127.0.0.1', port: 0 },
        oidc: { host: '127.0.0.1', port: 0 },
        health: { host: '127.0.0.1', port: 0 },
        // Attestation is not under test here: a workload's token is its ServiceAccount name.
        verifier: {
          async verify(token: string) {
            if (!/^[a-z-]+$/.test(token))
              throw Object.assign(new Error('bad token'), { code: 'ERR_TOKEN_SIGNATURE' });
            return {
              namespace: NS,
              serviceAccountName: token,
              expiresAt: new Date(Date.now() + 3600_000),
            };
          },
        },
        logger: quiet(),
      });
      const addresses = new Map<string, string>();
      try {
        for (const sa of ACCOUNTS)
          await identity.entries.create({
            spiffeId: sidOf(td, sa),
            selectors: [`k8s:ns:${NS}`, `k8s:sa:${sa}`],
            x509SvidTtl: SVID_TTL_SECONDS,
          });
        for (const a of AGENTS)
          await identity.entries.create({
            spiffeId: agentOf(td, a),
            selectors: [`k8s:ns:${NS}`, 'k8s:sa:agent-service'],
            x509SvidTtl: SVID_TTL_SECONDS,
          });
        for (const sa of ACCOUNTS) {
          const res = await fetch(`${identity.adminUrl}/v1/attest`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ token: sa }),
          });
          assert.equal(res.status, 200, await res.clone().text());
          addresses.set(sa, ((await res.json()) as { address: string }).address);
        }
      } catch (err) {
        await identity.close();
        throw err;
      }
      return {
        trustDomain: td,
        identity: (sa) => ({ address: addresses.get(sa)! }),
        close: () => identity.close(),
      };
    },
  },
];

for (const spec of ISSUERS) {
  describe(`demo processes on ${spec.name}`, { skip: spec.skip }, () => {
    const dir = tempDir('precinct-spire-demo-');
    let issuer: Issuer;
    let tokenService: TokenService;
    let demo: DemoProcesses;
    let prober: X509Source;
    const closers: Array<() => Promise<unknown>> = [];
    const td = () => issuer.trustDomain;

    /** An X509Source for `sa`, its own SVID picked when the Workload API serves several. */
    async function sourceFor(sa: string): Promise<X509Source> {
      const id = issuer.identity(sa);
      const want = sidOf(td(), sa);
      const s = await X509Source.create({
        address: id.address,
        timeoutMs: 60_000,
        pick: (svids) => svids.find((x) => x.id.toString() === want),
      });
      closers.push(() => s.close());
      return s;
    }

    before(async () => {
      issuer = await spec.start();
      closers.push(() => issuer.close());
      const tokenSource = await sourceFor('token-service');
      prober = await sourceFor('prober');
      const jwksFile = join(dir.path, 'idp-jwks.json');
      const jwks = await jwksFileServer(jwksFile);
      closers.push(() => jwks.close());
      const consent = new MemoryConsentStore();
      for (const [person, agents] of Object.entries(DEMO_CONSENT))
        consent.grant(
          `spiffe://${td()}/user/${person}`,
          agents.map((a) => agentOf(td(), a)),
        );
      tokenService = await startTokenService({
        svidSource: tokenSource,
        bundleSource: tokenSource,
        persons: [
          createOidcPersonAuthenticator({
            issuer: 'https://dashboard.precinct.local',
            clientId: 'precinct-token-service',
            jwks: new URL(jwks.url),
            algorithms: ['ES256'],
          }),
        ],
        consent,
        grantScope: demoGrantScope(demoPolicyData(td())),
        isAgent: (id) => id.startsWith(`spiffe://${td()}/agent/`),
        mayRequest: (id) =>
          id === sidOf(td(), 'dashboard') || id.startsWith(`spiffe://${td()}/agent/`),
        host: '127.0.0.1',
        logger: quiet(),
      });
      closers.push(() => tokenService.close());
      demo = await startDemoProcesses({
        identities: Object.fromEntries(SERVICES.map((s) => [s, issuer.identity(s)])) as Record<
          DemoService,
          DemoIdentity
        >,
        ids: Object.fromEntries(SERVICES.map((s) => [s, sidOf(td(), s)])) as Record<
          DemoService,
          string
        >,
        tokenService: { url: tokenService.url, spiffeId: tokenService.issuer },
        idpJwksFile: jwksFile,
        demoUsersFile: join(dir.path, 'demo-users.json'),
        trustDomain: td(),
      });
      closers.push(() => demo.close());
    });

    after(async () => {
      for (const c of closers.reverse()) await c().catch(() => undefined);
      dir.cleanup();
    });

    /** The serial of the certificate a service presents in a handshake right now. */
    function presentedSerial(service: DemoService): Promise<string> {
      const u = new URL(demo.processes[service].url);
      return new Promise((resolve, reject) => {
        const s = tls.connect({
          ...tlsClientOptions(prober, prober, authorizeId(sidOf(td(), service))),
          host: u.hostname,
          port: Number(u.port),
        });
        s.once('secureConnect', () => {
          const serial = s.getPeerCertificate().serialNumber;
          s.end();
          resolve(serial);
        });
        s.once('error', reject);
      });
    }

    test('each process serves as the SVID picked for it; the attestor serves nothing of another uid', async () => {
      for (const s of SERVICES) assert.equal(demo.processes[s].spiffeId, sidOf(td(), s));
      const served = prober.getX509Svids().map((x) => x.id.toString());
      assert.ok(served.includes(sidOf(td(), 'prober')));
      assert.ok(!served.includes(sidOf(td(), 'other-uid')));
      // The TLS check is real: the prober's client refuses a service presenting another ID.
      await assert.rejects(
        new Promise((resolve, reject) => {
          const u = new URL(demo.processes['policy-service'].url);
          const s = tls.connect({
            ...tlsClientOptions(prober, prober, authorizeId(sidOf(td(), 'user-service'))),
            host: u.hostname,
            port: Number(u.port),
          });
          s.once('secureConnect', () => {
            s.end();
            resolve(undefined);
          });
          s.once('error', reject);
        }),
      );
    });

    test('direct and delegated scenarios across SVID rotations: zero failed requests', async () => {
      const data = demoPolicyData(td());
      const policy = await wasmPolicy({ data });
      const { readFile } = await import('node:fs/promises');
      const passwords = JSON.parse(
        await readFile(join(dir.path, 'demo-users.json'), 'utf8'),
      ) as Record<string, string>;
      const browsers = new Map<string, Browser>();
      for (const u of ['alice', 'bob']) {
        const b = new Browser(demo.dashboardUrl);
        await b.login(u, passwords[u]!);
        browsers.set(u, b);
      }
      const cases = await Promise.all(
        PICKED.map(async (s) => {
          const moved = inTrustDomain(s, td());
          return { s: moved, expected: await policy.decide(moved.input) };
        }),
      );
      const watched: DemoService[] = ['document-service', 'agent-service', 'policy-service'];
      const serials = new Map<DemoService, Set<string>>(watched.map((w) => [w, new Set()]));
      const failures: string[] = [];
      let ok = 0;
      // A liveness bound only (rotations come every ~15 s): the assertions are on what was seen.
      const deadline = Date.now() + 240_000;
      const rotated = () => [...serials.values()].every((x) => x.size >= 2);
      while (!rotated() && Date.now() < deadline) {
        for (const { s, expected } of cases) {
          const person = s.input.person?.split('/').pop();
          const agent = s.input.agent?.split('/').pop();
          try {
            const b = browsers.get(person ?? 'alice')!;
            const r = agent
              ? await b.request('POST', '/api/access-delegated', {
                  agent_id: agent,
                  document_id: s.input.document,
                  ...(person ? {} : { autonomous: true }),
                })
              : await b.request('POST', '/api/access-direct', { document_id: s.input.document });
            if (
              r.status === (s.allow ? 200 : 403) &&
              r.body.granted === s.allow &&
              r.body.reason === expected.reason &&
              r.body.user === s.input.person &&
              r.body.agent === s.input.agent
            )
              ok++;
            else failures.push(`${s.name}: ${r.status} ${JSON.stringify(r.body)}`);
          } catch (err) {
            failures.push(`${s.name}: ${(err as Error).message}`);
          }
        }
        for (const w of watched) {
          try {
            serials.get(w)!.add(await presentedSerial(w));
          } catch (err) {
            failures.push(`handshake with ${w}: ${(err as Error).message}`);
          }
        }
        await sleep(500);
      }
      assert.deepEqual(failures, []);
      for (const [w, seen] of serials)
        assert.ok(seen.size >= 2, `${w} presented a rotated SVID (${seen.size} seen)`);
      assert.ok(ok >= cases.length * 2, `${ok} requests answered as the reference`);
    });
  });
}

// The parts behind the dashboard's people-token routes (issue 13), all real: Vault in -dev mode
// with JWT auth trusting the world's identity server, the egress broker from @precinct/secrets on
// SPIFFE mTLS with its own SVID and Vault role, a token service that grants the store and call
// scopes, and a stand-in third-party API that records the credential it got. The dashboard logs
// in to Vault as itself with a policy on people's token *metadata* only.
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { TXN_TOKEN_HEADER, TXN_TOKEN_TYPE, createTxnTokenVerifier } from '@precinct/delegation';
import {
  authorizeId,
  authorizeMemberOf,
  peerSpiffeId,
  spiffeServer,
  tlsClientOptions,
  tlsServerOptions,
  undiciConnector,
  type X509SvidSource,
} from '@precinct/spiffe';
import { JwtSource, X509Source } from '@precinct/spiffe/workloadapi';
import {
  VaultAdmin,
  VaultSession,
  createEgressBroker,
  type EgressAuditEvent,
} from '@precinct/secrets';
import {
  MemoryConsentStore,
  createOidcPersonAuthenticator,
  startTokenService,
  type PersonAuthenticator,
  type TokenService,
} from '@precinct/token-service';
import { startVault, type VaultServer } from '@precinct/testing';
import { brokerPeopleTokens, type DashboardOptions } from '@precinct/dashboard';
import { pickSvid } from '@precinct/demo';
import { TD, agentId, attestAddress, quiet, sid, type World } from '../demo/support.js';

const VAULT_AUDIENCE = 'vault';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';

export interface PeopleTokensRig {
  vault: VaultServer;
  admin: VaultAdmin;
  tokenService: TokenService;
  /** Credentials the stand-in third-party API received, in order. */
  seen: string[];
  audits: EgressAuditEvent[];
  /** As agent `agent` (its own SVID) for `person`: a delegated call through the broker. */
  agentCall(agent: string, person: string): Promise<{ status: number; body: string }>;
  /** As agent `agent`, with a Transaction Token of the person's alone (no delegation). */
  agentCallWithoutDelegation(
    agent: string,
    person: string,
  ): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

/**
 * The broker keys people's tokens by the Transaction Token's subject and accepts only one path
 * segment (no `/`), so this token service names people by their short name (`alice`), not by
 * their SPIFFE ID as the demo's does: see the report on the broker's subject rule.
 */
function shortNames(inner: PersonAuthenticator): PersonAuthenticator {
  const prefix = `spiffe://${TD}/user/`;
  return {
    tokenTypes: inner.tokenTypes,
    async authenticate(token, type) {
      const p = await inner.authenticate(token, type);
      return p.subject.startsWith(prefix) ? { ...p, subject: p.subject.slice(prefix.length) } : p;
    },
  };
}

/** Starts the rig on `world`; returns it and the dashboard options that wire it in. */
export async function startPeopleTokensRig(
  world: World,
): Promise<{ rig: PeopleTokensRig; dashboard: Partial<DashboardOptions> }> {
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const vault = await startVault();
    closers.unshift(() => vault.close());
    const admin = new VaultAdmin({ address: vault.url, token: vault.rootToken });
    await admin.configureJwtAuth({ issuer: world.identity.issuer });
    await admin.writePolicy(
      'egress-broker',
      'path "secret/data/people/*" {\n  capabilities = ["create", "update", "read"]\n}',
    );
    // The dashboard sees whether a token is stored and can remove it; it can never read one.
    await admin.writePolicy(
      'dashboard',
      'path "secret/metadata/people/*" {\n  capabilities = ["read", "delete"]\n}',
    );
    for (const sa of ['egress-broker', 'dashboard']) {
      await admin.writeWorkloadRole({
        role: sa,
        spiffeId: sid(sa),
        audience: VAULT_AUDIENCE,
        policies: [sa],
      });
    }
    await world.identity.entries.create({
      spiffeId: sid('egress-broker'),
      selectors: ['k8s:ns:demo', 'k8s:sa:egress-broker'],
    });
    const brokerAddress = await attestAddress(world.identity, 'egress-broker');
    const brokerX509 = await X509Source.create({ address: brokerAddress, timeoutMs: 20_000 });
    closers.unshift(() => brokerX509.close());
    const brokerJwt = await JwtSource.create({ address: brokerAddress, timeoutMs: 20_000 });
    closers.unshift(() => brokerJwt.close());
    const dashboardJwt = await JwtSource.create({
      address: await attestAddress(world.identity, 'dashboard'),
      timeoutMs: 20_000,
    });
    closers.unshift(() => dashboardJwt.close());
    const login = (role: string, jwtSource: JwtSource) =>
      VaultSession.login({ address: vault.url, role, audience: VAULT_AUDIENCE, jwtSource });
    const brokerSession = await login('egress-broker', brokerJwt);
    closers.unshift(() => brokerSession.close());
    const dashboardSession = await login('dashboard', dashboardJwt);
    closers.unshift(() => dashboardSession.close());

    // People allowed gpt4 to act for them; nobody allowed claude.
    const consent = new MemoryConsentStore();
    for (const p of ['alice', 'bob', 'carol']) consent.grant(p, [agentId('gpt4')]);
    const tokenService = await startTokenService({
      svidSource: world.sources['token-service'],
      bundleSource: world.sources['token-service'],
      persons: [
        shortNames(
          createOidcPersonAuthenticator({
            issuer: world.idp.issuer,
            clientId: world.idp.audience,
            jwks: world.idp.jwks() as never,
            algorithms: ['ES256'],
          }),
        ),
      ],
      consent,
      // A person may store their own token; an agent acting for them may only call with it.
      grantScope: async ({ agent, requested }) =>
        requested.filter((s) => (agent ? s === 'github:read' : s === 'secrets:store:github')),
      isAgent: (id) => id.startsWith(`spiffe://${TD}/agent/`),
      mayRequest: (id) => id === sid('dashboard') || id.startsWith(`spiffe://${TD}/agent/`),
      host: '127.0.0.1',
      logger: quiet(),
    });
    closers.unshift(() => tokenService.close());

    const seen: string[] = [];
    const api: Server = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ login: 'octocat', path: req.url }));
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    closers.unshift(() => new Promise((r) => api.close(r)));

    const audits: EgressAuditEvent[] = [];
    const broker = createEgressBroker({
      session: brokerSession,
      providers: { github: { baseUrl: `http://127.0.0.1:${(api.address() as AddressInfo).port}` } },
      txnTokens: createTxnTokenVerifier({
        trustDomain: TD,
        issuer: tokenService.issuer,
        jwks: tokenService.keys.jwks(),
      }),
      authenticateCaller: async (req) => peerSpiffeId(req.socket)?.toString(),
      authorize: (r) =>
        r.action === 'store'
          ? r.scope.includes(`secrets:store:${r.provider}`)
          : r.scope.includes(`${r.provider}:read`) && r.method === 'GET',
      audit: (e) => {
        audits.push(e);
      },
      logger: { debug: () => undefined, info: () => undefined, warn: () => undefined },
    });
    const tlsOpts = tlsServerOptions(brokerX509, brokerX509, authorizeMemberOf(TD));
    const server = spiffeServer(
      createHttpsServer(tlsOpts, (req, res) => void broker.handle(req, res)),
      tlsOpts,
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.unshift(
      () =>
        new Promise((r) => {
          server.closeAllConnections();
          server.close(r);
        }),
    );
    const brokerUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const dispatcherAs = (svid: X509SvidSource, serverId: string) =>
      new Agent({
        connect: undiciConnector(
          tlsClientOptions(svid, world.sources.dashboard, authorizeId(serverId)),
        ) as never,
      });
    const dashboardToBroker = dispatcherAs(world.sources.dashboard, sid('egress-broker'));
    closers.unshift(() => dashboardToBroker.close());

    /** A Transaction Token from the token service, as `svid`, for the person's ID token. */
    async function exchange(svid: X509SvidSource, person: string, scope: string) {
      const d = dispatcherAs(svid, tokenService.issuer);
      try {
        const res = await request(`${tokenService.url}/token`, {
          dispatcher: d,
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: TOKEN_EXCHANGE,
            requested_token_type: TXN_TOKEN_TYPE,
            audience: TD,
            scope,
            subject_token: world.idp.mint(`spiffe://${TD}/user/${person}`),
            subject_token_type: ID_TOKEN_TYPE,
          }).toString(),
        });
        const body = (await res.body.json()) as { access_token?: string };
        if (res.statusCode !== 200 || !body.access_token)
          throw new Error(`token service answered ${res.statusCode}: ${JSON.stringify(body)}`);
        return body.access_token;
      } finally {
        await d.close();
      }
    }

    async function callBroker(svid: X509SvidSource, txn: string) {
      const d = dispatcherAs(svid, sid('egress-broker'));
      try {
        const res = await request(`${brokerUrl}/v1/egress/github/user`, {
          dispatcher: d,
          headers: { [TXN_TOKEN_HEADER]: txn },
        });
        return { status: res.statusCode, body: await res.body.text() };
      } finally {
        await d.close();
      }
    }

    const agentSvid = (agent: string) =>
      pickSvid(world.sources['agent-service'] as never, agentId(agent));
    const rig: PeopleTokensRig = {
      vault,
      admin,
      tokenService,
      seen,
      audits,
      async agentCall(agent, person) {
        const svid = agentSvid(agent);
        return callBroker(svid, await exchange(svid, person, 'github:read'));
      },
      async agentCallWithoutDelegation(agent, person) {
        // The person's own token (as the dashboard gets it to store), presented by the agent.
        const txn = await exchange(world.sources.dashboard, person, 'secrets:store:github');
        return callBroker(agentSvid(agent), txn);
      },
      async close() {
        for (const c of closers) await c().catch(() => undefined);
      },
    };
    return {
      rig,
      dashboard: {
        tokenService: { url: tokenService.url, spiffeId: tokenService.issuer },
        peopleTokens: brokerPeopleTokens({
          brokerUrl,
          dispatcher: dashboardToBroker,
          providers: ['github'],
          metadata: dashboardSession,
          personKey: (p) => p.slice(p.lastIndexOf('/') + 1),
        }),
      },
    };
  } catch (err) {
    for (const c of closers) await c().catch(() => undefined);
    throw err;
  }
}

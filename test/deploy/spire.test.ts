// One table, two SPIFFE issuers: a real SPIRE v1.13.3 (server + agent, join_token node
// attestation, unix workload attestor) and our identity server. Against each, unchanged:
// @precinct/spiffe's X509Source and JwtSource on the Workload API socket, and the audit store
// (`startAuditStore({ spiffe })`, the production --spiffe mode) with a client over mTLS,
// through SVID rotations (30 s SVIDs) with zero failed requests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, fetch as undiciFetch } from 'undici';
import { CoreV1Api, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import {
  peerSkip,
  startPostgres,
  startSpire,
  type PostgresServer,
  type Spire,
} from '@precinct/testing';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  loadKubeConfig,
} from '@precinct/kube';
import {
  authorizeId,
  parseAndValidateJwtSvid,
  tlsClientOptions,
  tlsClientOptionsServerAuth,
  undiciConnector,
} from '@precinct/spiffe';
import { JwtSource, X509Source } from '@precinct/spiffe/workloadapi';
import { startIdentityServer, type IdentityServer } from '@precinct/identity-server';
import { startAuditStore, type AuditStore } from '@precinct/audit-store';

const NS = 'audit';
const APPS = 'apps';
const SVID_TTL_SECONDS = 30;

/** What a test needs from an issuer: where each workload's Workload API is, and cleanup. */
interface Issuer {
  trustDomain: string;
  /** Workload API address that serves `sa`'s SVID to this process. */
  address(sa: string): string;
  close(): Promise<void>;
}

const idOf = (td: string, sa: string) => `spiffe://${td}/ns/${APPS}/sa/${sa}`;

let kd: KubeDev;
let kc: KubeConfig;
// The production shape: the audit store on a real PostgreSQL (DATABASE_URL), which also keeps
// an in-process database from blocking the event loop while short-lived SVIDs rotate.
let pg: PostgresServer | undefined;
const pgSkip = peerSkip('postgres');

before(async () => {
  if (!pgSkip) pg = await startPostgres();
  kd = await startKubeDev({ listen: { host: '127.0.0.1', port: 0 }, advertiseHost: '127.0.0.1' });
  kc = loadKubeConfig({ KUBECONFIG: kd.kubeconfigPath });
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of [NS, APPS]) await core.createNamespace({ body: { metadata: { name } } });
  for (const name of ['store', 'client'])
    await core.createNamespacedServiceAccount({ namespace: APPS, body: { metadata: { name } } });
});

after(async () => {
  await kd?.close();
  await pg?.close();
});

/** RBAC for the audit store's object: every workload of `td` may read and write. */
async function grantTrustDomain(td: string, name: string): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace: NS,
    body: {
      metadata: { name },
      rules: [
        {
          apiGroups: [''],
          resources: ['services'],
          resourceNames: ['data-storage-service'],
          verbs: ['get', 'create'],
        },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: NS,
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: `spiffe://${td}` }],
    },
  });
}

const ISSUERS: Array<{ name: string; skip: string | false; start: () => Promise<Issuer> }> = [
  {
    name: 'SPIRE v1.13.3 (join_token, unix:uid)',
    skip: peerSkip('spire-server', 'spire-agent', 'postgres'),
    start: async () => {
      const spire: Spire = await startSpire({ trustDomain: 'spire.test' });
      try {
        const uid = process.getuid!();
        // Control for the workload attestor: an entry for another uid is never served to us. It is
        // created first, so the agent sync that brings ours has brought it too.
        await spire.server([
          'entry',
          'create',
          '-parentID',
          spire.agentId,
          '-spiffeID',
          idOf(spire.trustDomain, 'other-uid'),
          '-selector',
          `unix:uid:${uid + 4242}`,
        ]);
        for (const sa of ['store', 'client']) {
          await spire.createEntry({
            spiffeId: idOf(spire.trustDomain, sa),
            selectors: [`unix:uid:${uid}`],
            x509SvidTtlSeconds: SVID_TTL_SECONDS,
            hint: sa,
          });
        }
      } catch (err) {
        await spire.close();
        throw err;
      }
      return {
        trustDomain: spire.trustDomain,
        address: () => spire.workloadAddress,
        close: () => spire.close(),
      };
    },
  },
  {
    name: 'precinct identity-server (TokenReview attestation)',
    skip: pgSkip,
    start: async () => {
      const td = 'identity.test';
      const identity: IdentityServer = await startIdentityServer({
        trustDomain: td,
        admin: { host: '127.0.0.1', port: 0 },
        oidc: { host: '127.0.0.1', port: 0 },
        health: { host: '127.0.0.1', port: 0 },
        verifier: cachingVerifier(
          createTokenReviewVerifier({ kubeConfig: kc, audiences: ['precinct'] }),
        ),
      });
      const addresses = new Map<string, string>();
      try {
        const core = kc.makeApiClient(CoreV1Api);
        for (const sa of ['store', 'client']) {
          await identity.entries.create({
            spiffeId: idOf(td, sa),
            selectors: [`k8s:ns:${APPS}`, `k8s:sa:${sa}`],
            x509SvidTtl: SVID_TTL_SECONDS,
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
          addresses.set(sa, ((await res.json()) as { address: string }).address);
        }
      } catch (err) {
        await identity.close();
        throw err;
      }
      return {
        trustDomain: td,
        address: (sa) => addresses.get(sa)!,
        close: () => identity.close(),
      };
    },
  },
];

for (const spec of ISSUERS) {
  describe(`SPIFFE issuer: ${spec.name}`, { skip: spec.skip }, () => {
    let issuer: Issuer;
    let store: AuditStore;
    const sources = new Map<string, X509Source>();
    const id = (sa: string) => idOf(issuer.trustDomain, sa);

    before(async () => {
      issuer = await spec.start();
      await grantTrustDomain(
        issuer.trustDomain,
        `writers-${issuer.trustDomain.replace(/\./g, '-')}`,
      );
      for (const sa of ['store', 'client']) {
        const want = id(sa);
        sources.set(
          sa,
          await X509Source.create({
            address: issuer.address(sa),
            timeoutMs: 60_000,
            pick: (svids) => svids.find((s) => s.id.toString() === want),
          }),
        );
      }
      const src = sources.get('store')!;
      store = await startAuditStore({
        host: '127.0.0.1',
        port: 0,
        spiffe: { svidSource: src, bundleSource: src },
        auth: {
          verifier: cachingVerifier(createTokenReviewVerifier({ kubeConfig: kc })),
          authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig: kc }),
        },
        authz: { namespace: NS },
        databaseUrl: pg!.url,
        retentionIntervalMs: 0,
      });
    });

    after(async () => {
      await store?.close();
      for (const s of sources.values()) await s.close();
      await issuer?.close();
    });

    /** One write over a fresh mTLS connection (so every request handshakes with the current SVIDs). */
    async function write(
      corr: string,
      serverId = id('store'),
    ): Promise<{ status: number; body: Record<string, unknown> }> {
      const c = sources.get('client')!;
      const agent = new Agent({
        connect: undiciConnector(tlsClientOptions(c, c, authorizeId(serverId))),
      });
      try {
        const res = await undiciFetch(new URL('/api/v1/audit/events', store.url), {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            event_type: 'deploy.check',
            event_category: 'deploy',
            event_action: 'write',
            event_outcome: 'success',
            correlation_id: corr,
          }),
        });
        const text = await res.text();
        return {
          status: res.status,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        };
      } finally {
        await agent.close();
      }
    }

    /** The serial of the certificate the store presents in a handshake right now. */
    function presentedSerial(): Promise<string> {
      const c = sources.get('client')!;
      const u = new URL(store.url);
      return new Promise((resolve, reject) => {
        const s = tls.connect({
          ...tlsClientOptions(c, c, authorizeId(id('store'))),
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

    test('X509Source: each workload gets its own SVID and the trust bundle; nothing for another uid', () => {
      for (const sa of ['store', 'client']) {
        const src = sources.get(sa)!;
        assert.equal(src.getX509Svid().id.toString(), id(sa));
        assert.ok(src.getX509BundleForTrustDomain(issuer.trustDomain));
        assert.ok(!src.getX509Svids().some((s) => s.id.toString() === id('other-uid')));
      }
    });

    test('JwtSource: a JWT-SVID for an audience validates against the Workload API bundles', async () => {
      const jwt = await JwtSource.create({ address: issuer.address('client'), timeoutMs: 60_000 });
      try {
        const svid = await jwt.fetchJwtSvid({ audience: 'audit-store', subject: id('client') });
        assert.equal(svid.id.toString(), id('client'));
        const ok = parseAndValidateJwtSvid(svid.token, jwt, ['audit-store']);
        assert.equal(ok.id.toString(), id('client'));
        assert.throws(
          () => parseAndValidateJwtSvid(svid.token, jwt, ['someone-else']),
          'control: audience checked',
        );
      } finally {
        await jwt.close();
      }
    });

    test('mTLS: the client writes to the audit store and is recorded by its SPIFFE ID', async () => {
      const w = await write('first');
      assert.equal(w.status, 201, JSON.stringify(w.body));
      assert.equal(w.body.written_by, id('client'));
    });

    test('mTLS controls: a client expecting another server ID, and a client without an SVID, get nothing', async () => {
      await assert.rejects(write('wrong-server', id('client')));
      const c = sources.get('client')!;
      const agent = new Agent({
        connect: undiciConnector(tlsClientOptionsServerAuth(c, authorizeId(id('store')))),
      });
      try {
        await assert.rejects(
          undiciFetch(new URL('/api/v1/audit/events?correlation_id=first', store.url), {
            dispatcher: agent,
          }),
        );
      } finally {
        await agent.close();
      }
    });

    test('SVID rotation on both sides: zero failed requests, new certificates presented', async () => {
      const presented = new Set<string>();
      const clientSerials = new Set<string>();
      const failures: string[] = [];
      let ok = 0;
      // A liveness bound only (rotations come every ~10 s): the assertion is on what was seen.
      const deadline = Date.now() + 180_000;
      while ((presented.size < 2 || clientSerials.size < 2) && Date.now() < deadline) {
        clientSerials.add(sources.get('client')!.getX509Svid().certificates[0]!.serialNumber);
        try {
          const w = await write(`rotation-${ok + failures.length}`);
          if (w.status === 201 && w.body.written_by === id('client')) ok++;
          else failures.push(`${w.status} ${JSON.stringify(w.body)}`);
          presented.add(await presentedSerial());
        } catch (err) {
          failures.push((err as Error).message);
        }
        await sleep(250);
      }
      assert.deepEqual(failures, []);
      assert.ok(presented.size >= 2, `the store presented a rotated SVID (${presented.size} seen)`);
      assert.ok(
        clientSerials.size >= 2,
        `the client rotated its SVID (${clientSerials.size} seen)`,
      );
      assert.ok(ok > 0);
    });
  });
}

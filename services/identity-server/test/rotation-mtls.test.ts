// An SVID survives rotation mid-traffic: two workloads, each an @precinct/spiffe X509Source on
// its own attested socket, do continuous mTLS with the SDK's TLS helpers and see zero failed
// requests across two CA activations. Real time, short lifetimes (CA 9 s, SVID 3 s); nothing
// asserts how long anything took.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import {
  authorizeId,
  peerSpiffeId,
  spiffeServer,
  tlsClientOptions,
  tlsServerOptions,
} from '@precinct/spiffe';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { systemClock } from '../src/clock.js';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import { fakeVerifier, quietLogger } from './support.js';

const SERVER_ID = 'spiffe://rotate.example/server';
const CLIENT_ID = 'spiffe://rotate.example/client';

describe('rotation under traffic', () => {
  let server: IdentityServer;
  const sources: X509Source[] = [];
  let tlsServer: tls.Server | undefined;

  before(async () => {
    server = await startIdentityServer({
      trustDomain: 'rotate.example',
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      caTtlMs: 9000,
      jwtKeyTtlMs: 9000,
      verifier: fakeVerifier(systemClock, {
        srv: { namespace: 'srv', serviceAccountName: 'default' },
        cli: { namespace: 'cli', serviceAccountName: 'default' },
      }),
      clock: systemClock,
      logger: quietLogger(),
    });
    await server.entries.create({ spiffeId: SERVER_ID, selectors: ['k8s:ns:srv'], x509SvidTtl: 3 });
    await server.entries.create({ spiffeId: CLIENT_ID, selectors: ['k8s:ns:cli'], x509SvidTtl: 3 });
  });
  after(async () => {
    tlsServer?.close();
    for (const s of sources) await s.close();
    await server?.close();
  });

  const source = async (token: string) => {
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    const { address } = (await res.json()) as { address: string };
    const s = await X509Source.create({ address, timeoutMs: 20_000 });
    sources.push(s);
    let updates = 0;
    s.on('update', () => updates++);
    return { s, updates: () => updates };
  };

  test(
    'continuous mTLS across two CA activations: zero failed requests',
    { timeout: 60_000 },
    async () => {
      const srv = await source('srv');
      const cli = await source('cli');
      assert.equal(srv.s.getX509Svid().id.toString(), SERVER_ID);

      const opts = tlsServerOptions(srv.s, srv.s, authorizeId(CLIENT_ID));
      tlsServer = spiffeServer(
        tls.createServer(opts, (socket) => {
          socket.on('error', () => undefined);
          socket.end(String(peerSpiffeId(socket)));
        }),
        opts,
      );
      tlsServer.listen(0, '127.0.0.1');
      await once(tlsServer, 'listening');
      const port = (tlsServer.address() as AddressInfo).port;

      const activations = async () =>
        (await server.metrics.rotations.get()).values.find(
          (v) => v.labels.event === 'x509_activated',
        )?.value ?? 0;
      const startActivations = await activations();
      let ok = 0;
      const failures: string[] = [];
      while ((await activations()) < startActivations + 2) {
        try {
          const seen = await new Promise<string>((resolve, reject) => {
            const socket = tls.connect({
              ...tlsClientOptions(cli.s, cli.s, authorizeId(SERVER_ID)),
              host: '127.0.0.1',
              port,
            });
            let data = '';
            socket.on('data', (d: Buffer) => (data += d.toString()));
            socket.on('end', () => resolve(data));
            socket.on('error', reject);
          });
          if (seen === CLIENT_ID) ok++;
          else failures.push(`server saw ${seen}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(failures, []);
      assert.ok(ok > 10, `only ${ok} requests`);
      assert.ok(srv.updates() >= 3 && cli.updates() >= 3, 'SVIDs were rotated on the streams');
    },
  );
});

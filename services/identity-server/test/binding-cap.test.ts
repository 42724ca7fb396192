// A binding's life is capped independently of its token's exp (tokens may live a year), and
// re-attestation extends it. Time is a manual clock: nothing here waits for a wall clock.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import type { ServiceAccountIdentity, TokenVerifier } from '../src/attestation.js';
import {
  ManualClock,
  md,
  quietLogger,
  rawClient,
  reader,
  settle,
  unary,
  type RawClient,
} from './support.js';

const HOUR = 3600_000;
const MIN = 60_000;

describe('binding lifetime cap', () => {
  const clock = new ManualClock(Date.now());
  // Tokens as a cluster could issue them: one valid for a year, one for 20 minutes.
  const lifetimes: Record<string, number> = {
    'token-year': 365 * 24 * HOUR,
    'token-20m': 20 * MIN,
  };
  const verifier: TokenVerifier = {
    async verify(token): Promise<ServiceAccountIdentity> {
      const life = lifetimes[token];
      if (life === undefined) {
        throw Object.assign(new Error('bad signature'), { code: 'ERR_TOKEN_SIGNATURE' });
      }
      const sa = token === 'token-year' ? 'api' : 'short';
      return {
        uid: `uid-${sa}`,
        namespace: 'team-a',
        serviceAccountName: sa,
        expiresAt: new Date(clock.now() + life),
      };
    },
  };
  let server: IdentityServer;
  const clients: RawClient[] = [];
  const client = (address: string) => {
    const c = rawClient(address);
    clients.push(c);
    return c;
  };
  const attest = async (token: string) => {
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    assert.equal(res.status, 200);
    return (await res.json()) as { address: string; socketPath: string; expiresAt: string };
  };
  const jwt = (c: RawClient) =>
    unary<{ svids: { spiffe_id: string }[] }>((cb) =>
      c.FetchJWTSVID({ audience: ['x'] }, md(), cb),
    ).then(
      (r) => r.svids[0]!.spiffe_id,
      (e: grpc.ServiceError) => e.code,
    );

  before(async () => {
    server = await startIdentityServer({
      trustDomain: 'example.org',
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      verifier,
      clock,
      logger: quietLogger(),
      // maxBindingMs left at its default: 1 h.
    });
    for (const sa of ['api', 'short']) {
      await server.entries.create({
        spiffeId: `spiffe://example.org/ns/team-a/sa/${sa}`,
        selectors: ['k8s:ns:team-a', `k8s:sa:${sa}`],
      });
    }
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.close();
  });

  test('a year-long token gets a 1 h binding; re-attesting extends it; past the cap it ends', async () => {
    const t0 = clock.now();
    const a = await attest('token-year');
    assert.equal(a.expiresAt, new Date(t0 + HOUR).toISOString());
    const c = client(a.address);
    assert.equal(await jwt(c), 'spiffe://example.org/ns/team-a/sa/api');

    await clock.advance(50 * MIN);
    const again = await attest('token-year');
    assert.equal(again.socketPath, a.socketPath, 'the same socket is extended');
    assert.equal(again.expiresAt, new Date(t0 + 50 * MIN + HOUR).toISOString());
    // Past the first cap, within the extended one: still served (positive control).
    await clock.advance(50 * MIN);
    assert.equal(await jwt(c), 'spiffe://example.org/ns/team-a/sa/api');

    const stream = reader(c.FetchX509SVID({}, md()));
    assert.equal((await stream.next()).svids.length, 1);
    // Past the extended cap, with the token still valid for most of a year: the stream ends.
    await clock.advance(11 * MIN);
    await assert.rejects(
      async () => {
        for (;;) await stream.next();
      },
      { code: grpc.status.PERMISSION_DENIED },
    );
    await settle(20);
    assert.throws(() => statSync(a.socketPath), { code: 'ENOENT' });
  });

  test('a token that expires before the cap bounds the binding by its own exp', async () => {
    const t0 = clock.now();
    const a = await attest('token-20m');
    assert.equal(a.expiresAt, new Date(t0 + 20 * MIN).toISOString());
  });
});

// The entry store's PostgreSQL goes away while the server runs: /ready says which check fails
// and admin writes answer 503 problem+json (retry later), never a 500 or a crash; once the
// database is back, both recover without a restart.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { peerSkip, startPostgres, type PostgresServer } from '@precinct/testing';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import { quietLogger } from './support.js';

describe('identity server on PostgreSQL: an outage', { skip: peerSkip('postgres') }, () => {
  let pg: PostgresServer;
  let server: IdentityServer;
  before(async () => {
    pg = await startPostgres();
    server = await startIdentityServer({
      trustDomain: 'outage.example',
      databaseUrl: pg.url,
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      logger: quietLogger(),
    });
  });
  after(async () => {
    await server?.close();
    await pg?.close();
  });

  const create = (n: number) =>
    fetch(`${server.adminUrl}/v1/entries`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${server.adminToken}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        spiffeId: `spiffe://outage.example/w${n}`,
        selectors: [`k8s:ns:w${n}`],
      }),
      signal: AbortSignal.timeout(60_000),
    });
  const ready = () => fetch(`${server.healthUrl}/ready`, { signal: AbortSignal.timeout(60_000) });

  test('ready and writable, then 503 while the database is down, then recovered', async () => {
    // Positive control: the same requests succeed with the database up.
    assert.equal((await ready()).status, 200);
    assert.equal((await create(1)).status, 201);

    await pg.stop();
    const notReady = await ready();
    assert.equal(notReady.status, 503);
    assert.match(notReady.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.match(((await notReady.json()) as { detail: string }).detail, /store/);
    const refused = await create(2);
    assert.equal(refused.status, 503);
    assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(((await refused.json()) as { status: number }).status, 503);
    // Nothing was half-written: the entry the failed call tried to make does not exist.
    assert.equal(
      server.entries.list().some((e) => e.spiffeId === 'spiffe://outage.example/w2'),
      false,
    );

    await pg.start();
    assert.equal((await ready()).status, 200);
    assert.equal((await create(2)).status, 201);
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createAccount } from '@nats-io/nkeys';
import {
  startNatsCallout,
  staticServiceAccounts,
  type NatsCalloutConfig,
} from '@precinct/nats-callout';
import { createLogger } from '@precinct/runtime';

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('health, readiness and metrics while NATS is unreachable; close() does not hang', async () => {
  const config: NatsCalloutConfig = {
    http: { host: '127.0.0.1', port: 0 },
    natsServers: [`nats://127.0.0.1:${await closedPort()}`],
    natsAuth: { kind: 'token', token: 't' },
    signingKeySeed: new TextDecoder().decode(createAccount().getSeed()),
    account: 'APP',
    token: {
      issuer: 'https://issuer.test',
      audience: 'nats',
      jwksPath: '/nonexistent',
      inCluster: false,
    },
    kube: { inCluster: false },
    userJwtMaxTtlSeconds: 3600,
    queueGroup: 'q',
    sharedInbox: false,
    logLevel: 'silent',
  };
  const callout = await startNatsCallout(config, {
    verifier: { verify: () => Promise.reject(new Error('unused')) },
    serviceAccounts: staticServiceAccounts([]),
    logger: createLogger('test', 'silent'),
  });
  try {
    const base = `http://127.0.0.1:${callout.port}`;
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
    const ready = await fetch(`${base}/ready`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), {
      ready: false,
      nats: 'disconnected',
      serviceAccounts: 'synced',
      cacheSize: 0,
      jwks: 'external',
    });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^nats_callout_nats_connected 0$/m);
    assert.match(metrics, /^# TYPE nats_auth_requests_total counter$/m);
    assert.match(metrics, /^# TYPE nats_auth_decision_duration_seconds histogram$/m);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/health`, { method: 'POST' })).status, 405);
    assert.match(callout.issuer, /^A/);
  } finally {
    await callout.close();
    await callout.close(); // idempotent
  }
});

// End-to-end: a real nats-server (>= 2.10) delegating authentication to the callout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NatsConnection } from '@nats-io/transport-node';
import type { NatsCallout } from '@precinct/nats-callout';
import { peerSkip, startNatsServer, tempDir, type NatsServer } from '@precinct/testing';
import {
  connectWorkload,
  expectPermissionViolation,
  jwksVerifier,
  newKeys,
  newTokenIssuer,
  requestCount,
  serverConfig,
  startCallout,
  sleep,
  staticServiceAccounts,
  waitFor,
  type CalloutKeys,
  type TokenIssuer,
} from './harness.js';

const skip = peerSkip('nats-server');
const ISSUER = 'https://kubernetes.test';

const sa = (namespace: string, name: string, annotations: Record<string, string> = {}) => ({
  namespace,
  name,
  uid: `uid-${namespace}-${name}`,
  annotations,
});

describe('nats-callout with a real nats-server', { skip }, () => {
  const dir = tempDir('nats-callout-e2e-');
  const open: NatsConnection[] = [];
  let keys: CalloutKeys;
  let tokens: TokenIssuer;
  let otherIssuer: TokenIssuer;
  let server: NatsServer;
  let callout: NatsCallout;
  const sas = staticServiceAccounts([
    sa('team-a', 'worker'),
    sa('team-a', 'client', { 'nats.io/allowed-pub-subjects': 'team-b.api.>' }),
    sa('team-a', 'spy'),
    sa('team-b', 'api'),
    sa('team-b', 'reader'),
  ]);

  const slow = { delayMs: 0, inFlight: 0, max: 0 };
  const workload = async (ns: string, name: string, inbox = true) => {
    const nc = await connectWorkload(
      server,
      await tokens.mint(ns, name),
      inbox ? `_INBOX_${ns}_${name}` : undefined,
    );
    open.push(nc);
    return nc;
  };

  before(async () => {
    if (skip) return;
    keys = newKeys();
    tokens = await newTokenIssuer(dir.path, ISSUER);
    otherIssuer = await newTokenIssuer(dir.path, 'https://other-cluster.test');
    server = await startNatsServer(serverConfig(keys));
    const base = await jwksVerifier(tokens);
    callout = await startCallout(server, keys, tokens, {
      // The real verifier, with a switchable delay to observe concurrent decisions.
      verifier: {
        async verify(token) {
          slow.inFlight++;
          slow.max = Math.max(slow.max, slow.inFlight);
          try {
            if (slow.delayMs) await sleep(slow.delayMs);
            return await base.verify(token);
          } finally {
            slow.inFlight--;
          }
        },
      },
      serviceAccounts: sas,
    });
  });
  after(async () => {
    await Promise.all(open.map((nc) => nc.close().catch(() => {})));
    await callout?.close();
    await server?.close();
    dir.cleanup();
  });

  test('a permitted workload connects and can pub/sub in its namespace', async () => {
    const nc = await workload('team-a', 'worker');
    const sub = nc.subscribe('team-a.jobs.>', { max: 1 });
    await nc.flush();
    nc.publish('team-a.jobs.1', 'hello');
    for await (const m of sub) assert.equal(m.string(), 'hello');
    const ready = await fetch(`http://127.0.0.1:${callout.port}/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), {
      ready: true,
      nats: 'connected',
      serviceAccounts: 'synced',
      cacheSize: 5,
      jwks: 'external',
    });
  });

  test('decisions run concurrently, not one at a time', async () => {
    slow.delayMs = 300;
    slow.max = 0;
    try {
      await Promise.all(Array.from({ length: 6 }, () => workload('team-a', 'worker')));
    } finally {
      slow.delayMs = 0;
    }
    assert.ok(slow.max >= 2, `at most ${slow.max} decision(s) in flight`);
  });

  test('publishing or subscribing outside the grants is refused by the server', async () => {
    const nc = await workload('team-a', 'worker');
    const observer = await workload('team-b', 'reader');
    const seen: string[] = [];
    observer.subscribe('team-b.>', {
      callback: (_e, m) => {
        seen.push(m.subject);
      },
    });
    await observer.flush();
    await expectPermissionViolation(nc, 'publish', 'team-b.orders', () =>
      nc.publish('team-b.orders', 'x'),
    );
    await expectPermissionViolation(nc, 'subscription', 'team-b.>', () => {
      nc.subscribe('team-b.>');
    });
    await expectPermissionViolation(nc, 'subscription', '_INBOX.>', () => {
      nc.subscribe('_INBOX.>');
    });
    // Positive control: the observer's own namespace traffic arrives, the refused one did not.
    observer.publish('team-b.ping', '');
    await observer.flush();
    await waitFor(() => seen.includes('team-b.ping'), 'own-namespace message');
    assert.deepEqual(seen, ['team-b.ping']);
  });

  const refusals: Array<{
    name: string;
    token: () => Promise<string | undefined>;
    reason?: string;
  }> = [
    { name: 'no token', token: async () => undefined, reason: 'no_token' },
    { name: 'garbage token', token: async () => 'not-a-jwt' },
    {
      name: 'wrong audience',
      token: () => tokens.mint('team-a', 'worker', { audience: 'vault' }),
      reason: 'token_audience',
    },
    {
      name: 'expired token',
      token: () => tokens.mint('team-a', 'worker', { expiresInSeconds: -600 }),
      reason: 'token_expired',
    },
    { name: 'token from another issuer', token: () => otherIssuer.mint('team-a', 'worker') },
    {
      name: 'token claiming another issuer',
      token: () => tokens.mint('team-a', 'worker', { issuer: 'https://evil.test' }),
    },
    {
      name: 'unknown ServiceAccount',
      token: () => tokens.mint('team-c', 'ghost'),
      reason: 'unknown_service_account',
    },
    {
      name: 'recreated ServiceAccount (old uid)',
      token: () => tokens.mint('team-a', 'worker', { uid: 'uid-of-deleted-sa' }),
      reason: 'service_account_uid_mismatch',
    },
  ];
  for (const r of refusals) {
    test(`refused: ${r.name}`, async () => {
      // Positive control: the same server and callout admit a valid token.
      const good = await workload('team-a', 'worker');
      await good.flush();
      const before = r.reason ? await requestCount(callout, 'denied', r.reason) : 0;
      await assert.rejects(connectWorkload(server, await r.token()), (err: Error) => {
        assert.match(`${err.name} ${err.message}`, /authorization/i);
        return true;
      });
      if (r.reason) assert.equal(await requestCount(callout, 'denied', r.reason), before + 1);
    });
  }

  test('the server disconnects a workload when its ServiceAccount token expires', async () => {
    const nc = await connectWorkload(
      server,
      await tokens.mint('team-a', 'worker', { expiresInSeconds: 3 }),
      '_INBOX_team-a_worker',
    );
    open.push(nc);
    await nc.flush();
    const err = await nc.closed();
    assert.match(String(err), /expired/i);
  });

  test('a cross-namespace grant by annotation works, and its removal applies at the next connect', async () => {
    sas.set(
      sa('team-a', 'worker', {
        'nats.io/allowed-pub-subjects': 'team-b.events.>',
        'nats.io/allowed-sub-subjects': 'team-b.status',
      }),
    );
    const reader = await workload('team-b', 'reader');
    const got: string[] = [];
    reader.subscribe('team-b.events.>', {
      callback: (_e, m) => {
        got.push(m.string());
      },
    });
    await reader.flush();
    const granted = await workload('team-a', 'worker');
    const status = granted.subscribe('team-b.status', { max: 1 });
    await granted.flush();
    granted.publish('team-b.events.created', 'from-team-a');
    reader.publish('team-b.status', 'green');
    for await (const m of status) assert.equal(m.string(), 'green');
    await waitFor(() => got.includes('from-team-a'), 'cross-namespace publish');

    // Remove the grant: the next connection no longer has it (no restart of anything).
    sas.set(sa('team-a', 'worker'));
    const revoked = await workload('team-a', 'worker');
    await expectPermissionViolation(revoked, 'publish', 'team-b.events.created', () =>
      revoked.publish('team-b.events.created', 'again'),
    );
    await expectPermissionViolation(revoked, 'subscription', 'team-b.status', () => {
      revoked.subscribe('team-b.status');
    });
  });

  test('request-reply with private inboxes; a third workload cannot read the replies', async () => {
    const api = await workload('team-b', 'api');
    api.subscribe('team-b.api.echo', {
      callback: (_e, m) => {
        m.respond(`echo:${m.string()}`);
      },
    });
    await api.flush();
    const client = await workload('team-a', 'client');
    const reply = await client.request('team-b.api.echo', 'hi', { timeout: 5_000 });
    assert.equal(reply.string(), 'echo:hi');

    const spy = await workload('team-a', 'spy');
    await expectPermissionViolation(spy, 'subscription', '_INBOX_team-a_client.>', () => {
      spy.subscribe('_INBOX_team-a_client.>');
    });
    await expectPermissionViolation(spy, 'subscription', '_INBOX.>', () => {
      spy.subscribe('_INBOX.>');
    });
    // The responder may answer a request once, but cannot publish into inboxes at will.
    await expectPermissionViolation(api, 'publish', '_INBOX_team-a_client.x', () =>
      api.publish('_INBOX_team-a_client.x', 'forged'),
    );
    // Positive control: the spy's own request-reply still works.
    const own = await spy.request('team-a.nobody', '', { timeout: 2_000 }).catch((e: Error) => e);
    assert.ok(own instanceof Error && /no responders/i.test(own.message), String(own));
  });
});

describe('nats-callout: xkey encryption, replicas, nats-server restart', { skip }, () => {
  const dir = tempDir('nats-callout-e2e2-');
  const open: NatsConnection[] = [];
  let keys: CalloutKeys;
  let tokens: TokenIssuer;
  let server: NatsServer;
  let a: NatsCallout;
  let b: NatsCallout;
  const sas = staticServiceAccounts([sa('team-a', 'worker')]);
  const connectWorker = async () => {
    const nc = await connectWorkload(
      server,
      await tokens.mint('team-a', 'worker'),
      '_INBOX_team-a_worker',
    );
    open.push(nc);
    return nc;
  };

  before(async () => {
    if (skip) return;
    keys = newKeys();
    tokens = await newTokenIssuer(dir.path, ISSUER);
    server = await startNatsServer(serverConfig(keys, { xkey: true }));
    const verifier = await jwksVerifier(tokens);
    a = await startCallout(server, keys, tokens, { verifier, serviceAccounts: sas });
    b = await startCallout(server, keys, tokens, { verifier, serviceAccounts: sas });
  });
  after(async () => {
    await Promise.all(open.map((nc) => nc.close().catch(() => {})));
    await a?.close();
    await b?.close();
    await server?.close();
    dir.cleanup();
  });

  test('encrypted callout: requests and responses sealed with xkeys', async () => {
    // A listener without the xkey seed, in a queue group of its own, sees every request
    // sealed and cannot answer it; the replicas holding the seed admit the workload.
    const blind = await startCallout(
      server,
      keys,
      tokens,
      { verifier: await jwksVerifier(tokens), serviceAccounts: sas },
      { NATS_XKEY_SEED_FILE: '', NATS_QUEUE_GROUP: 'no-xkey' },
    );
    try {
      const nc = await connectWorker();
      await nc.flush();
      const allowed = (await requestCount(a, 'allowed')) + (await requestCount(b, 'allowed'));
      assert.equal(allowed, 1);
      await waitFor(
        async () => (await requestCount(blind, 'dropped', 'request_encrypted_no_xkey')) === 1,
        'the request seen sealed',
      );
      assert.equal(await requestCount(blind, 'allowed'), 0);
    } finally {
      await blind.close();
    }
    // Negative: a token with the wrong audience is still refused over the encrypted path.
    await assert.rejects(
      connectWorkload(server, await tokens.mint('team-a', 'worker', { audience: 'x' })),
    );
  });

  test('two replicas share the load and one can leave without clients noticing', async () => {
    const before = [await requestCount(a, 'allowed'), await requestCount(b, 'allowed')];
    const first = await Promise.all(Array.from({ length: 16 }, () => connectWorker()));
    const after1 = [await requestCount(a, 'allowed'), await requestCount(b, 'allowed')];
    assert.equal(after1[0]! - before[0]! + after1[1]! - before[1]!, 16);
    assert.ok(after1[0]! > before[0]!, 'replica a answered none');
    assert.ok(after1[1]! > before[1]!, 'replica b answered none');

    await a.close();
    // Connected clients keep working, and new ones are admitted by the remaining replica.
    await Promise.all(first.map((nc) => nc.flush()));
    const more = await Promise.all(Array.from({ length: 8 }, () => connectWorker()));
    await Promise.all(more.map((nc) => nc.flush()));
    assert.equal((await requestCount(b, 'allowed')) - after1[1]!, 8);
  });

  test('the callout survives a nats-server restart', async () => {
    await server.restart();
    await waitFor(async () => {
      try {
        await connectWorker();
        return true;
      } catch {
        return false;
      }
    }, 'a workload connecting after the restart');
    await waitFor(() => b.status().ready, 'callout ready again');
  });
});

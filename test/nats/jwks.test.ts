// The callout's token keys from a real JWKS endpoint over TLS: readiness tells whether tokens
// can be verified (not ready until the keys load, not ready once they could not be refreshed
// for JWKS_MAX_STALE, ready again after recovery), SSL_CERT_FILE extends the trusted roots as
// Go does for the reference service, and an unreachable endpoint costs a bounded number of
// fetches however many clients connect.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { NatsCallout } from '@precinct/nats-callout';
import {
  peerSkip,
  requirePeer,
  startNatsServer,
  tempDir,
  type NatsServer,
} from '@precinct/testing';
import { Writable } from 'node:stream';
import { loadConfig, startNatsCallout } from '@precinct/nats-callout';
import { createLogger } from '@precinct/runtime';
import {
  ACCOUNT,
  CALLOUT_USER,
  connectWorkload,
  newKeys,
  newTokenIssuer,
  serverConfig,
  startCallout,
  staticServiceAccounts,
  waitFor,
  type CalloutKeys,
  type TokenIssuer,
} from './harness.js';

const skip = peerSkip('nats-server', 'openssl');
const ISSUER = 'https://kubernetes.jwks.test';

/** A test CA and a server certificate for 127.0.0.1 signed by it, made by the openssl CLI. */
function makeCa(dir: string) {
  const openssl = requirePeer('openssl');
  const p = (n: string) => join(dir, n);
  const run = (args: string[]) => execFileSync(openssl, args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=precinct-test-jwks-ca',
  ]);
  writeFileSync(p('ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(['req', ...ec, '-keyout', p('srv.key'), '-out', p('srv.csr'), '-subj', '/CN=jwks']);
  run([
    'x509',
    '-req',
    '-in',
    p('srv.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    p('ext'),
    '-out',
    p('srv.pem'),
  ]);
  return {
    caFile: p('ca.pem'),
    certFile: p('srv.pem'),
    keyFile: p('srv.key'),
    cert: readFileSync(p('srv.pem'), 'utf8'),
    key: readFileSync(p('srv.key'), 'utf8'),
  };
}

/** A JWKS endpoint over TLS that can fail (503), counting its requests. */
async function startTlsJwks(tls: { cert: string; key: string }, jwksPath: string) {
  let failing = false;
  let requests = 0;
  const server: Server = createServer(tls, (_req, res) => {
    requests++;
    if (failing) res.writeHead(503).end();
    else
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(readFileSync(jwksPath, 'utf8'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/openid/v1/jwks`,
    get requests() {
      return requests;
    },
    setFailing: (f: boolean) => void (failing = f),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function readiness(c: NatsCallout): Promise<{ status: number; jwks: string }> {
  const res = await fetch(`http://127.0.0.1:${c.port}/ready`);
  const body = (await res.json()) as { jwks: string };
  return { status: res.status, jwks: body.jwks };
}

/** Resolves to 'connected' or the error's message; closes what connected. */
async function tryConnect(server: NatsServer, token: string): Promise<string> {
  try {
    const nc = await connectWorkload(server, token, '_INBOX_team-a_worker');
    await nc.close();
    return 'connected';
  } catch (err) {
    return (err as Error).message;
  }
}

describe('nats-callout with a JWKS endpoint over TLS', { skip }, () => {
  const dir = tempDir('nats-callout-jwks-');
  let keys: CalloutKeys;
  let tokens: TokenIssuer;
  let server: NatsServer;
  let tls: ReturnType<typeof makeCa>;
  let jwks: Awaited<ReturnType<typeof startTlsJwks>>;
  let token: string;
  const sas = staticServiceAccounts([
    { namespace: 'team-a', name: 'worker', uid: 'uid-team-a-worker', annotations: {} },
  ]);

  before(async () => {
    if (skip) return;
    keys = newKeys();
    tokens = await newTokenIssuer(dir.path, ISSUER);
    tls = makeCa(dir.path);
    jwks = await startTlsJwks(tls, tokens.jwksPath);
    server = await startNatsServer(serverConfig(keys));
    token = await tokens.mint('team-a', 'worker');
  });
  after(async () => {
    await jwks?.close();
    await server?.close();
    dir.cleanup();
  });

  const env = (over: Record<string, string>) => ({
    JWKS_PATH: '',
    JWKS_URL: jwks.url,
    JWKS_RETRY_INTERVAL: '1s',
    ...over,
  });

  test('a CA only in SSL_CERT_FILE is trusted; without it the keys never load and /ready says so', async () => {
    // Negative: Node's roots alone do not know the test CA.
    const before = jwks.requests;
    const untrusted = await startCallout(server, keys, tokens, { serviceAccounts: sas }, env({}));
    try {
      assert.notEqual(await tryConnect(server, token), 'connected');
      assert.deepEqual(await readiness(untrusted), { status: 503, jwks: 'not_loaded' });
      // The TLS handshake fails before any request is made.
      assert.equal(jwks.requests, before);
    } finally {
      await untrusted.close();
    }
    // Positive: the same endpoint with its CA in SSL_CERT_FILE.
    const trusted = await startCallout(
      server,
      keys,
      tokens,
      { serviceAccounts: sas },
      env({ SSL_CERT_FILE: tls.caFile }),
    );
    try {
      await waitFor(async () => (await readiness(trusted)).status === 200, 'ready');
      assert.equal((await readiness(trusted)).jwks, 'loaded');
      assert.equal(await tryConnect(server, token), 'connected');
    } finally {
      await trusted.close();
    }
  });

  test('300 clients while the endpoint fails cost no fetch beyond the retry schedule', async () => {
    jwks.setFailing(true);
    const start = jwks.requests;
    // A long retry interval: any fetch beyond the first would come from the clients.
    const callout = await startCallout(
      server,
      keys,
      tokens,
      { serviceAccounts: sas },
      env({ SSL_CERT_FILE: tls.caFile, JWKS_RETRY_INTERVAL: '1h' }),
    );
    try {
      await waitFor(() => jwks.requests > start, 'the first fetch');
      assert.deepEqual(await readiness(callout), { status: 503, jwks: 'not_loaded' });
      const outcomes: string[] = [];
      for (let i = 0; i < 10; i++) {
        outcomes.push(
          ...(await Promise.all(Array.from({ length: 30 }, () => tryConnect(server, token)))),
        );
      }
      assert.equal(outcomes.length, 300);
      for (const o of outcomes) assert.notEqual(o, 'connected');
      assert.equal(jwks.requests - start, 1, '300 refused clients, one fetch');
    } finally {
      await callout.close();
      jwks.setFailing(false);
    }
  });

  test('readiness: not ready until the keys load, stale after JWKS_MAX_STALE of failures, ready after recovery', async () => {
    jwks.setFailing(true);
    const start = jwks.requests;
    const callout = await startCallout(
      server,
      keys,
      tokens,
      { serviceAccounts: sas },
      env({ SSL_CERT_FILE: tls.caFile, JWKS_REFRESH_INTERVAL: '1s', JWKS_MAX_STALE: '2s' }),
    );
    try {
      await waitFor(() => jwks.requests > start, 'a first fetch');
      assert.deepEqual(await readiness(callout), { status: 503, jwks: 'not_loaded' });
      assert.notEqual(await tryConnect(server, token), 'connected');

      // Recovery: ready without any client arriving, and clients connect.
      jwks.setFailing(false);
      await waitFor(async () => (await readiness(callout)).status === 200, 'ready after recovery');
      assert.equal(await tryConnect(server, token), 'connected');

      // An outage longer than JWKS_MAX_STALE: not ready; the known key still verifies.
      jwks.setFailing(true);
      await waitFor(async () => (await readiness(callout)).jwks === 'stale', 'stale');
      assert.equal((await readiness(callout)).status, 503);
      assert.equal(await tryConnect(server, token), 'connected');

      jwks.setFailing(false);
      await waitFor(async () => (await readiness(callout)).status === 200, 'ready again');
      const text = await (await fetch(`http://127.0.0.1:${callout.port}/metrics`)).text();
      assert.match(text, /^nats_callout_jwks_ready 1$/m);
      assert.match(text, /^nats_callout_jwks_keys 1$/m);
    } finally {
      await callout.close();
      jwks.setFailing(false);
    }
  });

  test('SSL_CERT_FILE also extends the roots of a tls:// NATS connection, as nats.go does', async () => {
    const tlsServer = await startNatsServer(
      `${serverConfig(keys)}\ntls { cert_file: "${tls.certFile}", key_file: "${tls.keyFile}" }\n`,
    );
    const seedFile = join(dir.path, 'account-tls.seed');
    writeFileSync(seedFile, keys.accountSeed, { mode: 0o600 });
    const start = async (extra: Record<string, string>, lines: string[]) =>
      startNatsCallout(
        loadConfig({
          HOST: '127.0.0.1',
          PORT: '0',
          NATS_URL: `tls://${CALLOUT_USER}:${keys.calloutPassword}@127.0.0.1:${tlsServer.port}`,
          NATS_SIGNING_KEY_FILE: seedFile,
          NATS_ACCOUNT: ACCOUNT,
          K8S_IN_CLUSTER: 'false',
          JWT_ISSUER: tokens.issuer,
          JWKS_PATH: tokens.jwksPath,
          ...extra,
        }),
        {
          serviceAccounts: sas,
          logger: createLogger(
            'nats-callout-test',
            'warn',
            new Writable({
              write(chunk, _e, cb) {
                lines.push(String(chunk));
                cb();
              },
            }),
          ),
        },
      );
    try {
      // Negative: Node's roots alone do not know the server's CA.
      const refusedLog: string[] = [];
      const refused = await start({}, refusedLog);
      try {
        await waitFor(
          // Refused for the unknown issuer (the names match: the positive case shows it).
          () =>
            refusedLog.some(
              (l) => /nats connect failed/.test(l) && /local issuer|self.signed|verify/i.test(l),
            ),
          'a failed TLS connect',
        );
        assert.equal(refused.status().nats, 'disconnected');
      } finally {
        await refused.close();
      }
      // Positive: the same with the CA in SSL_CERT_FILE.
      const okLog: string[] = [];
      const ok = await start({ SSL_CERT_FILE: tls.caFile }, okLog);
      try {
        await waitFor(() => ok.status().ready, 'connected over TLS and ready').catch((e) => {
          throw new Error(
            `${(e as Error).message}: ${JSON.stringify(ok.status())} ${okLog.join('')}`,
          );
        });
      } finally {
        await ok.close();
      }
    } finally {
      await tlsServer.close();
    }
  });
});

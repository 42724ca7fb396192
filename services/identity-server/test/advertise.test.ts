// The URLs the server hands out follow @precinct/runtime's advertisedUrl rule: --advertise-host
// wins; a wildcard bind advertises localhost; a specific bind advertises itself. A malformed
// advertise host fails start-up.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdentityServerError } from '../src/errors.js';
import { startIdentityServer } from '../src/server.js';
import { quietLogger } from './support.js';

test('without --advertise-host: a specific bind advertises itself, a wildcard localhost', async (t) => {
  const server = await startIdentityServer({
    trustDomain: 'advertise.example',
    admin: { host: '127.0.0.1', port: 0 },
    oidc: { host: '::', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    logger: quietLogger(),
  });
  t.after(() => server.close());
  assert.match(server.adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(server.issuer, /^http:\/\/localhost:\d+$/);
  // Both are dialable as handed out.
  const conf = (await (
    await fetch(`${server.issuer}/.well-known/openid-configuration`, {
      signal: AbortSignal.timeout(60_000),
    })
  ).json()) as { issuer: string };
  assert.equal(conf.issuer, server.issuer);
  assert.equal(
    (await fetch(`${server.healthUrl}/health`, { signal: AbortSignal.timeout(60_000) })).status,
    200,
  );
});

test('--advertise-host wins over the bind address; a malformed one fails start-up', async (t) => {
  const server = await startIdentityServer({
    trustDomain: 'advertise.example',
    admin: { host: '127.0.0.1', port: 0 },
    oidc: { host: '127.0.0.1', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    advertiseHost: 'id.example.internal',
    logger: quietLogger(),
  });
  t.after(() => server.close());
  assert.match(server.issuer, /^http:\/\/id\.example\.internal:\d+$/);
  assert.match(server.adminUrl, /^http:\/\/id\.example\.internal:\d+$/);

  for (const advertiseHost of ['', 'a b', 'evil.example/x', 'user@host']) {
    await assert.rejects(
      startIdentityServer({
        trustDomain: 'advertise.example',
        admin: { host: '127.0.0.1', port: 0 },
        oidc: { host: '127.0.0.1', port: 0 },
        health: { host: '127.0.0.1', port: 0 },
        advertiseHost,
        logger: quietLogger(),
      }),
      (err) => err instanceof IdentityServerError && err.code === 'ERR_CONFIG_INVALID',
      JSON.stringify(advertiseHost),
    );
  }
});

// py-spiffe (`pip install spiffe`), a Workload API client nobody here wrote.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { peerSkip, requirePeer } from '@precinct/testing';
import { systemClock } from '../src/clock.js';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import { fakeVerifier, quietLogger } from './support.js';

const run = promisify(execFile);
const script = fileURLToPath(new URL('./interop/python/fetch.py', import.meta.url));

function skipReason(): string | false {
  const peer = peerSkip('python3');
  if (peer) return peer;
  const probe = spawnSync(requirePeer('python3'), ['-c', 'import spiffe'], { stdio: 'ignore' });
  if (probe.status === 0) return false;
  const msg = 'py-spiffe is not installed: pip install spiffe';
  if (process.env.PRECINCT_REQUIRE_PEERS === '1') throw new Error(msg);
  return msg;
}

describe('py-spiffe interop', { skip: skipReason() }, () => {
  let server: IdentityServer;
  let address: string;
  before(async () => {
    server = await startIdentityServer({
      trustDomain: 'interop.example',
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      verifier: fakeVerifier(systemClock, {
        py: { namespace: 'py', serviceAccountName: 'client' },
      }),
      logger: quietLogger(),
    });
    await server.entries.create({
      spiffeId: 'spiffe://interop.example/py/client',
      selectors: ['k8s:ns:py'],
    });
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'py' }),
    });
    address = ((await res.json()) as { address: string }).address;
  });
  after(() => server?.close());

  test('fetches an X.509-SVID, its bundle and a JWT-SVID the server validates', async () => {
    const { stdout } = await run(requirePeer('python3'), [script, address, 'py-audience'], {
      timeout: 60_000,
    });
    assert.deepEqual(JSON.parse(stdout), {
      x509Id: 'spiffe://interop.example/py/client',
      chainLength: 1,
      bundleAuthorities: 1,
      jwtId: 'spiffe://interop.example/py/client',
      validatedId: 'spiffe://interop.example/py/client',
    });
  });

  test('on the shared socket, with nothing attested, py-spiffe fails', async () => {
    await assert.rejects(
      run(requirePeer('python3'), [script, server.workloadApiAddress, 'py-audience'], {
        timeout: 60_000,
      }),
    );
  });
});

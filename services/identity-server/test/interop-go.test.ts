// go-spiffe v2, a Workload API client nobody here wrote, against the identity server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { peerSkip, requirePeer, tempDir } from '@precinct/testing';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import { fakeVerifier, quietLogger } from './support.js';
import { systemClock } from '../src/clock.js';

const run = promisify(execFile);
const skip = peerSkip('go');

describe('go-spiffe interop', { skip }, () => {
  const dir = tempDir('precinct-id-go-');
  const bin = join(dir.path, 'interop');
  let server: IdentityServer;
  let address: string;

  before(async () => {
    await run(requirePeer('go'), ['build', '-o', bin, '.'], {
      cwd: fileURLToPath(new URL('./interop/go/', import.meta.url)),
      timeout: 300_000,
    });
    server = await startIdentityServer({
      trustDomain: 'interop.example',
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      verifier: fakeVerifier(systemClock, {
        go: { namespace: 'go', serviceAccountName: 'client' },
      }),
      logger: quietLogger(),
    });
    await server.entries.create({
      spiffeId: 'spiffe://interop.example/go/client',
      selectors: ['k8s:ns:go', 'k8s:sa:client'],
      dnsNames: ['client.go.svc'],
      hint: 'go',
    });
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'go' }),
    });
    address = ((await res.json()) as { address: string }).address;
  });
  after(async () => {
    await server?.close();
    dir.cleanup();
  });

  test('fetches and verifies an X.509-SVID and a JWT-SVID, and the server validates the JWT', async () => {
    const { stdout } = await run(bin, [address, 'interop-audience'], { timeout: 60_000 });
    const r = JSON.parse(stdout) as Record<string, unknown>;
    assert.deepEqual(r, {
      x509Id: 'spiffe://interop.example/go/client',
      x509Hint: 'go',
      dnsNames: ['client.go.svc'],
      bundleAuthorities: 1,
      jwtId: 'spiffe://interop.example/go/client',
      jwtAudience: ['interop-audience'],
      validatedId: 'spiffe://interop.example/go/client',
    });
  });

  test('on the shared socket, with nothing attested, go-spiffe gets PermissionDenied', async () => {
    await assert.rejects(
      run(bin, [server.workloadApiAddress, 'interop-audience'], { timeout: 60_000 }),
      (e: { stderr: string }) => /PermissionDenied/.test(e.stderr),
    );
  });
});

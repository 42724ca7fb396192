// Everything the server keeps under --data-dir (keys, admin token, the PGlite database, sockets)
// is the server user's alone: files 0600, directories 0700, on a fresh start and a restart.
import assert from 'node:assert/strict';
import { lstatSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { tempDir } from '@precinct/testing';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import { ManualClock, fakeVerifier, quietLogger } from './support.js';

/** Every path under `dir` whose mode is not 0700 (directories) or 0600 (anything else). */
function looseModes(dir: string): { loose: string[]; files: number } {
  const loose: string[] = [];
  let files = 0;
  const walk = (p: string) => {
    const st = lstatSync(p);
    const mode = st.mode & 0o777;
    if (st.isDirectory()) {
      if (mode !== 0o700) loose.push(`${relative(dir, p) || '.'} ${mode.toString(8)}`);
      for (const n of readdirSync(p)) walk(join(p, n));
    } else {
      files++;
      if (mode !== 0o600) loose.push(`${relative(dir, p)} ${mode.toString(8)}`);
    }
  };
  walk(dir);
  return { loose, files };
}

const dir = tempDir('precinct-id-perms-');
let previousUmask: number;
before(() => {
  // The usual umask, so files created without an explicit mode would show 0644/0755.
  previousUmask = process.umask(0o022);
});
after(() => {
  process.umask(previousUmask);
  dir.cleanup();
});

async function start(dataDir: string): Promise<IdentityServer> {
  const clock = new ManualClock(Date.now());
  return startIdentityServer({
    trustDomain: 'example.org',
    dataDir,
    admin: { host: '127.0.0.1', port: 0 },
    oidc: { host: '127.0.0.1', port: 0 },
    health: { host: '127.0.0.1', port: 0 },
    advertiseHost: '127.0.0.1',
    verifier: fakeVerifier(clock, {
      'token-api': { namespace: 'team-a', serviceAccountName: 'api' },
    }),
    clock,
    logger: quietLogger(),
  });
}

test('--data-dir holds only 0600 files in 0700 directories, while running and after a restart', async () => {
  const dataDir = join(dir.path, 'identity-server');
  let server = await start(dataDir);
  try {
    await server.entries.create({
      spiffeId: 'spiffe://example.org/ns/team-a/sa/api',
      selectors: ['k8s:ns:team-a', 'k8s:sa:api'],
    });
    const res = await fetch(`${server.adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'token-api' }),
    });
    assert.equal(res.status, 200);
    const running = looseModes(dataDir);
    assert.deepEqual(running.loose, []);
    // Control: the walk saw the database, keys, token and sockets (hundreds of files).
    assert.ok(running.files > 100, `only ${running.files} files under the data dir`);
    for (const p of ['keys.json', 'admin.token', 'admin.url', 'db/PG_VERSION', 'public/api.sock']) {
      assert.ok(lstatSync(join(dataDir, p)), p);
    }
  } finally {
    await server.close();
  }
  assert.deepEqual(looseModes(dataDir).loose, []);

  // Reopened (entries read back, PGlite writes again): still private.
  server = await start(dataDir);
  try {
    assert.equal(server.entries.list().length, 1);
    assert.deepEqual(looseModes(dataDir).loose, []);
  } finally {
    await server.close();
  }
  assert.deepEqual(looseModes(dataDir).loose, []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@precinct/testing';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const child = fileURLToPath(new URL('./fixtures/modules-loaded.ts', import.meta.url));

/** Every module a child process loaded using the package in `mode`. */
function modulesLoaded(mode: 'jwks' | 'kubeconfig'): { imported: string[]; required: string[] } {
  const dir = tempDir();
  try {
    const r = spawnSync(
      process.execPath,
      ['--import', './scripts/register-source.mjs', child, mode],
      {
        cwd: root,
        env: { ...process.env, RESOLVE_LOG: join(dir.path, 'resolved') },
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { imported: string[]; required: string[] };
  } finally {
    dir.cleanup();
  }
}

const CLIENT_NODE = '/node_modules/@kubernetes/client-node/';

test('the JWKS verifier, the caches and an authorizer with `review` never load @kubernetes/client-node', () => {
  const { imported, required } = modulesLoaded('jwks');
  assert.ok(
    imported.some((u) => u.endsWith('/packages/kube/src/verifier.ts')),
    'the resolve hook saw the package load',
  );
  assert.deepEqual(
    [...imported, ...required].filter((u) => u.includes(CLIENT_NODE)),
    [],
  );
});

test('loadKubeConfig and the API-backed verifier and authorizer do load it (the check above can fail)', () => {
  const { imported, required } = modulesLoaded('kubeconfig');
  assert.ok([...imported, ...required].some((u) => u.includes(CLIENT_NODE)));
});

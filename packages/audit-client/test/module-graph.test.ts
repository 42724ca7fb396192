// An event producer imports @precinct/audit-client to write events and to check exports: that
// must load no server dependency (fastify, pg, PGlite, prom-client, ...). Checked on the real
// module graph: a fresh node process imports the package with a resolve hook that records every
// URL it loads, and everything outside the package must be a node built-in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from '@precinct/testing';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const pkgSrc = pathToFileURL(fileURLToPath(new URL('../src/', import.meta.url))).href;
const recorder = fileURLToPath(new URL('./support/record-loads.mjs', import.meta.url));

/** Every URL the loader resolves while a fresh node process imports `specifier`. */
async function loadedBy(specifier: string): Promise<string[]> {
  const dir = tempDir('audit-client-graph-');
  const log = join(dir.path, 'loads.txt');
  try {
    await promisify(execFile)(
      process.execPath,
      [
        '--import',
        './scripts/register-source.mjs',
        '--import',
        recorder,
        '--input-type=module',
        '-e',
        `await import(${JSON.stringify(specifier)});`,
      ],
      { cwd: root, env: { ...process.env, AUDIT_CLIENT_LOAD_LOG: log }, timeout: 120_000 },
    );
    return readFileSync(log, 'utf8').split('\n').filter(Boolean);
  } finally {
    dir.cleanup();
  }
}

test('@precinct/audit-client loads only its own modules and node built-ins', async () => {
  const urls = await loadedBy('@precinct/audit-client');
  // The recorder saw the package itself, so an empty or broken log cannot pass.
  for (const f of ['index.ts', 'client.ts', 'chain.ts', 'export.ts', 'errors.ts'])
    assert.ok(urls.includes(`${pkgSrc}${f}`), `${f} not recorded:\n${urls.join('\n')}`);
  const foreign = urls.filter((u) => !u.startsWith('node:') && !u.startsWith(pkgSrc));
  assert.deepEqual(foreign, [], 'modules from outside the package were loaded');
});

test('positive control: the same recorder sees the audit store load its server dependencies', async () => {
  const urls = await loadedBy('@precinct/audit-store');
  // (PGlite is loaded on first use, so it is not in the list.)
  for (const dep of ['fastify', 'pg', 'prom-client'])
    assert.ok(
      urls.some((u) => u.includes(`/node_modules/${dep}/`)),
      `${dep} not recorded for @precinct/audit-store`,
    );
  // And the store takes the chain format from the client package: one source of truth.
  assert.ok(urls.includes(`${pkgSrc}chain.ts`));
});

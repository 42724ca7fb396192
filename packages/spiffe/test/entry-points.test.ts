// The main entry point is for validation: IDs, SVIDs, bundles, TLS. It must load neither
// @grpc/grpc-js (the Workload API, `@precinct/spiffe/workloadapi`) nor fastify
// (`@precinct/spiffe/fastify`), so a verifier installs and starts without them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from '@precinct/testing';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const src = fileURLToPath(new URL('../src/', import.meta.url));
const recorder = fileURLToPath(new URL('./support/record-loads.mjs', import.meta.url));

/** Every module URL the loader resolves while a fresh node process imports `specifier`. */
async function loadedBy(specifier: string): Promise<string[]> {
  const dir = tempDir('spiffe-entry-');
  const log = join(dir.path, 'loads.txt');
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
    { cwd: root, env: { ...process.env, PRECINCT_LOAD_LOG: log }, timeout: 120_000 },
  );
  try {
    return readFileSync(log, 'utf8').split('\n').filter(Boolean);
  } finally {
    dir.cleanup();
  }
}

const GRPC = /\/node_modules\/@grpc\/grpc-js\//;
const FASTIFY = /\/node_modules\/fastify\//;
const loads = (urls: string[], re: RegExp) => urls.some((u) => re.test(u));

test('importing @precinct/spiffe loads neither @grpc/grpc-js nor fastify', async () => {
  const main = await loadedBy('@precinct/spiffe');
  // The recorder saw the SDK itself, so an empty or broken log cannot pass.
  assert.ok(
    main.some((u) => u.endsWith('/packages/spiffe/src/index.ts')),
    main.join('\n'),
  );
  assert.ok(main.some((u) => u.endsWith('/packages/spiffe/src/svid/jwtsvid.ts')));
  assert.equal(loads(main, GRPC), false, 'main entry loaded @grpc/grpc-js');
  assert.equal(loads(main, FASTIFY), false, 'main entry loaded fastify');
});

test('positive controls: the workloadapi entry loads @grpc/grpc-js; the recorder sees fastify', async () => {
  const [workloadapi, fastify] = await Promise.all([
    loadedBy('@precinct/spiffe/workloadapi'),
    loadedBy('fastify'),
  ]);
  assert.ok(loads(workloadapi, GRPC), 'workloadapi entry did not load @grpc/grpc-js');
  assert.ok(loads(fastify, FASTIFY), 'importing fastify was not recorded');
});

/** Bare specifiers reachable from `entry` through relative imports, type-only ones included. */
function bareImports(entry: string): Set<string> {
  const seen = new Set<string>();
  const bare = new Set<string>();
  const pending = [resolve(src, entry)];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import|declare module)\s*\(?\s*'([^']+)'/g)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) pending.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else bare.add(spec);
    }
  }
  return bare;
}

test('the main entry does not even name fastify, gRPC or @precinct/runtime in its types', () => {
  const main = [...bareImports('index.ts')];
  const forbidden = (s: string) =>
    s === 'fastify' || s.startsWith('@grpc/') || s.startsWith('@precinct/runtime');
  assert.deepEqual(main.filter(forbidden), []);
  // Positive controls: the walk follows the subpath entries to what they need.
  assert.ok(bareImports('workloadapi.ts').has('@grpc/grpc-js'));
  assert.ok(bareImports('fastify.ts').has('fastify'));
});

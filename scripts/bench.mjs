#!/usr/bin/env node
// Runs each bench/*.bench.ts in its own process (so RSS figures are not polluted by the
// previous benchmark) and lets each print its own table.
//
//   npm run bench [-- filter...]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(new URL('../bench', import.meta.url))
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
let failed = 0;
for (const f of files) {
  console.log(`\n## ${f}`);
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', './scripts/register-source.mjs', `bench/${f}`],
    { cwd: root, stdio: 'inherit' },
  );
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);

// The UI's own checks that need no browser: its TypeScript (.tsx is outside the root
// tsconfig, so it is type-checked here with web/tsconfig.json) and the bundle the dashboard
// serves (hashed file names, nothing inline for the CSP to allow).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { CONTENT_SECURITY_POLICY, buildUi } from '@precinct/dashboard';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('web/ type-checks (strict, DOM, react-jsx)', async () => {
  const tsc = fileURLToPath(new URL('node_modules/typescript/bin/tsc', `file://${root}`));
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [tsc, '-p', 'services/dashboard/web/tsconfig.json'],
    { cwd: root },
  ).catch((err: { stdout?: string }) => {
    assert.fail(`tsc failed:\n${err.stdout ?? String(err)}`);
  });
  assert.equal(stdout, '');
});

test('the bundle: hashed assets, no inline script or style, a CSP without unsafe-inline', async () => {
  const ui = await buildUi();
  const names = [...ui.assets.keys()];
  assert.ok(
    names.some((n) => /^main-[A-Z0-9]{8}\.js$/.test(n)),
    names.join(),
  );
  assert.ok(
    names.some((n) => /^main-[A-Z0-9]{8}\.css$/.test(n)),
    names.join(),
  );
  assert.doesNotMatch(ui.html, /<script>|<style|\sstyle=|\son[a-z]+=/i);
  for (const n of names) assert.ok(ui.html.includes(`/assets/${n}`) || n.endsWith('.map'), n);
  assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-|\*|https?:/);
  assert.match(CONTENT_SECURITY_POLICY, /frame-ancestors 'none'/);
  // Built once per process.
  assert.equal(await buildUi(), ui);
});

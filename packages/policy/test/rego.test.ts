// Runs the Rego unit tests (test/rego/*_test.rego) with the real opa, so `npm test` covers them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { peerSkip, requirePeer } from '@precinct/testing';
import { PACKAGE_DIR } from './build-wasm.js';

interface OpaTestResult {
  package: string;
  name: string;
  fail?: boolean;
  error?: unknown;
  skip?: boolean;
}

test('opa test: every Rego unit test passes', { skip: peerSkip('opa') }, () => {
  const opa = requirePeer('opa');
  const r = spawnSync(opa, ['test', '--format', 'json', 'rego/', 'test/rego/', 'data/demo.json'], {
    cwd: PACKAGE_DIR,
    encoding: 'utf8',
  });
  const results = JSON.parse(r.stdout) as OpaTestResult[];
  const failed = results.filter((x) => x.fail || x.error || x.skip);
  assert.deepEqual(
    failed.map((x) => `${x.package}.${x.name}`),
    [],
    `opa test failures:\n${r.stdout.slice(0, 4000)}`,
  );
  // The suite exists and covers all four packages' behaviour, not an empty directory.
  assert.ok(results.length >= 30, `only ${results.length} Rego tests ran`);
  assert.equal(r.status, 0);
});

test(
  'opa test fails when a rule is broken (the runner can fail)',
  { skip: peerSkip('opa') },
  () => {
    const opa = requirePeer('opa');
    // The same suite without the demo data: every demo-data test must now fail, the rest pass.
    const r = spawnSync(opa, ['test', '--format', 'json', 'rego/', 'test/rego/'], {
      cwd: PACKAGE_DIR,
      encoding: 'utf8',
    });
    assert.notEqual(r.status, 0, 'without the demo data the demo tests must fail');
    const results = JSON.parse(r.stdout) as OpaTestResult[];
    const failed = new Set(results.filter((x) => x.fail).map((x) => x.name));
    assert.ok(failed.has('test_direct_allowed_by_department'));
    assert.ok(!failed.has('test_deployment_data'), 'tests with their own data still pass');
  },
);

test('Rego is formatted and passes opa check --strict', { skip: peerSkip('opa') }, () => {
  const opa = requirePeer('opa');
  execFileSync(opa, ['check', '--strict', 'rego/', 'test/rego/'], { cwd: PACKAGE_DIR });
  const unformatted = execFileSync(opa, ['fmt', '--list', 'rego/', 'test/rego/'], {
    cwd: PACKAGE_DIR,
    encoding: 'utf8',
  }).trim();
  assert.equal(unformatted, '', `run: opa fmt -w rego test/rego`);
});

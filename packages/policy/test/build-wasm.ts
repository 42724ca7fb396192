// Builds wasm/policy.wasm from rego/ with the real `opa`:
//
//   npm run -s build-wasm -w @precinct/policy
//
// Also imported by wasm-build.test.ts, which rebuilds into a temp dir and compares bytes with
// the checked-in module, so CI proves the artefact is current.
//
// Reproducible: the same opa version gives the same policy.wasm bytes, but the module embeds
// the .rego paths it was given (for error locations), so opa always runs in the package
// directory on the relative path `rego/`.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DECISION_PATH } from '../src/decision.js';

export const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
/** The opa release the checked-in module was built with (also pinned in .ci/run). */
export const OPA_VERSION = '1.22.4';
export const BUILD_INFO = join(PACKAGE_DIR, 'wasm', 'build.json');

export interface BuildInfo {
  opa: string;
  entrypoint: string;
  sha256: string;
}

/** `opa version`'s Version line, e.g. `1.22.4`. */
export function opaVersion(opa: string): string {
  const out = execFileSync(opa, ['version'], { encoding: 'utf8' });
  const m = /^Version:\s*(\S+)/m.exec(out);
  if (!m) throw new Error(`cannot read the version of ${opa}`);
  return m[1]!;
}

/** Builds the policy with `opa build -t wasm` and returns policy.wasm's bytes. */
export function buildWasm(opa: string): Buffer {
  const tmp = mkdtempSync(join(tmpdir(), 'precinct-policy-wasm-'));
  try {
    const bundle = join(tmp, 'bundle.tar.gz');
    execFileSync(opa, ['build', '-t', 'wasm', '-e', DECISION_PATH, '-o', bundle, 'rego/'], {
      cwd: PACKAGE_DIR,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The bundle is a tarball; its member /policy.wasm is the module opa-wasm loads.
    return execFileSync('tar', ['-xzOf', bundle, '/policy.wasm'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export function readBuildInfo(): BuildInfo {
  return JSON.parse(readFileSync(BUILD_INFO, 'utf8')) as BuildInfo;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { requirePeer } = await import('@precinct/testing');
  const opa = requirePeer('opa');
  const version = opaVersion(opa);
  if (version !== OPA_VERSION) {
    console.error(`warning: opa ${version}, the checked-in module is pinned to ${OPA_VERSION}`);
  }
  const wasm = buildWasm(opa);
  writeFileSync(join(PACKAGE_DIR, 'wasm', 'policy.wasm'), wasm);
  const info: BuildInfo = { opa: version, entrypoint: DECISION_PATH, sha256: sha256(wasm) };
  writeFileSync(BUILD_INFO, JSON.stringify(info, null, 2) + '\n');
  console.log(`wasm/policy.wasm: ${wasm.length} bytes, sha256 ${info.sha256} (opa ${version})`);
}

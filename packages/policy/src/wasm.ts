import { readFile } from 'node:fs/promises';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { DECISION_PATH, parseDecision, validateInput, type PolicyEngine } from './decision.js';
import { PolicyError } from './errors.js';
import { loadDemoData, policyFiles, validatePolicyData, type PolicyData } from './files.js';

export interface WasmPolicyOptions {
  /** The policy data (`data.precinct`). Default: the demo data shipped with the package. */
  data?: PolicyData;
  /** A policy.wasm from `opa build -t wasm`. Default: the package's checked-in build. */
  wasm?: Uint8Array;
  /** The entrypoint compiled into the module. Default {@link DECISION_PATH}. */
  entrypoint?: string;
}

/**
 * Decisions from the Rego policy compiled to WebAssembly, evaluated in this process with
 * `@open-policy-agent/opa-wasm`: the embedded default when no `OPA_URL` is set. Resolves once
 * the module is instantiated and the data loaded; a bad module, entrypoint or data rejects with
 * `ERR_POLICY_CONFIG`, so a deployment fails at start-up, not at its first request.
 */
export async function wasmPolicy(options: WasmPolicyOptions = {}): Promise<PolicyEngine> {
  const data = options.data === undefined ? loadDemoData() : validatePolicyData(options.data);
  const entrypoint = options.entrypoint ?? DECISION_PATH;
  const bytes = options.wasm ?? (await readFile(policyFiles.wasm));
  let policy: Awaited<ReturnType<typeof loadPolicy>>;
  try {
    policy = await loadPolicy(bytes);
    policy.setData(data);
  } catch (cause) {
    throw new PolicyError('ERR_POLICY_CONFIG', 'policy.wasm could not be loaded', { cause });
  }
  const entrypoints = policy.entrypoints as Record<string, number>;
  if (!Object.prototype.hasOwnProperty.call(entrypoints, entrypoint)) {
    throw new PolicyError('ERR_POLICY_CONFIG', `policy.wasm has no entrypoint ${entrypoint}`);
  }
  const id = entrypoints[entrypoint];

  return {
    // async, so a thrown error becomes a rejection like the OPA server's.
    async decide(input) {
      const checked = validateInput(input);
      let resultSet: unknown;
      try {
        resultSet = policy.evaluate(checked, id);
      } catch (cause) {
        // opa-wasm throws strings as well as Errors; keep it as the cause either way.
        throw new PolicyError('ERR_POLICY_EVALUATION', 'Wasm evaluation failed', { cause });
      }
      // A result set: one {result} per answer; empty when the decision is undefined.
      if (!Array.isArray(resultSet) || resultSet.length !== 1) {
        throw new PolicyError('ERR_POLICY_RESULT', 'Wasm policy has no single decision');
      }
      return parseDecision((resultSet[0] as { result?: unknown }).result);
    },
  };
}

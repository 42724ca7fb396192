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
  const id = entrypoints[entrypoint]!;
  const evaluate = directEval(policy, id) ?? ((input: unknown) => policy.evaluate(input, id));

  return {
    // async, so a thrown error becomes a rejection like the OPA server's.
    async decide(input) {
      const checked = validateInput(input);
      let resultSet: unknown;
      try {
        resultSet = evaluate(checked);
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

const PAGE = 64 * 1024;

/**
 * One evaluation through the module's `opa_eval` export (Wasm ABI >= 1.2), as the SDK's own
 * fast path does, minus its per-call garbage: the input JSON is encoded straight into Wasm memory
 * with one reused encoder (no intermediate buffer), and the result's end is found by the native
 * `indexOf` rather than a byte-by-byte loop, then decoded with one reused decoder. Same memory
 * layout as the SDK (input right after the data, heap after the input, reset every call), so
 * answers are identical (the differential tests compare with the OPA server). Undefined when
 * the module predates ABI 1.2: the SDK's `evaluate` is used then.
 */
function directEval(
  policy: Awaited<ReturnType<typeof loadPolicy>>,
  entrypoint: number,
): ((input: unknown) => unknown) | undefined {
  const { exports } = policy.wasmInstance as unknown as { exports: Record<string, unknown> };
  const opaEval = exports.opa_eval;
  if (!(Number(policy.minorVersion) >= 2) || typeof opaEval !== 'function') return undefined;
  const run = opaEval as (...args: number[]) => number;
  const memory = policy.mem;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let bytes = new Uint8Array(memory.buffer);
  const view = () => {
    // Growing the memory detaches the old buffer.
    if (bytes.buffer !== memory.buffer) bytes = new Uint8Array(memory.buffer);
    return bytes;
  };
  return (input) => {
    const json = JSON.stringify(input);
    const at = policy.dataHeapPtr as number;
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const need = at + json.length * 3 - view().length;
    if (need > 0) memory.grow(Math.ceil(need / PAGE));
    const { written } = encoder.encodeInto(json, view().subarray(at));
    const result = run(0, entrypoint, policy.dataAddr, at, written, at + written, 0);
    const mem = view();
    const end = mem.indexOf(0, result);
    return JSON.parse(decoder.decode(mem.subarray(result, end < 0 ? mem.length : end)));
  };
}

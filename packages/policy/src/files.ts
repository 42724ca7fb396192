import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PolicyError } from './errors.js';

/**
 * Where the package's policy artefacts live on disk (the same from `src/` and `dist/`), so a
 * service or test can start a real OPA on exactly the policy the Wasm was built from:
 * `opa run --server <regoDir> <demoData>`.
 */
export const policyFiles = {
  /** The Rego modules (packages demo.users, demo.agents, demo.documents, demo.authorization). */
  regoDir: fileURLToPath(new URL('../rego/', import.meta.url)),
  /** The demo's people, agents and documents, as OPA data under `data.precinct`. */
  demoData: fileURLToPath(new URL('../data/demo.json', import.meta.url)),
  /** `opa build -t wasm -e demo/authorization/decision rego/`'s policy.wasm, checked in. */
  wasm: fileURLToPath(new URL('../wasm/policy.wasm', import.meta.url)),
} as const;

/** The data the policy reads, as `data.precinct` in OPA. */
export interface PolicyData {
  precinct: {
    /** SPIFFE IDs of people and agents must be in this trust domain. */
    trust_domain: string;
    users: Record<string, { departments: string[]; [k: string]: unknown }>;
    agents: Record<string, { capabilities: string[]; [k: string]: unknown }>;
    documents: Record<
      string,
      { required_departments: string[]; sensitivity?: string; [k: string]: unknown }
    >;
  };
}

/** The demo data file, parsed and checked. */
export function loadDemoData(): PolicyData {
  return validatePolicyData(JSON.parse(readFileSync(policyFiles.demoData, 'utf8')));
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * Checks the shape of policy data and returns it, or throws `ERR_POLICY_CONFIG` naming the
 * first broken entry. The policy already treats a malformed entry as unknown (deny); this
 * makes a broken data file fail at start-up instead of denying quietly.
 */
export function validatePolicyData(data: unknown): PolicyData {
  const fail = (where: string) => new PolicyError('ERR_POLICY_CONFIG', `data: ${where}`);
  if (!isObject(data) || !isObject(data.precinct)) throw fail('precinct must be an object');
  const p = data.precinct;
  if (typeof p.trust_domain !== 'string' || !/^[a-z0-9._-]{1,255}$/.test(p.trust_domain)) {
    throw fail('precinct.trust_domain must be a SPIFFE trust domain name');
  }
  const table = (name: string, field: string) => {
    const t = p[name];
    if (!isObject(t)) throw fail(`precinct.${name} must be an object`);
    for (const [id, entry] of Object.entries(t)) {
      if (!/^[A-Za-z0-9._-]+$/.test(id)) throw fail(`precinct.${name} has an unusable id`);
      if (!isObject(entry) || !isStrings(entry[field])) {
        throw fail(`precinct.${name}.${id}.${field} must be an array of strings`);
      }
    }
  };
  table('users', 'departments');
  table('agents', 'capabilities');
  table('documents', 'required_departments');
  return data as unknown as PolicyData;
}

import { PolicyError } from './errors.js';

/** The OPA data path of the decision; the OPA server serves it at `POST /v1/data/<path>`. */
export const DECISION_PATH = 'demo/authorization/decision';

/**
 * What the Rego policy sees: identities that were already verified in TypeScript (a delegation
 * token's person, the caller's SVID), never a token. The Wasm target has no `io.jwt.*`
 * built-ins, and keeping tokens out of the input keeps them out of decision logs too.
 */
export interface DecisionInput {
  /** The person, as `spiffe://<trust domain>/user/<id>`. */
  person?: string;
  /** The agent acting for the person, as `spiffe://<trust domain>/agent/<id>`. */
  agent?: string;
  /** A document id, e.g. `DOC-001`. */
  document: string;
  /** The action; the demo policy permits `read` only. */
  action: string;
}

/**
 * Why the policy decided as it did: a closed set, first failing check wins, so it is usable as
 * a metrics label and a log field.
 */
export type DecisionReason =
  | 'public_document'
  | 'person_has_department'
  | 'delegation_permits'
  | 'no_identity'
  | 'agent_without_person'
  | 'unknown_person'
  | 'unknown_agent'
  | 'unknown_document'
  | 'action_not_permitted'
  | 'person_lacks_department'
  | 'agent_lacks_capability';

const REASONS: ReadonlySet<string> = new Set<DecisionReason>([
  'public_document',
  'person_has_department',
  'delegation_permits',
  'no_identity',
  'agent_without_person',
  'unknown_person',
  'unknown_agent',
  'unknown_document',
  'action_not_permitted',
  'person_lacks_department',
  'agent_lacks_capability',
]);
const ALLOWING: ReadonlySet<string> = new Set<DecisionReason>([
  'public_document',
  'person_has_department',
  'delegation_permits',
]);

export interface DecisionDetails {
  /** The person's departments (empty without a known person). */
  user_departments: string[];
  /** The agent's capabilities (empty without a known agent). */
  agent_capabilities: string[];
  /** What the request may use: the person's departments, intersected with the agent's. */
  effective_permissions: string[];
  /** The document's required departments, any one of which suffices; empty when public. */
  required: string[];
}

/** The policy's answer. Arrays are sorted, so two engines' answers compare with deepEqual. */
export interface Decision {
  allow: boolean;
  reason: DecisionReason;
  details: DecisionDetails;
}

/** Evaluates the decision for one request. Implementations: OPA server, in-process Wasm. */
export interface PolicyEngine {
  /**
   * Resolves with the decision, allow or deny. Rejects with a {@link PolicyError} when no
   * decision could be made (bad input, engine down, malformed answer): the caller must then
   * deny, never allow.
   */
  decide(input: DecisionInput): Promise<Decision>;
}

// SPIFFE ID syntax (trust domain and path characters per the SPIFFE ID spec), bounded far
// below what any real deployment uses so a hostile caller cannot make the engine chew on
// megabytes. Which kind of ID fits where (user/agent, which trust domain) is the policy's call.
const MAX_ID = 512;
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(?:\/[A-Za-z0-9._-]+)+$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
const MAX_DOCUMENT = 128;
const DOCUMENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const MAX_ACTION = 64;
const ACTION = /^[a-z][a-z0-9_.:-]*$/;
const FIELDS = new Set(['person', 'agent', 'document', 'action']);

const bad = (message: string) => new PolicyError('ERR_POLICY_INPUT', message);

function spiffeId(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw bad(`${field} must be a string`);
  if (value.length > MAX_ID) throw bad(`${field} is longer than ${MAX_ID} characters`);
  if (!SPIFFE_ID.test(value) || DOT_SEGMENT.test(value)) {
    throw bad(`${field} is not a SPIFFE ID`);
  }
  return value;
}

/**
 * Checks a decision input and returns a fresh copy holding only the four known fields. Throws
 * `ERR_POLICY_INPUT` on anything else, unknown fields included, so a token passed by mistake
 * is refused rather than evaluated or logged.
 */
export function validateInput(input: unknown): DecisionInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw bad('input must be an object');
  }
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    // The field name itself is attacker-chosen: name it only if it is short and plain.
    if (!FIELDS.has(key)) {
      throw bad(
        /^[A-Za-z_]{1,32}$/.test(key) ? `unknown input field "${key}"` : 'unknown input field',
      );
    }
  }
  const person = spiffeId(raw.person, 'person');
  const agent = spiffeId(raw.agent, 'agent');
  if (person === undefined && agent === undefined) {
    throw bad('input names neither person nor agent');
  }
  const { document, action } = raw;
  if (
    typeof document !== 'string' ||
    document.length > MAX_DOCUMENT ||
    !DOCUMENT_ID.test(document)
  ) {
    throw bad(`document must be an id of at most ${MAX_DOCUMENT} characters [A-Za-z0-9._:-]`);
  }
  if (typeof action !== 'string' || action.length > MAX_ACTION || !ACTION.test(action)) {
    throw bad(`action must be a lowercase name of at most ${MAX_ACTION} characters`);
  }
  const out: DecisionInput = { document, action };
  if (person !== undefined) out.person = person;
  if (agent !== undefined) out.agent = agent;
  return out;
}

function stringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.length <= 256 && value.every((v) => typeof v === 'string');
}

/**
 * Checks that an engine's answer is a decision of the expected shape and that `allow` agrees
 * with `reason`; anything else is `ERR_POLICY_RESULT`, so a policy that was replaced, half
 * loaded or answers a different question fails closed.
 */
export function parseDecision(value: unknown): Decision {
  const fail = (what: string) =>
    new PolicyError('ERR_POLICY_RESULT', `malformed decision: ${what}`);
  if (typeof value !== 'object' || value === null) throw fail('not an object');
  const v = value as Record<string, unknown>;
  if (typeof v.allow !== 'boolean') throw fail('allow is not a boolean');
  if (typeof v.reason !== 'string' || !REASONS.has(v.reason)) throw fail('unknown reason');
  if (ALLOWING.has(v.reason) !== v.allow) throw fail('allow contradicts reason');
  const d = v.details as Record<string, unknown> | null | undefined;
  if (typeof d !== 'object' || d === null) throw fail('details is not an object');
  const keys = ['user_departments', 'agent_capabilities', 'effective_permissions', 'required'];
  for (const k of keys) if (!stringArray(d[k])) throw fail(`details.${k} is not a string array`);
  return {
    allow: v.allow,
    reason: v.reason as DecisionReason,
    details: {
      user_departments: d.user_departments as string[],
      agent_capabilities: d.agent_capabilities as string[],
      effective_permissions: d.effective_permissions as string[],
      required: d.required as string[],
    },
  };
}

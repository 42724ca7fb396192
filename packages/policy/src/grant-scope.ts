import type { Decision, PolicyEngine } from './decision.js';
import { PolicyError } from './errors.js';

/** One requested scope the policy refused, with the policy's own reason and details. */
export interface ScopeRefusal {
  scope: string;
  /** The policy's reason (a {@link Decision} reason), or `unknown_scope` for a scope it cannot read. */
  reason: string;
  /** The policy's details; absent for an `unknown_scope`. */
  details?: Decision['details'];
}

/** The scopes the policy grants out of a request, and why it refused the others. */
export interface ScopeGrant {
  granted: string[];
  refused: ScopeRefusal[];
}

export interface PolicyGrantScopeOptions {
  /**
   * Reads a scope as a document and action, or undefined when the scope names none (it is then
   * refused as `unknown_scope`: what the policy cannot evaluate, it does not grant). Default:
   * `documents:<action>:<document>`, the demo's form.
   */
  parseScope?: (scope: string) => { document: string; action: string } | undefined;
}

const DOCUMENT_SCOPE = /^documents:([a-z][a-z0-9_.-]*):([A-Za-z0-9][A-Za-z0-9._:-]*)$/;

/**
 * Reads the demo's scope form `documents:<action>:<document>` (e.g. `documents:read:DOC-001`),
 * or undefined for any other scope: the default of {@link PolicyGrantScopeOptions.parseScope},
 * and what an audit trail names as the scope's resource.
 */
export function parseDocumentScope(
  scope: string,
): { document: string; action: string } | undefined {
  const m = DOCUMENT_SCOPE.exec(scope);
  return m ? { action: m[1]!, document: m[2]! } : undefined;
}

/**
 * A token service's scope decision backed by the same policy the resource servers ask: each
 * requested scope is granted only if the policy allows that action on that document for the
 * person (direct) or for the person through the agent (delegated: person ∩ agent), so a token
 * can never carry a scope the policy refuses and is never wider than the person's own rights.
 * There is no agent-only case: a token exchange always has a person.
 *
 * Structurally the token service's `GrantScope` (this package imports no service). Rejects,
 * which the token service answers as "temporarily unavailable", when the policy cannot decide
 * (engine down, malformed answer); an input the policy refuses as malformed (`ERR_POLICY_INPUT`,
 * say a person ID of another form) is a refusal, not an outage.
 */
export function policyGrantScope(
  engine: PolicyEngine,
  options: PolicyGrantScopeOptions = {},
): (request: {
  person: string;
  agent: string | undefined;
  requested: string[];
}) => Promise<ScopeGrant> {
  const parse = options.parseScope ?? parseDocumentScope;
  return async ({ person, agent, requested }) => {
    const out: ScopeGrant = { granted: [], refused: [] };
    // One decision per scope, in parallel: an OPA server answers them concurrently.
    const decisions = await Promise.all(
      requested.map(async (scope): Promise<ScopeRefusal | undefined> => {
        const target = parse(scope);
        if (!target) return { scope, reason: 'unknown_scope' };
        let d: Decision;
        try {
          d = await engine.decide({
            person,
            ...(agent !== undefined ? { agent } : {}),
            document: target.document,
            action: target.action,
          });
        } catch (err) {
          if (err instanceof PolicyError && err.code === 'ERR_POLICY_INPUT') {
            return { scope, reason: 'policy_input_refused' };
          }
          throw err;
        }
        return d.allow ? undefined : { scope, reason: d.reason, details: d.details };
      }),
    );
    requested.forEach((scope, i) => {
      const refusal = decisions[i];
      if (refusal) out.refused.push(refusal);
      else out.granted.push(scope);
    });
    return out;
  };
}

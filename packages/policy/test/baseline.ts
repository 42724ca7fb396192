// The demo policy's rules written by hand in TypeScript, over the same data: the bench's
// baseline for Wasm throughput, and a third opinion in the differential test.
import type { Decision, DecisionInput, DecisionReason, PolicyData } from '@precinct/policy';

export function baselinePolicy(data: PolicyData): (input: DecisionInput) => Decision {
  const p = data.precinct;
  const users = new Map(Object.entries(p.users).map(([k, v]) => [k, new Set(v.departments)]));
  const agents = new Map(Object.entries(p.agents).map(([k, v]) => [k, new Set(v.capabilities)]));
  const docs = new Map(
    Object.entries(p.documents).map(([k, v]) => [k, new Set(v.required_departments)]),
  );
  const name = (id: string | undefined, kind: string) => {
    const parts = id?.split('/');
    if (!parts || parts.length !== 5) return undefined;
    const [scheme, empty, td, k, n] = parts;
    return scheme === 'spiffe:' && empty === '' && td === p.trust_domain && k === kind && n
      ? n
      : undefined;
  };
  const sorted = (s: Set<string>) => [...s].sort();
  const grants = (perms: Set<string>, required: Set<string>) =>
    [...required].some((d) => perms.has(d));

  return (input) => {
    const person = name(input.person, 'user');
    const agent = name(input.agent, 'agent');
    const userDepts = (person && users.get(person)) || new Set<string>();
    const agentCaps = (agent && agents.get(agent)) || new Set<string>();
    const required = docs.get(input.document) ?? new Set<string>();
    const effective = input.person
      ? input.agent
        ? new Set([...userDepts].filter((d) => agentCaps.has(d)))
        : userDepts
      : new Set<string>();
    let reason: DecisionReason;
    if (!input.person && !input.agent) reason = 'no_identity';
    else if (!input.person) reason = 'agent_without_person';
    else if (!person || !users.has(person)) reason = 'unknown_person';
    else if (input.agent && (!agent || !agents.has(agent))) reason = 'unknown_agent';
    else if (!docs.has(input.document)) reason = 'unknown_document';
    else if (input.action !== 'read') reason = 'action_not_permitted';
    else if (required.size === 0) reason = 'public_document';
    else if (!input.agent && grants(effective, required)) reason = 'person_has_department';
    else if (grants(effective, required)) reason = 'delegation_permits';
    else if (!grants(userDepts, required)) reason = 'person_lacks_department';
    else reason = 'agent_lacks_capability';
    return {
      allow:
        reason === 'public_document' ||
        reason === 'person_has_department' ||
        reason === 'delegation_permits',
      reason,
      details: {
        user_departments: sorted(userDepts),
        agent_capabilities: sorted(agentCaps),
        effective_permissions: sorted(effective),
        required: sorted(required),
      },
    };
  };
}

// The reference demo's 17 authorization scenarios (hardwaylabs/spiffe-spire-demo,
// scripts/test-authorization.sh) with its expected answers: 8 direct, 9 delegated, one of
// them an agent without a person.
import type { DecisionInput } from '@precinct/policy';

export const TRUST_DOMAIN = 'demo.example.com';
export const USERS = ['alice', 'bob', 'carol'] as const;
export const AGENTS = ['gpt4', 'claude', 'summarizer'] as const;
export const DOCUMENTS = [
  'DOC-001',
  'DOC-002',
  'DOC-003',
  'DOC-004',
  'DOC-005',
  'DOC-006',
  'DOC-007',
] as const;

export const userId = (name: string) => `spiffe://${TRUST_DOMAIN}/user/${name}`;
export const agentId = (name: string) => `spiffe://${TRUST_DOMAIN}/agent/${name}`;

export interface Scenario {
  n: number;
  name: string;
  input: DecisionInput;
  allow: boolean;
}

const direct = (n: number, user: string, doc: string, allow: boolean, why: string): Scenario => ({
  n,
  name: `${n}. ${user} -> ${doc} (${why})`,
  input: { person: userId(user), document: doc, action: 'read' },
  allow,
});
const delegated = (
  n: number,
  user: string | undefined,
  agent: string,
  doc: string,
  allow: boolean,
  why: string,
): Scenario => ({
  n,
  name: `${n}. ${user ?? '(no person)'} -> ${agent} -> ${doc} (${why})`,
  input: {
    ...(user ? { person: userId(user) } : {}),
    agent: agentId(agent),
    document: doc,
    action: 'read',
  },
  allow,
});

export const SCENARIOS: Scenario[] = [
  direct(1, 'alice', 'DOC-001', true, 'engineering'),
  direct(2, 'bob', 'DOC-002', true, 'finance'),
  direct(3, 'bob', 'DOC-003', true, 'admin'),
  direct(4, 'carol', 'DOC-004', true, 'hr'),
  direct(5, 'bob', 'DOC-001', false, 'bob lacks engineering'),
  direct(6, 'carol', 'DOC-002', false, 'carol lacks finance'),
  direct(7, 'alice', 'DOC-003', false, 'alice lacks admin'),
  direct(8, 'alice', 'DOC-004', false, 'alice lacks hr'),
  delegated(9, 'alice', 'gpt4', 'DOC-001', true, 'both have engineering'),
  delegated(10, 'alice', 'gpt4', 'DOC-002', true, 'both have finance'),
  delegated(11, 'bob', 'claude', 'DOC-003', true, 'both have admin'),
  delegated(12, 'carol', 'claude', 'DOC-004', true, 'both have hr'),
  delegated(13, undefined, 'gpt4', 'DOC-001', false, 'agent without a person'),
  delegated(14, 'alice', 'summarizer', 'DOC-001', false, 'summarizer lacks engineering'),
  delegated(15, 'bob', 'gpt4', 'DOC-003', false, 'gpt4 lacks admin'),
  delegated(16, 'alice', 'gpt4', 'DOC-004', false, 'neither has hr'),
  delegated(17, 'carol', 'gpt4', 'DOC-004', false, 'gpt4 lacks hr'),
];

/** Every user x agent x document x mode (direct, delegated, agent without a person). */
export function allInputs(): DecisionInput[] {
  const out: DecisionInput[] = [];
  for (const doc of DOCUMENTS) {
    for (const u of USERS) out.push({ person: userId(u), document: doc, action: 'read' });
    for (const a of AGENTS) {
      out.push({ agent: agentId(a), document: doc, action: 'read' });
      for (const u of USERS) {
        out.push({ person: userId(u), agent: agentId(a), document: doc, action: 'read' });
      }
    }
  }
  return out;
}

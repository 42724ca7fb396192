// What the demo's parts agree on: default ports, the policy data for a trust domain, the token
// service's grants and consent for the demo people, and the services' SPIFFE IDs. The
// composition that starts the services together with the dashboard lives above the services,
// in the CLI (cli/src/demo.ts): a service never imports another.
import { loadDemoData, type PolicyData } from '@precinct/policy';

/** Default ports, as the reference demo. Health ports are separate and plain HTTP. */
export const DEMO_PORTS = {
  dashboard: 8080,
  userService: 8082,
  agentService: 8083,
  documentService: 8084,
  policyService: 8085,
  dashboardHealth: 9080,
  userServiceHealth: 9082,
  agentServiceHealth: 9083,
  documentServiceHealth: 9084,
  policyServiceHealth: 9085,
} as const;

export type DemoPorts = { [K in keyof typeof DEMO_PORTS]: number };

/**
 * The demo's people, agents and documents for `trustDomain` (the shipped data names
 * demo.example.com; the policy accepts only IDs of the data's trust domain). Pass it to
 * `wasmPolicy({data})` too, or load it into the OPA server, so the policy and the services agree.
 */
export function demoPolicyData(trustDomain: string): PolicyData {
  const data = loadDemoData();
  return { precinct: { ...data.precinct, trust_domain: trustDomain } };
}

/**
 * The token service's `grantScope` for the demo: people of the data may ask for
 * `documents:read:<known document>`, alone or through an agent. Whether they may actually read
 * it is the policy's call at the document service, so every decision (and its reason) reaches
 * the audit store; the scope still pins each token to the one document asked for.
 */
export function demoGrantScope(data: PolicyData) {
  const td = data.precinct.trust_domain;
  const docs = new Set(Object.keys(data.precinct.documents));
  const prefix = `spiffe://${td}/user/`;
  return async (r: { person: string; agent: string | undefined; requested: string[] }) => {
    const name = r.person.startsWith(prefix) ? r.person.slice(prefix.length) : '';
    if (!Object.hasOwn(data.precinct.users, name)) return [];
    return r.requested.filter((s) => s.startsWith('documents:read:') && docs.has(s.slice(15)));
  };
}

/**
 * Which agent may act for which person in the demo (the token service's consent store):
 * every pair of the reference's scenarios. Carol never allowed the summarizer.
 */
export const DEMO_CONSENT: Readonly<Record<string, readonly string[]>> = {
  alice: ['gpt4', 'claude', 'summarizer'],
  bob: ['gpt4', 'claude', 'summarizer'],
  carol: ['gpt4', 'claude'],
};

/** A demo service's SPIFFE ID in the tests' layout (`ns/demo/sa/<service account>`). */
const svcId = (td: string, sa: string) => `spiffe://${td}/ns/demo/sa/${sa}`;

export { svcId as demoServiceId };

// The reference demo's 17 authorization scenarios through the dashboard API, logged in as each
// person, over the whole chain: dashboard -> token service -> user or agent service ->
// document service -> policy service, every hop SVID mTLS with Transaction Tokens.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { wasmPolicy, type PolicyEngine } from '@precinct/policy';
import { SCENARIOS } from '../../packages/policy/test/scenarios.js';
import { Browser, startWorld, type World } from './support.js';

const nameOf = (id: string | undefined) => id?.split('/').pop();

describe('the 17 scenarios through the dashboard API', () => {
  let world: World;
  let policy: PolicyEngine;
  const browsers = new Map<string, Browser>();

  before(async () => {
    world = await startWorld();
    policy = await wasmPolicy();
    for (const u of ['alice', 'bob', 'carol']) {
      const b = new Browser(world.demo.urls.dashboard);
      await b.login(u, world.passwords[u]!);
      browsers.set(u, b);
    }
  });
  after(async () => {
    await world?.close();
  });

  for (const s of SCENARIOS) {
    test(s.name, async () => {
      const person = nameOf(s.input.person);
      const agent = nameOf(s.input.agent);
      // The agent without a person is asked for by a logged-in person who delegates nothing.
      const browser = browsers.get(person ?? 'alice')!;
      const r = agent
        ? await browser.request('POST', '/api/access-delegated', {
            agent_id: agent,
            document_id: s.input.document,
            ...(person ? {} : { autonomous: true }),
          })
        : await browser.request('POST', '/api/access-direct', { document_id: s.input.document });
      const expected = await policy.decide(s.input);
      assert.equal(expected.allow, s.allow, 'the table and the policy agree');
      assert.equal(r.status, s.allow ? 200 : 403, JSON.stringify(r.body));
      assert.equal(r.body.granted, s.allow);
      assert.equal(r.body.reason, expected.reason);
      assert.deepEqual(r.body.details, expected.details);
      assert.equal(r.body.user, s.input.person);
      assert.equal(r.body.agent, s.input.agent);
      if (s.allow) assert.equal((r.body.document as { id: string }).id, s.input.document);
      else assert.equal(r.body.document, undefined);
    });
  }
});

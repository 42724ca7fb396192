// The demo's data in any trust domain, and the token service's scope grant built from it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { wasmPolicy } from '@precinct/policy';
import { demoGrantScope, demoPolicyData, stripIdentityHeaders } from '../src/index.js';

test('demoPolicyData moves people and agents into the given trust domain', async () => {
  const policy = await wasmPolicy({ data: demoPolicyData('precinct.local') });
  const input = { document: 'DOC-001', action: 'read' };
  const here = await policy.decide({ ...input, person: 'spiffe://precinct.local/user/alice' });
  assert.equal(here.allow, true);
  const there = await policy.decide({ ...input, person: 'spiffe://demo.example.com/user/alice' });
  assert.deepEqual([there.allow, there.reason], [false, 'unknown_person']);
});

test('demoGrantScope: known people, known documents, read only', async () => {
  const grant = demoGrantScope(demoPolicyData('precinct.local'));
  const requested = ['documents:read:DOC-001', 'documents:read:DOC-999', 'documents:write:DOC-001'];
  assert.deepEqual(
    await grant({ person: 'spiffe://precinct.local/user/bob', agent: undefined, requested }),
    ['documents:read:DOC-001'],
  );
  for (const person of [
    'spiffe://precinct.local/user/mallory',
    'spiffe://demo.example.com/user/bob',
    'spiffe://precinct.local/user/bob/x',
    'bob',
  ]) {
    assert.deepEqual(await grant({ person, agent: undefined, requested }), [], person);
  }
});

test('identity headers are removed, others kept', () => {
  const headers: Record<string, unknown> = {
    'x-spiffe-id': 'spiffe://x/user/bob',
    'x-auth-request-user': 'bob',
    'x-remote-user': 'bob',
    'impersonate-user': 'bob',
    'impersonate-group': 'admins',
    'txn-token': 'kept',
    'content-type': 'application/json',
  };
  stripIdentityHeaders(headers);
  assert.deepEqual(Object.keys(headers), ['txn-token', 'content-type']);
});

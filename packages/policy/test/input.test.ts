import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyError, validateInput, wasmPolicy, type DecisionInput } from '@precinct/policy';
import { agentId, userId } from './scenarios.js';

const VALID: DecisionInput = {
  person: userId('alice'),
  agent: agentId('gpt4'),
  document: 'DOC-001',
  action: 'read',
};

test('valid inputs pass as fresh copies of the known fields (positive controls)', () => {
  for (const input of [
    VALID,
    { person: userId('alice'), document: 'DOC-007', action: 'read' },
    { agent: agentId('gpt4'), document: 'DOC-001', action: 'read' },
    { person: 'spiffe://td.example/ns/x/sa/y', document: 'a.b:c-d_e', action: 'x.y:z-w_1' },
  ]) {
    const out = validateInput(input);
    assert.deepEqual(out, input);
    assert.notEqual(out, input);
  }
});

const BAD: [string, unknown, RegExp][] = [
  ['null', null, /object/],
  ['an array', [VALID], /object/],
  ['a string', JSON.stringify(VALID), /object/],
  ['a token field', { ...VALID, token: 'eyJ.eyJ.sig' }, /unknown input field "token"/],
  ['a hostile field name', { ...VALID, ['x'.repeat(5000)]: 1 }, /^policy: unknown input field$/],
  ['neither person nor agent', { document: 'DOC-001', action: 'read' }, /neither/],
  ['a non-string person', { ...VALID, person: { id: 'alice' } }, /person must be a string/],
  ['a person that is not a SPIFFE ID', { ...VALID, person: 'alice' }, /person is not a SPIFFE/],
  ['an upper-case trust domain', { ...VALID, person: 'spiffe://TD/user/a' }, /SPIFFE/],
  ['a trust domain only', { ...VALID, agent: 'spiffe://td' }, /agent is not a SPIFFE/],
  ['a dot segment', { ...VALID, person: 'spiffe://td/user/../agent' }, /SPIFFE/],
  ['a trailing slash', { ...VALID, person: 'spiffe://td/user/alice/' }, /SPIFFE/],
  ['a query', { ...VALID, person: 'spiffe://td/user/alice?x' }, /SPIFFE/],
  ['a long person', { ...VALID, person: `spiffe://td/${'a'.repeat(600)}` }, /longer/],
  ['no document', { person: VALID.person, action: 'read' }, /document/],
  ['a long document', { ...VALID, document: 'D'.repeat(129) }, /document/],
  ['a document with a slash', { ...VALID, document: '../DOC-001' }, /document/],
  ['no action', { person: VALID.person, document: 'DOC-001' }, /action/],
  ['an upper-case action', { ...VALID, action: 'READ' }, /action/],
  ['a long action', { ...VALID, action: 'r'.repeat(65) }, /action/],
];

test('bad inputs are refused with ERR_POLICY_INPUT and a clear message', () => {
  for (const [name, input, message] of BAD) {
    assert.throws(
      () => validateInput(input),
      (err: unknown) =>
        err instanceof PolicyError && err.code === 'ERR_POLICY_INPUT' && message.test(err.message),
      name,
    );
  }
});

test('error messages never echo the values, only field names', () => {
  for (const [, input] of BAD) {
    try {
      validateInput(input);
    } catch (err) {
      assert.doesNotMatch((err as Error).message, /eyJ|alice|DOC-001|xxxx/);
    }
  }
});

test('the Wasm engine refuses bad input without evaluating it, then still decides', async () => {
  const engine = await wasmPolicy();
  for (const [name, input] of BAD) {
    await assert.rejects(
      engine.decide(input as DecisionInput),
      (err: unknown) => err instanceof PolicyError && err.code === 'ERR_POLICY_INPUT',
      name,
    );
  }
  assert.equal((await engine.decide(VALID)).allow, true);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags, UsageError, type FlagSpec } from '@precinct/runtime';

const specs: Record<string, FlagSpec> = {
  listen: { type: 'string', description: 'address', default: '[::]:1' },
  verbose: { type: 'boolean', description: 'talk more' },
};

test('parses known flags and applies defaults', () => {
  assert.deepEqual(parseFlags('x', 's', [], specs), { listen: '[::]:1' });
  assert.deepEqual(parseFlags('x', 's', ['--listen', 'a:2', '--verbose'], specs), {
    listen: 'a:2',
    verbose: true,
  });
});

test('unknown flags, missing values and positionals are usage errors', () => {
  for (const argv of [['--nope'], ['--listen'], ['extra'], ['--verbose=3']]) {
    assert.throws(() => parseFlags('x', 's', argv, specs), UsageError, argv.join(' '));
  }
});

test('--help prints every flag and returns undefined', (t) => {
  const lines: string[] = [];
  t.mock.method(console, 'log', (s: string) => lines.push(s));
  assert.equal(parseFlags('x', 'summary here', ['--help'], specs), undefined);
  const out = lines.join('\n');
  assert.match(out, /Usage: precinct x/);
  assert.match(out, /--listen VALUE +address \(default: \[::\]:1\)/);
  assert.match(out, /--verbose +talk more/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/precinct.js', import.meta.url));
const run = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });

test('precinct --help lists the commands', () => {
  const r = run('--help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Usage: precinct <command>/);
  for (const c of ['up', 'kube-dev']) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
});

test('an unknown command exits 2 with the usage on stderr', () => {
  const r = run('no-such-command');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command "no-such-command"/);
});

test('precinct up --help describes its flags; a bad flag is a usage error', () => {
  const ok = run('up', '--help');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /--data-dir DIR/);
  const bad = run('up', '--bogus');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /precinct up: .*--bogus/);
});

test('precinct audit lists its subcommands; an unknown one is a usage error', () => {
  const ok = run('audit', '--help');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /verify-export/);
  const bad = run('audit', 'nope');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown subcommand "nope"/);
});

test('every command answers --help', () => {
  for (const c of [
    'kube-dev',
    'identity-server',
    'entry',
    'nats-callout',
    'audit-store',
    'delegate',
  ]) {
    const r = run(c, '--help');
    assert.equal(r.status, 0, `${c}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: precinct/, c);
  }
});

test('precinct delegate: missing flags and a missing platform are usage errors', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--actor', 'a'], /--subject is required/],
    [['--subject', 'alice'], /--actor is required/],
    [['--subject', 'alice', '--actor', 'a', '--ttl', '86400'], /--ttl/],
    [
      ['--subject', 'alice', '--actor', 'a', '--data-dir', '/nonexistent/precinct'],
      /start the local platform first/,
    ],
  ];
  for (const [args, message] of cases) {
    const r = run('delegate', ...args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '', 'no token printed');
  }
});

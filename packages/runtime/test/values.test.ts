import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import {
  describeError,
  listen,
  ListenError,
  parseDatabaseUrl,
  parseDuration,
  parseFlags,
  parseHttpUrl,
  parseListen,
  parsePort,
  redactUrl,
  UsageError,
  type FlagSpec,
} from '@precinct/runtime';

test('parsePort: 0-65535 accepted, everything else names the setting', () => {
  for (const [raw, want] of [
    ['0', 0],
    ['6443', 6443],
    [' 65535 ', 65535],
  ] as const) {
    assert.equal(parsePort(raw, '--kube-port'), want);
  }
  for (const raw of ['abc', '', '-1', '65536', '1e3', '80.5', '0x50', '99999999']) {
    assert.throws(
      () => parsePort(raw, '--kube-port'),
      (e: Error) => e instanceof UsageError && /--kube-port must be a port number/.test(e.message),
      raw,
    );
  }
});

test('parseListen: host:port, [v6]:port, :port', () => {
  assert.deepEqual(parseListen('127.0.0.1:80', '--listen'), { host: '127.0.0.1', port: 80 });
  assert.deepEqual(parseListen('[::1]:8080', '--listen'), { host: '::1', port: 8080 });
  assert.deepEqual(parseListen(':9', '--listen', '0.0.0.0'), { host: '0.0.0.0', port: 9 });
  for (const raw of ['80', 'host', '::1:80', 'h:70000', 'h:abc', '[::1]']) {
    assert.throws(() => parseListen(raw, '--listen'), /--listen must be HOST:PORT/, raw);
  }
});

test('parseDuration: one grammar for every command', () => {
  const table: Array<[string, number]> = [
    ['90', 90],
    ['90s', 90],
    ['15m', 900],
    ['1h', 3600],
    ['2d', 172800],
    ['1h30m', 5400],
    ['1d2h3m4s', 93784],
  ];
  for (const [raw, want] of table) assert.equal(parseDuration(raw, '--ttl'), want, raw);
  for (const raw of ['', 'abc', '1x', '30m1h', '1h1h', '-5s', '1.5h', 'h', '5 m']) {
    assert.throws(() => parseDuration(raw, '--ttl'), /--ttl must be a duration/, raw);
  }
});

test('parseDatabaseUrl: PostgreSQL URLs only, with a sentence for each mistake', () => {
  for (const ok of [
    'postgres://u:p@db:5432/x',
    'postgresql://localhost/x',
    'postgres:///x?host=/var/run/postgresql',
  ]) {
    assert.equal(parseDatabaseUrl(ok), ok);
  }
  const cases: Array<[string, RegExp]> = [
    ['not-a-url', /DATABASE_URL must be a PostgreSQL URL .* does not parse/],
    ['mysql://u:secret@db/x', /scheme "mysql" is not supported/],
    ['http://db/x', /scheme "http" is not supported/],
    ['postgres:///x', /names no host/],
  ];
  for (const [raw, re] of cases) {
    assert.throws(
      () => parseDatabaseUrl(raw),
      (e: Error) => e instanceof UsageError && re.test(e.message) && !e.message.includes('secret'),
      raw,
    );
  }
});

test('parseHttpUrl and redactUrl', () => {
  assert.equal(parseHttpUrl('https://x.example/a', '--url').host, 'x.example');
  assert.throws(() => parseHttpUrl('ftp://x', '--url'), /scheme "ftp:"/);
  assert.throws(() => parseHttpUrl('nope', '--url'), /--url must be an http/);
  assert.throws(() => parseHttpUrl('https://u:p@x', '--url'), /credentials/);
  assert.equal(redactUrl('postgres://u:hunter2@db/x'), 'postgres://u:***@db/x');
  assert.equal(redactUrl('::'), '(unparsable URL)');
});

test('parseFlags checks kinds, conflicts and requirements, all problems at once', () => {
  const specs: Record<string, FlagSpec> = {
    port: { type: 'string', description: 'p', kind: 'port', default: '80' },
    ttl: { type: 'string', description: 't', kind: 'duration' },
    cert: { type: 'string', description: 'c', requires: ['key'] },
    key: { type: 'string', description: 'k' },
    insecure: { type: 'boolean', description: 'i', conflicts: ['cert'] },
  };
  // Positive control: valid values pass and stay strings.
  assert.deepEqual(
    parseFlags('x', 's', ['--port', '0', '--ttl', '5m', '--cert', 'c', '--key', 'k'], specs),
    { port: '0', ttl: '5m', cert: 'c', key: 'k' },
  );
  assert.throws(
    () =>
      parseFlags('x', 's', ['--port', 'abc', '--ttl', 'soon', '--cert', 'c', '--insecure'], specs),
    (e: Error) => {
      const lines = e.message.split('\n');
      assert.equal(lines.length, 4, e.message);
      assert.match(e.message, /--port must be a port number .* got "abc"/);
      assert.match(e.message, /--ttl must be a duration/);
      assert.match(e.message, /--cert needs --key as well/);
      assert.match(e.message, /--insecure and --cert cannot be used together/);
      return e instanceof UsageError;
    },
  );
  // A bad default is the program's bug, and is reported like a bad flag, not ignored.
  assert.throws(
    () =>
      parseFlags('x', 's', [], {
        p: { type: 'string', description: '', kind: 'port', default: 'x' },
      }),
    /--p must be a port number/,
  );
});

test('listen: a taken port says so and names the setting; a free one works (control)', async (t) => {
  const first = createServer();
  t.after(() => first.close());
  const port = await listen(first, { host: '127.0.0.1', port: 0 });
  const second = createServer();
  t.after(() => second.close());
  await assert.rejects(
    listen(second, { host: '127.0.0.1', port, setting: '--kube-port' }),
    (e: Error) =>
      e instanceof ListenError &&
      e.code === 'EADDRINUSE' &&
      e.message ===
        `cannot listen on 127.0.0.1:${port}: port ${port} is already in use by another process; choose another with --kube-port (0 picks any free port)`,
  );
  assert.ok((await listen(second, { host: '127.0.0.1', port: 0 })) > 0);
});

test('describeError folds a wrapper and its cause into one sentence', () => {
  const inner = new Error('cannot listen on [::]:6443: port 6443 is already in use');
  const outer = new Error('cannot listen on [::]:6443', { cause: inner });
  assert.equal(describeError(outer), inner.message);
  const fetchFailed = new TypeError('fetch failed', {
    cause: new Error('connect ECONNREFUSED 127.0.0.1:8081'),
  });
  assert.equal(describeError(fetchFailed), 'fetch failed: connect ECONNREFUSED 127.0.0.1:8081');
  assert.equal(describeError('plain'), 'plain');
});

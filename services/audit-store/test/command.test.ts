import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { UsageError } from '@precinct/runtime';
import { tempDir } from '@precinct/testing';
import { auditStoreCommand, verifyExportCommand } from '../src/index.js';
import { loadSigningKey, signExport } from '../src/export.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Runs `precinct <args>` through the real CLI entry point. */
function precinct(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawn(
    process.execPath,
    ['--import', './scripts/register-source.mjs', 'cli/src/main.ts', ...args],
    {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'warn', HOST: '', PORT: '', DATABASE_URL: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = precinct(args);
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, out, err };
}

test('`precinct audit-store --help` exits 0; a bad flag exits 2', { timeout: 60_000 }, async () => {
  const [help, bad] = await Promise.all([
    run(['audit-store', '--help']),
    run(['audit-store', '--bogus']),
  ]);
  assert.equal(help.code, 0, help.err);
  assert.match(help.out, /--data-dir/);
  assert.match(help.out, /--insecure-dev/);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /bogus/);
});

test('bad flag combinations are usage errors', async (t) => {
  const dir = tempDir('precinct-audit-flags-');
  t.after(dir.cleanup);
  const missingKey = join(dir.path, 'missing.pem');
  const cases: [string, string[], RegExp][] = [
    ['--no-auth alone', ['--no-auth'], /--insecure-dev/],
    ['--listen without a port', ['--listen', 'localhost'], /--listen/],
    ['--listen port out of range', ['--listen', ':70000'], /--listen/],
    [
      'missing signing key without --data-dir',
      ['--no-auth', '--insecure-dev', '--listen', '127.0.0.1:0', '--signing-key', missingKey],
      /does not exist/,
    ],
    ['positional argument', ['serve'], /serve/],
    ['--health-listen without --spiffe', ['--health-listen', ':9000'], /--spiffe/],
    ['--idempotency-ttl not a number', ['--idempotency-ttl', '1h'], /--idempotency-ttl/],
    ['--idempotency-ttl too short', ['--idempotency-ttl', '5'], /--idempotency-ttl/],
    [
      '--delegation-issuer without its keys',
      ['--delegation-issuer', 'https://idp.example'],
      /--delegation-jwks/,
    ],
    ['--delegation-jwks without an issuer', ['--delegation-jwks', 'keys.json'], /go together/],
    [
      '--delegation-audience without an issuer',
      ['--delegation-audience', 'x'],
      /--delegation-issuer/,
    ],
    [
      '--delegation-jwks that is no key set',
      [
        '--delegation-issuer',
        'https://idp.example',
        '--delegation-jwks',
        join(dir.path, 'absent.json'),
      ],
      /not an http\(s\) URL nor a readable JSON file/,
    ],
    ['--spiffe without a Workload API address', ['--spiffe'], /SPIFFE_ENDPOINT_SOCKET/],
    ['--max-event-age not a number', ['--max-event-age', '7y'], /--max-event-age/],
    ['--max-event-age zero', ['--max-event-age', '0'], /--max-event-age/],
    ['--max-clock-skew too large', ['--max-clock-skew', '999999'], /--max-clock-skew/],
    ['--token-audience empty', ['--token-audience', ' '], /--token-audience/],
    [
      '--token-audience without bearer tokens',
      ['--no-auth', '--insecure-dev', '--token-audience', 'x'],
      /--token-audience/,
    ],
  ];
  const savedSocket = process.env.SPIFFE_ENDPOINT_SOCKET;
  delete process.env.SPIFFE_ENDPOINT_SOCKET;
  t.after(() => {
    if (savedSocket !== undefined) process.env.SPIFFE_ENDPOINT_SOCKET = savedSocket;
  });
  for (const [name, argv, message] of cases) {
    await assert.rejects(
      auditStoreCommand.run(argv),
      (err: unknown) => err instanceof UsageError && message.test(err.message),
      name,
    );
  }
});

test('without Kubernetes credentials start-up fails with one clear line', async (t) => {
  const dir = tempDir('precinct-audit-nokube-');
  t.after(dir.cleanup);
  const saved = process.env.KUBECONFIG;
  process.env.KUBECONFIG = join(dir.path, 'absent-kubeconfig');
  t.after(() => {
    if (saved === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = saved;
  });
  await assert.rejects(auditStoreCommand.run(['--listen', '127.0.0.1:0']), {
    code: 'ERR_CONFIG',
    message: /no Kubernetes credentials/,
  });
});

test(
  '`precinct audit-store --no-auth --insecure-dev` serves, creates its signing key 0600, stops on SIGTERM',
  { timeout: 60_000 },
  async (t) => {
    const dir = tempDir('precinct-audit-cmd-');
    t.after(dir.cleanup);
    const keyFile = join(dir.path, 'export-key.pem');
    const child = precinct(
      [
        'audit-store',
        '--no-auth',
        '--insecure-dev',
        '--data-dir',
        join(dir.path, 'pg'),
        '--signing-key',
        keyFile,
        '--advertise-host',
        'audit.example',
        '--idempotency-ttl',
        '3600',
      ],
      { PORT: '0' },
    );
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /audit-store listening on (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    assert.match(url, /^http:\/\/audit\.example:\d+$/, 'the advertised host is printed');
    assert.doesNotMatch(url, /:8080$|:0$/);
    const health = await fetch(`http://127.0.0.1:${new URL(url).port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, err);
  },
);

test('verify-export accepts the signed export and rejects one changed byte', async (t) => {
  const dir = tempDir('precinct-audit-verify-');
  t.after(dir.cleanup);
  const key = loadSigningKey();
  const data = Buffer.from('{"id":"1","action":"read"}\n{"id":"2","action":"write"}\n');
  const files = {
    good: join(dir.path, 'export.jsonl'),
    bad: join(dir.path, 'tampered.jsonl'),
    sig: join(dir.path, 'export.sig'),
    pub: join(dir.path, 'key.pem'),
  };
  writeFileSync(files.good, data);
  const tampered = Buffer.from(data);
  tampered[8] = tampered[8]! ^ 0x01;
  writeFileSync(files.bad, tampered);
  writeFileSync(files.sig, signExport(data, key) + '\n');
  writeFileSync(files.pub, key.publicKeyPem);
  t.mock.method(console, 'log', () => {});
  const args = (file: string) => [
    '--file',
    file,
    '--signature',
    files.sig,
    '--public-key',
    files.pub,
  ];
  await verifyExportCommand.run(args(files.good));
  await assert.rejects(verifyExportCommand.run(args(files.bad)), {
    code: 'ERR_EXPORT_SIGNATURE',
  });
  await assert.rejects(
    verifyExportCommand.run(['--file', files.good]),
    (err: unknown) => err instanceof UsageError && /--signature/.test(err.message),
  );
});

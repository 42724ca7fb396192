import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { tempDir } from '@precinct/testing';
import { runEntryCli } from '../src/commands/entry.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = fileURLToPath(new URL('../src/commands/identity-server.ts', import.meta.url));

test(
  '`precinct identity-server` starts, prints where it is, serves, and stops on SIGTERM',
  { timeout: 60_000 },
  async (t) => {
    const dir = tempDir('precinct-id-cmd-');
    t.after(dir.cleanup);
    const script = `const { identityServerCommand } = await import(${JSON.stringify(cli)}); await identityServerCommand.run(process.argv.slice(1));`;
    const child = spawn(
      process.execPath,
      [
        '--import',
        './scripts/register-source.mjs',
        '--input-type=module',
        '-e',
        script,
        '--',
        '--trust-domain',
        'cmd.example',
        '--data-dir',
        dir.path,
        '--host',
        '127.0.0.1',
        '--advertise-host',
        '127.0.0.1',
        '--port',
        '0',
        '--oidc-port',
        '0',
        '--health-port',
        '0',
        '--attestor',
        'none',
      ],
      {
        cwd: root,
        env: { ...process.env, LOG_LEVEL: 'warn', PORT: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (/health\s+http/.test(out)) resolve();
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    assert.match(out, /trust domain\s+spiffe:\/\/cmd\.example/);
    const health = /health\s+(http\S+)/.exec(out)![1]!;
    assert.equal((await fetch(`${health}/ready`)).status, 200);
    // The entry CLI finds the server through the data dir.
    const lines: string[] = [];
    await runEntryCli(
      [
        'create',
        '-spiffeID',
        'spiffe://cmd.example/w',
        '-selector',
        'k8s:ns:w',
        '-dataDir',
        dir.path,
      ],
      {
        out: (l) => lines.push(l),
      },
    );
    assert.match(lines[0]!, /spiffe:\/\/cmd\.example\/w/);
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, err);
  },
);

test('bad flags are usage errors', async () => {
  const { identityServerCommand } = await import('../src/commands/identity-server.js');
  for (const [argv, re] of [
    [['--attestor', 'magic'], /--attestor must be kube or none/],
    [['--port', '70000'], /--port must be a port/],
    [['--ca-ttl', '1w'], /--ca-ttl must be seconds/],
    [['--max-binding-ttl', '0'], /--max-binding-ttl must be positive/],
    [['--max-binding-ttl', 'forever'], /--max-binding-ttl must be seconds/],
    [['--watch-stale-after', '0s'], /--watch-stale-after must be positive/],
    [['--bundle-endpoint-port', '0'], /go together/],
    [['--federate-with', 'b.org=http://x'], /TD=https:\/\/URL/],
    [['--oidc-cert', '/dev/null'], /--oidc-cert and --oidc-key go together/],
    [['--upstream-ca-key', '/dev/null'], /--upstream-ca-cert and --upstream-ca-key go together/],
  ] as const) {
    await assert.rejects(
      identityServerCommand.run([
        ...argv,
        '--attestor',
        argv[0] === '--attestor' ? argv[1] : 'none',
      ]),
      re,
    );
  }
});

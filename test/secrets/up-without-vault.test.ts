// `precinct up` without a secrets manager: nothing of issue 13 starts and nothing else changes.
// No records service, no egress broker; the dashboard's people-token routes say "not connected"
// or 404, while the delegated-access demo works as before (the positive control).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@precinct/testing';

const bin = fileURLToPath(new URL('../../cli/bin/precinct.js', import.meta.url));
let dir: ReturnType<typeof tempDir>;
let child: ChildProcess;
let out = '';
let dashboard: string;
let cookie: string;

interface Part {
  name: string;
  url: string;
  healthy: boolean;
}
const status = (): Part[] =>
  JSON.parse(
    spawnSync(process.execPath, [bin, 'status', '--json', '--data-dir', dir.path], {
      encoding: 'utf8',
      timeout: 60_000,
    }).stdout,
  ) as Part[];

async function api(method: string, path: string, body?: unknown, withCookie = cookie) {
  const res = await fetch(`${dashboard}${path}`, {
    method,
    headers: {
      cookie: withCookie,
      origin: dashboard,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, text, setCookie: res.headers.get('set-cookie') ?? '' };
}

before(async () => {
  dir = tempDir();
  const help = spawnSync(process.execPath, [bin, 'up', '--help'], { encoding: 'utf8' }).stdout;
  const ports = [...help.matchAll(/--([a-z-]+-port) PORT/g)].map((m) => m[1]!);
  assert.ok(ports.includes('egress-broker-port'), help);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.VAULT_ADDR;
  delete env.VAULT_TOKEN;
  child = spawn(
    process.execPath,
    [
      bin,
      'up',
      '--data-dir',
      dir.path,
      '--no-nats',
      // Checked, and unused without a secrets manager.
      '--egress-provider',
      'github=http://127.0.0.1:1',
      ...ports.flatMap((p) => [`--${p}`, '0']),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  let err = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (err += c));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no banner in time:\n${out}\n${err}`)),
      240_000,
    );
    child.stdout!.on('data', () => {
      if (out.includes('Ctrl-C')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`up exited ${code}:\n${out}\n${err}`)));
  });
  dashboard = status().find((p) => p.name === 'dashboard')!.url;
  const passwords = JSON.parse(readFileSync(join(dir.path, 'demo-users.json'), 'utf8')) as Record<
    string,
    string
  >;
  const login = await api('POST', '/api/auth/login', {
    username: 'alice',
    password: passwords.alice,
  });
  assert.equal(login.status, 200, login.text);
  cookie = login.setCookie.split(';')[0]!;
});

after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    child.kill('SIGKILL');
  }
  dir?.cleanup();
});

describe('precinct up without a secrets manager', { timeout: 300_000 }, () => {
  test('no records service and no egress broker; the banner says how to turn them on', () => {
    assert.match(
      out,
      /records-service\s+off: set VAULT_ADDR, VAULT_TOKEN \(admin\) and DATABASE_URL/,
    );
    assert.doesNotMatch(out, /egress-broker\s+https/);
    const names = status().map((p) => p.name);
    assert.ok(names.includes('dashboard') && names.includes('agent-service'), names.join());
    assert.ok(!names.includes('egress-broker') && !names.includes('records-service'));
  });

  test('the people-token routes: not connected, 404 (control: the delegated demo works)', async () => {
    const list = await api('GET', '/api/secrets');
    assert.equal(list.status, 200);
    assert.deepEqual(JSON.parse(list.text), { connected: false, providers: [] });
    assert.equal((await api('PUT', '/api/secrets/github', { token: 'ghp_x' })).status, 404);
    assert.equal((await api('GET', '/api/secrets/github')).status, 404);
    assert.equal(
      (await api('POST', '/api/agents/gpt4/egress/github', { path: 'user' })).status,
      404,
    );
    const granted = await api('POST', '/api/access-delegated', {
      agent_id: 'gpt4',
      document_id: 'DOC-002',
    });
    assert.equal(granted.status, 200, granted.text);
    assert.equal((JSON.parse(granted.text) as { granted: boolean }).granted, true);
  });
});

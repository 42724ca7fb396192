import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@precinct/testing';
import { call, eventually, matchesIpv6San } from './helpers.js';

const bin = fileURLToPath(new URL('../../../cli/bin/precinct.js', import.meta.url));

function start(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [bin, 'kube-dev', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, exited, out: () => out, err: () => err };
}

async function stop(p: { child: ChildProcess; exited: Promise<number | null> }) {
  p.child.kill('SIGTERM');
  return p.exited;
}

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
  delete env.HOST;
  delete env.PORT;
  return env;
}

test('precinct kube-dev --listen 127.0.0.1:0 prints the URL and the kubeconfig path', async (t) => {
  const tmp = tempDir('precinct-kube-dev-cli-');
  t.after(() => tmp.cleanup());
  const kubeconfig = `${tmp.path}/kc.yaml`;
  const p = start(
    ['--listen', '127.0.0.1:0', '--advertise-host', '127.0.0.1', '--kubeconfig', kubeconfig],
    baseEnv(),
  );
  try {
    const m = await eventually(
      () => /kubeconfig: (\S+)/.exec(p.out()),
      `the kubeconfig line (${p.err()})`,
      30_000,
    );
    assert.equal(m[1], kubeconfig);
    const url = /listening on (https:\/\/127\.0\.0\.1:(\d+))/.exec(p.out());
    assert.ok(url, p.out());
    assert.notEqual(url[2], '0');
    assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
    const text = readFileSync(kubeconfig, 'utf8');
    assert.match(text, new RegExp(`server: "${url[1]}"`));
    const caPem = Buffer.from(
      /certificate-authority-data: "([^"]+)"/.exec(text)![1]!,
      'base64',
    ).toString();
    const adminToken = /token: "([^"]+)"/.exec(text)![1]!;
    const r = await call(
      { url: url[1]!, caPem, adminToken },
      'GET',
      '/api/v1/namespaces/default/serviceaccounts/default',
    );
    assert.equal(r.status, 200, r.text);
  } finally {
    assert.equal(await stop(p), 0);
  }
});

test('the default listen is dual-stack: reachable on 127.0.0.1 and ::1 (HOST unset, PORT=0)', async (t) => {
  const tmp = tempDir('precinct-kube-dev-cli-');
  t.after(() => tmp.cleanup());
  const p = start(['--data-dir', tmp.path], { ...baseEnv(), PORT: '0' });
  try {
    await eventually(
      () => /kubeconfig: (\S+)/.exec(p.out()),
      `the kubeconfig line (${p.err()})`,
      30_000,
    );
    const port = /port (\d+)\)/.exec(p.out())![1]!;
    assert.notEqual(port, '0');
    const text = readFileSync(`${tmp.path}/kubeconfig`, 'utf8');
    assert.match(text, new RegExp(`server: "https://localhost:${port}"`));
    const caPem = Buffer.from(
      /certificate-authority-data: "([^"]+)"/.exec(text)![1]!,
      'base64',
    ).toString();
    for (const host of ['127.0.0.1', '[::1]']) {
      // Node 22.23 / 24.17+ no longer match an IPv6 host against an IP Address SAN
      // (nodejs/node#64144): there, the IPv6 probe checks the certificate's DNS name instead.
      const servername = host === '[::1]' && !matchesIpv6San() ? 'localhost' : undefined;
      if (servername) t.diagnostic('this Node cannot match IPv6 SANs; [::1] checked as localhost');
      const r = await call(
        { url: `https://${host}:${port}`, caPem, adminToken: '' },
        'GET',
        '/healthz',
        { token: null, ...(servername ? { servername } : {}) },
      );
      assert.equal(r.status, 200, host);
      assert.equal(r.text, 'ok');
    }
    for (const f of ['ca.key', 'sa-signing.key', 'admin.token', 'state.json', 'kubeconfig']) {
      assert.equal(statSync(`${tmp.path}/${f}`).mode & 0o777, 0o600, f);
    }
  } finally {
    assert.equal(await stop(p), 0);
  }
});

test('a bad --listen is a usage error', async () => {
  const p = start(['--listen', 'nonsense'], baseEnv());
  assert.equal(await p.exited, 2);
  assert.match(p.err(), /--listen must be host:port/);
});

test('a taken port is an error that names the setting to change', async (t) => {
  const tmp = tempDir('precinct-kube-dev-cli-');
  t.after(() => tmp.cleanup());
  const first = start(['--listen', '127.0.0.1:0', '--kubeconfig', `${tmp.path}/kc`], baseEnv());
  try {
    await eventually(
      () => /port (\d+)\)/.exec(first.out()),
      `the first start (${first.err()})`,
      30_000,
    );
    const port = /port (\d+)\)/.exec(first.out())![1]!;
    const byFlag = start(['--listen', `127.0.0.1:${port}`], baseEnv());
    assert.equal(await byFlag.exited, 1);
    assert.match(
      byFlag.err(),
      new RegExp(`port ${port} is already in use.*choose another with --listen`),
    );
    const byEnv = start([], { ...baseEnv(), HOST: '127.0.0.1', PORT: port });
    assert.equal(await byEnv.exited, 1);
    assert.match(byEnv.err(), /choose another with PORT or --listen/);
  } finally {
    assert.equal(await stop(first), 0);
  }
});

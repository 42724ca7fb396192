import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPeer, peerSkip, tempDir } from '@precinct/testing';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { connect as natsConnect } from '@nats-io/transport-node';

const bin = fileURLToPath(new URL('../bin/precinct.js', import.meta.url));

test(
  'precinct up prints the kubeconfig; kubectl create token and auth can-i work against it',
  { skip: peerSkip('kubectl', 'nats-server'), timeout: 300_000 },
  async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    // Every port flag `up --help` lists, set to 0 (any free port).
    const help = spawnSync(process.execPath, [bin, 'up', '--help'], { encoding: 'utf8' }).stdout;
    const ports = [...help.matchAll(/--([a-z-]+-port) PORT/g)].map((m) => m[1]!);
    assert.ok(ports.length >= 20, help);
    const child = spawn(
      process.execPath,
      [bin, 'up', '--data-dir', dir.path, ...ports.flatMap((p) => [`--${p}`, '0'])],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no "Precinct is up" in time:\n${out}\n${err}`)),
        150_000,
      );
      child.stdout.on('data', () => {
        if (out.includes('Ctrl-C')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}:\n${out}\n${err}`)));
    });
    // Service logs go to files, not into the banner.
    assert.doesNotMatch(out, /"level":/);
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [bin, ...args, '--data-dir', dir.path], {
        encoding: 'utf8',
        timeout: 60_000,
      });
    const status = cli('status', '--json');
    assert.equal(status.status, 0, status.stdout + status.stderr);
    const parts = JSON.parse(status.stdout) as Array<{
      name: string;
      url: string;
      healthy: boolean;
    }>;
    for (const name of [
      'kube-dev',
      'identity-server',
      'oidc-issuer',
      'workload-api',
      'audit-store',
    ]) {
      const p = parts.find((x) => x.name === name);
      assert.ok(p, `${name} in status: ${status.stdout}`);
      assert.equal(p.healthy, true, `${name} healthy`);
    }
    const url = (name: string) => parts.find((x) => x.name === name)!.url;
    // A second up on the same folder names the holder and changes nothing.
    const second = spawnSync(
      process.execPath,
      [bin, 'up', '--data-dir', dir.path, '--kube-port', '0'],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    assert.equal(second.status, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`in use by another precinct up \\(pid ${child.pid}`));
    assert.equal(cli('status', '--json').status, 0, 'the first up still runs');
    // Logs per service.
    const logs = cli('logs', 'kube-dev');
    assert.equal(logs.status, 0, logs.stderr);
    assert.match(logs.stdout, /kube-dev ready/);
    assert.equal(cli('logs', 'no-such-service').status, 2);
    const kubeconfig = /kubeconfig\s+(\S+)/.exec(out)?.[1];
    assert.ok(kubeconfig && existsSync(kubeconfig), out);
    assert.equal(statSync(kubeconfig).mode & 0o077, 0, 'kubeconfig is private (0600)');
    assert.match(url('kube-dev'), /^https:\/\/localhost:\d+$/);
    const kubectl = findPeer('kubectl')!;
    const run = (...args: string[]) =>
      execFileSync(kubectl, ['--kubeconfig', kubeconfig, ...args], {
        encoding: 'utf8',
        timeout: 30_000,
      });
    const token = run('create', 'token', 'default').trim();
    assert.equal(token.split('.').length, 3);
    // A fresh ServiceAccount has no grants: can-i says no (exit 1) ...
    assert.throws(() =>
      run('auth', 'can-i', 'get', 'pods', '--as=system:serviceaccount:default:default'),
    );
    // ... and yes for what every authenticated user may do.
    assert.equal(
      run(
        'auth',
        'can-i',
        'create',
        'selfsubjectaccessreviews.authorization.k8s.io',
        '--as=system:serviceaccount:default:default',
      ).trim(),
      'yes',
    );
    // The identity server attests the default ServiceAccount and issues its SVID over the
    // Workload API: the local platform end to end.
    assert.match(out, /trust domain precinct\.local/);
    const adminUrl = url('identity-server');
    const sat = run('create', 'token', 'default', '--audience', 'precinct').trim();
    const attest = await fetch(`${adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: sat }),
    });
    assert.equal(attest.status, 200);
    const { address } = (await attest.json()) as { address: string };
    const source = await X509Source.create({ address, timeoutMs: 20_000 });
    try {
      assert.equal(
        source.getX509Svid().id.toString(),
        'spiffe://precinct.local/ns/default/sa/default',
      );
    } finally {
      source.close();
    }
    // A token for another audience attests nothing.
    const wrong = await fetch(`${adminUrl}/v1/attest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    assert.equal(wrong.status, 401);
    assert.match(
      ((await wrong.json()) as { detail: string }).detail,
      /ServiceAccount token for the audience "precinct"/,
    );
    // The audit store: writers authenticated and authorized against kube-dev, attribution from
    // the verified token, not from what the body or headers claim.
    const auditUrl = url('audit-store');
    // The store takes tokens for its own audience only: a Kubernetes API token is refused.
    const storeToken = run(
      'create',
      'token',
      'default',
      '--audience',
      'data-storage-service',
    ).trim();
    const event = {
      event_type: 'order.approved',
      event_category: 'orders',
      event_action: 'approve',
      event_outcome: 'success',
      correlation_id: 'order-42',
      actor_type: 'user',
      actor_id: 'alice',
    };
    const post = (headers: Record<string, string>) =>
      fetch(`${auditUrl}/api/v1/audit/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(event),
      });
    assert.equal((await post({})).status, 401);
    run(
      'create',
      'clusterrolebinding',
      'default-admin',
      '--clusterrole=cluster-admin',
      '--serviceaccount=default:default',
    );
    assert.equal((await post({ authorization: `Bearer ${token}` })).status, 401);
    const created = await post({
      authorization: `Bearer ${storeToken}`,
      'x-remote-user': 'mallory',
    });
    assert.equal(created.status, 201);
    assert.equal(
      ((await created.json()) as { written_by: string }).written_by,
      'system:serviceaccount:default:default',
    );
    // An agent writing for a person: `precinct delegate` mints the token the store verifies.
    const delegation = execFileSync(
      process.execPath,
      [
        bin,
        'delegate',
        '--data-dir',
        dir.path,
        '--subject',
        'alice',
        '--actor',
        'system:serviceaccount:default:default',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    ).trim();
    const onBehalf = await post({
      authorization: `Bearer ${storeToken}`,
      'precinct-delegation': delegation,
    });
    assert.equal(onBehalf.status, 201);
    const q = await fetch(`${auditUrl}/api/v1/audit/events?correlation_id=order-42`, {
      headers: { authorization: `Bearer ${storeToken}` },
    });
    const obo = ((await q.json()) as { data: Array<{ on_behalf_of: string | null }> }).data.map(
      (e) => e.on_behalf_of,
    );
    assert.deepEqual(obo.sort(), ['alice', null].sort());
    // A token naming another agent is refused.
    const other = execFileSync(
      process.execPath,
      [bin, 'delegate', '--data-dir', dir.path, '--subject', 'alice', '--actor', 'spiffe://x/y'],
      { encoding: 'utf8', timeout: 30_000 },
    ).trim();
    assert.equal(
      (await post({ authorization: `Bearer ${storeToken}`, 'precinct-delegation': other })).status,
      401,
    );
    // Revocation is wired: a writer whose ServiceAccount is deleted is refused within seconds,
    // although its token was accepted (and cached) a moment before.
    run('create', 'serviceaccount', 'writer');
    run(
      'create',
      'clusterrolebinding',
      'writer-admin',
      '--clusterrole=cluster-admin',
      '--serviceaccount=default:writer',
    );
    const writerToken = run(
      'create',
      'token',
      'writer',
      '--audience',
      'data-storage-service',
    ).trim();
    assert.equal((await post({ authorization: `Bearer ${writerToken}` })).status, 201);
    run('delete', 'serviceaccount', 'writer');
    let refused = false;
    for (let i = 0; i < 100 && !refused; i++) {
      refused = (await post({ authorization: `Bearer ${writerToken}` })).status === 401;
      if (!refused) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(refused, "a deleted ServiceAccount's cached token is refused within 10 s");
    assert.equal(
      (await post({ authorization: `Bearer ${storeToken}` })).status,
      201,
      'others unaffected',
    );
    // NATS through the callout: a ServiceAccount token for audience `nats` connects and may use
    // its namespace's subjects; a token for another audience is refused.
    const natsToken = run('create', 'token', 'default', '--audience', 'nats').trim();
    const nc = await natsConnect({ servers: url('nats-server'), token: natsToken });
    const sub = nc.subscribe('default.hello', { max: 1 });
    nc.publish('default.hello', 'hi');
    for await (const m of sub) assert.equal(m.string(), 'hi');
    await nc.close();
    await assert.rejects(
      natsConnect({
        servers: url('nats-server'),
        token,
        reconnect: false,
        maxReconnectAttempts: 0,
      }),
    );
    // The delegated-access demo through the dashboard API: alice signs in, an agent reads for
    // her within person ∩ agent, and the decision lands in the audit store under its txn.
    const passwords = JSON.parse(readFileSync(join(dir.path, 'demo-users.json'), 'utf8')) as Record<
      string,
      string
    >;
    const dashboard = url('dashboard');
    const api = (path: string, body: unknown, cookie = '') =>
      fetch(`${dashboard}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: dashboard, cookie },
        body: JSON.stringify(body),
      });
    const login = await api('/api/auth/login', { username: 'alice', password: passwords.alice });
    assert.equal(login.status, 200);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const granted = (await (
      await api('/api/access-delegated', { agent_id: 'gpt4', document_id: 'DOC-002' }, cookie)
    ).json()) as { granted: boolean; reason: string; txn: string };
    assert.deepEqual([granted.granted, granted.reason], [true, 'delegation_permits']);
    const denied = (await (
      await api('/api/access-delegated', { agent_id: 'summarizer', document_id: 'DOC-001' }, cookie)
    ).json()) as { granted: boolean; reason: string };
    assert.deepEqual([denied.granted, denied.reason], [false, 'agent_lacks_capability']);
    assert.equal((await api('/api/access-direct', { document_id: 'DOC-002' })).status, 401);
    let row: { written_by: string; actor_id: string } | undefined;
    for (let i = 0; i < 50 && !row; i++) {
      const r = await fetch(`${auditUrl}/api/v1/audit/events?correlation_id=${granted.txn}`, {
        headers: { authorization: `Bearer ${storeToken}` },
      });
      row = ((await r.json()) as { data: Array<{ written_by: string; actor_id: string }> }).data[0];
      if (!row) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(row, 'the decision reached the audit store');
    assert.equal(row.written_by, 'spiffe://precinct.local/ns/precinct-demo/sa/document-service');
    assert.equal(row.actor_id, 'spiffe://precinct.local/agent/gpt4');
    // The dashboard's platform views are wired to the running parts.
    const view = async (path: string, as = cookie) => {
      const r = await fetch(`${dashboard}/api/platform/${path}`, { headers: { cookie: as } });
      assert.equal(r.status, 200, path);
      return JSON.stringify(await r.json());
    };
    assert.match(await view('workloads'), /precinct-demo\/sa\/token-service/);
    // The audit view is the auditors': bob (admin department), not alice.
    const auditEvents = `audit/events?correlation_id=${granted.txn}`;
    const asAlice = await fetch(`${dashboard}/api/platform/${auditEvents}`, {
      headers: { cookie },
    });
    assert.equal(asAlice.status, 403);
    const bob = await api('/api/auth/login', { username: 'bob', password: passwords.bob });
    const bobCookie = (bob.headers.get('set-cookie') ?? '').split(';')[0]!;
    assert.match(await view(auditEvents, bobCookie), /delegation_permits/);
    assert.match(await view('kube/serviceaccounts'), /"name":"writer"|"name":"default"/);
    assert.match(await view('consent'), /agent\/gpt4/);
    const watched = await natsConnect({
      servers: url('nats-server'),
      token: natsToken,
      name: 'seen',
    });
    const clients = await view('nats/clients');
    await watched.close();
    assert.match(clients, /"name":"seen"/);
    assert.match(clients, /"default\.>"/, 'the granted subjects of default/default');
    // `down` from another process stops it cleanly, with a shutdown line; the folder is free.
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const down = cli('down');
    assert.equal(down.status, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`stopped precinct up \\(pid ${child.pid}\\)`));
    assert.equal(await exited, 0);
    assert.match(out, /Precinct stopped \(SIGTERM\)/);
    const after = cli('status');
    assert.equal(after.status, 2);
    assert.match(after.stderr, /no precinct up is running/);
  },
);

test('precinct up on a taken port says which port and which flag changes it', async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const holder = createServer();
  t.after(() => holder.close());
  await new Promise<void>((r) => holder.listen({ host: '::', port: 0, ipv6Only: false }, r));
  const port = (holder.address() as { port: number }).port;
  const r = spawnSync(
    process.execPath,
    [bin, 'up', '--data-dir', dir.path, '--kube-port', String(port)],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `port ${port} is already in use by another process; choose another with --kube-port`,
    ),
  );
  // Nothing is left holding the folder: status says no up runs there.
  const status = spawnSync(process.execPath, [bin, 'status', '--data-dir', dir.path], {
    encoding: 'utf8',
  });
  assert.match(status.stderr, /no precinct up is running/);
});

test('precinct up rejects a port that is not a number, before starting anything', () => {
  const r = spawnSync(
    process.execPath,
    [bin, 'up', '--kube-port', 'abc', '--audit-port', '70000'],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  assert.equal(r.status, 2);
  assert.match(
    r.stderr,
    /--kube-port must be a port number from 0 to 65535 \(0 = any free port\), got "abc"/,
  );
  assert.match(r.stderr, /--audit-port must be a port number/);
  assert.doesNotMatch(r.stderr, /NaN/);
});

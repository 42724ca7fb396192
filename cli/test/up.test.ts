import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findPeer, peerSkip, tempDir } from '@precinct/testing';
import { X509Source } from '@precinct/spiffe';

const bin = fileURLToPath(new URL('../bin/precinct.js', import.meta.url));

test(
  'precinct up prints the kubeconfig; kubectl create token and auth can-i work against it',
  { skip: peerSkip('kubectl'), timeout: 120_000 },
  async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const child = spawn(
      process.execPath,
      [bin, 'up', '--data-dir', dir.path, '--kube-port', '0', '--audit-port', '0'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no "Precinct is up" in time:\n${out}\n${err}`)),
        60_000,
      );
      child.stdout.on('data', () => {
        if (out.includes('Ctrl-C')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}:\n${out}\n${err}`)));
    });
    const kubeconfig = /kubeconfig\s+(\S+)/.exec(out)?.[1];
    assert.ok(kubeconfig && existsSync(kubeconfig), out);
    assert.equal(statSync(kubeconfig).mode & 0o077, 0, 'kubeconfig is private (0600)');
    assert.match(out, /kube-dev\s+https:\/\/localhost:\d+/);
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
    assert.match(out, /identity-server\s+trust domain precinct\.local/);
    const adminUrl = /admin API\s+(\S+)/.exec(out)![1]!;
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
    // The audit store: writers authenticated and authorized against kube-dev, attribution from
    // the verified token, not from what the body or headers claim.
    const auditUrl = /audit-store\s+(http:\/\/\S+)/.exec(out)![1]!;
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
    const created = await post({ authorization: `Bearer ${token}`, 'x-remote-user': 'mallory' });
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
      authorization: `Bearer ${token}`,
      'precinct-delegation': delegation,
    });
    assert.equal(onBehalf.status, 201);
    const q = await fetch(`${auditUrl}/api/v1/audit/events?correlation_id=order-42`, {
      headers: { authorization: `Bearer ${token}` },
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
      (await post({ authorization: `Bearer ${token}`, 'precinct-delegation': other })).status,
      401,
    );
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  },
);

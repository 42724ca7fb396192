// `precinct identity-server --attestor kube` as a program: KUBECONFIG pointing at kube-dev, the
// ServiceAccount watch started by the command, a deletion ending the binding, and SIGTERM still
// ending the process (the watch does not hold it open).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { startKubeDev } from '@precinct/kube-dev';
import { WorkloadApiClient } from '@precinct/spiffe/workloadapi';
import { peerSkip, tempDir } from '@precinct/testing';
import { createLogger } from '@precinct/runtime';
import { eventually, kubeConfigOf, kubectl, tokenFor } from './support.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
// The command as users run it.
const bin = fileURLToPath(new URL('../../cli/bin/precinct.js', import.meta.url));

test(
  '`precinct identity-server --attestor kube` revokes on deletion and still stops on SIGTERM',
  { timeout: 120_000, skip: peerSkip('kubectl') },
  async (t) => {
    const kube = await startKubeDev({
      listen: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      logger: createLogger('kube-dev', 'silent'),
    });
    t.after(() => kube.close());
    const core = kubeConfigOf(kube).makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'team-a' } } });
    await core.createNamespacedServiceAccount({
      namespace: 'team-a',
      body: { metadata: { name: 'api' } },
    });
    const dir = tempDir('precinct-id-revoke-');
    t.after(dir.cleanup);
    const child = spawn(
      process.execPath,
      [
        bin,
        'identity-server',
        '--trust-domain',
        'example.org',
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
        '--max-binding-ttl',
        '10m',
      ],
      {
        cwd: root,
        env: { ...process.env, KUBECONFIG: kube.kubeconfigPath, LOG_LEVEL: 'warn', PORT: '' },
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
    const adminUrl = /admin API\s+(http\S+)/.exec(out)![1]!;
    const adminToken = readFileSync(`${dir.path}/admin.token`, 'utf8').trim();
    const created = await fetch(`${adminUrl}/v1/entries`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        spiffeId: 'spiffe://example.org/ns/team-a/sa/api',
        selectors: ['k8s:ns:team-a', 'k8s:sa:api'],
      }),
    });
    assert.equal(created.status, 201);
    const token = await tokenFor(core, 'team-a', 'api', ['precinct']);
    const attest = () =>
      fetch(`${adminUrl}/v1/attest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token }),
      });
    const res = await attest();
    assert.equal(res.status, 200);
    const body = (await res.json()) as { address: string; expiresAt: string };
    // The cap applies: 10 minutes, not the token's year.
    assert.ok(Date.parse(body.expiresAt) - Date.now() <= 10 * 60_000);
    const client = new WorkloadApiClient({ address: body.address });
    t.after(() => client.close());
    const jwt = () =>
      client.fetchJwtSvid({ audience: 'x' }).then(
        (s) => s.id.toString(),
        (e: { code?: string }) => e.code,
      );
    assert.equal(await jwt(), 'spiffe://example.org/ns/team-a/sa/api');

    await kubectl(kube, 'delete', 'serviceaccount', 'api', '-n', 'team-a');
    await eventually(
      async () => (await jwt()) === 'ERR_WORKLOADAPI_PERMISSION_DENIED',
      'the binding to end',
    );
    assert.equal((await attest()).status, 401);

    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, err);
  },
);

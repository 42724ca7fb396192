// `precinct audit-store` as a program, authenticating writers by TokenReview behind its 5-minute
// cache: once a writer's ServiceAccount is deleted with kubectl, its cached token is refused
// within a bounded poll (the ServiceAccount watch evicts it), while another writer keeps
// writing; SIGTERM still ends the process (the watch does not hold it open).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { startKubeDev } from '@precinct/kube-dev';
import { DEFAULT_TOKEN_AUDIENCE } from '@precinct/audit-store';
import { peerSkip, tempDir } from '@precinct/testing';
import { createLogger } from '@precinct/runtime';
import { grantAuditVerbs } from '../audit/support/rbac.js';
import { eventually, kubeConfigOf, kubectl, tokenFor } from './support.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const RBAC_NS = 'audit';
const APPS = 'apps';

test(
  'a deleted writer’s cached token stops writing to the audit store; another writer continues',
  { timeout: 120_000, skip: peerSkip('kubectl') },
  async (t) => {
    const kube = await startKubeDev({
      listen: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      logger: createLogger('kube-dev', 'silent'),
    });
    t.after(() => kube.close());
    const kc = kubeConfigOf(kube);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    for (const name of [RBAC_NS, APPS])
      await core.createNamespace({ body: { metadata: { name } } });
    for (const name of ['writer', 'other-writer']) {
      await core.createNamespacedServiceAccount({ namespace: APPS, body: { metadata: { name } } });
      await grantAuditVerbs(kc, RBAC_NS, name, ['get', 'create'], {
        kind: 'ServiceAccount',
        name,
        namespace: APPS,
      });
    }
    const dir = tempDir('precinct-revocation-audit-');
    t.after(dir.cleanup);
    const child = spawn(
      process.execPath,
      [
        '--import',
        './scripts/register-source.mjs',
        'cli/src/main.ts',
        'audit-store',
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        join(dir.path, 'db'),
        '--namespace',
        RBAC_NS,
      ],
      {
        cwd: root,
        env: {
          ...process.env,
          KUBECONFIG: kube.kubeconfigPath,
          LOG_LEVEL: 'warn',
          HOST: '',
          PORT: '',
          DATABASE_URL: '',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
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

    let n = 0;
    const write = (token: string) =>
      fetch(new URL('/api/v1/audit/events', url), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          event_type: 'workflow.started',
          event_category: 'workflow',
          event_action: 'start',
          event_outcome: 'success',
          correlation_id: `corr-revocation-${n++}`,
          actor_type: 'service',
          actor_id: 'revocation-test',
        }),
      }).then((r) => r.status);
    const writer = await tokenFor(core, APPS, 'writer', [DEFAULT_TOKEN_AUDIENCE]);
    const other = await tokenFor(core, APPS, 'other-writer', [DEFAULT_TOKEN_AUDIENCE]);
    assert.equal(await write(writer), 201);
    assert.equal(await write(other), 201);

    await kubectl(kube, 'delete', 'serviceaccount', 'writer', '-n', APPS);
    // The RoleBinding still names the ServiceAccount, so only authentication can refuse it.
    await eventually(async () => (await write(writer)) === 401, 'the deleted writer to be refused');
    assert.equal(await write(other), 201, 'the other writer is unaffected');

    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, err);
  },
);

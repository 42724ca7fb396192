// The audit store's authentication and RBAC against the real local Kubernetes auth API
// (kube-dev): TokenReview + SubjectAccessReview with Kubernaut's tiers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  loadKubeConfig,
} from '@precinct/kube';
import { grantAuditVerbs } from './support/rbac.js';
import { DEFAULT_TOKEN_AUDIENCE, startAuditStore, type AuditStore } from '@precinct/audit-store';

const NS = 'audit';
const APPS = 'apps';
let kd: KubeDev;
let kc: KubeConfig;
let core: CoreV1Api;
let store: AuditStore;

/** A token for the store's audience (`kubectl create token SA --audience ...`), or others. */
async function token(sa: string, audiences = [DEFAULT_TOKEN_AUDIENCE]): Promise<string> {
  const r = await core.createNamespacedServiceAccountToken({
    name: sa,
    namespace: APPS,
    body: { spec: { audiences, expirationSeconds: 3600 } },
  });
  return r.status!.token;
}

before(async () => {
  kd = await startKubeDev({ listen: { host: '127.0.0.1', port: 0 }, advertiseHost: '127.0.0.1' });
  kc = loadKubeConfig({ KUBECONFIG: kd.kubeconfigPath });
  core = kc.makeApiClient(CoreV1Api);
  for (const name of [NS, APPS]) await core.createNamespace({ body: { metadata: { name } } });
  for (const name of ['writer', 'reader', 'nobody'])
    await core.createNamespacedServiceAccount({ namespace: APPS, body: { metadata: { name } } });
  const role = (name: string, verbs: string[], sa: string) =>
    grantAuditVerbs(kc, NS, name, verbs, { kind: 'ServiceAccount', name: sa, namespace: APPS });
  await role('audit-writer', ['get', 'create'], 'writer');
  await role('audit-reader', ['get'], 'reader');
  store = await startAuditStore({
    host: '127.0.0.1',
    port: 0,
    auth: {
      verifier: cachingVerifier(
        createTokenReviewVerifier({ kubeConfig: kc, audiences: [DEFAULT_TOKEN_AUDIENCE] }),
      ),
      authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig: kc }),
    },
    authz: { namespace: NS },
    retentionIntervalMs: 0,
  });
});
after(async () => {
  await store?.close();
  await kd?.close();
});

const event = {
  event_type: 'workflow.started',
  event_category: 'workflow',
  event_action: 'start',
  event_outcome: 'success',
  correlation_id: 'corr-kube',
  actor_type: 'service',
  actor_id: 'system:serviceaccount:kube-system:admin',
};

function call(path: string, tok: string | undefined, json?: unknown, method = 'POST') {
  return fetch(new URL(path, store.url), {
    method: json === undefined ? 'GET' : method,
    headers: {
      ...(tok ? { authorization: `Bearer ${tok}` } : {}),
      ...(json !== undefined ? { 'content-type': 'application/json' } : {}),
      'x-remote-user': 'system:admin',
      'impersonate-user': 'system:admin',
    },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
}

describe('audit store with kube-dev', () => {
  test('RBAC tiers: writer writes, reader reads, others are refused', async () => {
    const [writer, reader, nobody] = await Promise.all(
      ['writer', 'reader', 'nobody'].map((sa) => token(sa)),
    );
    const cases: Array<[string, string | undefined, 'write' | 'read', number]> = [
      ['writer writes (control)', writer, 'write', 201],
      ['writer reads', writer, 'read', 200],
      ['reader reads', reader, 'read', 200],
      ['reader cannot write', reader, 'write', 403],
      ['no RBAC: no read', nobody, 'read', 403],
      ['no token', undefined, 'write', 401],
      ['garbage token', 'not.a.token', 'read', 401],
    ];
    for (const [name, tok, op, status] of cases) {
      const r =
        op === 'write'
          ? await call('/api/v1/audit/events', tok, event)
          : await call('/api/v1/audit/events?correlation_id=corr-kube', tok);
      assert.equal(r.status, status, name);
    }
    const q = await call('/api/v1/audit/events?correlation_id=corr-kube', reader);
    const { data } = (await q.json()) as { data: Array<Record<string, unknown>> };
    assert.equal(data.length, 1);
    // Attribution is the verified ServiceAccount, whatever the body and headers claimed.
    assert.equal(data[0]!.written_by, `system:serviceaccount:${APPS}:writer`);
    assert.equal(data[0]!.actor_id, event.actor_id);
  });

  test('a token for another audience is refused (401), whatever the verifier asked', async () => {
    // The API server's own audience (what `kubectl create token` mints by default): a
    // credential the writer must never hand the store, since it works against the API.
    const apiToken = await token('writer', []);
    const other = await token('writer', ['some-other-service']);
    const right = await token('writer');
    assert.equal((await call('/api/v1/audit/events', apiToken, event)).status, 401);
    assert.equal((await call('/api/v1/audit/events', other, event)).status, 401);
    assert.equal((await call('/api/v1/audit/events', right, event)).status, 201, 'control');
    // A store whose verifier forgot the audience (TokenReview then checks the API server's
    // own) still refuses that token: the store checks the verified audiences itself.
    const careless = await startAuditStore({
      host: '127.0.0.1',
      port: 0,
      auth: {
        verifier: createTokenReviewVerifier({ kubeConfig: kc }),
        authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig: kc }),
      },
      authz: { namespace: NS },
      retentionIntervalMs: 0,
    });
    try {
      const r = await fetch(new URL('/api/v1/audit/events', careless.url), {
        method: 'POST',
        headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(event),
      });
      assert.equal(r.status, 401);
      assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
      // ... and a store configured for another audience takes that audience's tokens.
      const other2 = await startAuditStore({
        host: '127.0.0.1',
        port: 0,
        auth: {
          verifier: createTokenReviewVerifier({
            kubeConfig: kc,
            audiences: ['some-other-service'],
          }),
          authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig: kc }),
        },
        tokenAudiences: ['some-other-service'],
        authz: { namespace: NS },
        retentionIntervalMs: 0,
      });
      try {
        const ok = await fetch(new URL('/api/v1/audit/events', other2.url), {
          method: 'POST',
          headers: { authorization: `Bearer ${other}`, 'content-type': 'application/json' },
          body: JSON.stringify(event),
        });
        assert.equal(ok.status, 201, 'control: the configured audience passes');
      } finally {
        await other2.close();
      }
    } finally {
      await careless.close();
    }
  });

  test('`precinct audit-store`: TokenReview for --token-audience (default data-storage-service)', async (t) => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const start = async (args: string[]) => {
      const child = spawn(
        process.execPath,
        ['--import', './scripts/register-source.mjs', 'cli/src/main.ts', 'audit-store', ...args],
        {
          cwd: root,
          env: {
            ...process.env,
            KUBECONFIG: kd.kubeconfigPath,
            LOG_LEVEL: 'warn',
            DATABASE_URL: '',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      t.after(() => child.kill('SIGKILL'));
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', () => {
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
      });
      return url;
    };
    const post = (url: string, tok: string) =>
      fetch(new URL('/api/v1/audit/events', url), {
        method: 'POST',
        headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...event, correlation_id: 'corr-cli' }),
      });
    const [byDefault, custom] = await Promise.all([
      start(['--listen', '127.0.0.1:0', '--namespace', NS]),
      start(['--listen', '127.0.0.1:0', '--namespace', NS, '--token-audience', 'audit-eu']),
    ]);
    const apiToken = await token('writer', []);
    assert.equal((await post(byDefault, apiToken)).status, 401, 'the API server audience');
    assert.equal((await post(byDefault, await token('writer'))).status, 201, 'control');
    assert.equal((await post(custom, await token('writer'))).status, 401, 'another audience');
    assert.equal((await post(custom, await token('writer', ['audit-eu']))).status, 201);
  });

  test('503 when the Kubernetes API is down', async () => {
    const fresh = await token('writer');
    await kd.close();
    const r = await call('/api/v1/audit/events', fresh, event);
    assert.equal(r.status, 503);
    assert.equal((await call('/healthz', undefined)).status, 200);
  });
});

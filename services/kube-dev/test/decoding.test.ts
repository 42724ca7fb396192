// Field validation (fieldValidation=Strict|Warn|Ignore, wrong types, nesting depth) and tokens
// bound to Pods and Secrets, as kube-apiserver handles them (test/kube-real diffs the two).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeDev } from '@precinct/kube-dev';
import { call, startTestKubeDev } from './helpers.js';
import { decode, jsonDepth } from '../src/schema.js';

const NS = 'decoding';
const G = 'rbac.authorization.k8s.io';
let kd: KubeDev;
const post = (path: string, body: unknown) =>
  call(kd, 'POST', path, { body: JSON.stringify(body) });

before(async () => {
  kd = await startTestKubeDev();
  assert.equal((await post('/api/v1/namespaces', { metadata: { name: NS } })).status, 201);
  assert.equal(
    (await post(`/api/v1/namespaces/${NS}/serviceaccounts`, { metadata: { name: 'app' } })).status,
    201,
  );
});
after(() => kd?.close());

describe('decoding', () => {
  test('unknown fields are named by path; wrong types are reported; the value is pruned', () => {
    const d = decode('Role', {
      metadata: { name: 'r', labelz: {} },
      rules: [{ verbs: ['get'], resourceName: ['x'] }, { verbs: 'get' }],
      extra: 1,
    });
    assert.deepEqual(d.unknown, ['extra', 'metadata.labelz', 'rules[0].resourceName']);
    assert.equal(d.typeErrors.length, 1);
    assert.match(d.typeErrors[0]!, /rules\[1\]\.verbs of type \[\]string/);
    assert.deepEqual((d.value.rules as unknown[])[0], { verbs: ['get'] });
    assert.deepEqual(decode('Role', { rules: null }).unknown, []);
  });

  test('nesting depth is counted without parsing, ignoring brackets in strings', () => {
    assert.equal(jsonDepth('{"a":[{"b":"[[[{{{"}]}'), 3);
    assert.equal(jsonDepth(`${'['.repeat(5000)}${']'.repeat(5000)}`), 5000);
  });

  const typo = (name: string) => ({
    metadata: { name },
    rules: [{ apiGroups: [''], resources: ['configmaps'], resourceName: ['only'], verbs: ['get'] }],
  });
  const roles = `/apis/${G}/v1/namespaces/${NS}/roles`;

  test('Strict refuses the resourceName typo; Warn and the default warn and drop it; Ignore drops it', async () => {
    const strict = await post(`${roles}?fieldValidation=Strict`, typo('strict'));
    assert.equal(strict.status, 400);
    assert.match(
      strict.text,
      /strict decoding error: unknown field \\"rules\[0\]\.resourceName\\"/,
    );
    assert.equal((await call(kd, 'GET', `${roles}/strict`)).status, 404);
    for (const [q, warns] of [
      ['?fieldValidation=Warn', true],
      ['', true],
      ['?fieldValidation=Ignore', false],
    ] as const) {
      const name = `fv${q.length}`;
      const r = await post(`${roles}${q}`, typo(name));
      assert.equal(r.status, 201, r.text);
      assert.equal(r.headers.warning !== undefined, warns, q);
      if (warns)
        assert.match(
          String(r.headers.warning),
          /^299 - "unknown field \\"rules\[0\]\.resourceName\\""$/,
        );
      const stored = (await call(kd, 'GET', `${roles}/${name}`)).json() as {
        rules: Array<Record<string, unknown>>;
      };
      assert.deepEqual(Object.keys(stored.rules[0]!).sort(), ['apiGroups', 'resources', 'verbs']);
    }
    const bogus = await post(`${roles}?fieldValidation=Bogus`, typo('bogus'));
    assert.equal(bogus.status, 422);
    // Positive control: the same Role without the typo passes Strict.
    const ok = typo('ok');
    delete (ok.rules[0] as Record<string, unknown>).resourceName;
    assert.equal((await post(`${roles}?fieldValidation=Strict`, ok)).status, 201);
  });

  test('a wrong type is a 400 whatever fieldValidation says; a Strict patch with an unknown field is a 422', async () => {
    const wrong = await post(`${roles}?fieldValidation=Ignore`, {
      metadata: { name: 'w' },
      rules: [{ verbs: 'get', apiGroups: [''], resources: ['pods'] }],
    });
    assert.equal(wrong.status, 400);
    assert.match(wrong.text, /cannot unmarshal string/);
    const sa = `/api/v1/namespaces/${NS}/serviceaccounts/app`;
    const patch = (body: unknown, q = '?fieldValidation=Strict') =>
      call(kd, 'PATCH', `${sa}${q}`, {
        body: JSON.stringify(body),
        contentType: 'application/merge-patch+json',
      });
    assert.equal((await patch({ bogus: 1 })).status, 422);
    assert.equal((await patch({ metadata: { labels: { a: 'b' } } })).status, 200);
  });

  test('10k levels of nesting in a create or a patch is a 400 and changes nothing', async () => {
    const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    const c = await call(kd, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      body: `{"metadata":{"name":"deep"},"x":${deep(10_001)}}`,
    });
    assert.equal(c.status, 400);
    const p = await call(kd, 'PATCH', `/api/v1/namespaces/${NS}/serviceaccounts/app`, {
      body: `{"x":${deep(10_001)}}`,
      contentType: 'application/merge-patch+json',
    });
    assert.equal(p.status, 400);
    // Just under the bound, the unknown field is dropped (Warn) without a stack overflow.
    const under = await call(kd, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      body: `{"metadata":{"name":"deep"},"x":${deep(9_990)}}`,
    });
    assert.equal(under.status, 201, under.text.slice(0, 200));
    const underPatch = await call(kd, 'PATCH', `/api/v1/namespaces/${NS}/serviceaccounts/deep`, {
      body: `{"x":${deep(9_990)}}`,
      contentType: 'application/merge-patch+json',
    });
    assert.ok(
      underPatch.status === 200 || underPatch.status === 400,
      `${underPatch.status} ${underPatch.text.slice(0, 200)}`,
    );
    assert.equal((await call(kd, 'GET', '/healthz')).status, 200);
  });
});

describe('tokens bound to Pods and Secrets', () => {
  const tokens = `/api/v1/namespaces/${NS}/serviceaccounts/app/token`;
  const review = async (token: string) => {
    const r = await post('/apis/authentication.k8s.io/v1/tokenreviews', {
      spec: { token, audiences: ['p'] },
    });
    return (
      r.json() as {
        status: { authenticated?: boolean; user?: { extra?: Record<string, string[]> } };
      }
    ).status;
  };
  const bind = (kind: string, name: string, uid?: string) =>
    post(tokens, {
      spec: {
        audiences: ['p'],
        boundObjectRef: { kind, apiVersion: 'v1', name, ...(uid ? { uid } : {}) },
      },
    });

  test('binding needs the object to exist with that uid (and a pod to run as the ServiceAccount)', async () => {
    assert.equal((await bind('Pod', 'ghost')).status, 404);
    assert.equal((await bind('Secret', 'ghost')).status, 404);
    assert.equal((await bind('Node', 'ghost')).status, 404);
    assert.equal((await bind('ConfigMap', 'ghost')).status, 400);
    const noSa = await post(`/api/v1/namespaces/${NS}/pods`, {
      metadata: { name: 'orphan' },
      spec: { serviceAccountName: 'nobody', containers: [{ name: 'c', image: 'i' }] },
    });
    assert.equal(noSa.status, 403);
    const other = await post(`/api/v1/namespaces/${NS}/pods`, {
      metadata: { name: 'as-default' },
      spec: { containers: [{ name: 'c', image: 'i' }] },
    });
    assert.equal(other.status, 201, other.text);
    assert.equal((await bind('Pod', 'as-default')).status, 400);
    const pod = await post(`/api/v1/namespaces/${NS}/pods`, {
      metadata: { name: 'runner' },
      spec: { serviceAccountName: 'app', containers: [{ name: 'c', image: 'i' }] },
    });
    assert.equal(pod.status, 201);
    const uid = (pod.json() as { metadata: { uid: string } }).metadata.uid;
    assert.equal((await bind('Pod', 'runner', 'not-the-uid')).status, 409);
    assert.equal((await bind('Pod', 'runner', uid)).status, 201);
  });

  for (const kind of ['Pod', 'Secret'] as const) {
    test(`a token bound to a ${kind} ends when the ${kind} is deleted, and does not come back with a new one`, async () => {
      const path = `/api/v1/namespaces/${NS}/${kind === 'Pod' ? 'pods' : 'secrets'}`;
      const body =
        kind === 'Pod'
          ? {
              metadata: { name: 'held' },
              spec: { serviceAccountName: 'app', containers: [{ name: 'c', image: 'i' }] },
            }
          : { metadata: { name: 'held' }, stringData: { k: 'v' } };
      assert.equal((await post(path, body)).status, 201);
      const r = await bind(kind, 'held');
      assert.equal(r.status, 201);
      const token = (r.json() as { status: { token: string } }).status.token;
      const live = await review(token);
      assert.equal(live.authenticated, true);
      if (kind === 'Pod')
        assert.deepEqual(live.user?.extra?.['authentication.kubernetes.io/pod-name'], ['held']);
      assert.equal((await call(kd, 'DELETE', `${path}/held`)).status, 200);
      assert.notEqual((await review(token)).authenticated, true);
      assert.equal((await post(path, body)).status, 201);
      assert.notEqual((await review(token)).authenticated, true);
    });
  }

  test('a Secret stores stringData as base64 data and refuses data that is not base64', async () => {
    const path = `/api/v1/namespaces/${NS}/secrets`;
    const r = await post(path, {
      metadata: { name: 's' },
      stringData: { a: 'hello' },
      data: { b: 'eA==' },
    });
    assert.equal(r.status, 201);
    const s = r.json() as { data: Record<string, string>; type: string; stringData?: unknown };
    assert.deepEqual(s.data, { a: 'aGVsbG8=', b: 'eA==' });
    assert.equal(s.type, 'Opaque');
    assert.equal(s.stringData, undefined);
    assert.equal(
      (await post(path, { metadata: { name: 't' }, data: { b: 'not base64!' } })).status,
      400,
    );
  });
});

describe('duplicate fields', () => {
  test('are found by path, strings and nesting included', async () => {
    const { duplicateFields } = await import('../src/schema.js');
    assert.deepEqual(duplicateFields('{"a":1,"a":2}'), ['a']);
    assert.deepEqual(
      duplicateFields(
        '{"metadata":{"name":"x","name":"y"},"rules":[{"verbs":[],"v":"\\"verbs\\":","verbs":[]}]}',
      ),
      ['metadata.name', 'rules[0].verbs'],
    );
    assert.deepEqual(duplicateFields('{"a":{"b":1},"c":{"b":1},"l":[{"x":1},{"x":2}]}'), []);
  });

  test('Strict refuses a duplicate key, Warn warns and keeps the last', async () => {
    const body = '{"metadata":{"name":"dup1","name":"dup2"}}';
    const path = `/api/v1/namespaces/${NS}/serviceaccounts`;
    const strict = await call(kd, 'POST', `${path}?fieldValidation=Strict`, { body });
    assert.equal(strict.status, 400);
    assert.match(strict.text, /duplicate field \\"metadata\.name\\"/);
    const warn = await call(kd, 'POST', path, { body });
    assert.equal(warn.status, 201);
    assert.match(String(warn.headers.warning), /duplicate field/);
    assert.equal((warn.json() as { metadata: { name: string } }).metadata.name, 'dup2');
  });
});

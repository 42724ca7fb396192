import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '@precinct/testing';
import { call, startTestKubeDev } from './helpers.js';

test('--data-dir keeps objects, keys, CA and admin token: a token issued before a restart still verifies', async (t) => {
  const tmp = tempDir('precinct-kube-dev-state-');
  const closers: Array<() => Promise<void>> = [];
  // Servers close before their data directory goes.
  t.after(async () => {
    for (const c of closers) await c();
    tmp.cleanup();
  });
  const first = await startTestKubeDev({ dataDir: tmp.path });
  let token: string;
  let uid: string;
  try {
    const created = await call(first, 'POST', '/api/v1/namespaces/default/serviceaccounts', {
      body: '{"metadata":{"name":"keeper"}}',
    });
    assert.equal(created.status, 201);
    uid = (created.json().metadata as { uid: string }).uid;
    const tr = await call(
      first,
      'POST',
      '/api/v1/namespaces/default/serviceaccounts/keeper/token',
      { body: '{"spec":{"audiences":["precinct"]}}' },
    );
    token = (tr.json().status as { token: string }).token;
  } finally {
    await first.close();
  }

  const second = await startTestKubeDev({ dataDir: tmp.path });
  closers.push(() => second.close());
  assert.equal(second.adminToken, first.adminToken);
  assert.equal(second.caPem, first.caPem);
  const sa = await call(second, 'GET', '/api/v1/namespaces/default/serviceaccounts/keeper');
  assert.equal(sa.status, 200);
  assert.equal((sa.json().metadata as { uid: string }).uid, uid);
  const review = async (tok: string) =>
    (
      await call(second, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        body: JSON.stringify({ spec: { token: tok, audiences: ['precinct'] } }),
      })
    ).json().status as { authenticated?: boolean; user?: { username: string } };
  const r = await review(token);
  assert.equal(r.authenticated, true);
  assert.equal(r.user?.username, 'system:serviceaccount:default:keeper');
  // Negative control: a token from another kube-dev (another key) does not verify here.
  const other = await startTestKubeDev();
  closers.push(() => other.close());
  const otherTr = await call(
    other,
    'POST',
    '/api/v1/namespaces/default/serviceaccounts/default/token',
    { body: '{"spec":{"audiences":["precinct"]}}' },
  );
  assert.notEqual(
    (await review((otherTr.json().status as { token: string }).token)).authenticated,
    true,
  );
});

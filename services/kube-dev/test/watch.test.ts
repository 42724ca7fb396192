import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { Writable } from 'node:stream';
import { createLogger } from '@precinct/runtime';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import { call, eventually } from './helpers.js';

let kd: KubeDev;
let logText = '';
before(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logText += chunk.toString();
      cb();
    },
  });
  kd = await startKubeDev({
    listen: { host: '127.0.0.1', port: 0 },
    advertiseHost: '127.0.0.1',
    logger: createLogger('kube-dev', 'debug', sink),
  });
});
after(() => kd.close());

interface WatchEvent {
  type: string;
  object: {
    kind: string;
    metadata: {
      name?: string;
      namespace?: string;
      resourceVersion: string;
      annotations?: Record<string, string>;
    };
  };
}

/** Opens a raw watch and collects its events until closed. */
function openWatch(path: string) {
  const events: WatchEvent[] = [];
  let buf = '';
  let status = 0;
  const req = request(
    new URL(path, kd.url),
    { ca: kd.caPem, headers: { authorization: `Bearer ${kd.adminToken}` }, agent: false },
    (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (c: Buffer) => {
        buf += c.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, i)) as WatchEvent);
          buf = buf.slice(i + 1);
        }
      });
      res.on('error', () => {});
    },
  );
  req.on('error', () => {});
  req.end();
  return { events, status: () => status, close: () => req.destroy() };
}

test('cluster-wide watch from a list resourceVersion sees ADDED, MODIFIED, DELETED in any namespace', async () => {
  const list = (await call(kd, 'GET', '/api/v1/serviceaccounts')).json() as {
    kind: string;
    metadata: { resourceVersion: string };
    items: unknown[];
  };
  assert.equal(list.kind, 'ServiceAccountList');
  assert.equal(list.items.length, 3); // default in default, kube-system, kube-public
  const w = openWatch(
    `/api/v1/serviceaccounts?watch=1&resourceVersion=${list.metadata.resourceVersion}`,
  );
  try {
    await eventually(() => w.status() === 200, 'watch response');
    assert.equal(
      (await call(kd, 'POST', '/api/v1/namespaces', { body: '{"metadata":{"name":"elsewhere"}}' }))
        .status,
      201,
    );
    await call(kd, 'PATCH', '/api/v1/namespaces/kube-system/serviceaccounts/default', {
      body: '{"metadata":{"annotations":{"seen":"yes"}}}',
      contentType: 'application/merge-patch+json',
    });
    await call(kd, 'DELETE', '/api/v1/namespaces/elsewhere');
    await eventually(() => w.events.length >= 3, 'three events');
    const summary = w.events.map(
      (e) => `${e.type} ${e.object.metadata.namespace}/${e.object.metadata.name}`,
    );
    assert.deepEqual(summary, [
      'ADDED elsewhere/default',
      'MODIFIED kube-system/default',
      'DELETED elsewhere/default',
    ]);
    assert.equal(w.events[0]!.object.kind, 'ServiceAccount');
    const rvs = w.events.map((e) => Number(e.object.metadata.resourceVersion));
    assert.deepEqual(
      [...rvs].sort((a, b) => a - b),
      rvs,
    );
    assert.ok(rvs[0]! > Number(list.metadata.resourceVersion));
  } finally {
    w.close();
  }
});

test('sendInitialEvents streams the current state then an initial-events-end bookmark; fieldSelector filters', async () => {
  const w = openWatch(
    '/api/v1/namespaces/default/serviceaccounts?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&fieldSelector=metadata.name%3Ddefault',
  );
  try {
    await eventually(() => w.events.length >= 2, 'initial events');
    assert.equal(w.events[0]!.type, 'ADDED');
    assert.equal(w.events[0]!.object.metadata.name, 'default');
    assert.equal(w.events[1]!.type, 'BOOKMARK');
    assert.equal(w.events[1]!.object.metadata.annotations?.['k8s.io/initial-events-end'], 'true');
    await call(kd, 'POST', '/api/v1/namespaces/default/serviceaccounts', {
      body: '{"metadata":{"name":"filtered-out"}}',
    });
    await call(kd, 'PATCH', '/api/v1/namespaces/default/serviceaccounts/default', {
      body: '{"metadata":{"labels":{"x":"y"}}}',
      contentType: 'application/strategic-merge-patch+json',
    });
    await eventually(() => w.events.length >= 3, 'the MODIFIED event');
    assert.equal(w.events[2]!.type, 'MODIFIED');
    assert.ok(w.events.every((e) => e.object.metadata.name !== 'filtered-out'));
  } finally {
    w.close();
  }
});

test('a watch with timeoutSeconds ends by itself and the server keeps serving', async () => {
  const rv = (
    (await call(kd, 'GET', '/api/v1/namespaces')).json().metadata as { resourceVersion: string }
  ).resourceVersion;
  const r = await call(
    kd,
    'GET',
    `/api/v1/namespaces?watch=1&resourceVersion=${rv}&timeoutSeconds=1`,
  );
  assert.equal(r.status, 200);
  assert.equal(r.text, '');
  assert.equal((await call(kd, 'GET', '/api/v1/namespaces/default')).status, 200);
});

test('no token or key reaches the log, even at debug level', async () => {
  const tr = await call(kd, 'POST', '/api/v1/namespaces/default/serviceaccounts/default/token', {
    body: '{"spec":{}}',
  });
  const token = (tr.json().status as { token: string }).token;
  await call(kd, 'GET', '/api/v1/namespaces/default/serviceaccounts', { token });
  await call(kd, 'GET', '/api/v1/namespaces/default/serviceaccounts', { token: `${token}x` });
  await call(kd, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
    body: JSON.stringify({ spec: { token } }),
  });
  assert.match(logText, /token rejected/); // positive control: the failure was logged
  assert.ok(!logText.includes(token.split('.')[2]!), 'token signature in log');
  assert.ok(!logText.includes(kd.adminToken), 'admin token in log');
});

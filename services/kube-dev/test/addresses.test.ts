import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchesIpv6San } from './helpers.js';
import type { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { startKubeDev } from '@precinct/kube-dev';
import { parseListen } from '../src/commands.js';

test('parseListen accepts host:port, [v6]:port and :port; rejects the rest', () => {
  assert.deepEqual(parseListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListen('[::1]:6443'), { host: '::1', port: 6443 });
  assert.deepEqual(parseListen(':8443'), { host: '::', port: 8443 });
  for (const bad of ['', 'localhost', '::1:80', '[::1]', 'host:99999', 'host:-1', 'a:b']) {
    assert.throws(() => parseListen(bad), { name: 'UsageError' }, bad);
  }
});

test(
  'an IPv6 advertise host is bracketed in the kubeconfig and issuer, and clients use it',
  {
    skip: matchesIpv6San()
      ? false
      : 'this Node cannot match IPv6 SANs (nodejs/node#64144); Node 20 and fixed releases run it',
  },
  async (t) => {
    const kd = await startKubeDev({ listen: { host: '::1', port: 0 }, advertiseHost: '::1' });
    t.after(() => kd.close());
    assert.equal(kd.url, `https://[::1]:${kd.port}`);
    assert.equal(kd.issuer, kd.url);
    assert.match(
      readFileSync(kd.kubeconfigPath, 'utf8'),
      new RegExp(`server: "https://\\[::1\\]:${kd.port}"`),
    );
    const kc = new KubeConfig();
    kc.loadFromFile(kd.kubeconfigPath);
    const sa = await kc
      .makeApiClient(CoreV1Api)
      .readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
    assert.equal(sa.metadata?.name, 'default');
  },
);

test('a custom advertise host is in the serving certificate and the issuer', async (t) => {
  const kd = await startKubeDev({
    listen: { host: '127.0.0.1', port: 0 },
    advertiseHost: 'host.containers.internal',
  });
  t.after(() => kd.close());
  assert.equal(kd.issuer, `https://host.containers.internal:${kd.port}`);
  // Dial by IP but verify as that name (SNI + hostname check against the CA's leaf).
  const cert = await new Promise<X509Certificate>((resolve, reject) => {
    const s = connect(
      { host: '127.0.0.1', port: kd.port, ca: kd.caPem, servername: 'host.containers.internal' },
      () => {
        const peer = s.getPeerX509Certificate();
        s.end();
        if (peer) resolve(peer);
        else reject(new Error('no peer certificate'));
      },
    );
    s.on('error', reject);
  });
  assert.match(cert.subjectAltName ?? '', /DNS:host\.containers\.internal/);
  assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  assert.match(cert.subjectAltName ?? '', /IP Address:0:0:0:0:0:0:0:1/);
});

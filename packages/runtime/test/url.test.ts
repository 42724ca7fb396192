import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { advertisedHost, advertisedUrl, isWildcardHost, listen } from '@precinct/runtime';

test('isWildcardHost: every spelling of "all interfaces", nothing else', () => {
  for (const h of [
    '::',
    '[::]',
    '0.0.0.0',
    '::0',
    '0:0:0:0:0:0:0:0',
    '',
    ' :: ',
    '::ffff:0.0.0.0',
  ]) {
    assert.equal(isWildcardHost(h), true, h);
  }
  for (const h of ['::1', '127.0.0.1', 'localhost', '10.0.0.0', '0.0.0.1', '::10', 'fe80::']) {
    assert.equal(isWildcardHost(h), false, h);
  }
});

test('advertisedUrl: explicit advertise host wins, wildcard -> localhost, else the bind host', () => {
  const table: [bindHost: string, advertise: string | undefined, want: string][] = [
    // explicit advertise host wins over any bind address
    ['::', 'id.example.internal', 'https://id.example.internal:8443'],
    ['0.0.0.0', '10.1.2.3', 'https://10.1.2.3:8443'],
    ['127.0.0.1', 'host.docker.internal', 'https://host.docker.internal:8443'],
    ['::', 'fd00::5', 'https://[fd00::5]:8443'],
    ['::', '[fd00::5]', 'https://[fd00::5]:8443'],
    ['::', 'my_container', 'https://my_container:8443'],
    // wildcard binds advertise loopback by name
    ['::', undefined, 'https://localhost:8443'],
    ['[::]', undefined, 'https://localhost:8443'],
    ['0.0.0.0', undefined, 'https://localhost:8443'],
    ['', undefined, 'https://localhost:8443'],
    // a specific bind is the only address that answers
    ['127.0.0.1', undefined, 'https://127.0.0.1:8443'],
    ['::1', undefined, 'https://[::1]:8443'],
    ['[::1]', undefined, 'https://[::1]:8443'],
    ['10.0.0.7', undefined, 'https://10.0.0.7:8443'],
    ['localhost', undefined, 'https://localhost:8443'],
  ];
  for (const [bindHost, advertiseHost, want] of table) {
    const got = advertisedUrl({ scheme: 'https', bindHost, port: 8443, advertiseHost });
    assert.equal(got, want, `${bindHost} / ${advertiseHost}`);
    // Every answer is a URL a client can parse back to the same host and port.
    const u = new URL(got);
    assert.equal(u.port, '8443');
    assert.equal(u.pathname, '/');
  }
  assert.equal(advertisedUrl({ scheme: 'http', bindHost: '::', port: 80 }), 'http://localhost:80');
});

test('advertisedUrl: malformed hosts, ports and schemes are refused, not encoded', () => {
  for (const advertiseHost of [
    '',
    ' ',
    '[]',
    'a b',
    'evil.com/x',
    'user@evil.com',
    'h:80',
    'fe80::1%eth0',
    'a?b',
    '-x',
  ]) {
    assert.throws(
      () => advertisedUrl({ scheme: 'https', bindHost: '::', port: 1, advertiseHost }),
      (e: Error) => e instanceof TypeError && /advertise host/.test(e.message),
      JSON.stringify(advertiseHost),
    );
  }
  for (const port of [0, -1, 65536, 1.5, Number.NaN]) {
    assert.throws(
      () => advertisedUrl({ scheme: 'https', bindHost: '::', port }),
      (e: Error) => e instanceof TypeError && /port/.test(e.message),
      String(port),
    );
  }
  assert.throws(
    () => advertisedUrl({ scheme: 'ftp' as 'http', bindHost: '::', port: 21 }),
    /scheme must be http or https/,
  );
  // Positive control for the same shapes: a valid host and port pass.
  assert.equal(
    advertisedUrl({ scheme: 'https', bindHost: '::', port: 65535, advertiseHost: 'a-b.c' }),
    'https://a-b.c:65535',
  );
});

test('advertisedHost: unbracketed, for certificate SANs', () => {
  assert.equal(advertisedHost('::', '[::1]'), '::1');
  assert.equal(advertisedHost('::'), 'localhost');
  assert.equal(advertisedHost('::1'), '::1');
});

test('advertisedUrl of a wildcard listener is dialable', async (t) => {
  const server = createServer((_req, res) => res.end('ok'));
  const port = await listen(server, { host: '::', port: 0 });
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const url = advertisedUrl({ scheme: 'http', bindHost: '::', port });
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  assert.equal(await res.text(), 'ok');
});

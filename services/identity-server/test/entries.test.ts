import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '@precinct/testing';
import { normalizeEntryFlags, runEntryCli } from '../src/commands/entry.js';
import { parseDuration } from '../src/commands/values.js';
import { validateEntryInput, type Entry } from '../src/entries.js';
import { IdentityServerError } from '../src/errors.js';
import { startIdentityServer, type IdentityServer } from '../src/server.js';
import { quietLogger } from './support.js';

const TD = 'example.org';
const good = {
  spiffeId: 'spiffe://example.org/ns/a/sa/api',
  selectors: ['k8s:ns:a', 'k8s:sa:api'],
};

describe('entry validation', () => {
  test('a good entry passes, with selectors as strings or objects', () => {
    const v = validateEntryInput(
      {
        ...good,
        selectors: ['k8s:ns:a', { type: 'k8s', value: 'sa:api' }],
        dnsNames: ['API.example.org'],
        x509SvidTtl: 60,
      },
      TD,
    );
    assert.deepEqual(v.selectors, [
      { type: 'k8s', value: 'ns:a' },
      { type: 'k8s', value: 'sa:api' },
    ]);
    assert.deepEqual(v.dnsNames, ['api.example.org']);
  });

  const bad: [string, unknown, string][] = [
    ['not an object', 'x', 'ERR_ENTRY_INVALID'],
    ['no spiffeId', { selectors: good.selectors }, 'ERR_ENTRY_INVALID'],
    ['http scheme', { ...good, spiffeId: 'http://example.org/a' }, 'ERR_ENTRY_INVALID'],
    [
      'uppercase trust domain',
      { ...good, spiffeId: 'spiffe://Example.org/a' },
      'ERR_ENTRY_INVALID',
    ],
    ['dot segment', { ...good, spiffeId: 'spiffe://example.org/a/../b' }, 'ERR_ENTRY_INVALID'],
    ['trailing slash', { ...good, spiffeId: 'spiffe://example.org/a/' }, 'ERR_ENTRY_INVALID'],
    ['trust domain ID', { ...good, spiffeId: 'spiffe://example.org' }, 'ERR_ENTRY_INVALID'],
    [
      'other trust domain',
      { ...good, spiffeId: 'spiffe://other.org/a' },
      'ERR_TRUST_DOMAIN_MISMATCH',
    ],
    ['no selectors', { ...good, selectors: [] }, 'ERR_ENTRY_INVALID'],
    ['selector without value', { ...good, selectors: ['k8s'] }, 'ERR_ENTRY_INVALID'],
    ['selector type uppercase', { ...good, selectors: ['K8S:ns:a'] }, 'ERR_ENTRY_INVALID'],
    ['selector with control char', { ...good, selectors: ['k8s:ns:\n'] }, 'ERR_ENTRY_INVALID'],
    [
      'too many selectors',
      { ...good, selectors: Array.from({ length: 33 }, (_, i) => `k8s:ns:${i}`) },
      'ERR_ENTRY_INVALID',
    ],
    ['ttl zero', { ...good, x509SvidTtl: 0 }, 'ERR_ENTRY_INVALID'],
    ['ttl fraction', { ...good, jwtSvidTtl: 1.5 }, 'ERR_ENTRY_INVALID'],
    ['ttl string', { ...good, x509SvidTtl: '60' }, 'ERR_ENTRY_INVALID'],
    ['bad dns', { ...good, dnsNames: ['-bad-.example'] }, 'ERR_ENTRY_INVALID'],
    ['hint too long', { ...good, hint: 'x'.repeat(129) }, 'ERR_ENTRY_INVALID'],
    ['federate with self', { ...good, federatesWith: ['example.org'] }, 'ERR_ENTRY_INVALID'],
    ['federate bad td', { ...good, federatesWith: ['Bad TD'] }, 'ERR_ENTRY_INVALID'],
    ['admin not boolean', { ...good, admin: 'yes' }, 'ERR_ENTRY_INVALID'],
    ['unknown field', { ...good, parentId: 'spiffe://example.org/agent' }, 'ERR_ENTRY_INVALID'],
  ];
  for (const [name, input, code] of bad) {
    test(`refuses: ${name}`, () => {
      assert.throws(
        () => validateEntryInput(input, TD),
        (e: unknown) => e instanceof IdentityServerError && e.code === code,
      );
    });
  }
});

describe('CLI flags', () => {
  test('SPIRE-style and kebab-case names normalize to the same flags', () => {
    assert.deepEqual(
      normalizeEntryFlags([
        '-spiffeID',
        'x',
        '-x509SVIDTTL=60',
        '--jwtSVIDTTL',
        '5',
        '-federatesWith',
        'a',
        '-entryID',
        'i',
        '--dns',
        'd',
        'value-with-dash',
        '-selector',
        'k8s:ns:a',
      ]),
      [
        '--spiffe-id',
        'x',
        '--x509-svid-ttl=60',
        '--jwt-svid-ttl',
        '5',
        '--federates-with',
        'a',
        '--entry-id',
        'i',
        '--dns',
        'd',
        'value-with-dash',
        '--selector',
        'k8s:ns:a',
      ],
    );
  });
  test('durations', () => {
    assert.equal(parseDuration('90', 'x'), 90);
    assert.equal(parseDuration('5m', 'x'), 300);
    assert.equal(parseDuration('1h', 'x'), 3600);
    for (const bad of ['', '1.5h', '-1', '1w', 'h'])
      assert.throws(() => parseDuration(bad, 'x'), /must be seconds/);
  });
});

describe('admin API and `precinct entry`', () => {
  const dir = tempDir('precinct-id-entries-');
  let server: IdentityServer;
  before(async () => {
    server = await startIdentityServer({
      trustDomain: TD,
      dataDir: dir.path,
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      logger: quietLogger(),
    });
  });
  after(async () => {
    await server?.close();
    dir.cleanup();
  });

  const api = (path: string, init: RequestInit & { token?: string | null } = {}) =>
    fetch(`${server.adminUrl}${path}`, {
      ...init,
      headers: {
        ...(init.token === null
          ? {}
          : { authorization: `Bearer ${init.token ?? server.adminToken}` }),
        ...(init.body ? { 'content-type': 'application/json' } : {}),
      },
    });

  test('the admin token file is 0600 and the data dir 0700', () => {
    assert.equal(statSync(join(dir.path, 'admin.token')).mode & 0o777, 0o600);
    assert.equal(statSync(dir.path).mode & 0o777, 0o700);
  });

  test('authentication: missing or wrong bearer token is 401, the right one works', async () => {
    assert.equal((await api('/v1/entries', { token: null })).status, 401);
    assert.equal((await api('/v1/entries', { token: 'x'.repeat(43) })).status, 401);
    const wrong = await api('/v1/entries', { token: 'wrong' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.equal((await api('/v1/entries')).status, 200);
  });

  test('CRUD over HTTP; bad input is 400 and writes nothing', async () => {
    const created = await api('/v1/entries', { method: 'POST', body: JSON.stringify(good) });
    assert.equal(created.status, 201);
    const e = (await created.json()) as Entry;
    assert.equal(e.x509SvidTtl, 3600);
    assert.equal(e.jwtSvidTtl, 300);
    assert.equal(
      (await api('/v1/entries', { method: 'POST', body: JSON.stringify(good) })).status,
      409,
    );
    const before = server.entries.list().length;
    const bad = await api('/v1/entries', {
      method: 'POST',
      body: JSON.stringify({ ...good, spiffeId: 'spiffe://other.org/x' }),
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'ERR_TRUST_DOMAIN_MISMATCH');
    assert.equal((await api('/v1/entries', { method: 'POST', body: '{not json' })).status, 400);
    assert.equal(server.entries.list().length, before);
    const patched = await api(`/v1/entries/${e.id}`, {
      method: 'PATCH',
      body: JSON.stringify({ hint: 'blue', x509SvidTtl: 0 }),
    });
    assert.equal(patched.status, 400);
    assert.equal(server.entries.get(e.id).hint, '', 'a refused update changes nothing');
    const ok = await api(`/v1/entries/${e.id}`, {
      method: 'PATCH',
      body: JSON.stringify({ hint: 'blue' }),
    });
    assert.equal(((await ok.json()) as Entry).revision, 2);
    assert.equal((await api(`/v1/entries/${e.id}`, { method: 'DELETE' })).status, 200);
    assert.equal((await api(`/v1/entries/${e.id}`)).status, 404);
  });

  test('precinct entry create|show|list|update|delete with SPIRE flags', async () => {
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l) };
    const common = ['-dataDir', dir.path];
    await runEntryCli(
      [
        'create',
        '-spiffeID',
        'spiffe://example.org/cli',
        '-selector',
        'k8s:ns:cli',
        '-selector',
        'k8s:sa:tool',
        '-x509SVIDTTL',
        '120',
        '--jwt-svid-ttl',
        '1m',
        '-dns',
        'cli.example.org',
        '-hint',
        'tool',
        '-federatesWith',
        'peer.org',
        '-admin',
        '-output',
        'json',
        ...common,
      ],
      io,
    );
    const e = JSON.parse(lines.pop()!) as Entry;
    assert.equal(e.spiffeId, 'spiffe://example.org/cli');
    assert.deepEqual(e.selectors, [
      { type: 'k8s', value: 'ns:cli' },
      { type: 'k8s', value: 'sa:tool' },
    ]);
    assert.equal(e.x509SvidTtl, 120);
    assert.equal(e.jwtSvidTtl, 60);
    assert.deepEqual(e.dnsNames, ['cli.example.org']);
    assert.deepEqual(e.federatesWith, ['peer.org']);
    assert.equal(e.admin, true);
    await runEntryCli(['show', '-entryID', e.id, ...common], io);
    assert.match(lines.pop()!, /SPIFFE ID\s+: spiffe:\/\/example.org\/cli/);
    await runEntryCli(
      ['show', '-spiffeID', 'spiffe://example.org/cli', '-selector', 'k8s:ns:cli', ...common],
      io,
    );
    assert.match(lines.pop()!, /Found 1 entries/);
    await runEntryCli(['show', '-selector', 'k8s:ns:nowhere', ...common], io);
    assert.equal(lines.pop(), 'Found 0 entries');
    await runEntryCli(['update', '-entryID', e.id, '-hint', 'renamed', ...common], io);
    assert.match(lines.pop()!, /Hint\s+: renamed/);
    await runEntryCli(['list', ...common], io);
    assert.match(lines.pop()!, /Found \d+ entries/);
    await assert.rejects(
      runEntryCli(
        ['create', '-spiffeID', 'spiffe://other.org/x', '-selector', 'k8s:ns:a', ...common],
        io,
      ),
      /trust domain example.org \(HTTP 400\)/,
    );
    await assert.rejects(
      runEntryCli(['create', '-spiffeID', 'spiffe://example.org/x', ...common], io),
      /needs -spiffeID and at least one -selector/,
    );
    await assert.rejects(runEntryCli(['frobnicate', ...common], io), /unknown subcommand/);
    const wrongToken = join(dir.path, 'wrong.token');
    writeFileSync(wrongToken, 'nope', { mode: 0o600 });
    await assert.rejects(
      runEntryCli(['list', '-tokenFile', wrongToken, ...common], io),
      /HTTP 401/,
    );
    await runEntryCli(['delete', '-entryID', e.id, ...common], io);
    assert.match(lines.pop()!, /Deleted entry/);
    await assert.rejects(runEntryCli(['show', '-entryID', e.id, ...common], io), /HTTP 404/);
  });

  test('entries and keys survive a restart with the same data dir', async () => {
    const e = await server.entries.create({
      spiffeId: 'spiffe://example.org/persist',
      selectors: ['k8s:ns:p'],
    });
    const bundle = server.keys.x509BundleDer();
    const token = server.adminToken;
    await server.close();
    server = await startIdentityServer({
      trustDomain: TD,
      dataDir: dir.path,
      admin: { host: '127.0.0.1', port: 0 },
      oidc: { host: '127.0.0.1', port: 0 },
      health: { host: '127.0.0.1', port: 0 },
      advertiseHost: '127.0.0.1',
      logger: quietLogger(),
    });
    assert.deepEqual(server.entries.get(e.id), e);
    assert.deepEqual(server.keys.x509BundleDer(), bundle);
    assert.equal(server.adminToken, token);
  });
});

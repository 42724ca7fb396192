// What `precinct up` reads to run the records service: the environment (checked before anything
// starts, every problem at once) and DATABASE_URL split into what the secrets manager logs in
// with and what the leased credentials connect to (never the admin's user or password).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '@precinct/runtime';
import {
  egressGrantScope,
  engineConnectionUrl,
  leasedPoolTarget,
  parseEgressProviders,
  secretsManagerFromEnv,
} from '../../cli/src/secrets-platform.js';

const DB = 'postgres://admin:s3cr%40t@db.example:6543/app?sslmode=disable';

test('without VAULT_ADDR nothing is configured, whatever else is set', () => {
  assert.equal(secretsManagerFromEnv({ VAULT_TOKEN: 't' }, DB), undefined);
  assert.equal(secretsManagerFromEnv({ VAULT_ADDR: '  ' }, DB), undefined);
});

test('VAULT_ADDR with its token and a server PostgreSQL is a configuration', () => {
  assert.deepEqual(
    secretsManagerFromEnv(
      { VAULT_ADDR: 'http://127.0.0.1:8200', VAULT_TOKEN: 'tok', VAULT_NAMESPACE: 'team' },
      DB,
    ),
    { address: 'http://127.0.0.1:8200', adminToken: 'tok', databaseUrl: DB, namespace: 'team' },
  );
});

test('every problem is named at once, and no value is echoed', () => {
  const cases: Array<[NodeJS.ProcessEnv, string | undefined, RegExp[]]> = [
    [{ VAULT_ADDR: 'http://v:8200' }, undefined, [/VAULT_TOKEN is required/, /PGlite/]],
    [{ VAULT_ADDR: 'http://v:8200', VAULT_TOKEN: 't' }, undefined, [/DATABASE_URL is required/]],
    [{ VAULT_ADDR: 'http://v:8200' }, DB, [/VAULT_TOKEN is required/]],
    [{ VAULT_ADDR: 'ftp://v', VAULT_TOKEN: 't' }, DB, [/VAULT_ADDR must be an http\(s\) URL/]],
    [{ VAULT_ADDR: 'http://u:pw@v:8200', VAULT_TOKEN: 't' }, DB, [/must not carry credentials/]],
    [
      { VAULT_ADDR: 'http://v:8200', VAULT_TOKEN: 't' },
      'postgres://db.example/app',
      [/DATABASE_URL must name its user/],
    ],
  ];
  for (const [env, db, want] of cases) {
    const err = (() => {
      try {
        secretsManagerFromEnv(env, db);
      } catch (e) {
        return e;
      }
      return assert.fail(`accepted ${JSON.stringify(env)}`);
    })();
    assert.ok(err instanceof UsageError);
    for (const re of want) assert.match(err.message, re);
    assert.doesNotMatch(err.message, /pw|s3cr/);
  }
});

test('the engine gets a template, the leased pool only where to connect', () => {
  assert.equal(
    engineConnectionUrl(DB),
    'postgresql://{{username}}:{{password}}@db.example:6543/app?sslmode=disable',
  );
  assert.deepEqual(leasedPoolTarget(DB), { host: 'db.example', port: 6543, database: 'app' });
  assert.deepEqual(leasedPoolTarget('postgres://u:p@[::1]/x?sslmode=verify-full'), {
    host: '::1',
    port: 5432,
    database: 'x',
    ssl: { rejectUnauthorized: true },
  });
  assert.deepEqual(leasedPoolTarget('postgres://u:p@h/x?sslmode=require'), {
    host: 'h',
    port: 5432,
    database: 'x',
    ssl: { rejectUnauthorized: false },
  });
  // A unix socket directory, and the database defaulting to the user's name as libpq does.
  assert.deepEqual(leasedPoolTarget('postgres://u:p@localhost/?host=/run/postgresql'), {
    host: '/run/postgresql',
    port: 5432,
    database: 'u',
  });
  for (const url of [DB, 'postgres://u:p@[::1]/x']) {
    const t = JSON.stringify(leasedPoolTarget(url));
    assert.doesNotMatch(t, /admin|s3cr|"u"|"p"/, 'no admin user or password in the pool');
  }
});

test('--egress-provider NAME=URL: a table; every bad value named at once', () => {
  assert.deepEqual(
    parseEgressProviders(['github=https://api.github.com', 'local=http://127.0.0.1:9/v3']),
    { github: 'https://api.github.com/', local: 'http://127.0.0.1:9/v3' },
  );
  const err = (() => {
    try {
      parseEgressProviders([
        'github',
        '=https://x',
        'Up=https://x',
        '../x=https://x',
        'a=ftp://x',
        'b=https://user:pw@x',
        'c=https://x?token=1',
        'd=https://x',
        'd=https://y',
      ]);
    } catch (e) {
      return e;
    }
    return assert.fail('accepted');
  })();
  assert.ok(err instanceof UsageError);
  const lines = err.message.split('\n');
  assert.equal(lines.length, 8, err.message);
  assert.ok(!err.message.includes('pw@'), 'no credential echoed');
  assert.match(err.message, /--egress-provider d is given twice/);
});

test('egressGrantScope: store to a person directly, the call scope to an agent for them, the rest to the inner decision', async () => {
  const asked: string[][] = [];
  const grant = egressGrantScope(
    async (r) => {
      asked.push(r.requested);
      return r.requested.filter((s) => s.startsWith('documents:'));
    },
    { providers: ['github'], isPerson: (s) => s.startsWith('spiffe://td/user/') },
  );
  const alice = 'spiffe://td/user/alice';
  const agent = 'spiffe://td/agent/gpt4';
  const all = ['secrets:store:github', 'egress:github', 'documents:read:D1', 'egress:gitlab'];
  assert.deepEqual(await grant({ person: alice, agent: undefined, requested: all }), [
    'documents:read:D1',
    'secrets:store:github',
    'egress:github',
  ]);
  assert.deepEqual(await grant({ person: alice, agent, requested: all }), [
    'documents:read:D1',
    'egress:github',
  ]);
  // Not a person of the platform: nothing of ours (control: alice above).
  assert.deepEqual(
    await grant({ person: 'spiffe://td/ns/x/sa/y', agent: undefined, requested: all }),
    ['documents:read:D1'],
  );
  // Our scopes alone: the inner decision is not asked; others go to it without ours.
  asked.length = 0;
  assert.deepEqual(await grant({ person: alice, agent, requested: ['egress:github'] }), [
    'egress:github',
  ]);
  assert.deepEqual(asked, []);
  await grant({ person: alice, agent, requested: all });
  assert.deepEqual(asked, [['documents:read:D1', 'egress:gitlab']]);
  // An inner answer with refusals keeps them.
  const withRefusals = egressGrantScope(
    async () => ({ granted: [], refused: [{ scope: 'x', reason: 'no' }] }),
    { providers: ['github'], isPerson: () => true },
  );
  assert.deepEqual(
    await withRefusals({
      person: alice,
      agent: undefined,
      requested: ['x', 'secrets:store:github'],
    }),
    { granted: ['secrets:store:github'], refused: [{ scope: 'x', reason: 'no' }] },
  );
});

// What `precinct up` reads to run the records service: the environment (checked before anything
// starts, every problem at once) and DATABASE_URL split into what the secrets manager logs in
// with and what the leased credentials connect to (never the admin's user or password).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '@precinct/runtime';
import {
  engineConnectionUrl,
  leasedPoolTarget,
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

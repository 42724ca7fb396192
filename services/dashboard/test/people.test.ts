// Demo people: the passwords file (0600, kept across restarts), scrypt verification, the bound
// on concurrent hashing, and the ID tokens the dashboard mints for the token service.
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { tempDir } from '@precinct/testing';
import { DashboardIdp } from '../src/idp.js';
import { PasswordBook, loadOrCreateDemoPasswords } from '../src/people.js';

test('the passwords file is created 0600, kept, and completed', (t) => {
  const dir = tempDir('precinct-dashboard-people-');
  t.after(dir.cleanup);
  const file = join(dir.path, 'sub', 'demo-users.json');
  const first = loadOrCreateDemoPasswords(file, ['alice', 'bob', 'carol']);
  assert.deepEqual(Object.keys(first), ['alice', 'bob', 'carol']);
  for (const pw of Object.values(first)) assert.ok(pw.length >= 20);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(loadOrCreateDemoPasswords(file, ['alice', 'bob', 'carol']), first);
  const more = loadOrCreateDemoPasswords(file, ['alice', 'bob', 'carol', 'dave']);
  assert.equal(more.alice, first.alice);
  assert.ok(more.dave);
  writeFileSync(file, 'not json');
  assert.throws(() => loadOrCreateDemoPasswords(file, ['alice']), /not a JSON object/);
});

test('scrypt verification: right password only; a flood is shed, then logins work again', async () => {
  const book = await PasswordBook.create({ alice: 'correct horse battery' });
  assert.equal(await book.verify('alice', 'correct horse battery'), 'alice');
  assert.equal(await book.verify('alice', 'correct horse battery!'), undefined);
  assert.equal(await book.verify('mallory', 'correct horse battery'), undefined);
  const flood = await Promise.all(Array.from({ length: 60 }, () => book.verify('alice', 'wrong')));
  assert.ok(flood.every((r) => r === undefined));
  assert.ok(book.shed > 0, 'attempts beyond the queue are refused without hashing');
  assert.equal(await book.verify('alice', 'correct horse battery'), 'alice');
});

test('ID tokens verify against the published JWKS with the expected claims', async () => {
  const idp = new DashboardIdp({ issuer: 'https://dashboard.test', audience: 'tts' });
  const token = idp.mint('spiffe://demo.example.com/user/alice');
  const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(idp.jwks()), {
    issuer: 'https://dashboard.test',
    audience: 'tts',
    algorithms: ['ES256'],
  });
  assert.equal(payload.sub, 'spiffe://demo.example.com/user/alice');
  assert.equal(protectedHeader.typ, 'JWT');
  assert.ok((payload.exp as number) - (payload.iat as number) <= 60);
  // Another dashboard's key does not verify.
  const other = new DashboardIdp({ issuer: 'https://dashboard.test', audience: 'tts' });
  await assert.rejects(jwtVerify(other.mint('x'), createLocalJWKSet(idp.jwks())));
  assert.throws(() => new DashboardIdp({ issuer: 'not a url', audience: 'tts' }), TypeError);
});

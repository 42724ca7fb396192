// Demo people: the passwords file (0600, kept across restarts), scrypt verification, the bound
// on concurrent hashing, and the ID tokens the dashboard mints for the token service.
import assert from 'node:assert/strict';
import { createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
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

/** Verifies an ES256 compact JWS against a JWKS with node:crypto; the payload, or throws. */
function verifyEs256(token: string, jwks: { keys: JsonWebKey[] }): Record<string, unknown> {
  const [h, p, sig] = token.split('.');
  const header = JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>;
  assert.equal(header.alg, 'ES256');
  assert.equal(header.typ, 'JWT');
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error('unknown key');
  const ok = verify(
    'sha256',
    Buffer.from(`${h}.${p}`),
    { key: createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' },
    Buffer.from(sig!, 'base64url'),
  );
  if (!ok) throw new Error('bad signature');
  return JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
}

test('ID tokens verify against the published JWKS with the expected claims', () => {
  const idp = new DashboardIdp({ issuer: 'https://dashboard.test', audience: 'tts' });
  const jwks = idp.jwks() as unknown as { keys: JsonWebKey[] };
  const payload = verifyEs256(idp.mint('spiffe://demo.example.com/user/alice'), jwks);
  assert.equal(payload.iss, 'https://dashboard.test');
  assert.equal(payload.aud, 'tts');
  assert.equal(payload.sub, 'spiffe://demo.example.com/user/alice');
  assert.deepEqual(payload.amr, ['pwd']);
  assert.ok((payload.exp as number) - (payload.iat as number) <= 60);
  // Another dashboard's token does not verify with this JWKS.
  const other = new DashboardIdp({ issuer: 'https://dashboard.test', audience: 'tts' });
  assert.throws(() => verifyEs256(other.mint('x'), jwks), /unknown key/);
  const forged = other.mint('x').split('.');
  forged[0] = Buffer.from(JSON.stringify({ alg: 'ES256', kid: idp.kid, typ: 'JWT' })).toString(
    'base64url',
  );
  assert.throws(() => verifyEs256(forged.join('.'), jwks), /bad signature/);
  assert.throws(() => new DashboardIdp({ issuer: 'not a url', audience: 'tts' }), TypeError);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAccount, createServer, createUser } from '@nats-io/nkeys';
import { decode as thirdPartyDecode, encodeAuthorizationResponse } from '@nats-io/jwt';
import { decodeNatsJwt, encodeNatsJwt, nkeySigner } from '../src/nats-jwt.js';

const dec = (b: Uint8Array) => new TextDecoder().decode(b);

test('JWTs we sign verify with @nats-io/jwt (a third-party implementation)', () => {
  const account = createAccount();
  const signer = nkeySigner(dec(account.getSeed()));
  assert.equal(signer.publicKey, account.getPublicKey());
  const user = createUser().getPublicKey();
  const jwt = encodeNatsJwt(
    { sub: user, aud: 'APP', exp: 2_000_000_000, nats: { type: 'user', pub: { allow: ['a.>'] } } },
    signer,
  );
  const claims = thirdPartyDecode<{ pub: { allow: string[] } }>(jwt);
  assert.equal(claims.iss, account.getPublicKey());
  assert.equal(claims.sub, user);
  assert.equal(claims.aud, 'APP');
  assert.deepEqual(claims.nats.pub, { allow: ['a.>'] });
  assert.equal((claims.nats as { version?: number }).version, 2);
});

test('we verify JWTs signed by @nats-io/jwt, and reject tampering', async () => {
  const account = createAccount();
  const server = createServer();
  const user = createUser();
  const jwt = await encodeAuthorizationResponse(
    user.getPublicKey(),
    server.getPublicKey(),
    account,
    { error: 'x' },
    {},
  );
  const claims = decodeNatsJwt(jwt);
  assert.equal(claims.iss, account.getPublicKey());
  assert.equal(claims.aud, server.getPublicKey());
  // Negative: change one claim, keep the signature.
  const [h, b, s] = jwt.split('.');
  const body = JSON.parse(Buffer.from(b!, 'base64url').toString());
  body.aud = 'other';
  const forged = `${h}.${Buffer.from(JSON.stringify(body)).toString('base64url')}.${s}`;
  assert.throws(() => decodeNatsJwt(forged), /bad JWT signature/);
  // Negative: a signature by another key.
  const other = nkeySigner(dec(createAccount().getSeed()));
  const resigned = encodeNatsJwt({ sub: 'x', nats: {} }, other);
  const [h2, b2] = resigned.split('.');
  const bodyClaims = JSON.parse(Buffer.from(b2!, 'base64url').toString());
  bodyClaims.iss = account.getPublicKey();
  const swapped = `${h2}.${Buffer.from(JSON.stringify(bodyClaims)).toString('base64url')}.${resigned.split('.')[2]}`;
  assert.throws(() => decodeNatsJwt(swapped));
  for (const bad of ['', 'a.b', 'a.b.c.d', 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.x']) {
    assert.throws(() => decodeNatsJwt(bad), bad);
  }
});

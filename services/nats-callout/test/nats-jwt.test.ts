import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createAccount, createServer, createUser } from '@nats-io/nkeys';
import { decode as thirdPartyDecode, encodeAuthorizationResponse } from '@nats-io/jwt';
import {
  base32Decode,
  decodeNatsJwt,
  ed25519,
  encodeNatsJwt,
  nkeySigner,
  nodeEd25519,
  sodiumEd25519,
} from '../src/nats-jwt.js';

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

test('jti is the SHA-256 of the claims without it, so it differs when the claims do', () => {
  const signer = nkeySigner(dec(createAccount().getSeed()));
  const user = createUser().getPublicKey();
  const jwt = encodeNatsJwt({ sub: user, aud: 'APP', nats: { type: 'user' } }, signer, 1_000_000);
  const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<
    string,
    unknown
  >;
  const { jti, ...rest } = claims;
  const digest = createHash('sha256').update(JSON.stringify(rest)).digest();
  assert.equal(jti, base32(digest));
  assert.deepEqual(rest, {
    sub: user,
    aud: 'APP',
    nats: { type: 'user', version: 2 },
    iat: 1000,
    iss: signer.publicKey,
  });
  const other = encodeNatsJwt({ sub: user, aud: 'APP', nats: { type: 'user' } }, signer, 2_000_000);
  assert.notEqual(decodeNatsJwt(other).jti, jti);
});

test('the header is checked on every JWT, also after good ones were seen', () => {
  const signer = nkeySigner(dec(createAccount().getSeed()));
  const good = encodeNatsJwt({ sub: 'x', nats: {} }, signer);
  for (let i = 0; i < 3; i++) decodeNatsJwt(good);
  const [, body] = good.split('.');
  for (const header of [
    { typ: 'JWT', alg: 'none' },
    { typ: 'JWT', alg: 'ed25519' },
    { typ: 'JOSE', alg: 'ed25519-nkey' },
    null,
  ]) {
    const h = Buffer.from(JSON.stringify(header)).toString('base64url');
    const payload = `${h}.${body}`;
    // Correctly signed over the altered header: only the header check can refuse it.
    const sig = signer.sign(Buffer.from(payload)).toString('base64url');
    assert.throws(() => decodeNatsJwt(`${payload}.${sig}`), /not a v2 NATS JWT/);
  }
  // Another spelling of a valid header (as Go's encoder may write it) is accepted.
  const h = Buffer.from(JSON.stringify({ alg: 'ed25519-nkey', typ: 'jwt' })).toString('base64url');
  const payload = `${h}.${body}`;
  const sig = signer.sign(Buffer.from(payload)).toString('base64url');
  assert.equal(decodeNatsJwt(`${payload}.${sig}`).sub, 'x');
});

function base32(b: Uint8Array): string {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of b) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += A[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += A[(value << (5 - bits)) & 31];
  return out;
}

test('Ed25519: libsodium is in use, and signs and verifies exactly as node:crypto and nkeys do', () => {
  if (process.env.PRECINCT_ED25519 !== 'node') assert.equal(ed25519.name, 'libsodium');
  assert.ok(sodiumEd25519, 'sodium-native loads on this platform');
  const account = createAccount();
  const seed = dec(account.getSeed());
  const raw = base32Decode(account.getPublicKey()).subarray(1, 33);
  const backends = [sodiumEd25519, nodeEd25519];
  for (const len of [0, 1, 100, 1500]) {
    const msg = Buffer.alloc(len, len & 0xff);
    const [a, b] = backends.map((be) => nkeySigner(seed, be).sign(msg));
    // Ed25519 is deterministic: the same bytes from both.
    assert.deepEqual(a, b, `same signature for ${len} bytes`);
    // A third implementation, @nats-io/nkeys (tweetnacl), accepts it.
    assert.ok(account.verify(msg, a!));
    for (const be of backends) {
      const v = be.verifier(raw);
      assert.equal(v(msg, a!), true, `${be.name} accepts`);
      const flipped = Buffer.from(a!);
      flipped[10]! ^= 1;
      assert.equal(v(msg, flipped), false, `${be.name} refuses a flipped bit`);
      assert.equal(v(msg, a!.subarray(0, 63)), false, `${be.name} refuses a short signature`);
      assert.equal(v(Buffer.concat([msg, Buffer.from('x')]), a!), false, `${be.name}: other data`);
    }
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCurve } from '@nats-io/nkeys';
import { XkeyBox } from '../src/xkey.js';

const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const enc = (s: string) => new TextEncoder().encode(s);

const ours = createCurve();
const server = createCurve();
const box = new XkeyBox(dec(ours.getSeed()));

test('XkeyBox: public key is the seed’s', () => {
  assert.equal(box.publicKey, ours.getPublicKey());
});

test('XkeyBox interoperates with @nats-io/nkeys CurveKP (what nats-server speaks)', () => {
  // Server to us: CurveKP.seal, our open (several messages: the cached shared key is reused).
  for (const text of ['first request', 'second request', 'x'.repeat(5000)]) {
    const sealed = server.seal(enc(text), ours.getPublicKey());
    const opened = box.open(sealed, server.getPublicKey());
    assert.ok(opened);
    assert.equal(dec(opened), text);
  }
  // Us to the server: our seal, CurveKP.open.
  for (const text of ['a response', 'another response']) {
    const sealed = box.seal(enc(text), server.getPublicKey());
    assert.deepEqual([...sealed.subarray(0, 4)], [...enc('xkv1')]);
    const opened = server.open(sealed, ours.getPublicKey());
    assert.ok(opened);
    assert.equal(dec(opened), text);
  }
  // Fresh nonce per message.
  const a = box.seal(enc('same'), server.getPublicKey());
  const b = box.seal(enc('same'), server.getPublicKey());
  assert.notDeepEqual(a, b);
});

test('XkeyBox.seal: the same bytes as CurveKP.seal (nacl.box) for a given nonce', () => {
  const nonce = new Uint8Array(24).fill(7);
  const message = enc('fixed message');
  assert.deepEqual(
    Buffer.from(box.seal(message, server.getPublicKey(), nonce)),
    Buffer.from(ours.seal(message, server.getPublicKey(), nonce)),
  );
  assert.throws(() => box.seal(message, server.getPublicKey(), new Uint8Array(8)));
});

test('XkeyBox.open refuses what is not sealed by that server to us', () => {
  const sealed = server.seal(enc('hello'), ours.getPublicKey());
  // Another sender key: the box does not open.
  assert.equal(box.open(sealed, createCurve().getPublicKey()), null);
  // Tampered ciphertext.
  const tampered = Uint8Array.from(sealed);
  tampered[tampered.length - 1]! ^= 1;
  assert.equal(box.open(tampered, server.getPublicKey()), null);
  // Wrong version header, too short.
  const badVersion = Uint8Array.from(sealed);
  badVersion[3] = 0x32;
  assert.equal(box.open(badVersion, server.getPublicKey()), null);
  assert.equal(box.open(sealed.subarray(0, 28), server.getPublicKey()), null);
  assert.equal(box.open(new Uint8Array(0), server.getPublicKey()), null);
  // Sealed to someone else.
  const other = createCurve();
  assert.equal(box.open(server.seal(enc('x'), other.getPublicKey()), server.getPublicKey()), null);
  // A sender that is not a curve public key.
  assert.throws(() => box.open(sealed, 'not-an-xkey'));
  assert.throws(() => box.seal(enc('x'), ours.getPublicKey().replace(/^X/, 'U')));
});

test('XkeyBox: many servers (bounded shared-key cache) all still work', () => {
  const servers = Array.from({ length: 300 }, () => createCurve());
  for (const s of servers) {
    const opened = box.open(s.seal(enc('hi'), ours.getPublicKey()), s.getPublicKey());
    assert.equal(dec(opened!), 'hi');
  }
  // The first ones were evicted and are computed again.
  const first = servers[0]!;
  assert.equal(
    dec(first.open(box.seal(enc('back'), first.getPublicKey()), ours.getPublicKey())!),
    'back',
  );
});

test('XkeyBox refuses a seed that is not a curve seed', () => {
  assert.throws(() => new XkeyBox('SAAGARBAGE'));
});

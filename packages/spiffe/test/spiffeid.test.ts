import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SpiffeError,
  SpiffeId,
  TrustDomain,
  matchAny,
  matchId,
  matchMemberOf,
  matchOneOf,
} from '@precinct/spiffe';

test('valid SPIFFE IDs parse and print back unchanged', () => {
  for (const s of [
    'spiffe://example.org',
    'spiffe://example.org/workload',
    'spiffe://example.org/ns/prod/sa/web',
    'spiffe://a-b_c.d0/A.b-C_9/x',
    'spiffe://example.org/...a/.b./..c',
    `spiffe://example.org/${'a'.repeat(2000)}`,
  ]) {
    const id = SpiffeId.parse(s);
    assert.equal(id.toString(), s);
  }
  const id = SpiffeId.parse('spiffe://example.org/ns/prod');
  assert.equal(id.trustDomain.name, 'example.org');
  assert.equal(id.path, '/ns/prod');
  assert.equal(SpiffeId.parse('spiffe://example.org').isTrustDomainId(), true);
});

test('edge cases the spec makes valid: exactly 2048 bytes, 255-byte trust domain, IPv4-like', () => {
  const prefix = 'spiffe://example.org/';
  const exactly2048 = `${prefix}${'a'.repeat(2048 - prefix.length)}`;
  assert.equal(Buffer.byteLength(exactly2048), 2048);
  const td255 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`;
  assert.equal(td255.length, 255);
  for (const s of [
    exactly2048,
    `spiffe://${td255}/x`,
    'spiffe://192.168.0.1/a',
    'spiffe://td_1.example-2.org/Mixed.Case-Path_9',
  ]) {
    assert.equal(SpiffeId.parse(s).toString(), s);
  }
  // One byte more is refused (the size bound), as is a 256-byte trust domain.
  assert.throws(() => SpiffeId.parse(`${exactly2048}a`), { code: 'ERR_SPIFFEID_TOO_LONG' });
  assert.throws(() => SpiffeId.parse(`spiffe://a${td255}/x`), {
    code: 'ERR_SPIFFEID_TRUST_DOMAIN_TOO_LONG',
  });
  // An IPv6 literal is not a trust domain.
  assert.throws(() => SpiffeId.parse('spiffe://[::1]/a'), SpiffeError);
});

test('invalid SPIFFE IDs are rejected with the rule they break (table)', () => {
  const cases: Array<[string, string]> = [
    ['', 'ERR_SPIFFEID_EMPTY'],
    ['example.org/a', 'ERR_SPIFFEID_SCHEME'],
    ['SPIFFE://example.org/a', 'ERR_SPIFFEID_SCHEME'],
    ['spiffe:/example.org/a', 'ERR_SPIFFEID_SCHEME'],
    ['https://example.org/a', 'ERR_SPIFFEID_SCHEME'],
    ['spiffe://', 'ERR_SPIFFEID_TRUST_DOMAIN_EMPTY'],
    ['spiffe:///path', 'ERR_SPIFFEID_TRUST_DOMAIN_EMPTY'],
    ['spiffe://Example.org/a', 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS'],
    ['spiffe://exa mple.org/a', 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS'],
    ['spiffe://exa$mple.org', 'ERR_SPIFFEID_TRUST_DOMAIN_CHARS'],
    ['spiffe://user@example.org/a', 'ERR_SPIFFEID_USERINFO'],
    ['spiffe://example.org:8080/a', 'ERR_SPIFFEID_PORT'],
    ['spiffe://example.org/a?x=1', 'ERR_SPIFFEID_QUERY'],
    ['spiffe://example.org/a#frag', 'ERR_SPIFFEID_FRAGMENT'],
    ['spiffe://example.org/a%20b', 'ERR_SPIFFEID_PERCENT'],
    ['spiffe://example.org/', 'ERR_SPIFFEID_PATH_EMPTY_SEGMENT'],
    ['spiffe://example.org//a', 'ERR_SPIFFEID_PATH_EMPTY_SEGMENT'],
    ['spiffe://example.org/a/', 'ERR_SPIFFEID_PATH_EMPTY_SEGMENT'],
    ['spiffe://example.org/./a', 'ERR_SPIFFEID_PATH_DOT_SEGMENT'],
    ['spiffe://example.org/a/..', 'ERR_SPIFFEID_PATH_DOT_SEGMENT'],
    ['spiffe://example.org/a$b', 'ERR_SPIFFEID_PATH_CHARS'],
    ['spiffe://example.org/a b', 'ERR_SPIFFEID_PATH_CHARS'],
    [`spiffe://example.org/${'a'.repeat(2040)}`, 'ERR_SPIFFEID_TOO_LONG'],
    [`spiffe://${'a'.repeat(256)}/x`, 'ERR_SPIFFEID_TRUST_DOMAIN_TOO_LONG'],
  ];
  for (const [input, code] of cases) {
    assert.throws(
      () => SpiffeId.parse(input),
      (e: unknown) =>
        e instanceof SpiffeError && e.code === code && e.message.startsWith('spiffeid: '),
      `${JSON.stringify(input).slice(0, 60)} should fail with ${code}`,
    );
  }
});

test('trust domains: parse from a name or an ID; reject invalid names', () => {
  assert.equal(TrustDomain.parse('example.org').name, 'example.org');
  assert.equal(TrustDomain.parse('spiffe://example.org/a').name, 'example.org');
  assert.equal(TrustDomain.parse('example.org').idString(), 'spiffe://example.org');
  for (const bad of ['', 'Example.org', 'example.org/a', 'a:1', 'exa mple']) {
    assert.throws(() => TrustDomain.parse(bad), SpiffeError, bad);
  }
});

test('fromSegments validates every segment; memberOf compares trust domains', () => {
  const td = TrustDomain.parse('example.org');
  assert.equal(SpiffeId.fromSegments(td, 'ns', 'prod').toString(), 'spiffe://example.org/ns/prod');
  for (const bad of [['a/b'], [''], ['..'], ['a b']]) {
    assert.throws(() => SpiffeId.fromSegments(td, ...bad), SpiffeError);
  }
  const id = SpiffeId.parse('spiffe://example.org/x');
  assert.equal(id.memberOf(td), true);
  assert.equal(id.memberOf(TrustDomain.parse('example.com')), false);
});

test('matchers accept what they name and nothing else', () => {
  const a = SpiffeId.parse('spiffe://example.org/a');
  const b = SpiffeId.parse('spiffe://example.org/b');
  const c = SpiffeId.parse('spiffe://other.org/a');
  matchAny()(c);
  matchId(a)(a);
  assert.throws(() => matchId(a)(b), { code: 'ERR_SPIFFEID_UNEXPECTED' });
  matchOneOf(a, 'spiffe://example.org/b')(b);
  assert.throws(() => matchOneOf(a, b)(c), { code: 'ERR_SPIFFEID_UNEXPECTED' });
  matchMemberOf('example.org')(b);
  assert.throws(() => matchMemberOf('example.org')(c), { code: 'ERR_SPIFFEID_UNEXPECTED' });
});

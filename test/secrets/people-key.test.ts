// The people's-token path rule (peopleTokenKey): one safe path segment per subject, injective,
// shared by the egress broker (write, read) and the dashboard (metadata read, delete).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SecretsError, peopleTokenKey } from '@precinct/secrets';

/** What the secrets client accepts as one path segment (http.ts), minus `.` and `..`. */
const SAFE = /^[A-Za-z0-9._@:+=~-]+$/;

const HOSTILE = [
  '..',
  '.',
  '...',
  '/',
  'a/b',
  '../bob',
  'alice/../bob',
  '%2F',
  '..%2Fbob',
  'alice%2fgithub',
  'a\\b',
  'a b',
  ' alice',
  'alice\n',
  'a\u0000b',
  'a?b',
  'a#b',
  'a~b',
  '~',
  'b64~YWxpY2U',
  'spiffe~example.org~user~alice',
  'spiffe://example.org/user/../alice',
  'spiffe://example.org/user//alice',
  'spiffe://example.org/user/%61lice',
  'spiffe://Example.org/user/alice',
  'spiffe://example.org/user/alice/',
  'spiffe://user@example.org/alice',
  'SPIFFE://example.org/user/alice',
  'José',
  'Jose\u0301',
  'аlice', // Cyrillic а
  '👩‍💻',
  '\u202Eecila',
  'x'.repeat(200),
  'x'.repeat(201),
];

describe('peopleTokenKey', () => {
  test('plain names keep their key (tokens stored before stay readable)', () => {
    for (const n of ['alice', 'bob', 'alice@example.org', 'u:42', 'a.b', 'x'.repeat(200)])
      assert.equal(peopleTokenKey(n), n);
  });

  test('a SPIFFE ID becomes spiffe~<trust domain>~<segments>', () => {
    assert.equal(
      peopleTokenKey('spiffe://precinct.local/user/alice'),
      'spiffe~precinct.local~user~alice',
    );
    assert.equal(peopleTokenKey('spiffe://example.org'), 'spiffe~example.org');
    assert.equal(
      peopleTokenKey('spiffe://example.org/ns/a.b/sa/c_d-e'),
      'spiffe~example.org~ns~a.b~sa~c_d-e',
    );
  });

  test('hostile subjects: each one safe segment, never a plain or SPIFFE key of someone else', () => {
    const subjects = new Set([
      ...HOSTILE,
      'alice',
      'bob',
      'spiffe://example.org/user/alice',
      'spiffe://example.org/user/bob',
      'spiffe://example.org/user/alice~x',
    ]);
    assert.equal(subjects.size, HOSTILE.length + 5, 'all distinct');
    const keys = new Map<string, string>();
    for (const s of subjects) {
      const k = peopleTokenKey(s);
      assert.match(k, SAFE, JSON.stringify(s));
      assert.ok(k !== '.' && k !== '..', JSON.stringify(s));
      assert.ok(k.length <= 512);
      const prev = keys.get(k);
      assert.equal(prev, undefined, `${JSON.stringify(s)} and ${JSON.stringify(prev)} share ${k}`);
      keys.set(k, s);
    }
    // Not a plain name: encoded, and decodes back to the very subject (no normalisation).
    for (const s of ['..', 'a/b', '%2F', 'José', 'Jose\u0301', 'b64~YWxpY2U', 'a~b']) {
      const k = peopleTokenKey(s);
      assert.ok(k.startsWith('b64~'), `${s} -> ${k}`);
      assert.equal(Buffer.from(k.slice(4), 'base64url').toString('utf8'), s);
    }
    // An invalid SPIFFE ID is not turned into a valid one's key.
    assert.notEqual(
      peopleTokenKey('spiffe://example.org/user/../alice'),
      peopleTokenKey('spiffe://example.org/alice'),
    );
    assert.notEqual(peopleTokenKey('Jos\u00e9'), peopleTokenKey('Jose\u0301'));
  });

  test('refused: empty, malformed Unicode, too long (control: the longest accepted)', () => {
    for (const bad of [
      '',
      'a\uD800',
      '\uDC00b',
      'é'.repeat(300),
      `spiffe://example.org/${'a'.repeat(600)}`,
    ]) {
      const err = (() => {
        try {
          peopleTokenKey(bad);
        } catch (e) {
          return e;
        }
        return assert.fail(`accepted ${JSON.stringify(bad.slice(0, 20))}`);
      })();
      assert.ok(err instanceof SecretsError);
      assert.equal(err.code, 'ERR_SECRETS_PERSON_INVALID');
      assert.ok(!err.message.includes(bad) || bad === '', 'the subject is not echoed');
    }
    // 380 bytes of UTF-8 encode to 507 characters, 384 to 512 (+ 4 for `b64~`, over the cap).
    assert.equal(peopleTokenKey('é'.repeat(190)).length, 511);
    assert.throws(() => peopleTokenKey('é'.repeat(192)), { code: 'ERR_SECRETS_PERSON_INVALID' });
  });
});

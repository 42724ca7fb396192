// The input checks on their own: the raw-text filter that lets a request skip the string walk
// must never let through a string the walk would refuse, however the JSON text spells it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  checkStrings,
  deeperThan,
  mayHoldBadStrings,
  parseTimestamp,
  stringProblem,
  type InputProblem,
} from '../src/input.js';

const RUNS = Number(process.env.PRECINCT_FUZZ_RUNS ?? 2000);

/** Any UTF-16 code units, the troublesome ones over-represented. */
const units = fc
  .array(
    fc.oneof(
      fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
      fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c)),
      fc.constantFrom(
        '\ud800',
        '\udfff',
        '\u0000',
        '\ufffe',
        '\uffff',
        '\ufdd0',
        '\u{10fffe}',
        '\\',
      ),
    ),
    { maxLength: 8 },
  )
  .map((a) => a.join(''));

/** JSON text of a string with each code unit written literally or as a `\u` escape, at random. */
const spelled = (s: string, escape: boolean[]) => {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const lit = s[i]!;
    const mustEscape = c < 0x20 || lit === '"' || lit === '\\' || (c >= 0xd800 && c <= 0xdfff);
    // A literal surrogate cannot be sent as UTF-8 alone; a pair can, as its code point.
    const pair =
      c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 && !escape[i];
    if (pair) {
      out += s.slice(i, i + 2);
      i++;
    } else if (mustEscape || escape[i % escape.length]) {
      const hex = c.toString(16).padStart(4, '0');
      out += `\\u${escape[(i + 1) % escape.length] ? hex.toUpperCase() : hex}`;
    } else out += lit;
  }
  return `${out}"`;
};

test('the raw-text filter never misses a string the walk refuses, however it is spelled', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(units, units), { maxLength: 4 }),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }),
      (pairs, escape) => {
        const text = `{${pairs.map(([k, v]) => `${spelled(k, escape)}:[${spelled(v, escape)}]`).join(',')}}`;
        const parsed = JSON.parse(text) as unknown;
        const bad: InputProblem[] = [];
        checkStrings(parsed, '', bad);
        if (bad.length > 0) assert.ok(mayHoldBadStrings(text), text);
      },
    ),
    { numRuns: RUNS },
  );
});

test('stringProblem: lone surrogates, NUL and noncharacters; well-formed text passes', () => {
  for (const s of [
    '\ud800',
    'a\udbff',
    '\udc00',
    '\udc00\ud800',
    'x\u0000',
    '\ufffe',
    '\uffff',
    '\ufdd0',
    '\ufdef',
    '\u{1fffe}',
    '\u{10ffff}',
  ])
    assert.ok(stringProblem(s), JSON.stringify(s));
  for (const s of [
    '',
    'plain',
    '\ud83d\ude00',
    '\ufdcf',
    '\ufdf0',
    '\ufffd',
    '\u{1fffd}',
    '\t\n\u0001',
    'zoë',
  ])
    assert.equal(stringProblem(s), undefined, JSON.stringify(s));
  // Positive control for the filter: ordinary text, emoji included, skips the walk.
  assert.equal(mayHoldBadStrings(JSON.stringify({ a: 'zoë 😀', b: [1, 'x\n'] })), false);
});

test('checkStrings names the path of each bad key and value and stops at 100 problems', () => {
  const bad: InputProblem[] = [];
  checkStrings({ a: { 'k\u0000': ['ok', '\ud800'] }, '\udbff': 1 }, '', bad);
  assert.deepEqual(
    bad.map((p) => p.field).sort(),
    ['["\\udbff"]', 'a["k\\u0000"]', 'a["k\\u0000"][1]'].sort(),
  );
  const many: InputProblem[] = [];
  checkStrings(
    Array.from({ length: 1000 }, () => '\u0000'),
    'x',
    many,
  );
  assert.equal(many.length, 100);
});

test('deeperThan stops early and counts objects and arrays alike', () => {
  assert.equal(deeperThan({ a: { b: [1] } }, 3), false);
  assert.equal(deeperThan({ a: { b: [[]] } }, 3), true);
  assert.equal(deeperThan('x', 0), false);
  assert.equal(
    deeperThan(JSON.parse(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`), 32),
    true,
  );
});

test('parseTimestamp: RFC 3339 within years 1..9999 in UTC', () => {
  for (const s of [
    '2024-01-01T00:00:00Z',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999Z',
    '2024-01-01t00:00:00.123456789+14:00',
  ])
    assert.ok(parseTimestamp(s), s);
  for (const s of [
    '0000-01-01T00:00:00Z',
    '0001-01-01T00:00:00+01:00',
    '2024-01-01',
    'Tue Jan 01 2024',
    '2024-12-31T23:59:60Z',
    '+010000-01-01T00:00:00Z',
    `2024-01-01T00:00:00.${'1'.repeat(60)}Z`,
  ])
    assert.equal(parseTimestamp(s), undefined, s);
});

// The chain hash of a stored event must never change: every stored event_hash, and every
// export verified offline, depends on it. This pins the canonical form and the hash of known
// rows, and holds the faster code the writer uses (canonicalJson with loops, linkTemplate +
// templateHash, crypto.hash) to the first implementation, copied here verbatim as the oracle.
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { test } from 'node:test';
import {
  COLUMNS,
  canonicalJson,
  linkHash,
  linkTemplate,
  templateHash,
  type StoredEvent,
} from '../src/events.js';
import { arrayLiteral } from '../src/store/write.js';
import { seededRandom } from '@precinct/testing';

// --- the first implementation (services/audit-store/src/events.ts as released) -------------
function oracleCanonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(oracleCanonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${oracleCanonicalJson(o[k])}`)
    .join(',')}}`;
}
function oracleLinkHash(e: Record<string, unknown>, key?: Buffer): string {
  const fields: Record<string, unknown> = {};
  for (const c of COLUMNS) if (c !== 'event_hash') fields[c] = e[c];
  const data = `${String(e.prev_hash)}\n${oracleCanonicalJson(fields)}`;
  return (key ? createHmac('sha256', key) : createHash('sha256')).update(data).digest('hex');
}
// ----------------------------------------------------------------------------------------------

const row = {
  event_id: '0b7e6f5c-3d2a-4c1b-9e8f-7a6b5c4d3e2f',
  version: '1.0',
  event_type: 'order.approved',
  event_timestamp: '2025-03-04T05:06:07.089Z',
  event_category: 'orders',
  event_action: 'approve',
  event_outcome: 'success',
  actor_type: 'user',
  actor_id: 'alice',
  actor_ip: null,
  resource_type: 'order',
  resource_id: 'order-42',
  correlation_id: 'order-42',
  parent_event_id: null,
  namespace: 'apps',
  cluster_id: null,
  severity: 'info',
  duration_ms: 12,
  error_code: null,
  error_message: null,
  retention_days: 2555,
  is_sensitive: false,
  event_data: { z: [1, 'two', { b: null, a: true }], amount: 120.5, 'ünï"\\': 'x\ny' },
  written_by: 'system:serviceaccount:apps:my-service',
  written_by_kind: 'serviceaccount',
  on_behalf_of: null,
} satisfies Omit<StoredEvent, 'chain_seq' | 'prev_hash' | 'event_hash'>;

// Computed by the released implementation (before the writer was optimised) and checked by
// hand against docs/audit-store.md: sorted keys at every depth, no whitespace, nulls kept.
const CANONICAL =
  '{"actor_id":"alice","actor_ip":null,"actor_type":"user","chain_seq":2,"cluster_id":null,' +
  '"correlation_id":"order-42","duration_ms":12,"error_code":null,"error_message":null,' +
  '"event_action":"approve","event_category":"orders","event_data":{"amount":120.5,' +
  '"z":[1,"two",{"a":true,"b":null}],"ünï\\"\\\\":"x\\ny"},' +
  '"event_id":"0b7e6f5c-3d2a-4c1b-9e8f-7a6b5c4d3e2f","event_outcome":"success",' +
  '"event_timestamp":"2025-03-04T05:06:07.089Z","event_type":"order.approved",' +
  '"is_sensitive":false,"namespace":"apps","on_behalf_of":null,"parent_event_id":null,' +
  `"prev_hash":"${'a'.repeat(64)}","resource_id":"order-42","resource_type":"order",` +
  '"retention_days":2555,"severity":"info","version":"1.0",' +
  '"written_by":"system:serviceaccount:apps:my-service","written_by_kind":"serviceaccount"}';
const PINNED_SHA256 = '7abcf3a9b3d3956308c330d34e48607c8751fa3b7a530bb4b7249b140f85c140';
const PINNED_HMAC = '12d348a11e519ce54d2edd2cfe62a2aacc359eddfd027af35a914cee519a1372';
const PINNED_FIRST = '9e2c4824a022e4b84f317477ad87d250a0fa464770eb6904dadc402085ec4a4d';
const KEY = Buffer.from('pinned-test-key');

test('the canonical form and the hash of a known event are pinned', () => {
  const linked = { ...row, chain_seq: 2, prev_hash: 'a'.repeat(64) };
  assert.equal(canonicalJson(linked), CANONICAL);
  assert.equal(
    createHash('sha256')
      .update(`${'a'.repeat(64)}\n${CANONICAL}`)
      .digest('hex'),
    PINNED_SHA256,
    'the pinned hash is SHA-256 of prev_hash, a newline and the canonical form',
  );
  assert.equal(linkHash(linked), PINNED_SHA256);
  assert.equal(linkHash(linked, KEY), PINNED_HMAC);
  assert.equal(linkHash({ ...row, chain_seq: 1, prev_hash: '0'.repeat(64) }), PINNED_FIRST);
  // The writer's path gives the same bytes.
  const t = linkTemplate(row);
  assert.equal(templateHash(t, 2, 'a'.repeat(64)), PINNED_SHA256);
  assert.equal(templateHash(t, 2, 'a'.repeat(64), KEY), PINNED_HMAC);
  assert.equal(templateHash(t, 1, '0'.repeat(64)), PINNED_FIRST);
  assert.equal(`${t.pre}2${t.mid}"${'a'.repeat(64)}"${t.post}`, CANONICAL);
});

const PIECES = [
  'a',
  'Z',
  ' ',
  '"',
  '\\',
  '/',
  '\n',
  '\t',
  '\u0001',
  '\u001f',
  '\u007f',
  'é',
  'ß',
  '€',
  '\u2028',
  '😀',
  '\ud800',
  '\udc00',
  '{',
  '}',
  ',',
  'NULL',
  '0',
];

function randomString(r: () => number, max = 8): string {
  let s = '';
  const n = Math.floor(r() * max);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)]!;
  return s;
}

function randomValue(r: () => number, depth = 0): unknown {
  const k = Math.floor(r() * (depth > 2 ? 7 : 10));
  switch (k) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return [0, -0, 1, -1, 1.5, 1e21, 1e-7, 2 ** 53, NaN, Infinity][Math.floor(r() * 10)];
    case 3:
      return Math.floor(r() * 1e6) - 5e5;
    case 4:
    case 5:
    case 6:
      return randomString(r);
    case 7: {
      const a: unknown[] = [];
      const n = Math.floor(r() * 5);
      for (let i = 0; i < n; i++) a.push(randomValue(r, depth + 1));
      if (r() < 0.2) a[n + 1] = 'after a hole'; // sparse
      if (r() < 0.2) a.push(undefined);
      return a;
    }
    default: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(r() * 6);
      for (let i = 0; i < n; i++) {
        const key = r() < 0.3 ? String(Math.floor(r() * 20)) : randomString(r, 4);
        o[key] = r() < 0.1 ? undefined : randomValue(r, depth + 1);
      }
      return o;
    }
  }
}

test('canonicalJson gives the first implementation’s bytes for random values', () => {
  const r = seededRandom(20240611);
  for (let i = 0; i < 20_000; i++) {
    const v = randomValue(r);
    assert.equal(canonicalJson(v), oracleCanonicalJson(v), JSON.stringify(v));
  }
  // And for values no JSON body holds, but a caller of the library might pass.
  for (const v of [undefined, () => 1, Symbol('s'), new Date(0), [() => 1, undefined], { f() {} }])
    assert.equal(canonicalJson(v), oracleCanonicalJson(v));
});

test('the writer’s template hash equals linkHash and the first implementation for random rows', () => {
  const r = seededRandom(7);
  const str = () => (r() < 0.2 ? null : randomString(r, 12));
  for (let i = 0; i < 3_000; i++) {
    const e: Record<string, unknown> = {
      ...row,
      event_id: crypto.randomUUID(),
      version: randomString(r, 3) || '1.0',
      event_type: randomString(r) || 't',
      event_timestamp: new Date(Math.floor(r() * 4e12)).toISOString(),
      actor_type: str(),
      actor_id: str(),
      actor_ip: str(),
      resource_type: str(),
      resource_id: str(),
      correlation_id: randomString(r) || 'c',
      parent_event_id: r() < 0.5 ? null : crypto.randomUUID(),
      namespace: str(),
      cluster_id: str(),
      severity: str(),
      duration_ms: r() < 0.5 ? null : Math.floor(r() * 1e6),
      error_code: str(),
      error_message: str(),
      retention_days: 1 + Math.floor(r() * 36500),
      is_sensitive: r() < 0.5,
      event_data: randomValue(r, 1) ?? {},
      written_by: randomString(r) || 'w',
      written_by_kind: 'serviceaccount',
      on_behalf_of: str(),
    };
    // Members may also be absent (a library caller's row): canonicalJson leaves them out.
    if (r() < 0.1) e[COLUMNS[Math.floor(r() * 26)]!] = undefined;
    const seq = 1 + Math.floor(r() * 1e6);
    const prev = r() < 0.1 ? '0'.repeat(64) : createHash('sha256').update(String(i)).digest('hex');
    const key = r() < 0.3 ? KEY : undefined;
    const t = linkTemplate(e as never);
    const expected = oracleLinkHash({ ...e, chain_seq: seq, prev_hash: prev }, key);
    assert.equal(templateHash(t, seq, prev, key), expected);
    assert.equal(linkHash({ ...e, chain_seq: seq, prev_hash: prev } as never, key), expected);
  }
});

test('the template covers every column (a column added to COLUMNS must be added to it)', () => {
  const e: Record<string, unknown> = {};
  for (const [i, c] of COLUMNS.entries()) e[c] = `value-${i}`;
  const t = linkTemplate(e as never);
  assert.equal(
    templateHash(t, Number(7), String(e.prev_hash)),
    linkHash({ ...e, chain_seq: 7 } as never),
  );
});

test('arrayLiteral quotes every element and escapes only quote and backslash', () => {
  assert.equal(arrayLiteral([]), '{}');
  assert.equal(arrayLiteral(['a', null, '', 'NULL']), '{"a",NULL,"","NULL"}');
  assert.equal(arrayLiteral(['x"y', 'a\\b', '{,}']), '{"x\\"y","a\\\\b","{,}"}');
  assert.equal(arrayLiteral([1, 2.5, true, false]), '{"1","2.5","true","false"}');
});

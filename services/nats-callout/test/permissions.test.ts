import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPermissions, isValidSubject, privateInboxPrefix } from '@precinct/nats-callout';

const ns = 'team-a';
const sa = 'worker';

test('defaults: namespace pub+sub, private inbox, one response, no shared inbox', () => {
  const { permissions, warnings } = buildPermissions({ namespace: ns, serviceAccount: sa });
  assert.deepEqual(permissions, {
    pub: { allow: ['team-a.>'], deny: [] },
    sub: { allow: ['team-a.>', '_INBOX_team-a_worker.>'], deny: [] },
    resp: { max: 1, ttl: 0 },
  });
  assert.deepEqual(warnings, []);
});

test('sharedInbox restores _INBOX.> for subscribers', () => {
  const { permissions } = buildPermissions({
    namespace: ns,
    serviceAccount: sa,
    sharedInbox: true,
  });
  assert.deepEqual(permissions.sub.allow, ['team-a.>', '_INBOX_team-a_worker.>', '_INBOX.>']);
});

test('private inbox prefix is one token and one-to-one', () => {
  assert.equal(privateInboxPrefix('ns', 'a.b'), '_INBOX_ns_a_b');
  assert.notEqual(privateInboxPrefix('ns', 'a'), privateInboxPrefix('ns', 'a.b'));
  assert.ok(!privateInboxPrefix('ns', 'a.b.c').includes('.'));
});

const cases: Array<{
  name: string;
  annotations: Record<string, string>;
  pub?: string[];
  sub?: string[];
  pubDeny?: string[];
  subDeny?: string[];
  warnings?: Array<[string, string]>;
}> = [
  {
    name: 'grants are trimmed, empty entries dropped, duplicates merged',
    annotations: {
      'nats.io/allowed-pub-subjects': ' bar.> , ,platform.commands.*,, team-a.> ',
      'nats.io/allowed-sub-subjects': 'platform.events.*,shared.status',
    },
    pub: ['team-a.>', 'bar.>', 'platform.commands.*'],
    sub: ['team-a.>', '_INBOX_team-a_worker.>', 'platform.events.*', 'shared.status'],
  },
  {
    name: '_INBOX and _REPLY claims are filtered with a warning',
    annotations: {
      'nats.io/allowed-sub-subjects': '_INBOX.>, _INBOX_team-b_api.>, _REPLY.x, ok.sub, _inbox.y',
      'nats.io/allowed-pub-subjects': '_INBOX.foo',
    },
    pub: ['team-a.>'],
    sub: ['team-a.>', '_INBOX_team-a_worker.>', 'ok.sub'],
    warnings: [
      ['nats.io/allowed-pub-subjects', 'reserved_subject'],
      ['nats.io/allowed-sub-subjects', 'reserved_subject'],
      ['nats.io/allowed-sub-subjects', 'reserved_subject'],
      ['nats.io/allowed-sub-subjects', 'reserved_subject'],
      ['nats.io/allowed-sub-subjects', 'reserved_subject'],
    ],
  },
  {
    name: 'a wildcard first token would cover every inbox: filtered',
    annotations: { 'nats.io/allowed-sub-subjects': '>, *.>, *.events' },
    sub: ['team-a.>', '_INBOX_team-a_worker.>'],
    warnings: [
      ['nats.io/allowed-sub-subjects', 'reserved_subject'],
      ['nats.io/allowed-sub-subjects', 'reserved_subject'],
      ['nats.io/allowed-sub-subjects', 'reserved_subject'],
    ],
  },
  {
    name: 'invalid subjects are rejected with a warning',
    annotations: {
      'nats.io/allowed-pub-subjects': 'a..b, a.>.b, a.b*, with space, good.one, .lead, trail.',
    },
    pub: ['team-a.>', 'good.one'],
    warnings: Array.from(
      { length: 6 },
      () => ['nats.io/allowed-pub-subjects', 'invalid_subject'] as [string, string],
    ),
  },
  {
    name: 'deny lists',
    annotations: {
      'nats.io/denied-pub-subjects': 'team-a.admin.>, ',
      'nats.io/denied-sub-subjects': 'team-a.secret.*,bad..x',
    },
    pubDeny: ['team-a.admin.>'],
    subDeny: ['team-a.secret.*'],
    warnings: [['nats.io/denied-sub-subjects', 'invalid_subject']],
  },
  {
    name: 'deny lists may use wildcards and inbox subjects (denying is always safe)',
    annotations: { 'nats.io/denied-sub-subjects': '_INBOX.>, >' },
    subDeny: ['_INBOX.>', '>'],
  },
  {
    name: 'unrelated annotations are ignored',
    annotations: { 'nats.io/other': 'x.>', 'example.com/allowed-pub-subjects': 'y.>' },
  },
];

for (const c of cases) {
  test(`annotations: ${c.name}`, () => {
    const { permissions, warnings } = buildPermissions({
      namespace: ns,
      serviceAccount: sa,
      annotations: c.annotations,
    });
    assert.deepEqual(permissions.pub.allow, c.pub ?? ['team-a.>']);
    assert.deepEqual(permissions.sub.allow, c.sub ?? ['team-a.>', '_INBOX_team-a_worker.>']);
    assert.deepEqual(permissions.pub.deny, c.pubDeny ?? []);
    assert.deepEqual(permissions.sub.deny, c.subDeny ?? []);
    assert.deepEqual(
      warnings.map((w) => [w.annotation, w.reason]).sort(),
      (c.warnings ?? []).slice().sort(),
    );
    assert.deepEqual(permissions.resp, { max: 1, ttl: 0 });
  });
}

test('too many entries are cut with a warning', () => {
  const many = Array.from({ length: 70 }, (_, i) => `s${i}.x`).join(',');
  const { permissions, warnings } = buildPermissions({
    namespace: ns,
    serviceAccount: sa,
    annotations: { 'nats.io/allowed-pub-subjects': many },
  });
  assert.equal(permissions.pub.allow.length, 1 + 64);
  assert.equal(warnings.length, 6);
  assert.ok(warnings.every((w) => w.reason === 'too_many_entries'));
});

test('isValidSubject', () => {
  for (const s of ['a', 'a.b', 'a.*', 'a.>', '*', '>', '$JS.API.>', 'a-b_c.d'])
    assert.ok(isValidSubject(s), s);
  for (const s of ['', 'a.', '.a', 'a..b', 'a.>.b', 'a>', 'a*', 'a b', 'a\tb', 'x'.repeat(300)]) {
    assert.ok(!isValidSubject(s), s);
  }
});

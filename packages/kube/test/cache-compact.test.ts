// The verified-token cache keeps identities in a compact form (the shared part of each
// ServiceAccount once, the per-token strings apart) and rebuilds them on hits; the decision
// cache keeps most decisions as one number. What comes out must equal what went in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  serviceAccountGroups,
  type ServiceAccountIdentity,
  type SubjectAccessReviewStatus,
} from '@precinct/kube';

const EXP = new Date(Date.UTC(2030, 0, 1));

const jwksShaped = (): ServiceAccountIdentity => ({
  username: 'system:serviceaccount:team-a:builder',
  uid: '11111111-2222-4333-8444-555555555555',
  groups: serviceAccountGroups('team-a'),
  namespace: 'team-a',
  serviceAccountName: 'builder',
  pod: { name: 'builder-7d9f', uid: '99999999-2222-4333-8444-555555555555' },
  node: { name: 'node-1', uid: '88888888-2222-4333-8444-555555555555' },
  audiences: ['precinct'],
  expiresAt: EXP,
  extra: {
    'authentication.kubernetes.io/pod-name': ['builder-7d9f'],
    'authentication.kubernetes.io/pod-uid': ['99999999-2222-4333-8444-555555555555'],
    'authentication.kubernetes.io/node-name': ['node-1'],
    'authentication.kubernetes.io/node-uid': ['88888888-2222-4333-8444-555555555555'],
    'authentication.kubernetes.io/credential-id': [`JTI=${'c0ffee00-0000-4000-8000'}-000000000001`],
  },
  source: 'jwks',
});

/** A TokenReview answer: extra in the API server's (alphabetical) order, mutable arrays. */
const tokenReviewShaped = (): ServiceAccountIdentity => ({
  username: 'system:serviceaccount:team-b:runner',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:team-b', 'system:authenticated'],
  namespace: 'team-b',
  serviceAccountName: 'runner',
  pod: { name: 'runner-1' },
  audiences: ['https://kubernetes.default.svc'],
  expiresAt: EXP,
  extra: {
    'authentication.kubernetes.io/credential-id': ['JTI=abc'],
    'authentication.kubernetes.io/pod-name': ['runner-1'],
  },
  source: 'tokenreview',
});

const shapes: Record<string, () => ServiceAccountIdentity> = {
  'JWKS, pod and node': jwksShaped,
  'TokenReview order, pod without uid, no uid': tokenReviewShaped,
  'no pod, node without uid, no exp, no extra': () => ({
    username: 'system:serviceaccount:c:d',
    groups: [],
    namespace: 'c',
    serviceAccountName: 'd',
    node: { name: 'n' },
    audiences: [],
    extra: { 'authentication.kubernetes.io/node-name': ['n'] },
    source: 'jwks',
  }),
  'exp with milliseconds': () => ({ ...jwksShaped(), expiresAt: new Date(EXP.getTime() + 123) }),
  'extra the pod and node do not explain (kept as it came)': () => ({
    ...jwksShaped(),
    extra: { ...jwksShaped().extra, scopes: ['a', 'b'] },
  }),
  'extra with two credential ids (kept as it came)': () => ({
    ...tokenReviewShaped(),
    extra: {
      ...tokenReviewShaped().extra,
      'authentication.kubernetes.io/credential-id': ['a', 'b'],
    },
  }),
  'a property of its own (kept as it came)': () =>
    ({ ...jwksShaped(), tenant: 'x' }) as ServiceAccountIdentity,
  'uid present but undefined (kept as it came)': () => ({ ...tokenReviewShaped(), uid: undefined }),
};

for (const [name, make] of Object.entries(shapes)) {
  test(`cachingVerifier: a hit equals the verified identity (${name})`, async () => {
    let calls = 0;
    const v = cachingVerifier({
      verify: async () => {
        calls++;
        return make();
      },
    });
    const first = await v.verify('t');
    const hit = await v.verify('t');
    assert.equal(calls, 1);
    assert.deepStrictEqual(hit, make());
    assert.deepStrictEqual(Object.keys(hit), Object.keys(first), 'same keys, same order');
    if (name.includes('kept as it came')) assert.equal(hit, first);
    else assert.notEqual(hit, first, 'rebuilt from the compact form');
  });
}

test('cachingVerifier: changing the identity a miss returned does not change later hits', async () => {
  const v = cachingVerifier({ verify: async () => tokenReviewShaped() });
  const first = await v.verify('t');
  first.groups.push('system:masters');
  first.pod!.name = 'other';
  first.extra['authentication.kubernetes.io/pod-name']![0] = 'other';
  assert.deepStrictEqual(await v.verify('t'), tokenReviewShaped());
});

test('cachingVerifier: shared arrays of hits are frozen', async () => {
  const v = cachingVerifier({ verify: async () => tokenReviewShaped() });
  await v.verify('t');
  const hit = await v.verify('t');
  assert.ok(Object.isFrozen(hit.groups) && Object.isFrozen(hit.audiences));
  assert.throws(() => hit.groups.push('system:masters'), TypeError);
});

test('cachingVerifier: an identity whose exp is not a date is not cached', async () => {
  let calls = 0;
  const v = cachingVerifier({
    verify: async () => {
      calls++;
      return { ...jwksShaped(), expiresAt: new Date(NaN) };
    },
  });
  await v.verify('t');
  await v.verify('t');
  assert.equal(calls, 2);
  assert.equal(v.size, 0);
});

test('cachingVerifier: distinct tokens, distinct entries', async () => {
  const v = cachingVerifier({
    verify: async (token) => ({ ...tokenReviewShaped(), serviceAccountName: token }),
  });
  for (const t of ['a', 'b', 'a', 'b']) assert.equal((await v.verify(t)).serviceAccountName, t);
  assert.equal(v.size, 2);
});

test('SAR cache: every kind of answer comes back as it was given', async () => {
  const answers: Record<string, SubjectAccessReviewStatus> = {
    allowed: { allowed: true },
    'not allowed': { allowed: false },
    denied: { allowed: false, denied: true },
    'allowed and denied': { allowed: true, denied: true },
    'with a reason': { allowed: true, reason: 'RBAC: allowed by RoleBinding "r/x"' },
    'denied with a reason': { allowed: false, denied: true, reason: 'webhook says no' },
  };
  let clock = 1_700_000_000_000;
  let asked = 0;
  for (const ttl of [300_000, Infinity]) {
    const authz = createSubjectAccessReviewAuthorizer({
      review: async (spec) => {
        asked++;
        return answers[spec.user!]!;
      },
      allowedTtlMs: ttl,
      deniedTtlMs: ttl,
      now: () => clock,
    });
    for (const [user, status] of Object.entries(answers)) {
      const attrs = { verb: 'get', resource: 'pods' };
      const fresh = await authz.authorize({ username: user }, attrs);
      clock += 1000;
      const cached = await authz.authorize({ username: user }, attrs);
      const expected = {
        allowed: status.allowed && !status.denied,
        denied: status.denied === true,
        ...(status.reason ? { reason: status.reason } : {}),
      };
      assert.deepStrictEqual(fresh, { ...expected, cached: false }, `${user}, ttl ${ttl}`);
      assert.deepStrictEqual(cached, { ...expected, cached: true }, `${user}, ttl ${ttl}`);
    }
  }
  assert.equal(asked, 2 * Object.keys(answers).length);
});

test('SAR cache: the clock going back does not turn one answer into another', async () => {
  let clock = 1_700_000_000_000;
  const authz = createSubjectAccessReviewAuthorizer({
    review: async (spec) => ({ allowed: spec.user === 'yes' }),
    now: () => clock,
  });
  clock -= 3_600_000; // before the cache was made: deadlines are negative
  const attrs = { verb: 'get', resource: 'pods' };
  for (const user of ['yes', 'no', 'yes', 'no']) {
    assert.equal((await authz.authorize({ username: user }, attrs)).allowed, user === 'yes');
  }
  assert.equal((await authz.authorize({ username: 'no' }, attrs)).cached, true);
});

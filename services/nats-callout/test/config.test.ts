import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAccount, createCurve, createUser } from '@nats-io/nkeys';
import { tempDir } from '@precinct/testing';
import { ConfigError, loadConfig, parseDurationSeconds } from '@precinct/nats-callout';

const dir = tempDir('nats-callout-config-');
after(() => dir.cleanup());
const file = (name: string, content: string) => {
  const p = join(dir.path, name);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
};
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const accountSeedFile = file('account.seed', dec(createAccount().getSeed()) + '\n');
const userSeedFile = file('user.seed', dec(createUser().getSeed()));
const xkeySeedFile = file('xkey.seed', dec(createCurve().getSeed()));
const credsFile = file(
  'callout.creds',
  `-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${dec(createUser().getSeed())}\n------END USER NKEY SEED------\n`,
);

const base = {
  NATS_TOKEN: 'callout-secret',
  NATS_SIGNING_KEY_FILE: accountSeedFile,
  NATS_ACCOUNT: 'APP',
  K8S_IN_CLUSTER: 'false',
  JWT_ISSUER: 'https://issuer.example',
  JWKS_PATH: '/tmp/jwks.json',
};

test('defaults match the reference service', () => {
  const c = loadConfig({ ...base });
  assert.equal(c.http.port, 8080);
  assert.deepEqual(c.natsServers, ['nats://nats:4222']);
  assert.deepEqual(c.natsAuth, { kind: 'token', token: 'callout-secret' });
  assert.equal(c.token.audience, 'nats');
  assert.equal(c.userJwtMaxTtlSeconds, 3600);
  assert.equal(c.queueGroup, 'nats-callout');
  assert.equal(c.sharedInbox, false);
  assert.equal(c.logLevel, 'info');
  assert.match(c.signingKeySeed, /^SA/);
});

test('in-cluster defaults issuer and JWKS to the API server', () => {
  const c = loadConfig({
    NATS_TOKEN: 't',
    NATS_SIGNING_KEY_FILE: accountSeedFile,
    NATS_ACCOUNT: 'A',
  });
  assert.equal(c.token.issuer, 'https://kubernetes.default.svc');
  assert.equal(c.token.jwksUrl, 'https://kubernetes.default.svc/openid/v1/jwks');
  assert.equal(c.kube.inCluster, true);
});

test('credentials in NATS_URL are taken out of the URL', () => {
  const c = loadConfig({
    ...base,
    NATS_TOKEN: undefined,
    NATS_URL: 'nats://callout:p%40ss@a:4222,nats://callout:p%40ss@b:4222',
  });
  assert.deepEqual(c.natsAuth, { kind: 'userpass', user: 'callout', pass: 'p@ss' });
  assert.deepEqual(c.natsServers, ['nats://a:4222', 'nats://b:4222']);
});

test('all optional settings', () => {
  const c = loadConfig({
    ...base,
    NATS_TOKEN: undefined,
    NATS_USER_CREDS_FILE: credsFile,
    NATS_XKEY_SEED_FILE: xkeySeedFile,
    NATS_USER_JWT_MAX_TTL: '15m',
    NATS_QUEUE_GROUP: 'q1',
    NATS_SHARED_INBOX: 'true',
    JWT_AUDIENCE: 'nats-prod',
    K8S_NAMESPACE: 'team-a',
    KUBECONFIG: '/tmp/kc',
    LOG_LEVEL: 'debug',
    PORT: '0',
  });
  assert.equal(c.natsAuth.kind, 'creds');
  assert.match(c.xkeySeed!, /^SX/);
  assert.equal(c.userJwtMaxTtlSeconds, 900);
  assert.equal(c.queueGroup, 'q1');
  assert.equal(c.sharedInbox, true);
  assert.equal(c.token.audience, 'nats-prod');
  assert.deepEqual(c.kube, { inCluster: false, kubeconfigPath: '/tmp/kc', namespace: 'team-a' });
  assert.equal(c.http.port, 0);
});

test('parseDurationSeconds', () => {
  for (const [raw, want] of [
    ['90', 90],
    ['90s', 90],
    ['15m', 900],
    ['1h30m', 5400],
    ['1.5h', undefined],
    ['-1s', undefined],
    ['', undefined],
    ['1d', undefined],
  ] as const) {
    assert.equal(parseDurationSeconds(raw), want, raw);
  }
});

// Each bad setting yields exactly one line that names its variable.
const bad: Array<[string, Record<string, string | undefined>, RegExp]> = [
  ['no signing key', { NATS_SIGNING_KEY_FILE: undefined }, /^NATS_SIGNING_KEY_FILE is required/],
  [
    'unreadable signing key',
    { NATS_SIGNING_KEY_FILE: '/nonexistent/x' },
    /^NATS_SIGNING_KEY_FILE: cannot read/,
  ],
  [
    'user seed as signing key',
    { NATS_SIGNING_KEY_FILE: userSeedFile },
    /^NATS_SIGNING_KEY_FILE holds a user seed \(SU\.\.\.\)/,
  ],
  [
    'xkey seed as signing key',
    { NATS_SIGNING_KEY_FILE: xkeySeedFile },
    /^NATS_SIGNING_KEY_FILE does not hold an account seed/,
  ],
  [
    'account seed as xkey',
    { NATS_XKEY_SEED_FILE: accountSeedFile },
    /^NATS_XKEY_SEED_FILE does not hold a curve/,
  ],
  ['no account', { NATS_ACCOUNT: undefined }, /^NATS_ACCOUNT is required/],
  ['account with wildcard', { NATS_ACCOUNT: 'A.>' }, /^NATS_ACCOUNT must be an account name/],
  [
    'no nats credential',
    { NATS_TOKEN: undefined },
    /^NATS_USER_CREDS_FILE, NATS_TOKEN or user:password/,
  ],
  [
    'token and creds',
    { NATS_USER_CREDS_FILE: credsFile },
    /^NATS_USER_CREDS_FILE and NATS_TOKEN are exclusive/,
  ],
  [
    'token and url user',
    { NATS_URL: 'nats://u:p@h:4222' },
    /^NATS_TOKEN and user:password in NATS_URL are exclusive/,
  ],
  [
    'url user without password',
    { NATS_TOKEN: undefined, NATS_URL: 'nats://u@h:4222' },
    /^NATS_URL has a user but no password/,
  ],
  [
    'creds file not creds',
    { NATS_TOKEN: undefined, NATS_USER_CREDS_FILE: accountSeedFile },
    /^NATS_USER_CREDS_FILE: ".*" is not a NATS credentials file/,
  ],
  ['http nats url', { NATS_URL: 'http://h:4222' }, /^NATS_URL must use nats:\/\/ or tls:\/\//],
  ['jwks url and path', { JWKS_URL: 'https://x/jwks' }, /^JWKS_URL and JWKS_PATH are exclusive/],
  [
    'jwks url not http',
    { JWKS_PATH: undefined, JWKS_URL: 'ftp://x' },
    /^JWKS_URL must be an http\(s\) URL/,
  ],
  [
    'no issuer off-cluster',
    { JWT_ISSUER: undefined },
    /^JWT_ISSUER is required outside the cluster/,
  ],
  ['in-cluster not a bool', { K8S_IN_CLUSTER: 'maybe' }, /^K8S_IN_CLUSTER must be true or false/],
  [
    'shared inbox not a bool',
    { NATS_SHARED_INBOX: 'yes please' },
    /^NATS_SHARED_INBOX must be true or false/,
  ],
  [
    'ttl unparsable',
    { NATS_USER_JWT_MAX_TTL: '1 hour' },
    /^NATS_USER_JWT_MAX_TTL must be a duration/,
  ],
  ['ttl zero', { NATS_USER_JWT_MAX_TTL: '0s' }, /^NATS_USER_JWT_MAX_TTL must be a duration/],
  ['ttl too long', { NATS_USER_JWT_MAX_TTL: '200h' }, /^NATS_USER_JWT_MAX_TTL must be a duration/],
  ['queue group wildcard', { NATS_QUEUE_GROUP: 'a*' }, /^NATS_QUEUE_GROUP must be a plain name/],
  ['bad log level', { LOG_LEVEL: 'loud' }, /^LOG_LEVEL must be one of/],
  ['bad namespace', { K8S_NAMESPACE: 'Team_A' }, /^K8S_NAMESPACE must be a namespace name/],
  ['bad port', { PORT: '99999' }, /^PORT must be a port number/],
];

for (const [name, env, want] of bad) {
  test(`rejects: ${name}`, () => {
    // Positive control: the base configuration alone loads.
    assert.doesNotThrow(() => loadConfig({ ...base }));
    const err = (() => {
      try {
        loadConfig({ ...base, ...env });
      } catch (e) {
        return e;
      }
      assert.fail('expected a ConfigError');
    })();
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'ERR_CONFIG');
    assert.equal(err.problems.length, 1, err.problems.join(' | '));
    assert.match(err.problems[0]!, want);
    // A secret never appears in the message.
    assert.doesNotMatch(err.message, /callout-secret/);
  });
}

test('every problem is reported at once', () => {
  try {
    loadConfig({ NATS_USER_JWT_MAX_TTL: 'x', LOG_LEVEL: 'loud', K8S_IN_CLUSTER: 'false' });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const vars = err.problems.map((p) => p.split(/[\s:,]/)[0]);
    for (const v of [
      'NATS_USER_CREDS_FILE',
      'NATS_SIGNING_KEY_FILE',
      'NATS_ACCOUNT',
      'JWT_ISSUER',
      'NATS_USER_JWT_MAX_TTL',
      'LOG_LEVEL',
    ]) {
      assert.ok(vars.includes(v), `${v} missing from ${err.problems.join(' | ')}`);
    }
  }
});

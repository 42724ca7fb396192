import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAccount, createCurve, createUser } from '@nats-io/nkeys';
import { tempDir } from '@precinct/testing';
import {
  ConfigError,
  loadConfig,
  parseDurationSeconds,
  parseSigningKeyFile,
} from '@precinct/nats-callout';

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

test('NATS_SIGNING_KEY_FILE: every format the reference service loads', () => {
  const account = createAccount();
  const seed = dec(account.getSeed());
  const formats: Array<[string, string]> = [
    ['bare seed', seed],
    ['trailing newline', `${seed}\n`],
    ['CRLF and surrounding blanks', `\r\n  ${seed}  \r\n\r\n`],
    [
      'wrapped over lines (Go base32 skips line breaks)',
      `${seed.slice(0, 30)}\n${seed.slice(30)}\n`,
    ],
    ['NKEY SEED block', `-----BEGIN NKEY SEED-----\n${seed}\n------END NKEY SEED------\n`],
    [
      'creds-style file with a JWT and a USER NKEY SEED block',
      `-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.sig\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n\n*************************************************************\n`,
    ],
    [
      'block with indented lines and CRLF',
      `  -----BEGIN NKEY SEED-----\r\n   ${seed}  \r\n------END NKEY SEED------\r\n`,
    ],
    ['block without an END line', `-----BEGIN NKEY SEED-----\n\n${seed}\n\n`],
  ];
  for (const [name, content] of formats) {
    const r = parseSigningKeyFile(content);
    assert.deepEqual(r, { seed }, name);
    const c = loadConfig({
      ...base,
      NATS_SIGNING_KEY_FILE: file(`fmt-${name.replace(/\W+/g, '-')}.seed`, content),
    });
    assert.equal(c.signingKeySeed, seed, name);
  }
});

test('NATS_SIGNING_KEY_FILE: what the reference refuses is refused, without quoting the file', () => {
  const seed = dec(createAccount().getSeed());
  const user = dec(createUser().getSeed());
  // Flip one character in the middle: the CRC no longer matches.
  const mid = seed.length >> 1;
  const damaged = seed.slice(0, mid) + (seed[mid] === 'A' ? 'B' : 'A') + seed.slice(mid + 1);
  const bad: Array<[string, string, RegExp]> = [
    ['user seed', user, /holds a user seed/],
    [
      'user seed in a creds file',
      `-----BEGIN USER NKEY SEED-----\n${user}\n------END USER NKEY SEED------\n`,
      /holds a user seed/,
    ],
    ['damaged seed', damaged, /damaged account seed/],
    [
      'BEGIN but no seed block',
      `-----BEGIN NATS USER JWT-----\nabc\n------END NATS USER JWT------\n`,
      /has no seed/,
    ],
    [
      'seed block empty',
      `-----BEGIN NKEY SEED-----\n------END NKEY SEED------\n${seed}\n`,
      /has no seed/,
    ],
    ['curve seed', dec(createCurve().getSeed()), /does not hold an account seed/],
    ['two seeds on one line', `${seed} ${seed}`, /does not hold an account seed/],
  ];
  for (const [name, content, want] of bad) {
    const r = parseSigningKeyFile(content);
    assert.ok('problem' in r, name);
    assert.match(r.problem, want, name);
    assert.ok(
      !r.problem.includes(seed.slice(2, 20)) && !r.problem.includes(user.slice(2, 20)),
      name,
    );
  }
});

test('SSL_CERT_FILE and SSL_CERT_DIR add PEM roots; JWKS timing settings', () => {
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const certDir = join(dir.path, 'certs');
  mkdirSync(certDir);
  writeFileSync(join(certDir, 'a.pem'), pem);
  writeFileSync(join(certDir, 'notes.txt'), 'not a certificate');
  const c = loadConfig({
    ...base,
    SSL_CERT_FILE: file('roots.pem', pem),
    SSL_CERT_DIR: `${certDir}:/nonexistent-dir`,
    JWKS_RETRY_INTERVAL: '30s',
    JWKS_REFRESH_INTERVAL: '1h',
    JWKS_MAX_STALE: '2h',
  });
  assert.equal(c.token.extraRootsPem?.length, 2);
  assert.equal(c.token.retryIntervalSeconds, 30);
  assert.equal(c.token.refreshIntervalSeconds, 3600);
  assert.equal(c.token.maxStaleSeconds, 7200);
  const d = loadConfig({ ...base });
  assert.equal(d.token.extraRootsPem, undefined);
  assert.equal(d.token.retryIntervalSeconds, 10);
  assert.equal(d.token.maxStaleSeconds, 600);
  // As Go: an unreadable or certificate-less SSL_CERT_FILE is ignored, and said (not fatal).
  const junk = loadConfig({ ...base, SSL_CERT_FILE: file('junk.pem', 'junk') });
  assert.equal(junk.token.extraRootsPem, undefined);
  assert.match(junk.warnings?.[0] ?? '', /^SSL_CERT_FILE ".*" holds no PEM certificate; ignored/);
  const missing = loadConfig({ ...base, SSL_CERT_FILE: '/nonexistent/roots.pem' });
  assert.match(missing.warnings?.[0] ?? '', /^SSL_CERT_FILE: cannot read ".*" \(ENOENT\); ignored/);
  assert.equal(c.warnings, undefined);
  for (const [env, want] of [
    [{ JWKS_MAX_STALE: 'soon' }, /^JWKS_MAX_STALE must be a duration/],
    [{ JWKS_RETRY_INTERVAL: '0s' }, /^JWKS_RETRY_INTERVAL must be a duration/],
  ] as const) {
    assert.throws(
      () => loadConfig({ ...base, ...env }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.problems.length, 1, e.problems.join(' | '));
        assert.match(e.problems[0]!, want);
        return true;
      },
    );
  }
});

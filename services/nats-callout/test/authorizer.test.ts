import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createAccount, createCurve, createServer, createUser } from '@nats-io/nkeys';
import {
  Authorizer,
  createMetrics,
  GENERIC_ERROR,
  staticServiceAccounts,
  type ServiceAccountTokenVerifier,
  type ServiceAccountSource,
} from '@precinct/nats-callout';
import { createLogger } from '@precinct/runtime';
import { decodeNatsJwt, encodeNatsJwt, nkeySigner } from '../src/nats-jwt.js';

const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const enc = (s: string) => new TextEncoder().encode(s);
const NOW = Date.UTC(2030, 0, 1);
const nowS = NOW / 1000;

const account = createAccount();
const server = createServer();
const serverSigner = nkeySigner(dec(server.getSeed()));
const xkey = createCurve();
const serverXkey = createCurve();

const GOOD = 'good-token';
const verifier: ServiceAccountTokenVerifier = {
  async verify(token) {
    if (token === GOOD || token === 'jwt-field-token') {
      return {
        username: 'system:serviceaccount:team-a:worker',
        uid: 'uid-1',
        namespace: 'team-a',
        serviceAccountName: 'worker',
        expiresAt: new Date(NOW + 600_000),
      };
    }
    if (token === 'long-lived') {
      return { username: 'u', namespace: 'team-a', serviceAccountName: 'worker' };
    }
    if (token === 'ghost') {
      return { username: 'u', namespace: 'team-a', serviceAccountName: 'ghost' };
    }
    if (token === 'unavailable')
      throw Object.assign(new Error('x'), { code: 'ERR_KUBE_UNAVAILABLE' });
    throw Object.assign(new Error('bad'), { code: 'ERR_TOKEN_AUDIENCE' });
  },
};

function authorizer(
  opts: { serviceAccounts?: ServiceAccountSource; log?: string[]; maxTtl?: number } = {},
) {
  const sink = new Writable({
    write(chunk, _e, cb) {
      opts.log?.push(chunk.toString());
      cb();
    },
  });
  const metrics = createMetrics();
  return {
    metrics,
    authz: new Authorizer({
      signingKeySeed: dec(account.getSeed()),
      account: 'APP',
      xkeySeed: dec(xkey.getSeed()),
      verifier,
      serviceAccounts:
        opts.serviceAccounts ??
        staticServiceAccounts([
          {
            namespace: 'team-a',
            name: 'worker',
            uid: 'uid-1',
            annotations: { 'nats.io/allowed-sub-subjects': 'shared.>, _INBOX.>' },
          },
        ]),
      userJwtMaxTtlSeconds: opts.maxTtl ?? 3600,
      sharedInbox: false,
      logger: createLogger('test', 'debug', sink),
      metrics,
      now: () => NOW,
    }),
  };
}

interface RequestOpts {
  aud?: string;
  signer?: ReturnType<typeof nkeySigner>;
  serverId?: string;
  userNkey?: string;
  type?: string;
  exp?: number;
  connect?: Record<string, string>;
  xkey?: string;
}
const userNkey = createUser().getPublicKey();
function request(o: RequestOpts = {}): Uint8Array {
  return enc(
    encodeNatsJwt(
      {
        sub: account.getPublicKey(),
        aud: o.aud ?? 'nats-authorization-request',
        exp: o.exp ?? nowS + 2,
        nats: {
          type: o.type ?? 'authorization_request',
          server_id: {
            id: o.serverId ?? server.getPublicKey(),
            name: 'n1',
            ...(o.xkey ? { xkey: o.xkey } : {}),
          },
          user_nkey: o.userNkey ?? userNkey,
          client_info: { host: '127.0.0.1', id: 7 },
          connect_opts: o.connect ?? { auth_token: GOOD },
        },
      },
      o.signer ?? serverSigner,
      NOW,
    ),
  );
}

test('allowed: response and user JWT carry the right subjects, audiences, issuer and expiry', async () => {
  const { authz } = authorizer();
  const d = await authz.decide(request(), undefined);
  assert.equal(d.result, 'allowed');
  const resp = decodeNatsJwt<{ jwt: string; type: string }>(dec(d.response!));
  assert.equal(resp.iss, account.getPublicKey());
  assert.equal(resp.sub, userNkey);
  assert.equal(resp.aud, server.getPublicKey());
  assert.equal(resp.nats.type, 'authorization_response');
  const user = decodeNatsJwt<{
    pub: unknown;
    sub: { allow: string[] };
    resp: unknown;
    type: string;
  }>(resp.nats.jwt);
  assert.equal(user.iss, account.getPublicKey());
  assert.equal(user.sub, userNkey);
  assert.equal(user.aud, 'APP');
  assert.equal(user.nats.type, 'user');
  assert.equal(user.exp, nowS + 600, 'no later than the ServiceAccount token');
  assert.deepEqual(user.nats.sub.allow, ['team-a.>', '_INBOX_team-a_worker.>', 'shared.>']);
  assert.deepEqual(user.nats.resp, { max: 1, ttl: 0 });
});

test('user JWT lifetime is capped by NATS_USER_JWT_MAX_TTL', async () => {
  for (const [token, maxTtl, want] of [
    [GOOD, 60, nowS + 60],
    [GOOD, 3600, nowS + 600],
    ['long-lived', 900, nowS + 900],
  ] as const) {
    const { authz } = authorizer({ maxTtl });
    const d = await authz.decide(request({ connect: { auth_token: token } }), undefined);
    const user = decodeNatsJwt(decodeNatsJwt<{ jwt: string }>(dec(d.response!)).nats.jwt);
    assert.equal(user.exp, want, `${token} ${maxTtl}`);
  }
});

test('the jwt connect field is read before auth_token', async () => {
  const { authz } = authorizer();
  const d = await authz.decide(
    request({ connect: { jwt: 'jwt-field-token', auth_token: 'bad' } }),
    undefined,
  );
  assert.equal(d.result, 'allowed');
});

test('denials answer only the generic error; the reason goes to metrics', async () => {
  const sourceNotSynced: ServiceAccountSource = {
    get: () => undefined,
    status: () => ({ synced: false, healthy: false, size: 0 }),
    ready: async () => {},
    close: async () => {},
  };
  const cases: Array<[string, RequestOpts, string, ServiceAccountSource?]> = [
    ['no token', { connect: { user: 'x', pass: 'y' } }, 'no_token'],
    ['bad token', { connect: { auth_token: 'nope' } }, 'token_audience'],
    ['token too large', { connect: { auth_token: 'x'.repeat(17_000) } }, 'token_too_large'],
    ['unknown service account', { connect: { auth_token: 'ghost' } }, 'unknown_service_account'],
    ['jwks unreachable', { connect: { auth_token: 'unavailable' } }, 'token_unverifiable'],
    ['cache not synced', {}, 'cache_not_synced', sourceNotSynced],
  ];
  for (const [name, opts, reason, source] of cases) {
    // Positive control on the same authorizer.
    const { authz, metrics } = authorizer(source ? { serviceAccounts: source } : {});
    if (!source) assert.equal((await authz.decide(request(), undefined)).result, 'allowed', name);
    const d = await authz.decide(request(opts), undefined);
    assert.equal(d.result, 'denied', name);
    assert.equal(d.reason, reason, name);
    const resp = decodeNatsJwt<{ error?: string; jwt?: string }>(dec(d.response!));
    assert.equal(resp.nats.error, GENERIC_ERROR, name);
    assert.equal(resp.nats.jwt, undefined, name);
    assert.equal(resp.sub, userNkey, name);
    const counted = (await metrics.requests.get()).values.find(
      (v) => v.labels.result === 'denied' && v.labels.reason === reason,
    );
    assert.equal(counted?.value, 1, name);
  }
});

test('requests not from the server they name, or not for us, are dropped unanswered', async () => {
  const other = nkeySigner(dec(createServer().getSeed()));
  const cases: Array<[string, Uint8Array, string?]> = [
    ['garbage', enc('not a jwt')],
    ['wrong audience', request({ aud: 'nats' })],
    ['wrong type', request({ type: 'user' })],
    ['signed by another server than named', request({ signer: other })],
    [
      'server id not a server key',
      request({ serverId: account.getPublicKey(), signer: nkeySigner(dec(account.getSeed())) }),
    ],
    ['user nkey not a user key', request({ userNkey: account.getPublicKey() })],
    ['expired request', request({ exp: nowS - 60 })],
    ['encrypted with a bad header', request(), 'not-an-xkey'],
  ];
  const { authz } = authorizer();
  assert.equal((await authz.decide(request(), undefined)).result, 'allowed');
  for (const [name, data, header] of cases) {
    const d = await authz.decide(data, header);
    assert.equal(d.result, 'dropped', name);
    assert.equal(d.response, undefined, name);
  }
});

test('xkey: sealed request opened, response sealed to the server', async () => {
  const { authz } = authorizer();
  const sealed = serverXkey.seal(request({ xkey: serverXkey.getPublicKey() }), xkey.getPublicKey());
  const d = await authz.decide(sealed, serverXkey.getPublicKey());
  assert.equal(d.result, 'allowed');
  assert.ok(!dec(d.response!).startsWith('eyJ'), 'response is not plaintext');
  const opened = serverXkey.open(d.response!, xkey.getPublicKey());
  assert.ok(opened);
  assert.equal(decodeNatsJwt(dec(opened)).sub, userNkey);
  // Negative: header xkey differs from the signed server_id.xkey.
  const mismatch = serverXkey.seal(
    request({ xkey: createCurve().getPublicKey() }),
    xkey.getPublicKey(),
  );
  assert.equal((await authz.decide(mismatch, serverXkey.getPublicKey())).result, 'dropped');
});

test('no token or key reaches the logs', async () => {
  const log: string[] = [];
  const { authz } = authorizer({ log });
  await authz.decide(request(), undefined);
  await authz.decide(request({ connect: { auth_token: 'nope-secret-token' } }), undefined);
  const text = log.join('');
  assert.match(text, /token_audience/);
  assert.match(text, /"result":"allowed"/);
  for (const secret of [GOOD, 'nope-secret-token', dec(account.getSeed()), dec(xkey.getSeed())]) {
    assert.ok(!text.includes(secret), 'secret in logs');
  }
});

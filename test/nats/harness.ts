// Shared setup for the nats-callout end-to-end tests: a real nats-server with auth_callout,
// ServiceAccount tokens, and the callout under test.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAccount, createCurve } from '@nats-io/nkeys';
import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import {
  loadConfig,
  startNatsCallout,
  staticServiceAccounts,
  type NatsCallout,
  type NatsCalloutDeps,
  type ServiceAccountTokenVerifier,
} from '@precinct/nats-callout';
import { createLogger } from '@precinct/runtime';
import { tempDir, type NatsServer } from '@precinct/testing';

const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export const ACCOUNT = 'APP';
export const CALLOUT_USER = 'callout';

/** Keys of one test deployment: the account that signs users, and the callout's xkey. */
export interface CalloutKeys {
  accountSeed: string;
  accountPublic: string;
  xkeySeed: string;
  xkeyPublic: string;
  calloutPassword: string;
}

export function newKeys(): CalloutKeys {
  const a = createAccount();
  const x = createCurve();
  return {
    accountSeed: dec(a.getSeed()),
    accountPublic: a.getPublicKey(),
    xkeySeed: dec(x.getSeed()),
    xkeyPublic: x.getPublicKey(),
    calloutPassword: `pw-${Math.random().toString(36).slice(2)}`,
  };
}

/** nats-server config delegating every client except the callout's own user to the callout. */
export function serverConfig(keys: CalloutKeys, opts: { xkey?: boolean } = {}): string {
  return `
accounts {
  AUTH { users: [ { user: ${CALLOUT_USER}, password: "${keys.calloutPassword}" } ] }
  ${ACCOUNT} { }
}
authorization {
  auth_callout {
    issuer: "${keys.accountPublic}"
    auth_users: [ ${CALLOUT_USER} ]
    account: AUTH
    ${opts.xkey ? `xkey: "${keys.xkeyPublic}"` : ''}
  }
}
`;
}

/** A stand-in Kubernetes token issuer: RS256 keys, a JWKS file, ServiceAccount-shaped tokens. */
export interface TokenIssuer {
  issuer: string;
  jwksPath: string;
  mint(namespace: string, serviceAccount: string, opts?: MintOptions): Promise<string>;
}

export interface MintOptions {
  audience?: string | string[];
  expiresInSeconds?: number;
  uid?: string;
  /** Sign with this issuer's key but claim another `iss`. */
  issuer?: string;
}

export async function newTokenIssuer(dir: string, issuer: string): Promise<TokenIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const kid = `k-${Math.random().toString(36).slice(2)}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const jwksPath = join(dir, `jwks-${kid}.json`);
  writeFileSync(jwksPath, JSON.stringify({ keys: [jwk] }));
  return {
    issuer,
    jwksPath,
    mint: (namespace, serviceAccount, opts = {}) =>
      mintToken(privateKey as CryptoKey, kid, issuer, namespace, serviceAccount, opts),
  };
}

async function mintToken(
  key: CryptoKey,
  kid: string,
  issuer: string,
  namespace: string,
  serviceAccount: string,
  opts: MintOptions,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + (opts.expiresInSeconds ?? 3600);
  return new SignJWT({
    'kubernetes.io': {
      namespace,
      serviceaccount: {
        name: serviceAccount,
        uid: opts.uid ?? `uid-${namespace}-${serviceAccount}`,
      },
    },
  })
    .setProtectedHeader({ alg: 'RS256', kid })
    .setIssuer(opts.issuer ?? issuer)
    .setSubject(`system:serviceaccount:${namespace}:${serviceAccount}`)
    .setAudience(opts.audience ?? 'nats')
    .setIssuedAt(Math.min(now, exp - 1))
    .setNotBefore(Math.min(now, exp - 1))
    .setExpirationTime(exp)
    .sign(key);
}

/** The production token verifier: @precinct/kube's createJwksVerifier on the JWKS file. */
export async function jwksVerifier(
  t: TokenIssuer,
  audience = 'nats',
): Promise<ServiceAccountTokenVerifier> {
  const { createJwksVerifier } = await import('@precinct/kube');
  return createJwksVerifier({ issuer: t.issuer, audiences: [audience], jwksPath: t.jwksPath });
}

/** Starts the callout from environment variables, as `precinct nats-callout` would. */
export async function startCallout(
  server: NatsServer,
  keys: CalloutKeys,
  tokens: TokenIssuer,
  deps: NatsCalloutDeps,
  env: Record<string, string> = {},
): Promise<NatsCallout> {
  const dir = tempDir('nats-callout-keys-');
  try {
    const seedFile = join(dir.path, 'account.seed');
    writeFileSync(seedFile, keys.accountSeed, { mode: 0o600 });
    const xkeyFile = join(dir.path, 'xkey.seed');
    writeFileSync(xkeyFile, keys.xkeySeed, { mode: 0o600 });
    const config = loadConfig({
      HOST: '127.0.0.1',
      PORT: '0',
      NATS_URL: `nats://${CALLOUT_USER}:${keys.calloutPassword}@127.0.0.1:${server.port}`,
      NATS_SIGNING_KEY_FILE: seedFile,
      NATS_XKEY_SEED_FILE: xkeyFile,
      NATS_ACCOUNT: ACCOUNT,
      K8S_IN_CLUSTER: 'false',
      JWT_ISSUER: tokens.issuer,
      JWKS_PATH: tokens.jwksPath,
      LOG_LEVEL: 'silent',
      ...env,
    });
    const callout = await startNatsCallout(config, {
      logger: createLogger('nats-callout-test', process.env.PRECINCT_TEST_LOG ?? 'silent'),
      ...deps,
    });
    await waitFor(() => callout.status().nats === 'connected', 'callout connected to nats');
    return callout;
  } finally {
    dir.cleanup();
  }
}

/** Connects a workload with its ServiceAccount token and private inbox prefix. */
export function connectWorkload(
  server: NatsServer,
  token: string | undefined,
  inboxPrefix?: string,
): Promise<NatsConnection> {
  return connect({
    servers: server.url,
    ...(token !== undefined ? { token } : {}),
    ...(inboxPrefix ? { inboxPrefix } : {}),
    reconnect: false,
    timeout: 5_000,
  });
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Resolves with the first permission violation the server reports for `subject` on `nc`
 * after `action` runs; rejects if none arrives (the server allowed it).
 */
export async function expectPermissionViolation(
  nc: NatsConnection,
  operation: 'publish' | 'subscription',
  subject: string,
  action: () => void,
): Promise<void> {
  const it = nc.status()[Symbol.asyncIterator]();
  const seen = (async () => {
    for (;;) {
      const r: IteratorResult<Status> = await it.next();
      if (r.done) throw new Error('connection closed before a permission violation');
      const s = r.value;
      if (s.type === 'error' && s.error.name === 'PermissionViolationError') {
        const pe = s.error as Error & { operation?: string; subject?: string };
        if (pe.operation === operation && pe.subject === subject) return;
      }
    }
  })();
  action();
  await nc.flush();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      seen,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no permission violation for ${operation} ${subject}`)),
          5_000,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    void it.return?.();
  }
}

/** The count of nats_auth_requests_total{result, reason} (summed over reasons when omitted). */
export async function requestCount(
  callout: NatsCallout,
  result: string,
  reason?: string,
): Promise<number> {
  const m = await callout.metrics.requests.get();
  return m.values
    .filter(
      (v) => v.labels.result === result && (reason === undefined || v.labels.reason === reason),
    )
    .reduce((a, v) => a + v.value, 0);
}

export { staticServiceAccounts, sleep };

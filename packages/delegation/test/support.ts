import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { exportJWK, SignJWT, type JWK } from 'jose';
import { DelegationError, type DelegationFailureReason } from '@precinct/delegation';

export const ISSUER = 'https://sts.precinct.test';
export const AUDIENCE = 'audit-store';
export const PERSON = 'alice@example.com';
/** The agent presenting the token now: the outermost `act`. */
export const AGENT = 'spiffe://precinct.test/ns/agents/sa/summarizer';
/** An earlier actor, nested inside AGENT's `act`. */
export const EARLIER = 'system:serviceaccount:agents:planner';

export interface TestKey {
  alg: 'ES256' | 'EdDSA' | 'RS256';
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: JWK;
}

export async function makeKey(alg: TestKey['alg'], kid: string): Promise<TestKey> {
  const { privateKey, publicKey } =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, jwk };
}

/**
 * The claims of a valid delegation (PERSON via EARLIER via AGENT, for AUDIENCE, 5 minutes),
 * with `over` applied; an `undefined` in `over` removes that claim.
 */
export function validClaims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: ISSUER,
    sub: PERSON,
    aud: AUDIENCE,
    iat: now,
    exp: now + 300,
    jti: '6f1c1f0e-8d0e-4a53-9a53-3f2f1d1c0b0a',
    act: { sub: AGENT, act: { sub: EARLIER } },
    ...over,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

/** Signs any claims with any header, bypassing the issuer's own checks. */
export function sign(
  key: TestKey,
  claims: Record<string, unknown> = validClaims(),
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

/**
 * Signs with node:crypto directly, for headers jose refuses to produce (an unknown `crit`).
 * ES256 only.
 */
export function signRaw(key: TestKey, header: Record<string, unknown>, claims: unknown): string {
  const input = `${b64json(header)}.${b64json(claims)}`;
  const sig = cryptoSign('sha256', Buffer.from(input), {
    key: key.privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${input}.${sig.toString('base64url')}`;
}

export const b64json = (value: unknown): string =>
  Buffer.from(JSON.stringify(value)).toString('base64url');

/** An `act` chain of `n` actors, outermost first: agent-0 → agent-1 → ... */
export function chain(n: number): Record<string, unknown> {
  let act: Record<string, unknown> | undefined;
  for (let i = n - 1; i >= 0; i--) act = act ? { sub: `agent-${i}`, act } : { sub: `agent-${i}` };
  return act as Record<string, unknown>;
}

/**
 * Awaits a rejection and checks it is a DelegationError with `reason` whose message carries
 * neither the token nor any of its segments.
 */
export async function rejectsWith(
  promise: Promise<unknown>,
  reason: DelegationFailureReason,
  token?: unknown,
): Promise<DelegationError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof DelegationError, `expected DelegationError, got ${String(caught)}`);
  assert.equal(caught.reason, reason, `expected reason ${reason}, got ${caught.reason}`);
  assert.equal(caught.code, 'ERR_DELEGATION');
  assert.equal(caught.name, 'DelegationError');
  // Short garbage ("a", ".") may well occur in any sentence; a real token fragment may not.
  if (typeof token === 'string' && token.length >= 16) {
    assert.ok(!caught.message.includes(token), 'the message must not carry the token');
    for (const segment of token.split('.')) {
      if (segment.length >= 8) assert.ok(!caught.message.includes(segment));
    }
  }
  return caught;
}

/** A JWKS endpoint on loopback that counts its requests and can be stopped. */
export async function startJwksServer(keys: JWK[]) {
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    if (req.url !== '/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}/jwks.json`),
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

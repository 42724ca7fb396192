import { createServer, type Server } from 'node:http';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { exportJWK, SignJWT, type JWK } from 'jose';

export const ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface TestKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: JWK;
}

export async function makeKey(alg: 'RS256' | 'ES256', kid: string): Promise<TestKey> {
  const { privateKey, publicKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, jwk };
}

/** Claims shaped like a real cluster's projected ServiceAccount token. */
export function projectedClaims(
  over: Record<string, unknown> = {},
  ns = 'team-a',
  sa = 'builder',
): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: ISSUER,
    sub: `system:serviceaccount:${ns}:${sa}`,
    aud: ['precinct'],
    iat: now,
    nbf: now,
    exp: now + 3600,
    jti: 'c0ffee00-0000-4000-8000-000000000001',
    'kubernetes.io': {
      namespace: ns,
      serviceaccount: { name: sa, uid: '11111111-2222-4333-8444-555555555555' },
      pod: { name: 'builder-7d9f', uid: '99999999-2222-4333-8444-555555555555' },
      node: { name: 'node-1', uid: '88888888-2222-4333-8444-555555555555' },
    },
    ...over,
  };
}

export async function sign(
  key: TestKey,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

/** A real JWKS + OIDC discovery server on loopback whose keys a test can change or stop. */
export async function startJwksServer(initial: JWK[]) {
  let keys = initial;
  let hits = 0;
  let failing = false;
  const server: Server = createServer((req, res) => {
    hits++;
    if (failing) {
      res.writeHead(500).end();
      return;
    }
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: url, jwks_uri: `${url}/openid/v1/jwks` }));
      return;
    }
    if (req.url === '/openid/v1/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return {
    url,
    jwksUrl: `${url}/openid/v1/jwks`,
    get hits() {
      return hits;
    },
    setKeys(k: JWK[]) {
      keys = k;
    },
    setFailing(f: boolean) {
      failing = f;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

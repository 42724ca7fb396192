// Real peers for token-service tests: a test CA minting X.509-SVIDs (the SPIFFE SDK's own test
// CA), an OpenID Provider stand-in serving its JWKS over real HTTP, and an mTLS client.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { exportJWK, SignJWT, type JWK } from 'jose';
import { Agent, fetch } from 'undici';
import { authorizeId, tlsClientOptions, undiciConnector } from '@precinct/spiffe';
import { createLogger, type Logger } from '@precinct/runtime';
import { TestCa, type IssuedSvid } from '../../../packages/spiffe/test/support/ca.js';
import {
  MutableSvidSource,
  staticBundleSource,
} from '../../../packages/spiffe/test/support/sources.js';

export { TestCa, MutableSvidSource, staticBundleSource, type IssuedSvid };

export const IDP_ISSUER = 'https://idp.precinct.test';
export const CLIENT_ID = 'precinct-token-service';

/** An OpenID Provider stand-in: signs ID tokens with RS256 and serves its JWKS over HTTP. */
export class TestIdp {
  readonly #key: KeyObject;
  readonly kid = 'idp-1';
  #server: Server | undefined;
  jwk!: JWK;
  jwksUrl!: URL;

  constructor() {
    this.#key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  }

  async start(): Promise<this> {
    const pub = await exportJWK(createPublicKey(this.#key));
    this.jwk = { ...pub, kid: this.kid, alg: 'RS256', use: 'sig' };
    this.#server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [this.jwk] }));
    });
    await new Promise<void>((r) => this.#server!.listen(0, '127.0.0.1', r));
    this.jwksUrl = new URL(`http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/jwks`);
    return this;
  }

  /** An ID token for `sub`; `over` changes claims (undefined removes one); `key` forges. */
  async idToken(
    sub: string,
    over: Record<string, unknown> = {},
    key: KeyObject = this.#key,
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      iss: IDP_ISSUER,
      aud: CLIENT_ID,
      sub,
      iat: now,
      exp: now + 600,
      amr: ['pwd', 'otp'],
    };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) delete claims[k];
      else claims[k] = v;
    }
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: this.kid }).sign(key);
  }

  close(): void {
    this.#server?.close();
  }
}

/** Collects a pino logger's lines. */
export function captureLogger(): { logger: Logger; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    logger: createLogger('token-service-test', 'info', stream),
    text: () => chunks.join(''),
  };
}

/** A fetch that presents `svid` over mTLS and accepts only `serverId` as the server. */
export function mtlsFetch(
  svid: IssuedSvid,
  trusts: TestCa[],
  serverId: string,
): { fetch: typeof fetch; close: () => Promise<void> } {
  const agent = new Agent({
    connect: undiciConnector(
      tlsClientOptions(
        new MutableSvidSource(svid),
        staticBundleSource(trusts),
        authorizeId(serverId),
      ),
    ) as never,
  });
  return {
    fetch: ((input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) =>
      fetch(input, { ...init, dispatcher: agent })) as typeof fetch,
    close: () => agent.close(),
  };
}

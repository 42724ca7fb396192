// spiffeMiddleware (Connect-style, from @precinct/spiffe/fastify): sets req.spiffeId behind
// spiffeServer(), and answers 401 problem+json where no peer was authenticated.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import {
  authorizeAny,
  spiffeServer,
  tlsClientOptions,
  tlsServerOptions,
  type SpiffeId,
} from '@precinct/spiffe';
import { spiffeMiddleware } from '@precinct/spiffe/fastify';
import { TestCa, type IssuedSvid } from './support/ca.js';
import { MutableSvidSource, staticBundleSource } from './support/sources.js';

let ca: TestCa;
let server: IssuedSvid;
let client: IssuedSvid;

before(async () => {
  ca = await TestCa.create('example.org');
  server = await ca.issue('/server');
  client = await ca.issue('/client');
});

type Req = http.IncomingMessage & { spiffeId?: SpiffeId };

/** A handler that runs the middleware, then answers with the ID it left on the request. */
function handler(req: Req, res: http.ServerResponse): void {
  spiffeMiddleware()(req, res, (err) => {
    assert.equal(err, undefined);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ id: String(req.spiffeId) }));
  });
}

function get(
  port: number,
  lib: typeof http | typeof https,
  extra: https.RequestOptions = {},
): Promise<{ status: number; type: string | undefined; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = lib.request(
      { host: '127.0.0.1', port, path: '/', agent: false, ...extra },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: res.headers['content-type'],
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('behind spiffeServer the middleware hands the peer ID on', async (t) => {
  const opts = tlsServerOptions(
    new MutableSvidSource(server),
    staticBundleSource([ca]),
    authorizeAny(),
  );
  const srv = spiffeServer(https.createServer(opts, handler), opts);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => srv.close());
  const res = await get((srv.address() as AddressInfo).port, https, {
    ...tlsClientOptions(new MutableSvidSource(client), staticBundleSource([ca]), authorizeAny()),
  });
  assert.deepEqual(res, {
    status: 200,
    type: 'application/json',
    body: { id: 'spiffe://example.org/client' },
  });
});

test('on a plain-HTTP mount it answers 401 problem+json and never calls next', async (t) => {
  const srv = http.createServer(handler);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => srv.close());
  const res = await get((srv.address() as AddressInfo).port, http);
  assert.deepEqual(res, {
    status: 401,
    type: 'application/problem+json',
    body: {
      type: 'about:blank',
      title: 'authentication failed',
      status: 401,
      code: 'ERR_AUTHENTICATION_FAILED',
    },
  });
});

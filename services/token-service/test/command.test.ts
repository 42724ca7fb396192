// `precinct token-service` through the real CLI entry point: its SVID from a Workload API
// server, a real mTLS exchange against the printed endpoint, and flag errors all at once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { TXN_TOKEN_TYPE, createTxnTokenVerifier } from '@precinct/delegation';
import { tempDir } from '@precinct/testing';
import {
  TestWorkloadApiServer,
  x509Response,
} from '../../../packages/spiffe/test/support/workload-api-server.js';
import { ID_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from '../src/index.js';
import { CLIENT_ID, IDP_ISSUER, TestCa, TestIdp, mtlsFetch } from './support.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const TD = 'cli.precinct.test';
const SERVICE_ID = `spiffe://${TD}/token-service`;
const AGENT_ID = `spiffe://${TD}/agents/helper`;

function precinct(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', './scripts/register-source.mjs', 'cli/src/main.ts', ...args],
    {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'warn', HOST: '', PORT: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

test('flag problems are reported together, exit code 2', { timeout: 60_000 }, async () => {
  const child = precinct(['token-service', '--ttl', '900'], { SPIFFE_ENDPOINT_SOCKET: '' });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 2);
  for (const f of ['--oidc-issuer', '--oidc-client-id', '--oidc-jwks', '--grants'])
    assert.match(err, new RegExp(`${f} is required`));
  assert.match(err, /SPIFFE_ENDPOINT_SOCKET/);
});

test(
  '`precinct token-service` issues a Transaction Token over mTLS to a consented agent',
  { timeout: 120_000 },
  async (t) => {
    const ca = await TestCa.create(TD);
    const wl = await TestWorkloadApiServer.start();
    t.after(() => wl.stop());
    wl.setX509(x509Response([await ca.issue(SERVICE_ID)], ca.bundleDer()));
    const idp = await new TestIdp().start();
    t.after(() => idp.close());
    const dir = tempDir('precinct-tts-');
    t.after(() => dir.cleanup());
    const grants = join(dir.path, 'grants.json');
    writeFileSync(
      grants,
      JSON.stringify({
        people: { bob: ['docs.read', 'docs.write'] },
        agents: { [AGENT_ID]: ['docs.read'] },
        consent: { bob: [AGENT_ID] },
      }),
    );
    const child = precinct(
      [
        'token-service',
        '--listen',
        '127.0.0.1:0',
        '--health-listen',
        '127.0.0.1:0',
        '--oidc-issuer',
        IDP_ISSUER,
        '--oidc-client-id',
        CLIENT_ID,
        '--oidc-jwks',
        idp.jwksUrl.toString(),
        '--grants',
        grants,
      ],
      { SPIFFE_ENDPOINT_SOCKET: wl.address },
    );
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGTERM');
    });
    let out = '';
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const endpoint = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /token endpoint (https:\/\/\S+)/.exec(out);
        if (m && /probes and metrics on/.test(out)) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    const jwksUrl = /JWKS (https:\/\/\S+)/.exec(out)![1]!;
    const healthUrl = /probes and metrics on (http:\/\/\S+)/.exec(out)![1]!;
    const agent = mtlsFetch(await ca.issue(AGENT_ID), [ca], SERVICE_ID);
    t.after(() => agent.close());
    const res = await agent.fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
        requested_token_type: TXN_TOKEN_TYPE,
        audience: TD,
        scope: 'docs.read docs.write',
        subject_token: await idp.idToken('bob'),
        subject_token_type: ID_TOKEN_TYPE,
      }).toString(),
    });
    const body = (await res.json()) as { access_token: string; scope: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.scope, 'docs.read', 'bob ∩ agent');
    const verified = await createTxnTokenVerifier({
      trustDomain: TD,
      issuer: SERVICE_ID,
      jwks: new URL(jwksUrl),
      fetch: agent.fetch as unknown as typeof globalThis.fetch,
    }).verify(body.access_token);
    assert.equal(verified.subject, 'bob');
    assert.equal(verified.actor, AGENT_ID);
    assert.equal((await fetch(`${healthUrl}/ready`)).status, 200);
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, err);
  },
);

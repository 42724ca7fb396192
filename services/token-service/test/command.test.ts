// `precinct token-service` through the real CLI entry point: its SVID from a Workload API
// server, a real mTLS exchange against the printed endpoint, and flag errors all at once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import { TXN_TOKEN_TYPE, createTxnTokenVerifier } from '@precinct/delegation';
import { policyFiles, wasmPolicy, type PolicyData } from '@precinct/policy';
import { peerSkip, tempDir } from '@precinct/testing';
import { startOpaServer } from '../../../packages/policy/test/opa.js';
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

test(
  'flags of the policy and the audit store: every problem at once, exit code 2',
  { timeout: 60_000 },
  async (t) => {
    const dir = tempDir('precinct-tts-flags-');
    t.after(() => dir.cleanup());
    const grants = join(dir.path, 'grants.json');
    writeFileSync(grants, JSON.stringify({ people: {}, agents: {}, consent: {} }));
    const data = join(dir.path, 'data.json');
    writeFileSync(data, JSON.stringify({ precinct: { trust_domain: TD, users: [] } }));
    const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const child = precinct(['token-service', ...args], env);
      let err = '';
      child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      return { code, err };
    };
    const oidc = ['--oidc-issuer', IDP_ISSUER, '--oidc-client-id', CLIENT_ID];
    const wasm = await run(
      [
        ...oidc,
        '--oidc-jwks',
        'http://127.0.0.1:1/jwks',
        '--grants',
        grants,
        '--policy',
        'wasm',
        '--policy-data',
        data,
        '--opa-url',
        'http://127.0.0.1:8181',
        '--audit-store',
        'http://127.0.0.1:1',
      ],
      { SPIFFE_ENDPOINT_SOCKET: 'unix:///nowhere' },
    );
    assert.equal(wasm.code, 2, wasm.err);
    for (const m of [
      /"people" is not used when --policy decides the scope; remove it/,
      /"agents" is not used when --policy decides the scope/,
      /--policy-data .*precinct\.users must be an object/,
      /--opa-url needs --policy opa/,
      /--audit-store needs --audit-store-id as well/,
      /--audit-store must be an https:\/\/ URL/,
    ])
      assert.match(wasm.err, m);
    const opa = await run(
      [
        ...oidc,
        '--oidc-jwks',
        'http://127.0.0.1:1/jwks',
        '--grants',
        grants,
        '--policy',
        'opa',
        '--policy-data',
        data,
        '--audit-store-id',
        'not-an-id',
      ],
      { SPIFFE_ENDPOINT_SOCKET: 'unix:///nowhere', OPA_URL: '' },
    );
    assert.equal(opa.code, 2, opa.err);
    for (const m of [
      /--policy opa needs --opa-url or OPA_URL/,
      /--policy-data needs --policy wasm/,
      /--audit-store-id needs --audit-store as well/,
    ])
      assert.match(opa.err, m);
    // Control: without --policy the same grants file is the decision and is accepted: only
    // the one deliberate problem is reported.
    const control = await run(
      [...oidc, '--oidc-jwks', 'http://127.0.0.1:1/jwks', '--grants', grants, '--ttl', '900'],
      { SPIFFE_ENDPOINT_SOCKET: 'unix:///nowhere/socket' },
    );
    assert.equal(control.code, 2, control.err);
    assert.match(control.err, /--ttl must be from 1 to 300 seconds/);
    assert.doesNotMatch(control.err, /--grants/);
    const bogus = await run([...oidc, '--policy', 'rego'], { SPIFFE_ENDPOINT_SOCKET: '' });
    assert.equal(bogus.code, 2);
    assert.match(bogus.err, /--policy must be wasm or opa, got "rego"/);
  },
);

/**
 * Runs `precinct token-service` with a policy (`policyArgs(dataFile)`): gpt4 is granted
 * DOC-001 for alice, the summarizer refused with the policy's own reason and details.
 */
async function policyDecides(
  t: TestContext,
  policyArgs: (
    dataFile: string,
  ) => Promise<{ args: string[]; ready: RegExp; stop?: () => Promise<void> }>,
): Promise<void> {
  const ca = await TestCa.create(TD);
  const wl = await TestWorkloadApiServer.start();
  t.after(() => wl.stop());
  wl.setX509(x509Response([await ca.issue(SERVICE_ID)], ca.bundleDer()));
  const idp = await new TestIdp().start();
  t.after(() => idp.close());
  const dir = tempDir('precinct-tts-policy-');
  t.after(() => dir.cleanup());
  const user = (u: string) => `spiffe://${TD}/user/${u}`;
  const agent = (a: string) => `spiffe://${TD}/agent/${a}`;
  const grants = join(dir.path, 'grants.json');
  writeFileSync(
    grants,
    JSON.stringify({ consent: { [user('alice')]: [agent('gpt4'), agent('summarizer')] } }),
  );
  const data = join(dir.path, 'data.json');
  writeFileSync(
    data,
    JSON.stringify({
      precinct: {
        trust_domain: TD,
        users: { alice: { departments: ['engineering', 'finance'] } },
        agents: {
          gpt4: { capabilities: ['engineering'] },
          summarizer: { capabilities: ['finance'] },
        },
        documents: { 'DOC-001': { required_departments: ['engineering'] } },
      },
    }),
  );
  const policy = await policyArgs(data);
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
      '--agent-prefix',
      '/agent/',
      '--grants',
      grants,
      ...policy.args,
    ],
    { SPIFFE_ENDPOINT_SOCKET: wl.address, OPA_URL: '' },
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
      if (m && policy.ready.test(out)) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  const ask = async (name: string) => {
    const c = mtlsFetch(await ca.issue(agent(name)), [ca], SERVICE_ID);
    try {
      const res = await c.fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
          requested_token_type: TXN_TOKEN_TYPE,
          audience: TD,
          scope: 'documents:read:DOC-001',
          subject_token: await idp.idToken(user('alice')),
          subject_token_type: ID_TOKEN_TYPE,
        }).toString(),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    } finally {
      await c.close();
    }
  };
  // Positive control: gpt4 has engineering, so does alice.
  const granted = await ask('gpt4');
  assert.equal(granted.status, 200, JSON.stringify(granted.body));
  assert.equal(granted.body.scope, 'documents:read:DOC-001');
  // The summarizer has finance only: refused at the exchange, with the policy's own answer.
  const refused = await ask('summarizer');
  assert.equal(refused.status, 400, JSON.stringify(refused.body));
  assert.equal(refused.body.error, 'invalid_scope');
  assert.match(String(refused.body.txn), /^[0-9a-f-]{36}$/);
  const expected = await (
    await wasmPolicy({ data: JSON.parse(readFileSync(data, 'utf8')) as PolicyData })
  ).decide({
    person: user('alice'),
    agent: agent('summarizer'),
    document: 'DOC-001',
    action: 'read',
  });
  assert.equal(expected.reason, 'agent_lacks_capability');
  assert.deepEqual(refused.body.decision, { reason: expected.reason, details: expected.details });
  if (policy.stop) {
    // The engine gone: the exchange fails closed (503), it never falls back to granting.
    await policy.stop();
    const down = await ask('gpt4');
    assert.equal(down.status, 503, JSON.stringify(down.body));
    assert.equal(down.body.error, 'temporarily_unavailable');
  }
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, err);
}

test(
  '`precinct token-service --policy wasm`: the scope is what the policy grants person ∩ agent, refusals explained',
  { timeout: 120_000 },
  (t) =>
    policyDecides(t, async (data) => ({
      args: ['--policy', 'wasm', '--policy-data', data],
      ready: /scope decided by the Wasm policy/,
    })),
);

test(
  '`precinct token-service --policy opa`: the same answers from a real OPA server; OPA gone, 503',
  { timeout: 120_000, skip: peerSkip('opa') },
  (t) =>
    policyDecides(t, async (data) => {
      const opa = await startOpaServer([policyFiles.regoDir, data]);
      t.after(() => opa.close());
      return {
        args: ['--policy', 'opa', '--opa-url', opa.url],
        ready: /scope decided by the OPA server at http:\/\/127\.0\.0\.1:\d+/,
        stop: () => opa.close(),
      };
    }),
);

test(
  '`--policy-data` of another trust domain stops the start (exit 1): the policy would deny everyone',
  { timeout: 120_000 },
  async (t) => {
    const ca = await TestCa.create(TD);
    const wl = await TestWorkloadApiServer.start();
    t.after(() => wl.stop());
    wl.setX509(x509Response([await ca.issue(SERVICE_ID)], ca.bundleDer()));
    const dir = tempDir('precinct-tts-td-');
    t.after(() => dir.cleanup());
    const grants = join(dir.path, 'grants.json');
    writeFileSync(grants, JSON.stringify({ consent: {} }));
    const data = join(dir.path, 'data.json');
    const write = (td: string) =>
      writeFileSync(
        data,
        JSON.stringify({ precinct: { trust_domain: td, users: {}, agents: {}, documents: {} } }),
      );
    const start = async () => {
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
          'http://127.0.0.1:1/jwks',
          '--grants',
          grants,
          '--policy',
          'wasm',
          '--policy-data',
          data,
        ],
        { SPIFFE_ENDPOINT_SOCKET: wl.address },
      );
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
      const started = new Promise<void>((resolve) =>
        child.stdout!.on('data', () => {
          if (/scope decided by the Wasm policy/.test(out)) resolve();
        }),
      );
      const exited = once(child, 'exit') as Promise<[number | null]>;
      const first = await Promise.race([started.then(() => 'started' as const), exited]);
      if (first === 'started') {
        child.kill('SIGTERM');
        await exited;
      }
      return { first, out };
    };
    write('other.test');
    const other = await start();
    assert.deepEqual(other.first, [1, null], other.out);
    assert.match(
      other.out,
      /trust_domain is other\.test, but this service's SVID is of cli\.precinct\.test/,
    );
    // Control: the same file in the SVID's trust domain starts.
    write(TD);
    const same = await start();
    assert.equal(same.first, 'started', same.out);
  },
);

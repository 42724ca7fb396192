// Property-based fuzzing of the token endpoint over real mTLS (fast-check): random and mutated
// form bodies, raw bytes that are not UTF-8, broken and CESU-8 percent-escapes, duplicated and
// huge parameters, and random content types. Properties: never a 5xx, every refusal is an RFC
// 6749 error body from the fixed set, and nothing is issued unless the answer is 200 (the
// issued-token counter moves only by the 200s).
// PRECINCT_FUZZ_RUNS sets the number of requests per property; PRECINCT_FUZZ_SEED replays one.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { TXN_TOKEN_TYPE } from '@precinct/delegation';
import {
  ID_TOKEN_TYPE,
  MemoryConsentStore,
  OAUTH_ERROR_STATUS,
  TOKEN_EXCHANGE_GRANT_TYPE,
  createOidcPersonAuthenticator,
  startTokenService,
  type TokenService,
} from '../src/index.js';
import {
  CLIENT_ID,
  IDP_ISSUER,
  MutableSvidSource,
  TestCa,
  TestIdp,
  captureLogger,
  mtlsFetch,
  staticBundleSource,
} from './support.js';

const RUNS = Number(process.env.PRECINCT_FUZZ_RUNS ?? 120);
const SEED = process.env.PRECINCT_FUZZ_SEED ? Number(process.env.PRECINCT_FUZZ_SEED) : undefined;
const TD = 'fuzz.precinct.test';
const SERVICE_ID = `spiffe://${TD}/token-service`;
const AGENT_ID = `spiffe://${TD}/agents/fuzzer`;

describe('token endpoint fuzzing', () => {
  let service: TokenService;
  let idp: TestIdp;
  let post: (body: Buffer | string, type: string) => Promise<{ status: number; json: unknown }>;
  let closeClient: () => Promise<void>;
  let idToken: string;

  before(async () => {
    const ca = await TestCa.create(TD);
    idp = await new TestIdp().start();
    idToken = await idp.idToken('alice');
    const consent = new MemoryConsentStore();
    consent.grant('alice', [AGENT_ID]);
    service = await startTokenService({
      svidSource: new MutableSvidSource(await ca.issue(SERVICE_ID)),
      bundleSource: staticBundleSource([ca]),
      persons: [
        createOidcPersonAuthenticator({
          issuer: IDP_ISSUER,
          clientId: CLIENT_ID,
          jwks: idp.jwksUrl,
        }),
      ],
      consent,
      grantScope: async ({ requested }) => requested.filter((s) => s.startsWith('docs.')),
      isAgent: (id) => id.startsWith(`spiffe://${TD}/agents/`),
      host: '127.0.0.1',
      logger: captureLogger().logger,
    });
    const client = mtlsFetch(await ca.issue(AGENT_ID), [ca], SERVICE_ID);
    closeClient = client.close;
    post = async (body, type) => {
      const res = await client.fetch(service.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': type },
        body,
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
      return { status: res.status, json };
    };
  });
  after(async () => {
    await closeClient?.();
    await service?.close();
    idp?.close();
  });

  async function issuedCount(): Promise<number> {
    const text = await (await fetch(`${service.healthUrl}/metrics`)).text();
    return [...text.matchAll(/^precinct_txn_tokens_issued_total\{[^}]*\} (\d+)$/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
  }

  const good = () => ({
    grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
    requested_token_type: TXN_TOKEN_TYPE,
    audience: TD,
    scope: 'docs.read',
    subject_token: idToken,
    subject_token_type: ID_TOKEN_TYPE,
  });
  const names = [...Object.keys(good()), 'request_context', 'request_details', 'actor_token', 'x'];
  const hostileValue = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.constantFrom('%', '%G0', '%C3%28', '%ED%A0%80', '%FF', '%00', '+', '=', '&', '{}', '[]'),
    fc.constantFrom('{"a":', '{"__proto__":{"x":1}}', 'null', '1e309', TD, 'docs.read docs.x'),
    fc.nat({ max: 20_000 }).map((n) => 'x'.repeat(n)),
  );
  // A good form with some parameters dropped, replaced by hostile values, or sent twice, and
  // hostile pairs appended; encoded raw (no escaping of what the generator chose).
  const mutatedForm = fc
    .record({
      drop: fc.subarray(names),
      replace: fc.dictionary(fc.constantFrom(...names), hostileValue, { maxKeys: 3 }),
      dup: fc.subarray(names, { maxLength: 2 }),
      extra: fc.array(fc.tuple(fc.string({ maxLength: 8 }), hostileValue), { maxLength: 3 }),
    })
    .map(({ drop, replace, dup, extra }) => {
      const pairs: Array<[string, string]> = [];
      for (const [k, v] of Object.entries(good())) {
        if (drop.includes(k)) continue;
        pairs.push([k, replace[k] ?? encodeURIComponent(v)]);
      }
      for (const k of dup) pairs.push([k, encodeURIComponent(good()[k as 'scope'] ?? 'x')]);
      pairs.push(...extra);
      return pairs.map(([k, v]) => `${k}=${v}`).join('&');
    });
  const rawBytes = fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b));
  const contentType = fc.oneof(
    fc.constant('application/x-www-form-urlencoded'),
    fc.constant('application/x-www-form-urlencoded; charset=utf-8'),
    fc.constantFrom('application/json', 'text/plain', 'multipart/form-data', 'x/y'),
  );

  test('random input: never 5xx, RFC 6749 errors only, nothing issued unless 200', async () => {
    const before = await issuedCount();
    let ok = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutatedForm, rawBytes), contentType, async (body, type) => {
        const res = await post(body, type);
        assert.ok(res.status < 500, `status ${res.status}: ${JSON.stringify(res.json)}`);
        if (res.status === 200) {
          ok++;
          return;
        }
        const json = res.json as { error?: string; error_description?: string };
        assert.ok(
          typeof json.error === 'string' && Object.hasOwn(OAUTH_ERROR_STATUS, json.error),
          JSON.stringify(json),
        );
        assert.equal(res.status, OAUTH_ERROR_STATUS[json.error as keyof typeof OAUTH_ERROR_STATUS]);
        assert.equal(typeof json.error_description, 'string');
      }),
      { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) },
    );
    assert.equal(await issuedCount(), before + ok);
    // Control: the unmutated form is issued, so the property above was not vacuous.
    const res = await post(
      new URLSearchParams(good()).toString(),
      'application/x-www-form-urlencoded',
    );
    assert.equal(res.status, 200);
  });
});

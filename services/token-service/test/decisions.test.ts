// Policy refusals at the exchange: what the caller is told (only when the service explains),
// what the decision hook records (every exchange, allow and deny, token hashes only), and the
// person's token requested for a named agent (`requested_actor` -> `may_act`), which narrows to
// person ∩ agent, needs consent, and binds the token to that agent. Frozen clock, real keys.
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt, exportJWK, SignJWT } from 'jose';
import { TXN_TOKEN_TYPE } from '@precinct/delegation';
import {
  ID_TOKEN_TYPE,
  MemoryConsentStore,
  SigningKeyRing,
  TOKEN_EXCHANGE_GRANT_TYPE,
  TokenExchangeError,
  createOidcPersonAuthenticator,
  createTokenExchange,
  exchangeAuditEvents,
  tokenHash,
  type ExchangeDecision,
  type GrantScope,
  type TokenExchange,
} from '../src/index.js';

const TD = 'frozen.test';
const ISS = `spiffe://${TD}/token-service`;
const ALICE = `spiffe://${TD}/user/alice`;
const GPT = `spiffe://${TD}/agent/gpt`;
const SUMMARIZER = `spiffe://${TD}/agent/summarizer`;
const STRANGER = `spiffe://${TD}/agent/stranger`;
const DASHBOARD = `spiffe://${TD}/ns/demo/sa/dashboard`;
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);
const clock = () => T0;

const idp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const idpJwk = { ...(await exportJWK(idp.publicKey)), kid: 'idp', alg: 'ES256' };
const idToken = (sub: string) =>
  new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'idp' })
    .setIssuer('https://idp.frozen.test')
    .setAudience('tts')
    .setSubject(sub)
    .setIssuedAt(T0 / 1000)
    .setExpirationTime(T0 / 1000 + 600)
    .sign(idp.privateKey);

// A stand-in for the policy with the demo's shape: alice may read doc-1 and doc-2; through the
// summarizer only doc-2 (it lacks engineering). Every call is remembered.
const calls: Array<{ person: string; agent: string | undefined; requested: string[] }> = [];
const policy: GrantScope = async (r) => {
  calls.push(r);
  const mayRead = new Set(r.agent === SUMMARIZER ? ['docs:doc-2'] : ['docs:doc-1', 'docs:doc-2']);
  return {
    granted: r.requested.filter((s) => mayRead.has(s)),
    refused: r.requested
      .filter((s) => !mayRead.has(s))
      .map((scope) => ({
        scope,
        reason: r.agent === SUMMARIZER ? 'agent_lacks_capability' : 'person_lacks_department',
        details: { required: ['engineering'], agent: r.agent ?? null },
      })),
  };
};

let decisions: ExchangeDecision[];
let sinkErrors: unknown[];
let consent: MemoryConsentStore;
let keys: SigningKeyRing;

function service(
  o: { explain?: boolean; onDecision?: (d: ExchangeDecision) => void | Promise<void> } = {},
): TokenExchange {
  return createTokenExchange({
    trustDomain: TD,
    issuer: ISS,
    keys,
    persons: [
      createOidcPersonAuthenticator({
        issuer: 'https://idp.frozen.test',
        clientId: 'tts',
        jwks: { keys: [idpJwk] },
        clock,
      }),
    ],
    consent,
    grantScope: policy,
    isAgent: (id) => id.startsWith(`spiffe://${TD}/agent/`),
    clock,
    onDecision: o.onDecision ?? ((d) => void decisions.push(d)),
    onDecisionError: (err) => sinkErrors.push(err),
    explainRefusals: o.explain ?? true,
  });
}

function form(over: Record<string, string>): Map<string, string> {
  return new Map(
    Object.entries({
      grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
      requested_token_type: TXN_TOKEN_TYPE,
      audience: TD,
      scope: 'docs:doc-1',
      subject_token_type: ID_TOKEN_TYPE,
      ...over,
    }),
  );
}
const as = (id: string) => ({ id, trustDomain: TD });

async function refusal(p: Promise<unknown>): Promise<TokenExchangeError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TokenExchangeError, String(err));
    return err;
  }
  assert.fail('the exchange was not refused');
}

beforeEach(() => {
  decisions = [];
  sinkErrors = [];
  calls.length = 0;
  consent = new MemoryConsentStore();
  consent.grant(ALICE, [GPT, SUMMARIZER]);
  keys = new SigningKeyRing({ maxTokenLifetimeSeconds: 300, clock });
});

describe('a policy refusal at the exchange', () => {
  test('tells the caller the policy’s reason, details and txn when the service explains', async () => {
    const tts = service();
    const err = await refusal(
      tts.exchange(
        form({ subject_token: await idToken(ALICE), scope: 'docs:doc-3' }),
        as(DASHBOARD),
      ),
    );
    assert.equal(err.status, 400);
    const body = err.body();
    assert.equal(body.error, 'invalid_scope');
    assert.deepEqual(body.decision, {
      reason: 'person_lacks_department',
      details: { required: ['engineering'], agent: null },
    });
    assert.match(body.txn!, /^[0-9a-f-]{36}$/);
    // The decision hook has the same transaction, the person, and hashes only.
    const [d] = decisions;
    assert.equal(d?.decision, 'deny');
    assert.equal(d.reason, 'person_lacks_department');
    assert.equal(d.txn, body.txn);
    assert.equal(d.person, ALICE);
    assert.equal(d.caller, DASHBOARD);
    assert.equal(d.kind, 'initial');
    assert.deepEqual(d.granted, []);
    assert.deepEqual(
      d.refused.map((r) => r.scope),
      ['docs:doc-3'],
    );
    assert.match(d.subjectTokenSha256!, /^[0-9a-f]{64}$/);
    assert.equal(d.issuedTokenSha256, undefined);
    assert.doesNotMatch(JSON.stringify(decisions), /eyJ/, 'no raw token in a decision');
  });

  test('says nothing beyond the OAuth error when the service does not explain', async () => {
    const err = await refusal(
      service({ explain: false }).exchange(
        form({ subject_token: await idToken(ALICE), scope: 'docs:doc-3' }),
        as(DASHBOARD),
      ),
    );
    assert.deepEqual(Object.keys(err.body()).sort(), ['error', 'error_description']);
    // Still recorded with the policy's reason.
    assert.equal(decisions[0]?.reason, 'person_lacks_department');
  });

  test('control: what the policy allows is issued, and recorded as an allow with both hashes', async () => {
    const idt = await idToken(ALICE);
    const out = await service().exchange(
      form({ subject_token: idt, scope: 'docs:doc-1 docs:doc-3' }),
      as(DASHBOARD),
    );
    assert.equal(out.response.scope, 'docs:doc-1');
    const [d] = decisions;
    assert.equal(d?.decision, 'allow');
    assert.equal(d.txn, out.txn);
    assert.deepEqual(d.granted, ['docs:doc-1']);
    assert.deepEqual(
      d.refused.map((r) => [r.scope, r.reason]),
      [['docs:doc-3', 'person_lacks_department']],
    );
    assert.equal(d.subjectTokenSha256, tokenHash(idt));
    assert.equal(d.issuedTokenSha256, tokenHash(out.response.access_token));
  });

  test('a policy answer cannot plant a refusal for a scope nobody asked for, or an unbounded reason', async () => {
    const tts = createTokenExchange({
      trustDomain: TD,
      issuer: ISS,
      keys,
      persons: [
        createOidcPersonAuthenticator({
          issuer: 'https://idp.frozen.test',
          clientId: 'tts',
          jwks: { keys: [idpJwk] },
          clock,
        }),
      ],
      consent,
      grantScope: async () => ({
        granted: [],
        refused: [
          { scope: 'docs:other', reason: 'x' },
          { scope: 'docs:doc-1', reason: 'Not A Label <script>', details: { n: 'x'.repeat(5000) } },
        ],
      }),
      isAgent: () => false,
      clock,
      explainRefusals: true,
    });
    const err = await refusal(
      tts.exchange(form({ subject_token: await idToken(ALICE) }), as(DASHBOARD)),
    );
    assert.deepEqual(err.body().decision, { reason: 'policy_refused' });
  });

  test('other refusals are recorded with the exchange’s reason and explain nothing', async () => {
    const tts = service();
    const err = await refusal(
      tts.exchange(form({ subject_token: 'garbage', scope: 'docs:doc-1' }), as(DASHBOARD)),
    );
    assert.equal(err.body().decision, undefined);
    assert.equal(decisions[0]?.reason, 'person_proof');
    assert.equal(decisions[0]?.person, undefined);
    assert.equal(decisions[0]?.subjectTokenSha256, tokenHash('garbage'));
  });

  test('a failing decision sink delays and breaks nothing; its error is reported', async () => {
    const rejecting = service({ onDecision: async () => Promise.reject(new Error('audit down')) });
    const out = await rejecting.exchange(
      form({ subject_token: await idToken(ALICE) }),
      as(DASHBOARD),
    );
    assert.equal(out.response.scope, 'docs:doc-1');
    const throwing = service({
      onDecision: () => {
        throw new Error('sink threw');
      },
    });
    await throwing.exchange(form({ subject_token: await idToken(ALICE) }), as(DASHBOARD));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(sinkErrors.map((e) => (e as Error).message).sort(), [
      'audit down',
      'sink threw',
    ]);
  });
});

describe('requested_actor: a person’s token for a named agent', () => {
  test('narrows to person ∩ agent, carries may_act, and the policy saw the agent', async () => {
    const tts = service();
    const out = await tts.exchange(
      form({
        subject_token: await idToken(ALICE),
        scope: 'docs:doc-1 docs:doc-2',
        requested_actor: SUMMARIZER,
      }),
      as(DASHBOARD),
    );
    assert.equal(out.response.scope, 'docs:doc-2');
    const claims = decodeJwt(out.response.access_token);
    assert.deepEqual(claims.may_act, { sub: SUMMARIZER });
    assert.equal(claims.act, undefined, 'the agent has not acted yet');
    assert.equal(calls[0]?.agent, SUMMARIZER);
    assert.equal(decisions[0]?.agent, SUMMARIZER);
    // Refused outright when nothing is left, with the delegated reason.
    const err = await refusal(
      tts.exchange(
        form({ subject_token: await idToken(ALICE), requested_actor: SUMMARIZER }),
        as(DASHBOARD),
      ),
    );
    assert.equal(err.body().decision?.reason, 'agent_lacks_capability');
    assert.equal(decisions[1]?.agent, SUMMARIZER);
    // Control: the same person alone gets doc-1.
    const own = await tts.exchange(form({ subject_token: await idToken(ALICE) }), as(DASHBOARD));
    assert.equal(own.response.scope, 'docs:doc-1');
  });

  test('needs the person’s consent for that agent (control: a consented one)', async () => {
    const tts = service();
    const err = await refusal(
      tts.exchange(
        form({ subject_token: await idToken(ALICE), requested_actor: STRANGER }),
        as(DASHBOARD),
      ),
    );
    assert.equal(err.reason, 'no_consent');
    assert.equal(err.body().decision, undefined);
    assert.equal(calls.length, 0, 'no consent, no policy question');
    await tts.exchange(
      form({ subject_token: await idToken(ALICE), requested_actor: GPT }),
      as(DASHBOARD),
    );
  });

  test('must name an agent, and an agent caller cannot name another', async () => {
    const tts = service();
    for (const [value, caller] of [
      [DASHBOARD, DASHBOARD],
      [GPT, SUMMARIZER],
      [`${GPT}/${'x'.repeat(600)}`, DASHBOARD],
    ] as const) {
      const err = await refusal(
        tts.exchange(
          form({ subject_token: await idToken(ALICE), requested_actor: value }),
          as(caller),
        ),
      );
      assert.equal(err.reason, 'requested_actor', value.slice(0, 40));
    }
  });

  test('binds the token: only the named agent may act on it; the replacement drops may_act', async () => {
    const tts = service();
    const person = await tts.exchange(
      form({ subject_token: await idToken(ALICE), scope: 'docs:doc-2', requested_actor: GPT }),
      as(DASHBOARD),
    );
    const replace = (caller: string, extra: Record<string, string> = {}) =>
      tts.exchange(
        form({
          subject_token: person.response.access_token,
          subject_token_type: TXN_TOKEN_TYPE,
          scope: 'docs:doc-2',
          ...extra,
        }),
        as(caller),
      );
    const stolen = await refusal(replace(SUMMARIZER));
    assert.equal(stolen.reason, 'actor_not_permitted');
    assert.equal(decisions.at(-1)?.agent, SUMMARIZER);
    const named = await replace(GPT);
    const claims = decodeJwt(named.response.access_token);
    assert.deepEqual(claims.act, { sub: GPT });
    assert.equal(claims.may_act, undefined);
    assert.equal(claims.txn, person.txn);
    // A replacement names its actor by certificate only.
    assert.equal(
      (await refusal(replace(DASHBOARD, { requested_actor: GPT }))).reason,
      'requested_actor',
    );
    // A non-agent narrowing the token keeps the binding.
    const narrowed = await replace(DASHBOARD);
    assert.deepEqual(decodeJwt(narrowed.response.access_token).may_act, { sub: GPT });
  });
});

describe('exchangeAuditEvents', () => {
  test('one event per requested scope, the agent as actor, the person and txn indexed, hashes only', async () => {
    const tts = service();
    const idt = await idToken(ALICE);
    const out = await tts.exchange(
      form({ subject_token: idt, scope: 'docs:doc-1 docs:doc-3', requested_actor: GPT }),
      as(DASHBOARD),
    );
    const events = exchangeAuditEvents(decisions[0]!, {
      resourceOf: (s) => ({ type: 'document', id: s.slice(5), action: 'read' }),
    });
    assert.deepEqual(
      events.map((e) => [e.resource_id, e.event_outcome, e.error_code]),
      [
        ['doc-1', 'success', undefined],
        ['doc-3', 'failure', 'person_lacks_department'],
      ],
    );
    for (const e of events) {
      assert.equal(e.actor_id, GPT);
      assert.equal(e.actor_type, 'agent');
      assert.equal(e.correlation_id, out.txn);
      assert.equal(e.event_action, 'read');
      assert.equal(e.event_data.on_behalf_of, ALICE);
      assert.equal(e.event_data.caller, DASHBOARD);
      assert.equal(e.event_data.subject_token_sha256, tokenHash(idt));
      assert.equal(e.event_data.issued_token_sha256, tokenHash(out.response.access_token));
    }
    assert.doesNotMatch(JSON.stringify(events), /eyJ/);
    // Refused before any scope was read: one event, the caller as actor, its own correlation.
    await refusal(tts.exchange(form({ subject_token: idt, audience: 'x' }), as(DASHBOARD)));
    const [early] = exchangeAuditEvents(decisions[1]!);
    assert.equal(early?.actor_id, DASHBOARD);
    assert.equal(early.error_code, 'audience');
    assert.match(early.correlation_id, /^no-txn-/);
  });
});

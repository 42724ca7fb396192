import { createHash, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import {
  TXN_TOKEN_MAX_LIFETIME_SECONDS,
  TXN_TOKEN_TYP,
  TXN_TOKEN_TYPE,
  TxnTokenError,
  createTxnTokenVerifier,
  parseScope,
  type TxnToken,
  type TxnTokenVerifier,
} from '@precinct/delegation';
import type { ConsentStore } from './consent.js';
import {
  TokenExchangeError,
  TokenServiceConfigError,
  type OAuthErrorCode,
  type RefusalExplanation,
} from './errors.js';
import type { SigningKeyRing } from './keys.js';
import { PersonAuthError, type AuthenticatedPerson, type PersonAuthenticator } from './person.js';

/** RFC 8693 grant type of the token endpoint. */
export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** The caller, as proved by its X.509-SVID over mTLS (never from the request). */
export interface ExchangeCaller {
  /** SPIFFE ID, e.g. `spiffe://example.org/agents/summarizer`. */
  id: string;
  /** Its trust domain name, e.g. `example.org`. */
  trustDomain: string;
}

/** A requested scope the policy refused, and the policy's reason (a bounded label). */
export interface ScopeRefusal {
  scope: string;
  reason: string;
  /** What the policy saw (e.g. the person's departments), as JSON; never a token. */
  details?: unknown;
}

/**
 * The policy decision, injected: which of `requested` the person may use through `agent`
 * (undefined when no agent is involved). It should answer the person's permissions
 * intersected with the agent's; the exchange intersects the answer with `requested` (and, for
 * a replacement, with the old token's scope) again, so a policy bug can never widen a token.
 * It answers the granted scopes, or `{granted, refused}` to say why the others were refused
 * (`policyGrantScope` of @precinct/policy does). Rejecting means "cannot decide": the exchange
 * answers 503.
 */
export type GrantScope = (request: {
  person: string;
  agent: string | undefined;
  requested: string[];
}) => Promise<string[] | { granted: string[]; refused?: readonly ScopeRefusal[] }>;

/**
 * One exchange's outcome, allow or deny, for the audit trail (`onDecision`). Built from what
 * the service verified (the caller's certificate, the person's proof, the old token), never
 * from what the request claims; tokens appear only as SHA-256 hashes.
 */
export interface ExchangeDecision {
  decision: 'allow' | 'deny';
  /**
   * `granted`; for a deny, the policy's reason when the policy refused (e.g.
   * `person_lacks_department`), else the exchange's {@link ExchangeFailureReason}.
   */
  reason: string;
  /** The OAuth error answered, for a deny. */
  error?: OAuthErrorCode;
  /** Undefined when the request was refused before its kind was known. */
  kind?: 'initial' | 'replacement';
  /** The authenticated caller's SPIFFE ID. */
  caller: string;
  /** The person, once proved. */
  person?: string;
  /** The agent the token is (or would have been) for: the outermost actor, or `may_act`. */
  agent?: string;
  /** The actor chain of the token, outermost first. */
  actors: string[];
  /** The transaction: the old token's, or the one an initial exchange assigned. */
  txn?: string;
  requested: string[];
  granted: string[];
  refused: ScopeRefusal[];
  subjectTokenSha256?: string;
  issuedTokenSha256?: string;
  /** When the decision was made, ms since the epoch (the exchange's clock). */
  at: number;
}

/** SHA-256 of a token, hex: what logs carry instead of the token (draft section 10.2). */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface TokenExchangeOptions {
  /** This trust domain's name: the only `audience` accepted and the `aud` of every token. */
  trustDomain: string;
  /** `iss` of the tokens: the token service's own SPIFFE ID. */
  issuer: string;
  keys: SigningKeyRing;
  /** Who can prove a person, by `subject_token_type`. */
  persons: PersonAuthenticator[];
  consent: ConsentStore;
  grantScope: GrantScope;
  /** Whether a caller is an agent workload: its SPIFFE ID becomes the (outermost) actor. */
  isAgent: (callerId: string) => boolean;
  /** Which workloads of the trust domain may request tokens at all. Default: every one. */
  mayRequest?: (callerId: string) => boolean;
  /** Lifetime of issued tokens in seconds, at most 300. Default 300. */
  ttlSeconds?: number;
  /** Largest `request_context` / `request_details` JSON, in bytes. Default 2048. */
  maxContextBytes?: number;
  /** Most actors in a chain. Default 5. */
  maxActorDepth?: number;
  /** Current time in ms. Default Date.now. */
  clock?: () => number;
  /**
   * Called once per exchange with its outcome, allow or deny (wire it to the audit store). Not
   * awaited: a slow or failing sink delays no token; a rejection or throw goes to
   * `onDecisionError`.
   */
  onDecision?: (decision: ExchangeDecision) => void | Promise<void>;
  /** Receives what `onDecision` threw or rejected with. Default: ignored. */
  onDecisionError?: (err: unknown) => void;
  /**
   * Whether a policy refusal tells the caller why: the error body then carries `txn` and
   * `decision: {reason, details}` of the first refused scope (the demo's dashboard shows them,
   * as the reference does). Default false: the generic OAuth error only. Other refusals never
   * say more than the OAuth error.
   */
  explainRefusals?: boolean;
}

/** RFC 8693 2.2.1 success body, as the Transaction Tokens draft profiles it. */
export interface TokenExchangeResponse {
  access_token: string;
  issued_token_type: typeof TXN_TOKEN_TYPE;
  token_type: 'N_A';
  expires_in: number;
  scope: string;
}

/** A successful exchange: the response, and what may be logged about it. */
export interface ExchangeOutcome {
  response: TokenExchangeResponse;
  kind: 'initial' | 'replacement';
  txn: string;
  actor: string | undefined;
  requestingWorkload: string;
  scope: string[];
  expiresAt: number;
}

export interface TokenExchange {
  /**
   * Runs one token exchange. `params` are the parsed form parameters; `caller` comes from the
   * mTLS peer certificate. Rejects with TokenExchangeError only.
   */
  exchange(params: ReadonlyMap<string, string>, caller: ExchangeCaller): Promise<ExchangeOutcome>;
}

const MAX_SCOPES = 32;
const MAX_SCOPE_CHARS = 1024;
const MAX_REQ_WL_CHAIN = 16;
const RESERVED_RCTX = ['amr', 'req_wl_chain'];
const MAX_ACTOR_CHARS = 512;

function required(params: ReadonlyMap<string, string>, name: string): string {
  const value = params.get(name);
  if (value === undefined) {
    throw new TokenExchangeError('invalid_request', 'missing_parameter', `${name} is required`);
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function actClaim(actors: readonly string[]): Record<string, unknown> | undefined {
  let act: Record<string, unknown> | undefined;
  for (let i = actors.length - 1; i >= 0; i--) {
    act = act === undefined ? { sub: actors[i] } : { sub: actors[i], act };
  }
  return act;
}

/**
 * The token exchange logic of a Transaction Token Service (draft-ietf-oauth-transaction-
 * tokens-10 section 7 on RFC 8693), with no HTTP in it. Two kinds of request:
 *
 * - initial: `subject_token` proves the person (an ID token); the caller's SPIFFE ID becomes
 *   `req_wl` and, for an agent workload, `act.sub` (after the person's consent is checked);
 *   `scope` = requested ∩ policy's grant.
 * - replacement: `subject_token` is a valid Transaction Token of this trust domain; `txn`,
 *   `sub`, `aud` and `tctx` are kept, the scope may only narrow (a wider request is refused),
 *   the lifetime never extends past the old token's, consent and policy are asked again, and
 *   an agent caller other than the current actor is pushed onto the `act` chain.
 */
export function createTokenExchange(opts: TokenExchangeOptions): TokenExchange {
  const ttl = opts.ttlSeconds ?? TXN_TOKEN_MAX_LIFETIME_SECONDS;
  if (!Number.isSafeInteger(ttl) || ttl <= 0 || ttl > TXN_TOKEN_MAX_LIFETIME_SECONDS) {
    throw new TokenServiceConfigError(
      `ttlSeconds must be a whole number from 1 to ${TXN_TOKEN_MAX_LIFETIME_SECONDS}`,
    );
  }
  if (!opts.trustDomain) throw new TokenServiceConfigError('trustDomain is required');
  if (!opts.issuer) throw new TokenServiceConfigError('issuer is required');
  if (typeof opts.grantScope !== 'function') {
    throw new TokenServiceConfigError('grantScope must be a function');
  }
  const persons = new Map<string, PersonAuthenticator>();
  for (const p of opts.persons) for (const t of p.tokenTypes) persons.set(t, p);
  if (persons.has(TXN_TOKEN_TYPE)) {
    throw new TokenServiceConfigError('a person authenticator cannot claim the txn_token type');
  }
  const clock = opts.clock ?? Date.now;
  const maxContext = opts.maxContextBytes ?? 2048;
  const maxActorDepth = opts.maxActorDepth ?? 5;
  const mayRequest = opts.mayRequest ?? (() => true);
  const { trustDomain, issuer, keys, consent } = opts;
  const own: TxnTokenVerifier = createTxnTokenVerifier({
    trustDomain,
    issuer,
    jwks: keys.getKey,
    maxLifetimeSeconds: ttl,
    maxActorDepth,
    clock,
  });

  function context(params: ReadonlyMap<string, string>, name: string) {
    const raw = params.get(name);
    if (raw === undefined) return undefined;
    let value: unknown;
    if (Buffer.byteLength(raw) <= maxContext) {
      try {
        value = JSON.parse(raw);
      } catch {
        value = undefined;
      }
    }
    if (!isPlainObject(value)) {
      throw new TokenExchangeError(
        'invalid_request',
        'context',
        `${name} must be a JSON object of at most ${maxContext} bytes`,
      );
    }
    return value;
  }

  async function mustConsent(person: string, agents: readonly string[]): Promise<void> {
    for (const agent of agents) {
      let ok: boolean;
      try {
        ok = (await consent.mayAct(person, agent)) === true;
      } catch (err) {
        throw new TokenExchangeError(
          'temporarily_unavailable',
          'consent_unavailable',
          'try again later',
          { cause: err },
        );
      }
      if (!ok) {
        throw new TokenExchangeError(
          'invalid_grant',
          'no_consent',
          'the subject has not allowed this agent to act for them',
        );
      }
    }
  }

  /** What is known so far about the exchange in progress, for its {@link ExchangeDecision}. */
  interface Progress {
    kind?: 'initial' | 'replacement';
    person?: string;
    agent?: string;
    actors: string[];
    txn?: string;
    requested: string[];
    granted: string[];
    refused: ScopeRefusal[];
    /** Hashed only when a decision is emitted; never leaves this closure. */
    subjectToken?: string;
  }

  const explain = opts.explainRefusals === true;
  const LABEL = /^[a-z][a-z0-9_]{0,63}$/;
  const MAX_DETAILS = 4096;

  /** The policy's refusals, kept only for requested scopes, labels bounded, details copied. */
  function refusals(raw: unknown, requested: readonly string[]): ScopeRefusal[] {
    if (!Array.isArray(raw)) return [];
    const out: ScopeRefusal[] = [];
    for (const r of raw.slice(0, MAX_SCOPES) as unknown[]) {
      if (!isPlainObject(r) || typeof r.scope !== 'string' || !requested.includes(r.scope)) {
        continue;
      }
      const refusal: ScopeRefusal = {
        scope: r.scope,
        reason: typeof r.reason === 'string' && LABEL.test(r.reason) ? r.reason : 'policy_refused',
      };
      if (r.details !== undefined) {
        try {
          const json = JSON.stringify(r.details);
          if (json !== undefined && json.length <= MAX_DETAILS) refusal.details = JSON.parse(json);
        } catch {
          // Not JSON (a cycle, a BigInt): the reason alone is still the answer.
        }
      }
      out.push(refusal);
    }
    return out;
  }

  async function grant(
    progress: Progress,
    person: string,
    agent: string | undefined,
    requested: string[],
  ): Promise<string[]> {
    let answer: unknown;
    try {
      answer = await opts.grantScope({ person, agent, requested: [...requested] });
    } catch (err) {
      throw new TokenExchangeError(
        'temporarily_unavailable',
        'policy_unavailable',
        'try again later',
        { cause: err },
      );
    }
    const list = Array.isArray(answer)
      ? answer
      : isPlainObject(answer) && Array.isArray(answer.granted)
        ? answer.granted
        : undefined;
    if (!list) {
      throw new TokenExchangeError(
        'temporarily_unavailable',
        'policy_unavailable',
        'try again later',
      );
    }
    const allowed = new Set(list.filter((s): s is string => typeof s === 'string'));
    const scope = requested.filter((s) => allowed.has(s));
    progress.granted = scope;
    progress.refused = refusals(isPlainObject(answer) ? answer.refused : undefined, requested)
      // A scope both granted and refused is granted (the intersection above decided).
      .filter((r) => !allowed.has(r.scope));
    if (scope.length === 0) {
      const first = progress.refused[0];
      const explanation: RefusalExplanation | undefined =
        explain && first
          ? {
              ...(progress.txn ? { txn: progress.txn } : {}),
              decision: {
                reason: first.reason,
                ...(first.details !== undefined ? { details: first.details } : {}),
              },
            }
          : undefined;
      throw new TokenExchangeError(
        'invalid_scope',
        'scope_not_granted',
        'no requested scope is granted',
        explanation ? { explanation } : undefined,
      );
    }
    return scope;
  }

  async function mint(
    claims: {
      sub: string;
      txn: string;
      scope: string[];
      actors: readonly string[];
      mayAct: string | undefined;
      reqWl: string;
      tctx: Record<string, unknown> | undefined;
      rctx: Record<string, unknown> | undefined;
    },
    nowMs: number,
    notAfter: number,
  ): Promise<{ token: string; exp: number }> {
    const iat = Math.floor(nowMs / 1000);
    const exp = Math.min(iat + ttl, notAfter);
    const key = keys.current();
    const act = actClaim(claims.actors);
    const body: Record<string, unknown> = {
      txn: claims.txn,
      scope: claims.scope.join(' '),
      req_wl: claims.reqWl,
      ...(act ? { act } : {}),
      ...(claims.mayAct ? { may_act: { sub: claims.mayAct } } : {}),
      ...(claims.tctx ? { tctx: claims.tctx } : {}),
      ...(claims.rctx && Object.keys(claims.rctx).length > 0 ? { rctx: claims.rctx } : {}),
    };
    const token = await new SignJWT(body)
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: TXN_TOKEN_TYP })
      .setIssuer(issuer)
      .setSubject(claims.sub)
      .setAudience(trustDomain)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(key.privateKey);
    return { token, exp };
  }

  /**
   * The agent a person's token is requested for (`requested_actor`), by a caller that is not
   * itself an agent: the dashboard asking on the person's behalf for a delegated request. The
   * token is then narrowed to person ∩ that agent, needs the person's consent for it, and
   * carries `may_act` (RFC 8693 4.4) so that no other agent can act on it.
   */
  function requestedActor(params: ReadonlyMap<string, string>, caller: ExchangeCaller) {
    const value = params.get('requested_actor');
    if (value === undefined) return undefined;
    if (opts.isAgent(caller.id) || value.length > MAX_ACTOR_CHARS || !opts.isAgent(value)) {
      throw new TokenExchangeError(
        'invalid_request',
        'requested_actor',
        'requested_actor must name an agent, and only a non-agent client may name one',
      );
    }
    return value;
  }

  async function initial(
    progress: Progress,
    params: ReadonlyMap<string, string>,
    caller: ExchangeCaller,
    requested: string[],
    person: AuthenticatedPerson,
  ): Promise<ExchangeOutcome> {
    const agent = opts.isAgent(caller.id) ? caller.id : undefined;
    const mayAct = requestedActor(params, caller);
    const tctx = context(params, 'request_details');
    const requestContext = context(params, 'request_context');
    const actors = agent ? [agent] : [];
    // Assigned before the decision, so a refusal is recorded under the transaction it stops.
    const txn = randomUUID();
    Object.assign(progress, { txn, actors, agent: agent ?? mayAct });
    if (agent ?? mayAct) await mustConsent(person.subject, [(agent ?? mayAct)!]);
    const scope = await grant(progress, person.subject, agent ?? mayAct, requested);
    // Keys the service asserts itself are never taken from the requester, so no caller can
    // plant an `amr` or a fake earlier requester in `req_wl_chain`.
    const rctx: Record<string, unknown> = { ...requestContext };
    for (const reserved of RESERVED_RCTX) delete rctx[reserved];
    if (person.amr) rctx.amr = person.amr;
    const now = clock();
    const { token, exp } = await mint(
      { sub: person.subject, txn, scope, actors, mayAct, reqWl: caller.id, tctx, rctx },
      now,
      Infinity,
    );
    return outcome('initial', token, exp, now, txn, actors, caller.id, scope);
  }

  /** The agent an old token is bound to by `may_act`: '' for a malformed one (no agent fits). */
  function boundActor(old: TxnToken): string | undefined {
    const m: unknown = old.claims.may_act;
    if (m === undefined) return undefined;
    return isPlainObject(m) && typeof m.sub === 'string' ? m.sub : '';
  }

  async function replacement(
    progress: Progress,
    params: ReadonlyMap<string, string>,
    caller: ExchangeCaller,
    requested: string[],
    old: TxnToken,
  ): Promise<ExchangeOutcome> {
    Object.assign(progress, {
      person: old.subject,
      txn: old.txn,
      actors: old.actors,
      agent: old.actor ?? boundActor(old),
    });
    if (params.has('request_details') || params.has('request_context')) {
      throw new TokenExchangeError(
        'invalid_request',
        'replacement_context',
        'a replacement keeps the transaction context of the token it replaces',
      );
    }
    if (params.has('requested_actor')) {
      throw new TokenExchangeError(
        'invalid_request',
        'requested_actor',
        'a replacement names its actor by the client certificate only',
      );
    }
    const oldScope = new Set(old.scope);
    if (!requested.every((s) => oldScope.has(s))) {
      throw new TokenExchangeError(
        'invalid_scope',
        'scope_widened',
        'a replacement cannot add scope to the token it replaces',
      );
    }
    let actors = old.actors;
    let mayAct = boundActor(old);
    if (opts.isAgent(caller.id) && caller.id !== old.actor) {
      actors = [caller.id, ...old.actors];
      Object.assign(progress, { actors, agent: caller.id });
      if (mayAct !== undefined && caller.id !== mayAct) {
        throw new TokenExchangeError(
          'invalid_grant',
          'actor_not_permitted',
          'the subject token was issued for another agent',
        );
      }
      // The named agent has acted: from here the act chain (and consent for each) governs.
      mayAct = undefined;
      if (actors.length > maxActorDepth) {
        throw new TokenExchangeError('invalid_request', 'actor_chain_too_deep', 'too many actors');
      }
    }
    await mustConsent(old.subject, actors);
    const scope = await grant(progress, old.subject, actors[0] ?? mayAct, requested);
    const previous = Array.isArray(old.rctx?.req_wl_chain)
      ? (old.rctx.req_wl_chain as unknown[]).filter((w): w is string => typeof w === 'string')
      : [];
    const rctx = {
      ...old.rctx,
      req_wl_chain: [...previous, old.requestingWorkload].slice(-MAX_REQ_WL_CHAIN),
    };
    const now = clock();
    const { token, exp } = await mint(
      {
        sub: old.subject,
        txn: old.txn,
        scope,
        actors,
        mayAct,
        reqWl: caller.id,
        tctx: old.tctx,
        rctx,
      },
      now,
      Math.floor(old.expiresAt.getTime() / 1000),
    );
    return outcome('replacement', token, exp, now, old.txn, actors, caller.id, scope);
  }

  function outcome(
    kind: ExchangeOutcome['kind'],
    token: string,
    exp: number,
    nowMs: number,
    txn: string,
    actors: readonly string[],
    reqWl: string,
    scope: string[],
  ): ExchangeOutcome {
    return {
      response: {
        access_token: token,
        issued_token_type: TXN_TOKEN_TYPE,
        token_type: 'N_A',
        expires_in: Math.max(0, exp - Math.floor(nowMs / 1000)),
        scope: scope.join(' '),
      },
      kind,
      txn,
      actor: actors[0],
      requestingWorkload: reqWl,
      scope,
      expiresAt: exp,
    };
  }

  async function run(
    progress: Progress,
    params: ReadonlyMap<string, string>,
    caller: ExchangeCaller,
  ): Promise<ExchangeOutcome> {
    // Belt and braces: the TLS layer already admits only this trust domain's workloads.
    if (caller.trustDomain !== trustDomain) {
      throw new TokenExchangeError(
        'invalid_client',
        'caller_trust_domain',
        'client authentication failed',
      );
    }
    if (!mayRequest(caller.id)) {
      throw new TokenExchangeError(
        'unauthorized_client',
        'caller_not_allowed',
        'this client may not request transaction tokens',
      );
    }
    const grantType = required(params, 'grant_type');
    if (grantType !== TOKEN_EXCHANGE_GRANT_TYPE) {
      throw new TokenExchangeError(
        'unsupported_grant_type',
        'unsupported_grant_type',
        'only token exchange is supported',
      );
    }
    if (required(params, 'requested_token_type') !== TXN_TOKEN_TYPE) {
      throw new TokenExchangeError(
        'invalid_request',
        'unsupported_token_type',
        'requested_token_type must be urn:ietf:params:oauth:token-type:txn_token',
      );
    }
    if (params.has('actor_token') || params.has('actor_token_type')) {
      throw new TokenExchangeError(
        'invalid_request',
        'actor_token',
        'actor_token is not supported: the actor is the authenticated client',
      );
    }
    if (required(params, 'audience') !== trustDomain) {
      throw new TokenExchangeError(
        'invalid_target',
        'audience',
        'audience must be this trust domain',
      );
    }
    const rawScope = required(params, 'scope');
    const requested = rawScope.length <= MAX_SCOPE_CHARS ? parseScope(rawScope) : undefined;
    if (!requested || requested.length > MAX_SCOPES) {
      throw new TokenExchangeError(
        'invalid_scope',
        'scope_syntax',
        'scope is not a valid scope list',
      );
    }
    progress.requested = requested;
    const subjectToken = required(params, 'subject_token');
    const subjectTokenType = required(params, 'subject_token_type');
    progress.subjectToken = subjectToken;

    if (subjectTokenType === TXN_TOKEN_TYPE) {
      progress.kind = 'replacement';
      let old: TxnToken;
      try {
        old = await own.verify(subjectToken);
      } catch (err) {
        if (err instanceof TxnTokenError && err.reason === 'jwks_unavailable') {
          throw new TokenExchangeError('temporarily_unavailable', 'internal', 'try again later');
        }
        throw new TokenExchangeError(
          'invalid_grant',
          'subject_txn_token',
          'subject_token is not valid',
          {
            cause: err,
          },
        );
      }
      return replacement(progress, params, caller, requested, old);
    }
    const authenticator = persons.get(subjectTokenType);
    if (!authenticator) {
      throw new TokenExchangeError(
        'invalid_request',
        'unsupported_token_type',
        'subject_token_type is not supported',
      );
    }
    progress.kind = 'initial';
    let person: AuthenticatedPerson;
    try {
      person = await authenticator.authenticate(subjectToken, subjectTokenType);
    } catch (err) {
      if (err instanceof PersonAuthError && err.reason === 'unavailable') {
        throw new TokenExchangeError(
          'temporarily_unavailable',
          'person_unavailable',
          'try again later',
          {
            cause: err,
          },
        );
      }
      throw new TokenExchangeError('invalid_grant', 'person_proof', 'subject_token is not valid', {
        cause: err,
      });
    }
    progress.person = person.subject;
    return initial(progress, params, caller, requested, person);
  }

  const onDecisionError = opts.onDecisionError ?? (() => undefined);
  function emit(decision: ExchangeDecision): void {
    const sink = opts.onDecision;
    if (!sink) return;
    try {
      const pending = sink(decision);
      if (pending && typeof pending.then === 'function') pending.then(undefined, onDecisionError);
    } catch (err) {
      onDecisionError(err);
    }
  }

  function decision(
    progress: Progress,
    caller: ExchangeCaller,
    verdict: Pick<ExchangeDecision, 'decision' | 'reason' | 'error' | 'issuedTokenSha256'>,
  ): ExchangeDecision {
    const d: ExchangeDecision = {
      ...verdict,
      caller: caller.id,
      actors: [...progress.actors],
      requested: progress.requested,
      granted: progress.granted,
      refused: progress.refused,
      at: clock(),
    };
    if (d.error === undefined) delete d.error;
    if (d.issuedTokenSha256 === undefined) delete d.issuedTokenSha256;
    for (const k of ['kind', 'person', 'agent', 'txn'] as const) {
      if (progress[k] !== undefined) (d as unknown as Record<string, unknown>)[k] = progress[k];
    }
    if (progress.subjectToken !== undefined) {
      d.subjectTokenSha256 = tokenHash(progress.subjectToken);
    }
    return d;
  }

  return {
    async exchange(params, caller) {
      const progress: Progress = { actors: [], requested: [], granted: [], refused: [] };
      let out: ExchangeOutcome;
      try {
        out = await run(progress, params, caller);
      } catch (err) {
        if (err instanceof TokenExchangeError && opts.onDecision) {
          const policyReason =
            err.reason === 'scope_not_granted' ? progress.refused[0]?.reason : undefined;
          emit(
            decision(progress, caller, {
              decision: 'deny',
              reason: policyReason ?? err.reason,
              error: err.error,
            }),
          );
        }
        throw err;
      }
      if (!opts.onDecision) return out;
      emit(
        decision(progress, caller, {
          decision: 'allow',
          reason: 'granted',
          issuedTokenSha256: tokenHash(out.response.access_token),
        }),
      );
      return out;
    },
  };
}

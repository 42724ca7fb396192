import type { Logger } from '@precinct/runtime';
import type { CalloutMetrics } from './metrics.js';
import {
  decodeNatsJwt,
  encodeNatsJwt,
  isPublicNkey,
  nkeySigner,
  type NkeySigner,
} from './nats-jwt.js';
import { buildPermissions } from './permissions.js';
import type { ServiceAccountSource } from './serviceaccounts.js';
import { XkeyBox } from './xkey.js';

/** The part of a verified ServiceAccount identity the callout uses (@precinct/kube's shape). */
export interface VerifiedServiceAccount {
  username: string;
  uid?: string;
  namespace: string;
  serviceAccountName: string;
  expiresAt?: Date;
}

/**
 * Verifies a ServiceAccount token: @precinct/kube's TokenVerifier satisfies it. Throws an error
 * with a `code` (ERR_TOKEN_*, ERR_KUBE_UNAVAILABLE) for a bad token or an unreachable JWKS.
 */
export interface ServiceAccountTokenVerifier {
  verify(token: string): Promise<VerifiedServiceAccount>;
}

/** The only error text a client can ever see. */
export const GENERIC_ERROR = 'authorization failed';

/** Bounded reasons, the `reason` label of nats_auth_requests_total. */
export type DecisionReason =
  | 'ok'
  | 'request_encrypted_no_xkey'
  | 'request_decrypt_failed'
  | 'request_invalid'
  | 'no_token'
  | 'token_too_large'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'token_issuer'
  | 'token_audience'
  | 'token_signature'
  | 'token_invalid'
  | 'token_unverifiable'
  | 'cache_not_synced'
  | 'unknown_service_account'
  | 'service_account_uid_mismatch'
  | 'internal_error';

const MAX_TOKEN_BYTES = 16 * 1024;
const MAX_REQUEST_BYTES = 64 * 1024;
const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

/** Claims of the server's authorization request (fields the callout reads). */
interface AuthorizationRequest {
  type?: string;
  server_id?: { id?: string; name?: string; xkey?: string };
  user_nkey?: string;
  client_info?: { host?: string; id?: number; name?: string };
  connect_opts?: { jwt?: string; auth_token?: string; user?: string };
}

export interface AuthorizerOptions {
  /** Account seed (`SA...`) signing responses and user JWTs. */
  signingKeySeed: string;
  /** Target account name: the user JWT's audience (server config mode). */
  account: string;
  xkeySeed?: string;
  verifier: ServiceAccountTokenVerifier;
  serviceAccounts: ServiceAccountSource;
  userJwtMaxTtlSeconds: number;
  sharedInbox: boolean;
  logger: Logger;
  metrics: CalloutMetrics;
  now?: () => number;
}

/** What to send back to the server, or nothing when no trustworthy answer can be built. */
export interface Decision {
  response?: Uint8Array;
  result: 'allowed' | 'denied' | 'dropped';
  reason: DecisionReason;
}

function tokenReason(err: unknown): DecisionReason {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ERR_TOKEN_EXPIRED':
      return 'token_expired';
    case 'ERR_TOKEN_NOT_YET_VALID':
      return 'token_not_yet_valid';
    case 'ERR_TOKEN_ISSUER':
      return 'token_issuer';
    case 'ERR_TOKEN_AUDIENCE':
      return 'token_audience';
    case 'ERR_TOKEN_SIGNATURE':
    case 'ERR_TOKEN_KID':
    case 'ERR_TOKEN_ALG':
      return 'token_signature';
    case 'ERR_TOKEN_TOO_LARGE':
      return 'token_too_large';
    case 'ERR_TOKEN_MISSING':
      return 'no_token';
    case 'ERR_KUBE_UNAVAILABLE':
      return 'token_unverifiable';
    default:
      return 'token_invalid';
  }
}

/**
 * The decision-maker: turns one authorization request (raw message data plus the server's
 * `Nats-Server-Xkey` header) into the bytes to respond with. Knows nothing of the NATS
 * connection, so it is tested without one. Never throws.
 */
export class Authorizer {
  readonly #o: AuthorizerOptions;
  readonly #signer: NkeySigner;
  readonly #xkey?: XkeyBox;

  constructor(opts: AuthorizerOptions) {
    this.#o = opts;
    this.#signer = nkeySigner(opts.signingKeySeed);
    if (!this.#signer.publicKey.startsWith('A')) {
      throw new TypeError('the signing key must be an account seed (SA...)');
    }
    if (opts.xkeySeed) this.#xkey = new XkeyBox(opts.xkeySeed);
  }

  /** The account public key (the `issuer` in the server's auth_callout block). */
  get issuer(): string {
    return this.#signer.publicKey;
  }

  /** The xkey public key (the `xkey` in the server's auth_callout block), if configured. */
  get xkeyPublicKey(): string | undefined {
    return this.#xkey?.publicKey;
  }

  async decide(data: Uint8Array, serverXkey: string | undefined): Promise<Decision> {
    const started = process.hrtime.bigint();
    let decision: Decision;
    const log = this.#o.logger;
    let ctx: Record<string, unknown> = {};
    try {
      decision = await this.#decide(data, serverXkey, (c) => (ctx = { ...ctx, ...c }));
    } catch (err) {
      log.error({ err: (err as Error).message, ...ctx }, 'authorization request failed');
      decision = { result: 'dropped', reason: 'internal_error' };
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.#o.metrics.requests.inc({ result: decision.result, reason: decision.reason });
    this.#o.metrics.decisionSeconds.observe({ result: decision.result }, seconds);
    const level = decision.result === 'allowed' ? 'debug' : 'info';
    if (log.isLevelEnabled(level)) {
      log[level](
        { result: decision.result, reason: decision.reason, ...ctx },
        'nats authorization',
      );
    }
    return decision;
  }

  async #decide(
    data: Uint8Array,
    serverXkey: string | undefined,
    note: (c: Record<string, unknown>) => void,
  ): Promise<Decision> {
    const o = this.#o;
    const now = o.now?.() ?? Date.now();
    const drop = (reason: DecisionReason): Decision => ({ result: 'dropped', reason });
    if (data.length > MAX_REQUEST_BYTES) return drop('request_invalid');

    // 1. Decrypt when the server encrypted the request to our xkey.
    let plain = data;
    const encrypted = serverXkey !== undefined && serverXkey !== '';
    if (encrypted) {
      if (!this.#xkey) return drop('request_encrypted_no_xkey');
      if (!isPublicNkey(serverXkey, 'X')) return drop('request_decrypt_failed');
      const opened = this.#xkey.open(data, serverXkey);
      if (!opened) return drop('request_decrypt_failed');
      plain = opened;
    }

    // 2. The request must be signed by the server it names, for this purpose, and current.
    let req: AuthorizationRequest;
    let serverId: string;
    let userNkey: string;
    try {
      const claims = decodeNatsJwt<AuthorizationRequest>(utf8.decode(plain));
      req = claims.nats;
      serverId = req.server_id?.id ?? '';
      userNkey = req.user_nkey ?? '';
      if (
        req.type !== 'authorization_request' ||
        claims.aud !== 'nats-authorization-request' ||
        !isPublicNkey(serverId, 'N') ||
        claims.iss !== serverId ||
        !isPublicNkey(userNkey, 'U') ||
        (claims.exp !== undefined && claims.exp * 1000 < now - 5_000) ||
        (encrypted && req.server_id?.xkey !== serverXkey)
      ) {
        return drop('request_invalid');
      }
    } catch {
      return drop('request_invalid');
    }
    note({
      server: req.server_id?.name,
      client: { host: req.client_info?.host, id: req.client_info?.id, name: req.client_info?.name },
    });

    const respond = async (claims: Record<string, unknown>): Promise<Uint8Array> => {
      const jwt = encodeNatsJwt(
        { sub: userNkey, aud: serverId, nats: { ...claims, type: 'authorization_response' } },
        this.#signer,
        now,
      );
      const bytes = utf8Encoder.encode(jwt);
      return encrypted ? this.#xkey!.seal(bytes, serverXkey) : bytes;
    };
    const deny = async (reason: DecisionReason): Promise<Decision> => ({
      result: 'denied',
      reason,
      response: await respond({ error: GENERIC_ERROR }),
    });

    // 3. The client's ServiceAccount token: `jwt`, then `auth_token` from CONNECT.
    const token = req.connect_opts?.jwt || req.connect_opts?.auth_token;
    if (!token) return deny('no_token');
    if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) return deny('token_too_large');
    let identity: VerifiedServiceAccount;
    try {
      identity = await o.verifier.verify(token);
    } catch (err) {
      const reason = tokenReason(err);
      note({ tokenError: (err as { code?: string }).code ?? 'unknown' });
      return deny(reason);
    }
    note({ namespace: identity.namespace, serviceAccount: identity.serviceAccountName });

    // 4. The ServiceAccount must exist now (a deleted one keeps signed tokens until they expire).
    const cache = o.serviceAccounts.status();
    if (!cache.synced) return deny('cache_not_synced');
    const sa = o.serviceAccounts.get(identity.namespace, identity.serviceAccountName);
    if (!sa) return deny('unknown_service_account');
    if (identity.uid && sa.uid && identity.uid !== sa.uid) {
      return deny('service_account_uid_mismatch');
    }

    // 5. Permissions from the current annotations.
    const { permissions, warnings } = buildPermissions({
      namespace: sa.namespace,
      serviceAccount: sa.name,
      annotations: sa.annotations,
      sharedInbox: o.sharedInbox,
    });
    for (const w of warnings) {
      o.metrics.filteredEntries.inc({ annotation: w.annotation, reason: w.reason });
      o.logger.warn(
        { namespace: sa.namespace, serviceAccount: sa.name, ...w },
        'serviceaccount annotation entry dropped',
      );
    }

    // 6. The user JWT never outlives the token it came from, nor NATS_USER_JWT_MAX_TTL.
    const nowSeconds = Math.floor(now / 1000);
    let exp = nowSeconds + o.userJwtMaxTtlSeconds;
    if (identity.expiresAt) exp = Math.min(exp, Math.floor(identity.expiresAt.getTime() / 1000));
    if (exp <= nowSeconds) return deny('token_expired');
    const userJwt = encodeNatsJwt(
      {
        name: identity.username,
        sub: userNkey,
        aud: o.account,
        exp,
        nats: {
          ...permissions,
          subs: -1,
          data: -1,
          payload: -1,
          type: 'user',
          tags: [`namespace:${sa.namespace}`, `serviceaccount:${sa.name}`],
        },
      },
      this.#signer,
      now,
    );
    return { result: 'allowed', reason: 'ok', response: await respond({ jwt: userJwt }) };
  }
}

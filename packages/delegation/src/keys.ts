import { createLocalJWKSet, errors, type JWK, type JWTVerifyGetKey } from 'jose';
import { DelegationConfigError, DelegationError } from './errors.js';

/**
 * Key handling shared by the package's verifiers (delegation tokens, Transaction Tokens): the
 * algorithm allow-list, public-only key sets, and a rate-limited remote key set.
 */

/** Asymmetric JWS algorithms only: a verifier must never hold a key that can also sign. */
export const ASYMMETRIC_ALGORITHMS = new Set([
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
]);

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

export function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new DelegationConfigError(`${name} must be a positive integer`);
  }
  return value;
}

/** Responses larger than this are refused: a key set is a few KB. */
const MAX_JWKS_BYTES = 256 * 1024;
/** A remote key set older than this is refreshed in the background on use (jose's default). */
const JWKS_MAX_AGE_MS = 10 * 60_000;

export function assertPublicKeySet(jwks: unknown): asserts jwks is { keys: JWK[] } {
  if (!isPlainObject(jwks) || !Array.isArray(jwks.keys)) {
    throw new DelegationConfigError('jwks must be a URL or a JSON Web Key Set');
  }
  // A private or symmetric key here means a signing secret was pasted into verifier config.
  for (const key of jwks.keys as unknown[]) {
    if (!isPlainObject(key) || key.kty === 'oct' || 'd' in key) {
      throw new DelegationConfigError('jwks must hold public keys only');
    }
  }
}

/**
 * A remote key set. jose's createRemoteJWKSet refetches on every token while it holds no keys
 * or its last fetch failed (its cool-down starts only after a success), so an unreachable
 * endpoint turned each token into a request. Here every fetch is rate-limited, in every state,
 * concurrent tokens share the fetch in progress, and keys already held are kept through a
 * failed refresh. Key selection stays with jose (createLocalJWKSet over the fetched document).
 */
export function remoteKeySet(
  url: URL,
  opts: { cooldownMs: number; timeoutMs: number; now: () => number; fetch?: typeof fetch },
): JWTVerifyGetKey {
  let local: JWTVerifyGetKey | undefined;
  let loadedAt = -Infinity;
  let lastAttempt = -Infinity;
  let lastFailed = false;
  let inflight: Promise<void> | undefined;

  const load = async (): Promise<void> => {
    const res = await (opts.fetch ?? fetch)(url, {
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    if (res.status !== 200) throw new Error(`JWKS endpoint answered ${res.status}`);
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > MAX_JWKS_BYTES) throw new Error('JWKS document too large');
    const text = await res.text();
    if (text.length > MAX_JWKS_BYTES) throw new Error('JWKS document too large');
    const doc: unknown = JSON.parse(text);
    if (!isPlainObject(doc) || !Array.isArray(doc.keys)) throw new Error('not a JWKS document');
    // Served private or symmetric keys are dropped, never used to verify.
    const keys = (doc.keys as unknown[]).filter(
      (k): k is JWK => isPlainObject(k) && k.kty !== 'oct' && !('d' in k),
    );
    local = createLocalJWKSet({ keys });
    loadedAt = opts.now();
  };
  const refresh = (): Promise<void> => {
    if (!inflight) {
      lastAttempt = opts.now();
      inflight = load().then(
        () => {
          lastFailed = false;
          inflight = undefined;
        },
        (err: unknown) => {
          lastFailed = true;
          inflight = undefined;
          throw err;
        },
      );
    }
    return inflight;
  };
  const canFetch = () => opts.now() - lastAttempt >= opts.cooldownMs;
  const unavailable = (cause?: unknown) =>
    new DelegationError('jwks_unavailable', cause === undefined ? undefined : { cause });

  return async (header, token) => {
    if (inflight) await inflight.catch(() => {});
    if (!local) {
      if (!canFetch()) throw unavailable();
      await refresh().catch((err: unknown) => {
        throw unavailable(err);
      });
    } else if (canFetch() && opts.now() - loadedAt > JWKS_MAX_AGE_MS) {
      void refresh().catch(() => {});
    }
    try {
      return await local!(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // Perhaps a rotated-in key: look again, joining a fetch in progress, or starting one
      // unless one started within the cool-down.
      if (inflight || canFetch()) {
        await (inflight ?? refresh()).catch((e: unknown) => {
          throw unavailable(e);
        });
        return local!(header, token);
      }
      // After a failed fetch an unknown kid may be a new key we could not load: undecidable.
      if (lastFailed) throw unavailable();
      throw err;
    }
  };
}

/**
 * A key resolver over a JWKS URL (rate-limited, see {@link remoteKeySet}) or a local public key
 * set. Any failure of the key set itself (fetch refused, timeout, bad document, a key that does
 * not import) becomes `unavailable(cause)`: "cannot decide", failing closed, never "bad token".
 * jose's no-key / several-keys errors and the verifier's own errors (`passThrough`) go through.
 */
export function guardedKeySet(
  jwks: URL | { keys: JWK[] },
  opts: {
    jwksCooldownSeconds?: number;
    jwksTimeoutMs?: number;
    now: () => number;
    fetch?: typeof fetch;
  },
  passThrough: (err: unknown) => boolean,
  unavailable: (cause: unknown) => Error,
): JWTVerifyGetKey {
  let set: JWTVerifyGetKey;
  if (jwks instanceof URL) {
    if (jwks.protocol !== 'https:' && jwks.protocol !== 'http:') {
      throw new DelegationConfigError('jwks URL must be http(s)');
    }
    set = remoteKeySet(jwks, {
      cooldownMs: positiveInteger('jwksCooldownSeconds', opts.jwksCooldownSeconds, 30) * 1000,
      timeoutMs: positiveInteger('jwksTimeoutMs', opts.jwksTimeoutMs, 5000),
      now: opts.now,
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
    });
  } else {
    assertPublicKeySet(jwks);
    try {
      set = createLocalJWKSet(jwks);
    } catch (err) {
      throw new DelegationConfigError('jwks is not a valid JSON Web Key Set', { cause: err });
    }
  }
  return async (header, token) => {
    try {
      return await set(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey) throw err;
      if (err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      if (passThrough(err)) throw err;
      throw unavailable(err);
    }
  };
}

/**
 * The actors of an RFC 8693 `act` claim, outermost first (the one access control looks at);
 * undefined when a level is not an object with a non-empty `sub`, or deeper than `maxDepth`.
 */
export function actorChain(act: unknown, maxDepth: number): string[] | undefined {
  const actors: string[] = [];
  let node = act;
  while (node !== undefined) {
    if (!isPlainObject(node) || actors.length >= maxDepth) return undefined;
    const sub = Object.hasOwn(node, 'sub') ? node.sub : undefined;
    if (!nonEmptyString(sub)) return undefined;
    actors.push(sub);
    node = Object.hasOwn(node, 'act') ? node.act : undefined;
  }
  return actors;
}

import * as crypto from 'node:crypto';
import { KubeAuthError } from './errors.js';
import { TtlLru } from './lru.js';
import type { TokenVerifier } from './verifier.js';
import type { ServiceAccountIdentity } from './identity.js';

// crypto.hash (one-shot, no Hash object) is ~2x faster than createHash for short inputs and
// exists from Node 20.12; fall back for older runtimes.
const oneShot = (crypto as unknown as { hash?: (alg: string, data: string, enc: string) => string })
  .hash;

/**
 * The full SHA-256 of `data` as a cache key: the 32 digest bytes as a 32-character latin1
 * string, which V8 stores in 48 bytes (base64url, 43 characters, takes 64). Never truncated:
 * two inputs share a key only if SHA-256 collides, and a key is all a cache looks up by.
 */
export function cacheKey(data: string): string {
  return oneShot
    ? oneShot('sha256', data, 'latin1')
    : crypto.createHash('sha256').update(data).digest('binary'); // 'binary' is latin1
}

export interface CachingVerifierOptions {
  /** Default 10,000. */
  maxEntries?: number;
  /** Upper bound of an entry's life; the token's own exp always wins. Default 300 s. */
  ttlSeconds?: number;
  now?: () => number;
}

/**
 * A ServiceAccount as eviction names it. Without `uid`, every cached identity of that name goes;
 * with it, those of that uid and those that carry no uid (a recreated ServiceAccount of the same
 * name keeps its own).
 */
export interface ServiceAccountRef {
  namespace: string;
  name: string;
  uid?: string;
}

/** A ServiceAccount as a cached identity knows it (`uid` when the token carried one). */
export interface CachedServiceAccount {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
}

/** {@link cachingVerifier}'s verifier, with the eviction API a ServiceAccount watch drives. */
export interface CachingVerifier extends TokenVerifier {
  readonly size: number;
  /** Drops the cached identities of `sa` (see ServiceAccountRef); returns how many. */
  evictServiceAccount(sa: ServiceAccountRef): number;
  /** Drops every cached identity whose ServiceAccount `drop` selects; returns how many. */
  evictWhere(drop: (sa: CachedServiceAccount) => boolean): number;
}

/** True when `sa` (a cached identity's ServiceAccount) is the one `ref` names. */
export function serviceAccountMatches(ref: ServiceAccountRef, sa: CachedServiceAccount): boolean {
  return (
    sa.namespace === ref.namespace &&
    sa.name === ref.name &&
    (ref.uid === undefined || sa.uid === undefined || sa.uid === ref.uid)
  );
}

/** What cached identities of one ServiceAccount share: kept once, not once per token. */
class Principal {
  constructor(
    readonly username: string,
    readonly uid: string | undefined,
    readonly groups: string[],
    readonly namespace: string,
    readonly serviceAccountName: string,
    readonly audiences: string[],
    readonly source: ServiceAccountIdentity['source'],
  ) {}
}

const MAX_PRINCIPALS = 4096;
const MAX_HOT = 256;

type NodeRef = NonNullable<ServiceAccountIdentity['node']>;

const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';
const NODE_NAME = 'authentication.kubernetes.io/node-name';
const NODE_UID = 'authentication.kubernetes.io/node-uid';
const CREDENTIAL_ID = 'authentication.kubernetes.io/credential-id';

/**
 * One cached verification: the per-token part of an identity (its pod, node, credential id
 * and exp) and a reference to its Principal; `extra` and the pod and node objects are rebuilt
 * on each hit, as the verifiers build them. An identity this form cannot reproduce exactly
 * (some other shape, see compact()) is kept as it came, in place of the Principal.
 */
class Entry {
  constructor(
    /** TtlLru deadline. */
    readonly until: number,
    readonly principal: Principal | ServiceAccountIdentity,
    readonly podName?: string,
    readonly podUid?: string,
    readonly node?: NodeRef,
    readonly credentialId?: string,
    /** exp in seconds (exact: compact() checks that it multiplies back). */
    readonly expSeconds?: number,
  ) {}
}

const KNOWN_KEYS = new Set([
  'username',
  'uid',
  'groups',
  'namespace',
  'serviceAccountName',
  'pod',
  'node',
  'audiences',
  'expiresAt',
  'extra',
  'source',
]);

const isString = (v: unknown): v is string => typeof v === 'string';
function isStringArray(v: unknown): v is string[] {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (!isString(v[i])) return false; // holes too
  return true;
}
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;

/** `{ name, uid? }` with nothing else, or undefined. */
function nameAndUid(v: unknown): { name: string; uid?: string } | undefined {
  if (!isPlainObject(v) || !isString(v.name)) return undefined;
  for (const k of Object.keys(v)) if (k !== 'name' && !(k === 'uid' && isString(v.uid))) return;
  return v as { name: string; uid?: string };
}

/** `extra` holds exactly `[value]` under `key` (or, for undefined, nothing). */
function single(extra: Record<string, unknown>, key: string, value: string | undefined): boolean {
  const v = extra[key];
  if (value === undefined) return v === undefined;
  return Array.isArray(v) && v.length === 1 && v[0] === value;
}

/**
 * A flat copy of `s`. V8 keeps a string made by concatenation (the verifier's
 * `JTI=${jti}`) as a pair of pieces: 88 bytes for a credential id that takes 56 flat.
 */
function flat(s: string): string {
  const f = Buffer.from(s, 'utf8').toString('utf8');
  return f === s ? f : s; // (lone surrogates do not survive UTF-8: keep those as they are)
}

const shared = (a: string[]): string[] =>
  Object.isFrozen(a) ? a : (Object.freeze([...a]) as string[]);

/**
 * Identities are cached by the hundred thousand, and nearly all of each one is the same for
 * every token of its ServiceAccount. Splits an identity into that shared part (interned in
 * `principals`) and the few per-token strings; falls back to keeping the object itself for
 * anything that could not be rebuilt exactly.
 */
function compact(
  id: ServiceAccountIdentity,
  until: number,
  principals: Map<string, Principal>,
): Entry {
  const whole = new Entry(until, id);
  if (!isPlainObject(id)) return whole;
  for (const k of Object.keys(id)) {
    if (!KNOWN_KEYS.has(k) || (id as unknown as Record<string, unknown>)[k] === undefined) {
      return whole;
    }
  }
  const { username, uid, groups, namespace, serviceAccountName, audiences, source } = id;
  if (
    !isString(username) ||
    (uid !== undefined && !isString(uid)) ||
    !isStringArray(groups) ||
    !isString(namespace) ||
    !isString(serviceAccountName) ||
    !isStringArray(audiences) ||
    !isString(source) ||
    !isPlainObject(id.extra)
  ) {
    return whole;
  }
  const pod = id.pod === undefined ? undefined : nameAndUid(id.pod);
  const node = id.node === undefined ? undefined : nameAndUid(id.node);
  if ((id.pod !== undefined && !pod) || (id.node !== undefined && !node)) return whole;
  let expSeconds: number | undefined;
  if (id.expiresAt !== undefined) {
    if (!(id.expiresAt instanceof Date)) return whole;
    const ms = id.expiresAt.getTime();
    expSeconds = ms / 1000;
    if (expSeconds * 1000 !== ms) return whole; // NaN too
  }
  // extra must be what the pod, node and one credential id make of it, nothing more.
  const { extra } = id;
  const cred = extra[CREDENTIAL_ID];
  const credentialId = Array.isArray(cred) && cred.length === 1 ? cred[0] : undefined;
  if (cred !== undefined && !isString(credentialId)) return whole;
  const expected =
    (pod ? (pod.uid !== undefined ? 2 : 1) : 0) +
    (node ? (node.uid !== undefined ? 2 : 1) : 0) +
    (credentialId !== undefined ? 1 : 0);
  if (
    Object.keys(extra).length !== expected ||
    !single(extra, POD_NAME, pod?.name) ||
    !single(extra, POD_UID, pod?.uid) ||
    !single(extra, NODE_NAME, node?.name) ||
    !single(extra, NODE_UID, node?.uid)
  ) {
    return whole;
  }
  const pkey = JSON.stringify([
    username,
    uid,
    groups,
    namespace,
    serviceAccountName,
    audiences,
    source,
  ]);
  let principal = principals.get(pkey);
  if (!principal) {
    // Bounded: past the limit, start over (entries keep the principals they point to).
    if (principals.size >= MAX_PRINCIPALS) principals.clear();
    principal = new Principal(
      username,
      uid,
      shared(groups),
      namespace,
      serviceAccountName,
      shared(audiences),
      source,
    );
    principals.set(pkey, principal);
  }
  return new Entry(
    until,
    principal,
    pod && flat(pod.name),
    pod?.uid !== undefined ? flat(pod.uid) : undefined,
    node ? { ...node } : undefined,
    credentialId !== undefined ? flat(credentialId) : undefined,
    expSeconds,
  );
}

/** The identity an Entry stands for, built afresh (same keys, same order as the verifiers). */
function expand(e: Entry): ServiceAccountIdentity {
  const p = e.principal;
  if (!(p instanceof Principal)) return p;
  // Property by property rather than spreads: this runs on every hit, and V8 builds an object
  // from conditional spreads several times slower.
  const id = { username: p.username } as ServiceAccountIdentity;
  if (p.uid !== undefined) id.uid = p.uid;
  id.groups = p.groups;
  id.namespace = p.namespace;
  id.serviceAccountName = p.serviceAccountName;
  const extra: Record<string, string[]> = {};
  if (e.podName !== undefined) {
    extra[POD_NAME] = [e.podName];
    if (e.podUid !== undefined) {
      extra[POD_UID] = [e.podUid];
      id.pod = { name: e.podName, uid: e.podUid };
    } else {
      id.pod = { name: e.podName };
    }
  }
  if (e.node) {
    const { name, uid } = e.node;
    extra[NODE_NAME] = [name];
    if (uid !== undefined) {
      extra[NODE_UID] = [uid];
      id.node = { name, uid };
    } else {
      id.node = { name };
    }
  }
  if (e.credentialId !== undefined) extra[CREDENTIAL_ID] = [e.credentialId];
  id.audiences = p.audiences;
  if (e.expSeconds !== undefined) id.expiresAt = new Date(e.expSeconds * 1000);
  id.extra = extra;
  id.source = p.source;
  return id;
}

function accountOf(e: Entry): CachedServiceAccount {
  const p = e.principal;
  return { namespace: p.namespace, name: p.serviceAccountName, uid: p.uid };
}

// Evictions remembered for verifications that were in flight when they happened.
const MAX_RECENT_EVICTIONS = 64;

/**
 * Caches successful verifications keyed by SHA-256 of the token (the raw token is never
 * stored), never beyond the token's `exp`. Failures are not cached: a rejected token costs a
 * verification each time, which keeps an outage from being remembered as a denial.
 *
 * A hit returns a new identity object equal to the first one; its `groups` and `audiences` are
 * frozen arrays shared by every identity of the same ServiceAccount.
 *
 * Without eviction, a deleted ServiceAccount's token is accepted until its entry ends (`ttlSeconds`,
 * 5 min by default). `evictServiceAccount`/`evictWhere` end it at once; `evictOnServiceAccountChange`
 * (serviceaccount-watch.ts) calls them from a ServiceAccount watch. A verification in flight when
 * an eviction of its ServiceAccount happens is refused (ERR_TOKEN_REJECTED), never cached.
 */
export function cachingVerifier(
  inner: TokenVerifier,
  opts: CachingVerifierOptions = {},
): CachingVerifier {
  const now = opts.now ?? Date.now;
  const cache = new TtlLru<Entry>(opts.maxEntries ?? 10_000, now, (e) => e.until);
  const principals = new Map<string, Principal>();
  // The identities of the most recently hit entries, already expanded: the hits of a busy
  // caller then allocate nothing (and share one object, as every hit did when whole identities
  // were cached). Keyed by Entry, so a token verified again starts afresh.
  const hot = new Map<Entry, ServiceAccountIdentity>();
  const ttlMs = (opts.ttlSeconds ?? 300) * 1000;
  // Sequence numbers of evictions, so a verification that started before one can be checked
  // against it when it completes.
  let evictionSeq = 0;
  const recent: { seq: number; drop: (sa: CachedServiceAccount) => boolean }[] = [];
  const evictWhere = (drop: (sa: CachedServiceAccount) => boolean): number => {
    evictionSeq++;
    recent.push({ seq: evictionSeq, drop });
    if (recent.length > MAX_RECENT_EVICTIONS) recent.shift();
    for (const e of hot.keys()) if (drop(accountOf(e))) hot.delete(e);
    return cache.deleteWhere((e) => drop(accountOf(e)));
  };
  /** Whether an eviction since `seq` concerns `id` (true, conservatively, if no longer known). */
  const evictedSince = (seq: number, id: ServiceAccountIdentity): boolean => {
    if (seq === evictionSeq) return false;
    const oldest = recent[0]?.seq ?? Infinity;
    if (oldest > seq + 1) return true;
    const sa = { namespace: id.namespace, name: id.serviceAccountName, uid: id.uid };
    return recent.some((r) => r.seq > seq && r.drop(sa));
  };
  return {
    get size() {
      return cache.size;
    },
    evictServiceAccount(ref) {
      return evictWhere((sa) => serviceAccountMatches(ref, sa));
    },
    evictWhere,
    async verify(token) {
      const key = cacheKey(token);
      const hit = cache.get(key);
      if (hit) {
        let id = hot.get(hit);
        if (!id) {
          id = expand(hit);
          if (hot.size >= MAX_HOT) hot.clear();
          hot.set(hit, id);
        }
        return id;
      }
      const seq = evictionSeq;
      const identity = await inner.verify(token);
      if (evictedSince(seq, identity)) {
        throw new KubeAuthError(
          'ERR_TOKEN_REJECTED',
          'the ServiceAccount was removed while its token was being verified',
        );
      }
      const t = now();
      const exp = identity.expiresAt ? identity.expiresAt.getTime() : Infinity;
      cache.set(key, compact(identity, cache.deadline(Math.min(t + ttlMs, exp)), principals));
      return identity;
    },
    close() {
      cache.clear();
      principals.clear();
      hot.clear();
      recent.length = 0;
      inner.close?.();
    },
  };
}

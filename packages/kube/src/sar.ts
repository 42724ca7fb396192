import type { KubeConfig, V1SubjectAccessReviewSpec } from '@kubernetes/client-node';
import { KubeUnavailableError } from './errors.js';
import { TtlLru } from './lru.js';
import { cacheKey as digest } from './cache.js';
import { clientNode } from './client-node.js';

export interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface ResourceAttributes {
  verb: string;
  group?: string;
  version?: string;
  resource: string;
  subresource?: string;
  name?: string;
  namespace?: string;
}

export interface NonResourceAttributes {
  verb: string;
  path: string;
}

export interface AuthorizationDecision {
  allowed: boolean;
  /** An explicit deny (a webhook authorizer may say so); false otherwise. */
  denied?: boolean;
  reason?: string;
  /** True when answered from the decision cache. */
  cached: boolean;
}

export interface Authorizer {
  /** Throws KubeUnavailableError when the API cannot answer (fail closed). */
  authorize(
    user: UserInfo,
    attrs: ResourceAttributes | NonResourceAttributes,
  ): Promise<AuthorizationDecision>;
}

/** The spec of a SubjectAccessReview and its answer, for `review` below. */
export type SubjectAccessReviewSpec = V1SubjectAccessReviewSpec;
export type SubjectAccessReviewStatus = { allowed: boolean; denied?: boolean; reason?: string };

export interface SubjectAccessReviewAuthorizerOptions {
  /** Where SubjectAccessReviews go. Required unless `review` is given. */
  kubeConfig?: KubeConfig;
  /**
   * Answers a review in place of the API (an embedded authorizer, or a benchmark isolating the
   * cache). Default: POST to the API server of `kubeConfig`.
   */
  review?: (spec: SubjectAccessReviewSpec) => Promise<SubjectAccessReviewStatus>;
  /** Kubernetes' webhook default: 5 min. */
  allowedTtlMs?: number;
  /** Kubernetes' webhook default: 30 s. */
  deniedTtlMs?: number;
  /** Default 50,000 decisions. */
  maxEntries?: number;
  now?: () => number;
}

/**
 * A cached decision. Nearly all are one of three answers without a reason; those are a number,
 * `deadline * 4 + answer` (a small integer V8 keeps inside the Map, no object at all). The rest
 * (a reason, or a deadline too large to encode exactly) are a Decision.
 */
type Cached = number | Decision;
const NOT_ALLOWED = 0;
const ALLOWED = 1;
const DENIED = 2;

class Decision {
  constructor(
    readonly until: number,
    readonly allowed: boolean,
    readonly denied: boolean,
    readonly reason: string | undefined,
  ) {}
}

function encode(until: number, allowed: boolean, denied: boolean, reason?: string): Cached {
  const packed = until * 4 + (allowed ? ALLOWED : denied ? DENIED : NOT_ALLOWED);
  return reason || !Number.isSafeInteger(packed)
    ? new Decision(until, allowed, denied, reason)
    : packed;
}

const expiryOf = (c: Cached): number => (typeof c === 'number' ? Math.floor(c / 4) : c.until);

function decode(c: Cached): AuthorizationDecision {
  if (typeof c !== 'number') {
    return {
      allowed: c.allowed,
      denied: c.denied,
      ...(c.reason ? { reason: c.reason } : {}),
      cached: true,
    };
  }
  const answer = c - Math.floor(c / 4) * 4;
  return { allowed: answer === ALLOWED, denied: answer === DENIED, cached: true };
}

export function isNonResource(
  a: ResourceAttributes | NonResourceAttributes,
): a is NonResourceAttributes {
  return 'path' in a && typeof a.path === 'string';
}

function cacheKey(user: UserInfo, attrs: ResourceAttributes | NonResourceAttributes): string {
  const extra = Object.entries(user.extra ?? {})
    .map(([k, v]) => [k, [...v].sort()] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const a = isNonResource(attrs)
    ? ['n', attrs.verb, attrs.path]
    : [
        'r',
        attrs.verb,
        attrs.group ?? '',
        attrs.version ?? '',
        attrs.resource,
        attrs.subresource ?? '',
        attrs.name ?? '',
        attrs.namespace ?? '',
      ];
  return digest(
    JSON.stringify([user.username, user.uid ?? '', [...(user.groups ?? [])].sort(), extra, a]),
  );
}

/**
 * Authorizes with SubjectAccessReview. Decisions are cached as Kubernetes' own webhook
 * authorizer caches them (allowed 5 min, denied 30 s: a revoked grant lingers at most 5 min,
 * a new grant shows within 30 s); identical questions asked concurrently share one request;
 * errors are never cached.
 */
export function createSubjectAccessReviewAuthorizer(
  opts: SubjectAccessReviewAuthorizerOptions,
): Authorizer & { readonly size: number } {
  if (!opts.kubeConfig && !opts.review) {
    throw new TypeError('createSubjectAccessReviewAuthorizer: kubeConfig or review is required');
  }
  // Only without `review` is @kubernetes/client-node needed (and loaded).
  const api = opts.review
    ? undefined
    : opts.kubeConfig!.makeApiClient(clientNode().AuthorizationV1Api);
  const review =
    opts.review ??
    (async (spec: SubjectAccessReviewSpec): Promise<SubjectAccessReviewStatus> => {
      const r = await api!.createSubjectAccessReview({
        body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec },
      });
      return {
        allowed: r.status?.allowed === true,
        denied: r.status?.denied === true,
        ...(r.status?.reason ? { reason: r.status.reason } : {}),
      };
    });
  const now = opts.now ?? Date.now;
  const cache = new TtlLru<Cached>(opts.maxEntries ?? 50_000, now, expiryOf);
  const inflight = new Map<string, Promise<AuthorizationDecision>>();
  const allowedTtl = opts.allowedTtlMs ?? 300_000;
  const deniedTtl = opts.deniedTtlMs ?? 30_000;

  async function ask(
    user: UserInfo,
    attrs: ResourceAttributes | NonResourceAttributes,
    key: string,
  ): Promise<AuthorizationDecision> {
    let status: SubjectAccessReviewStatus;
    try {
      status = await review({
        user: user.username,
        ...(user.uid ? { uid: user.uid } : {}),
        ...(user.groups ? { groups: user.groups } : {}),
        ...(user.extra ? { extra: user.extra } : {}),
        ...(isNonResource(attrs)
          ? { nonResourceAttributes: { verb: attrs.verb, path: attrs.path } }
          : { resourceAttributes: { ...attrs } }),
      });
    } catch (err) {
      throw new KubeUnavailableError('SubjectAccessReview failed', { cause: err });
    }
    const allowed = status.allowed === true && status.denied !== true;
    const denied = status.denied === true;
    const reason = status.reason;
    const until = cache.deadline(now() + (allowed ? allowedTtl : deniedTtl));
    cache.set(key, encode(until, allowed, denied, reason));
    return { allowed, denied, ...(reason ? { reason } : {}), cached: false };
  }

  return {
    get size() {
      return cache.size;
    },
    authorize(user, attrs) {
      const key = cacheKey(user, attrs);
      const hit = cache.get(key);
      if (hit !== undefined) return Promise.resolve(decode(hit));
      let p = inflight.get(key);
      if (!p) {
        p = ask(user, attrs, key).finally(() => inflight.delete(key));
        inflight.set(key, p);
      }
      return p;
    },
  };
}

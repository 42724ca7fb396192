import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiError } from './errors.js';
import {
  authorize,
  PRIVILEGED_GROUP,
  serviceAccountUsername,
  type Attributes,
  type RbacPolicy,
  type UserInfo,
} from './rbac.js';
import type { ObjectStore } from './store.js';
import { PODS, SECRETS, SERVICE_ACCOUNTS } from './resources.js';
import { MAX_TOKEN_BYTES, verifyToken, type SigningKey } from './tokens.js';

export const ADMIN_USER = 'kube-dev-admin';
export const AUTHENTICATED = 'system:authenticated';

/** The result of authenticating a bearer token. */
export interface Authenticated {
  user: UserInfo;
  /** The token's audiences that matched the requested ones. */
  audiences: string[];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Groups a ServiceAccount user carries, as kube-apiserver assigns them. */
export function serviceAccountGroups(namespace: string): string[] {
  return ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, AUTHENTICATED];
}

export interface AuthenticatorOptions {
  store: ObjectStore;
  key: SigningKey;
  /** The issuer this server signs with, and the implicit API audience. */
  issuer: string;
  /** Issuers accepted on verification (the current one first; earlier ones from --data-dir). */
  acceptedIssuers: string[];
  adminToken: string;
  log: Logger;
}

/** Authenticates bearer tokens the way kube-apiserver's token authenticators do. */
export class Authenticator {
  private readonly adminDigest: Buffer;
  constructor(private readonly o: AuthenticatorOptions) {
    this.adminDigest = digest(o.adminToken);
  }

  /**
   * Returns the user, or undefined (with the reason logged) when the token does not
   * authenticate for any of `audiences` (default: the issuer, i.e. the API's own audience).
   */
  async authenticate(token: string, audiences?: string[]): Promise<Authenticated | undefined> {
    const wanted = audiences && audiences.length > 0 ? audiences : [this.o.issuer];
    if (token.length === 0 || token.length > MAX_TOKEN_BYTES) {
      this.o.log.debug({ reason: 'token_size' }, 'token rejected');
      return undefined;
    }
    // Both sides hashed first so the comparison is constant-time whatever the lengths.
    if (timingSafeEqual(digest(token), this.adminDigest)) {
      // A static token carries no audience, so (like kube-apiserver's audience-agnostic
      // wrapper) it only authenticates for the API's own audience: a service that reviews
      // tokens for its own audience must never accept the cluster-admin credential.
      const api = wanted.filter((a) => a === this.o.issuer);
      if (api.length === 0) {
        this.o.log.debug({ reason: 'token_audience' }, 'token rejected');
        return undefined;
      }
      return {
        user: { username: ADMIN_USER, groups: [PRIVILEGED_GROUP, AUTHENTICATED] },
        audiences: api,
      };
    }
    let verified: Awaited<ReturnType<typeof verifyToken>> | undefined;
    let lastErr: unknown;
    for (const iss of this.o.acceptedIssuers) {
      try {
        verified = await verifyToken(this.o.key, token, iss);
        break;
      } catch (err) {
        lastErr = err;
      }
    }
    if (!verified) {
      this.o.log.debug({ reason: 'token_invalid', err: String(lastErr) }, 'token rejected');
      return undefined;
    }
    const matched = verified.audiences.filter((a) => wanted.includes(a));
    if (matched.length === 0) {
      this.o.log.debug({ reason: 'token_audience' }, 'token rejected');
      return undefined;
    }
    const k = verified.claims['kubernetes.io'];
    const sa = this.o.store.peek(SERVICE_ACCOUNTS.storeKind, k.namespace, k.serviceaccount.name);
    // Like kube-apiserver: the ServiceAccount, and the Pod or Secret the token is bound to,
    // must still exist with the same uid. (A Node never does: kube-dev has none.)
    if (!sa || sa.metadata.uid !== k.serviceaccount.uid) {
      this.o.log.debug({ reason: 'serviceaccount_gone' }, 'token rejected');
      return undefined;
    }
    const boundGone = (kind: string, ref: { name: string; uid?: string } | undefined) => {
      if (!ref) return false;
      const o = this.o.store.peek(kind, k.namespace, ref.name);
      return !o || o.metadata.uid !== ref.uid;
    };
    if (boundGone(PODS.storeKind, k.pod) || boundGone(SECRETS.storeKind, k.secret) || k.node) {
      this.o.log.debug({ reason: 'bound_object_gone' }, 'token rejected');
      return undefined;
    }
    const extra: Record<string, string[]> = {};
    if (k.pod) {
      extra['authentication.kubernetes.io/pod-name'] = [k.pod.name];
      if (k.pod.uid) extra['authentication.kubernetes.io/pod-uid'] = [k.pod.uid];
    }
    if (verified.claims.jti)
      extra['authentication.kubernetes.io/credential-id'] = [`JTI=${verified.claims.jti}`];
    return {
      user: {
        username: serviceAccountUsername(k.namespace, k.serviceaccount.name),
        uid: k.serviceaccount.uid,
        groups: serviceAccountGroups(k.namespace),
        extra,
      },
      audiences: matched,
    };
  }
}

/** The Forbidden Status kube-apiserver answers for a denied request. */
export function forbidden(user: UserInfo, a: Attributes, extraMsg = ''): ApiError {
  const who = `User "${user.username}"`;
  if (!('resource' in a)) {
    return new ApiError(
      403,
      'Forbidden',
      `forbidden: ${who} cannot ${a.verb} path "${a.path}"${extraMsg}`,
    );
  }
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const qualified = a.group ? `${a.resource}.${a.group}` : a.resource;
  const scope = a.namespace ? ` in the namespace "${a.namespace}"` : ' at the cluster scope';
  const subject = a.name ? `${qualified} "${a.name}"` : qualified;
  return new ApiError(
    403,
    'Forbidden',
    `${subject} is forbidden: ${who} cannot ${a.verb} resource "${res}" in API group "${a.group ?? ''}"${scope}${extraMsg}`,
    { ...(a.name ? { name: a.name } : {}), group: a.group ?? '', kind: a.resource },
  );
}

const IMPERSONATE_EXTRA = 'impersonate-extra-';

/**
 * Applies Impersonate-* headers: each impersonated attribute needs verb `impersonate` on
 * users / groups / serviceaccounts / uids / userextras, exactly as kube-apiserver checks it.
 * Returns the requester unchanged when no Impersonate-* header is present.
 */
export function impersonate(
  policy: RbacPolicy,
  requester: UserInfo,
  headers: Record<string, string | string[] | undefined>,
): UserInfo {
  const values = (h: string): string[] => {
    const v = headers[h];
    if (v === undefined) return [];
    // Each header line is one value (headersDistinct), so a group name may contain a comma.
    return (Array.isArray(v) ? v : [v]).filter(Boolean);
  };
  const userH = headers['impersonate-user'];
  const username = Array.isArray(userH) ? userH[0] : userH;
  const groups = values('impersonate-group');
  const uidH = headers['impersonate-uid'];
  const uid = Array.isArray(uidH) ? uidH[0] : uidH;
  const extra: Record<string, string[]> = {};
  for (const [h, v] of Object.entries(headers)) {
    if (!h.startsWith(IMPERSONATE_EXTRA) || v === undefined) continue;
    let k: string;
    try {
      k = decodeURIComponent(h.slice(IMPERSONATE_EXTRA.length)).toLowerCase();
    } catch {
      throw new ApiError(400, 'BadRequest', `invalid impersonation extra key "${h}"`);
    }
    extra[k] = Array.isArray(v) ? v : [v];
  }
  if (username === undefined) {
    if (groups.length || uid !== undefined || Object.keys(extra).length) {
      throw new ApiError(
        400,
        'BadRequest',
        'impersonating groups, uid or extra requires impersonating a user',
      );
    }
    return requester;
  }
  if (!username) throw new ApiError(400, 'BadRequest', 'Impersonate-User must not be empty');

  const check = (a: Attributes) => {
    if (!authorize(policy, requester, a).allowed) throw forbidden(requester, a);
  };
  const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  if (sa) {
    check({
      verb: 'impersonate',
      resource: 'serviceaccounts',
      group: '',
      namespace: sa[1]!,
      name: sa[2]!,
    });
  } else {
    check({ verb: 'impersonate', resource: 'users', group: '', name: username });
  }
  for (const g of groups) check({ verb: 'impersonate', resource: 'groups', group: '', name: g });
  if (uid !== undefined)
    check({ verb: 'impersonate', resource: 'uids', group: 'authentication.k8s.io', name: uid });
  for (const [k, vs] of Object.entries(extra)) {
    for (const v of vs) {
      check({
        verb: 'impersonate',
        resource: 'userextras',
        subresource: k,
        group: 'authentication.k8s.io',
        name: v,
      });
    }
  }

  let finalGroups = [...groups];
  if (groups.length === 0 && sa) finalGroups = serviceAccountGroups(sa[1]!);
  if (username === 'system:anonymous') {
    if (!finalGroups.includes('system:unauthenticated')) finalGroups.push('system:unauthenticated');
  } else if (!finalGroups.includes(AUTHENTICATED)) {
    finalGroups.push(AUTHENTICATED);
  }
  return {
    username,
    groups: finalGroups,
    ...(uid !== undefined ? { uid } : {}),
    ...(Object.keys(extra).length ? { extra } : {}),
  };
}

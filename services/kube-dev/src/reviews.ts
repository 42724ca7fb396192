import type { Authenticator } from './auth.js';
import { badRequest, invalid } from './errors.js';
import { authorize, rulesFor, type Attributes, type RbacPolicy, type UserInfo } from './rbac.js';
import { isObj, stringArray } from './schema.js';

/** The create-only review kinds kube-dev answers (authentication.k8s.io, authorization.k8s.io). */
export type ReviewKind =
  | 'TokenReview'
  | 'SelfSubjectReview'
  | 'SubjectAccessReview'
  | 'LocalSubjectAccessReview'
  | 'SelfSubjectAccessReview'
  | 'SelfSubjectRulesReview';

/**
 * TokenReview, SelfSubjectReview and the access reviews: each takes the decoded body and
 * returns the review with its status, as kube-apiserver fills it. Nothing is stored.
 */
export class Reviews {
  constructor(
    private readonly policy: RbacPolicy,
    private readonly authenticator: Authenticator,
  ) {}

  /**
   * Answers one review. `user` is the requester (for the Self* kinds); `namespace` is the
   * URL's, for LocalSubjectAccessReview. Throws 400/422 for a bad spec.
   */
  async answer(
    kind: ReviewKind,
    body: Record<string, unknown>,
    user: UserInfo,
    namespace?: string,
  ): Promise<Record<string, unknown>> {
    switch (kind) {
      case 'TokenReview':
        return this.tokenReview(body);
      case 'SelfSubjectReview':
        return {
          kind: 'SelfSubjectReview',
          apiVersion: 'authentication.k8s.io/v1',
          metadata: { creationTimestamp: null },
          status: { userInfo: userInfoJson(user) },
        };
      case 'SubjectAccessReview':
        return this.subjectAccessReview(body, 'SubjectAccessReview');
      case 'LocalSubjectAccessReview':
        return this.subjectAccessReview(body, 'LocalSubjectAccessReview', namespace);
      case 'SelfSubjectAccessReview':
        return this.selfSubjectAccessReview(body, user);
      case 'SelfSubjectRulesReview':
        return this.selfSubjectRulesReview(body, user);
    }
  }

  private async tokenReview(body: Record<string, unknown>) {
    const spec = body.spec;
    if (!isObj(spec) || typeof spec.token !== 'string' || !spec.token) {
      throw badRequest('token is required for TokenReview in authentication');
    }
    if (spec.audiences !== undefined && spec.audiences !== null && !stringArray(spec.audiences)) {
      throw invalid('TokenReview', 'authentication.k8s.io', '', [
        { field: 'spec.audiences', message: 'Invalid value: must be a list of strings' },
      ]);
    }
    const audiences = (spec.audiences as string[] | undefined | null) ?? undefined;
    const result = await this.authenticator.authenticate(spec.token, audiences ?? undefined);
    const base = {
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: { token: spec.token, ...(audiences ? { audiences } : {}) },
    };
    if (!result) return { ...base, status: { user: {}, error: 'invalid bearer token' } };
    return {
      ...base,
      status: { authenticated: true, user: userInfoJson(result.user), audiences: result.audiences },
    };
  }

  private decide(user: UserInfo, spec: Record<string, unknown>, kind: string, namespace?: string) {
    const ra = spec.resourceAttributes;
    const nra = spec.nonResourceAttributes;
    if ((ra === undefined || ra === null) === (nra === undefined || nra === null)) {
      throw invalid(kind, 'authorization.k8s.io', '', [
        {
          field: 'spec.resourceAttributes',
          message:
            'Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified',
        },
      ]);
    }
    let attrs: Attributes;
    if (isObj(ra)) {
      const str = (k: string) => (typeof ra[k] === 'string' ? (ra[k] as string) : '');
      attrs = {
        verb: str('verb'),
        group: str('group'),
        version: str('version'),
        resource: str('resource'),
        subresource: str('subresource'),
        name: str('name'),
        namespace: namespace ?? str('namespace'),
      };
    } else if (isObj(nra)) {
      attrs = {
        verb: typeof nra.verb === 'string' ? nra.verb : '',
        path: typeof nra.path === 'string' ? nra.path : '',
      };
    } else {
      throw badRequest('resourceAttributes and nonResourceAttributes must be objects');
    }
    const d = authorize(this.policy, user, attrs);
    return {
      allowed: d.allowed,
      ...(d.reason ? { reason: d.reason } : {}),
      ...(d.evaluationError ? { evaluationError: d.evaluationError } : {}),
    };
  }

  private subjectAccessReview(body: Record<string, unknown>, kind: string, namespace?: string) {
    const spec = body.spec;
    if (!isObj(spec))
      throw invalid(kind, 'authorization.k8s.io', '', [
        { field: 'spec', message: 'Required value' },
      ]);
    const username = typeof spec.user === 'string' ? spec.user : '';
    const groups = stringArray(spec.groups) ? spec.groups : [];
    if (!username && groups.length === 0) {
      throw invalid(kind, 'authorization.k8s.io', '', [
        {
          field: 'spec.user',
          message: 'Invalid value: "": at least one of user or group must be specified',
        },
      ]);
    }
    if (namespace !== undefined && isObj(spec.resourceAttributes)) {
      const rns = spec.resourceAttributes.namespace;
      if (rns !== undefined && rns !== '' && rns !== namespace) {
        throw invalid('', 'authorization.k8s.io', '', [
          {
            field: 'spec.resourceAttributes.namespace',
            message: `Invalid value: "${String(rns)}": must match metadata.namespace`,
          },
        ]);
      }
    }
    if (namespace !== undefined && spec.nonResourceAttributes) {
      throw badRequest('a LocalSubjectAccessReview cannot ask about nonResourceAttributes');
    }
    const extra = isObj(spec.extra) ? (spec.extra as Record<string, string[]>) : undefined;
    const user: UserInfo = {
      username,
      groups,
      ...(typeof spec.uid === 'string' ? { uid: spec.uid } : {}),
      ...(extra ? { extra } : {}),
    };
    return {
      kind,
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null, ...(namespace ? { namespace } : {}) },
      spec,
      status: this.decide(user, spec, kind, namespace),
    };
  }

  private selfSubjectAccessReview(body: Record<string, unknown>, user: UserInfo) {
    const spec = body.spec;
    if (!isObj(spec))
      throw invalid('SelfSubjectAccessReview', 'authorization.k8s.io', '', [
        { field: 'spec', message: 'Required value' },
      ]);
    return {
      kind: 'SelfSubjectAccessReview',
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec,
      status: this.decide(user, spec, 'SelfSubjectAccessReview'),
    };
  }

  /** The rules that apply to the requester in one namespace (what `kubectl auth can-i --list` shows). */
  private selfSubjectRulesReview(body: Record<string, unknown>, user: UserInfo) {
    const spec = isObj(body.spec) ? body.spec : {};
    const namespace = typeof spec.namespace === 'string' ? spec.namespace : '';
    const rules = rulesFor(this.policy, user, namespace);
    const resourceRules = rules
      .filter((r) => r.resources?.length)
      .map((r) => ({
        verbs: r.verbs,
        apiGroups: r.apiGroups ?? [],
        resources: r.resources,
        ...(r.resourceNames?.length ? { resourceNames: r.resourceNames } : {}),
      }));
    const nonResourceRules = rules
      .filter((r) => r.nonResourceURLs?.length)
      .map((r) => ({ verbs: r.verbs, nonResourceURLs: r.nonResourceURLs }));
    return {
      kind: 'SelfSubjectRulesReview',
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: { namespace },
      status: { resourceRules, nonResourceRules, incomplete: false },
    };
  }
}

function userInfoJson(u: UserInfo) {
  return {
    username: u.username,
    ...(u.uid ? { uid: u.uid } : {}),
    groups: u.groups ?? [],
    ...(u.extra && Object.keys(u.extra).length ? { extra: u.extra } : {}),
  };
}

import { KubeAuthError } from './errors.js';

/** Verified identity of a ServiceAccount token. */
export interface ServiceAccountIdentity {
  /** `system:serviceaccount:<namespace>:<name>` */
  username: string;
  /** The ServiceAccount's uid, when the token carries it. */
  uid?: string;
  /** system:serviceaccounts, system:serviceaccounts:<ns>, system:authenticated (and more from TokenReview). */
  groups: string[];
  namespace: string;
  serviceAccountName: string;
  pod?: { name: string; uid?: string };
  node?: { name: string; uid?: string };
  /** Audiences of the token that the verifier accepted. */
  audiences: string[];
  /** The token's `exp`. */
  expiresAt?: Date;
  /** As a real API server sets it: authentication.kubernetes.io/pod-name, pod-uid, node-name, node-uid, credential-id. */
  extra: Record<string, string[]>;
  source: 'jwks' | 'tokenreview';
}

const SA_PREFIX = 'system:serviceaccount:';
// DNS-1123 label for namespaces; DNS-1123 subdomain for ServiceAccount names.
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Splits `system:serviceaccount:<ns>:<name>`; undefined when it is not a ServiceAccount username. */
export function parseServiceAccountUsername(
  username: string,
): { namespace: string; name: string } | undefined {
  if (!username.startsWith(SA_PREFIX)) return undefined;
  const parts = username.slice(SA_PREFIX.length).split(':');
  if (parts.length !== 2) return undefined;
  const [namespace, name] = parts as [string, string];
  if (!NAMESPACE_RE.test(namespace) || !NAME_RE.test(name)) return undefined;
  return { namespace, name };
}

// Identities are cached by the hundred thousand; most of their arrays are the same few values.
// Sharing frozen copies keeps a cached identity small (measured by bench/kube-memory.bench.ts).
const internedGroups = new Map<string, readonly string[]>();
const internedAudiences = new Map<string, readonly string[]>();
const INTERN_MAX = 4096;

function intern(map: Map<string, readonly string[]>, key: string, make: () => string[]): string[] {
  let v = map.get(key);
  if (!v) {
    v = Object.freeze(make());
    if (map.size < INTERN_MAX) map.set(key, v);
  }
  return v as string[];
}

/** The groups a real API server gives a ServiceAccount (a shared, frozen array). */
export function serviceAccountGroups(namespace: string): string[] {
  return intern(internedGroups, namespace, () => [
    'system:serviceaccounts',
    `system:serviceaccounts:${namespace}`,
    'system:authenticated',
  ]);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/**
 * Maps verified JWT claims to an identity. Understands projected tokens (`kubernetes.io`
 * claim) and legacy secret tokens (`kubernetes.io/serviceaccount/*` claims). `sub` must agree
 * with the namespace and name, as the API server requires.
 */
export function identityFromClaims(
  payload: Record<string, unknown>,
  audiences: string[],
): ServiceAccountIdentity {
  const k8s = obj(payload['kubernetes.io']);
  let namespace: string | undefined;
  let name: string | undefined;
  let uid: string | undefined;
  let pod: ServiceAccountIdentity['pod'];
  let node: ServiceAccountIdentity['node'];
  if (k8s) {
    namespace = str(k8s.namespace);
    const sa = obj(k8s.serviceaccount);
    name = str(sa?.name);
    uid = str(sa?.uid);
    const p = obj(k8s.pod);
    if (p && str(p.name)) pod = { name: str(p.name)!, ...(str(p.uid) ? { uid: str(p.uid)! } : {}) };
    const n = obj(k8s.node);
    if (n && str(n.name))
      node = { name: str(n.name)!, ...(str(n.uid) ? { uid: str(n.uid)! } : {}) };
  } else {
    namespace = str(payload['kubernetes.io/serviceaccount/namespace']);
    name = str(payload['kubernetes.io/serviceaccount/service-account.name']);
    uid = str(payload['kubernetes.io/serviceaccount/service-account.uid']);
  }
  if (!namespace || !name) {
    throw new KubeAuthError(
      'ERR_TOKEN_CLAIMS',
      'token carries no ServiceAccount namespace and name',
    );
  }
  const username = `${SA_PREFIX}${namespace}:${name}`;
  if (!parseServiceAccountUsername(username)) {
    throw new KubeAuthError('ERR_TOKEN_CLAIMS', 'ServiceAccount namespace or name is not valid');
  }
  if (payload.sub !== username) {
    throw new KubeAuthError('ERR_TOKEN_CLAIMS', 'sub does not match the ServiceAccount claims');
  }
  const extra: Record<string, string[]> = {};
  if (pod) {
    extra['authentication.kubernetes.io/pod-name'] = [pod.name];
    if (pod.uid) extra['authentication.kubernetes.io/pod-uid'] = [pod.uid];
  }
  if (node) {
    extra['authentication.kubernetes.io/node-name'] = [node.name];
    if (node.uid) extra['authentication.kubernetes.io/node-uid'] = [node.uid];
  }
  const jti = str(payload.jti);
  if (jti) extra['authentication.kubernetes.io/credential-id'] = [`JTI=${jti}`];
  const exp = typeof payload.exp === 'number' ? new Date(payload.exp * 1000) : undefined;
  return {
    username,
    ...(uid ? { uid } : {}),
    groups: serviceAccountGroups(namespace),
    namespace,
    serviceAccountName: name,
    ...(pod ? { pod } : {}),
    ...(node ? { node } : {}),
    audiences: intern(internedAudiences, audiences.join('\n'), () => [...audiences]),
    ...(exp ? { expiresAt: exp } : {}),
    extra,
    source: 'jwks',
  };
}

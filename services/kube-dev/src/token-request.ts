import { ApiError, badRequest, invalid, notFound } from './errors.js';
import { PODS, SECRETS, SERVICE_ACCOUNTS, type ResourceDef } from './resources.js';
import type { ObjectStore } from './store.js';
import { issueToken, type BoundObject, type SigningKey } from './tokens.js';
import { isObj, stringArray } from './schema.js';

const MAX_TOKEN_SECONDS = 2 ** 32;
const MIN_TOKEN_SECONDS = 600;
const DEFAULT_TOKEN_SECONDS = 3600;

/** What a TokenRequest needs: the ServiceAccounts and bound objects, and the issuer's key. */
export interface TokenRequestContext {
  store: ObjectStore;
  key: SigningKey;
  issuer: string;
}

/**
 * `POST .../serviceaccounts/<name>/token`: a ServiceAccount token for the audiences and
 * lifetime asked for (within kube-apiserver's bounds), optionally bound to a Pod or Secret
 * that must exist now. Throws 404 for a missing ServiceAccount or object, 400/422 for a bad spec.
 */
export async function tokenRequest(
  ctx: TokenRequestContext,
  ns: string,
  name: string,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  if (body.kind !== undefined && body.kind !== 'TokenRequest')
    throw badRequest('expected kind TokenRequest');
  const sa = ctx.store.get(SERVICE_ACCOUNTS.storeKind, ns, name);
  if (!sa) throw notFound('serviceaccounts', '', name);
  const spec = body.spec ?? {};
  if (!isObj(spec)) throw badRequest('spec must be an object');
  const causes: Array<{ field: string; message: string }> = [];
  let audiences = [ctx.issuer];
  if (spec.audiences !== undefined && spec.audiences !== null) {
    // kube-apiserver accepts an empty string among the audiences (it matches nothing).
    if (!stringArray(spec.audiences)) {
      causes.push({
        field: 'spec.audiences',
        message: 'Invalid value: must be a list of strings',
      });
    } else if (spec.audiences.length) audiences = spec.audiences;
  }
  let seconds = DEFAULT_TOKEN_SECONDS;
  if (spec.expirationSeconds !== undefined && spec.expirationSeconds !== null) {
    const e = spec.expirationSeconds;
    if (typeof e !== 'number' || !Number.isInteger(e)) {
      causes.push({
        field: 'spec.expirationSeconds',
        message: 'Invalid value: must be an integer',
      });
    } else if (e < MIN_TOKEN_SECONDS) {
      causes.push({
        field: 'spec.expirationSeconds',
        message: 'Invalid value: may not specify a duration less than 10 minutes',
      });
    } else if (e > MAX_TOKEN_SECONDS) {
      causes.push({
        field: 'spec.expirationSeconds',
        message: 'Invalid value: may not specify a duration larger than 2^32 seconds',
      });
    } else seconds = e;
  }
  let bound: BoundObject | undefined;
  const ref = spec.boundObjectRef;
  if (isObj(ref)) {
    const kind = typeof ref.kind === 'string' ? ref.kind : '';
    const refName = typeof ref.name === 'string' ? ref.name : '';
    const apiVersion = typeof ref.apiVersion === 'string' ? ref.apiVersion : '';
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
    const version = apiVersion.includes('/') ? apiVersion.split('/')[1] : apiVersion;
    const defs: Record<string, ResourceDef> = { Pod: PODS, Secret: SECRETS };
    const target = group === '' ? defs[kind] : undefined;
    if (kind === 'Node' && group === '') {
      // kube-dev has no nodes, so a node to bind to never exists.
      throw notFound('nodes', '', refName);
    }
    if (!target) {
      throw badRequest(`cannot bind token to object of type ${group}/${version}, Kind=${kind}`);
    }
    // Like kube-apiserver: the object must exist now, with the uid the caller names; the
    // token then lives only as long as that object (TokenReview checks it again).
    const o = ctx.store.peek(target.storeKind, ns, refName);
    if (!o) throw notFound(target.resource, '', refName);
    const uid = o.metadata.uid!;
    if (typeof ref.uid === 'string' && ref.uid && ref.uid !== uid) {
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${kind} "${refName}": the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`,
        { name: refName, kind },
      );
    }
    if (
      target === PODS &&
      (o.spec as { serviceAccountName?: string }).serviceAccountName !== name
    ) {
      throw badRequest(
        `cannot bind token for serviceaccount "${name}" to pod running with different serviceaccount name.`,
      );
    }
    bound = { kind: kind as BoundObject['kind'], name: refName, uid };
  }
  if (causes.length) throw invalid('TokenRequest', 'authentication.k8s.io', name, causes);
  const { token, expiresAt } = await issueToken(ctx.key, {
    issuer: ctx.issuer,
    audiences,
    namespace: ns,
    serviceAccount: { name, uid: sa.metadata.uid! },
    expirationSeconds: seconds,
    ...(bound ? { boundObject: bound } : {}),
  });
  return {
    kind: 'TokenRequest',
    apiVersion: 'authentication.k8s.io/v1',
    metadata: { name, namespace: ns, creationTimestamp: null },
    spec: {
      audiences,
      expirationSeconds: seconds,
      boundObjectRef: bound
        ? {
            kind: bound.kind,
            apiVersion: 'v1',
            name: bound.name,
            ...(bound.uid ? { uid: bound.uid } : {}),
          }
        : null,
    },
    status: { token, expirationTimestamp: expiresAt.toISOString().replace(/\.\d+Z$/, 'Z') },
  };
}

import type { KubeConfig } from '@kubernetes/client-node';
import { clientNode } from './client-node.js';
import { KubeAuthError, KubeUnavailableError } from './errors.js';
import { MAX_TOKEN_BYTES } from './jwt.js';
import { parseServiceAccountUsername, type ServiceAccountIdentity } from './identity.js';
import type { TokenVerifier } from './verifier.js';

export interface TokenReviewVerifierOptions {
  kubeConfig: KubeConfig;
  /** Audiences the token must be valid for; the API server's own when omitted. */
  audiences?: string[];
}

function unverifiedExp(token: string): Date | undefined {
  // Only to bound how long a cache may keep the result; the API server did the verifying.
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString());
    return typeof payload.exp === 'number' ? new Date(payload.exp * 1000) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Online verification: asks the API server (TokenReview), which also knows whether the
 * ServiceAccount, its uid and a bound pod still exist. One API call per token: wrap it in
 * cachingVerifier.
 */
export function createTokenReviewVerifier(opts: TokenReviewVerifierOptions): TokenVerifier {
  const api = opts.kubeConfig.makeApiClient(clientNode().AuthenticationV1Api);
  return {
    async verify(token) {
      if (!token) throw new KubeAuthError('ERR_TOKEN_MISSING', 'no token');
      if (token.length > MAX_TOKEN_BYTES) {
        throw new KubeAuthError(
          'ERR_TOKEN_TOO_LARGE',
          `token longer than ${MAX_TOKEN_BYTES} bytes`,
        );
      }
      let review;
      try {
        review = await api.createTokenReview({
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: { token, ...(opts.audiences ? { audiences: opts.audiences } : {}) },
          },
        });
      } catch (err) {
        throw new KubeUnavailableError('TokenReview failed', { cause: err });
      }
      const status = review.status;
      if (!status?.authenticated || !status.user?.username) {
        throw new KubeAuthError(
          'ERR_TOKEN_REJECTED',
          'the API server did not authenticate the token',
        );
      }
      const sa = parseServiceAccountUsername(status.user.username);
      if (!sa) {
        throw new KubeAuthError(
          'ERR_TOKEN_CLAIMS',
          'the token does not belong to a ServiceAccount',
        );
      }
      const extra: Record<string, string[]> = {};
      for (const [k, v] of Object.entries(status.user.extra ?? {})) extra[k] = [...v];
      const podName = extra['authentication.kubernetes.io/pod-name']?.[0];
      const podUid = extra['authentication.kubernetes.io/pod-uid']?.[0];
      const nodeName = extra['authentication.kubernetes.io/node-name']?.[0];
      const nodeUid = extra['authentication.kubernetes.io/node-uid']?.[0];
      const expiresAt = unverifiedExp(token);
      const identity: ServiceAccountIdentity = {
        username: status.user.username,
        ...(status.user.uid ? { uid: status.user.uid } : {}),
        groups: [...(status.user.groups ?? [])],
        namespace: sa.namespace,
        serviceAccountName: sa.name,
        ...(podName ? { pod: { name: podName, ...(podUid ? { uid: podUid } : {}) } } : {}),
        ...(nodeName ? { node: { name: nodeName, ...(nodeUid ? { uid: nodeUid } : {}) } } : {}),
        audiences: [...(status.audiences ?? opts.audiences ?? [])],
        ...(expiresAt ? { expiresAt } : {}),
        extra,
        source: 'tokenreview',
      };
      return identity;
    },
  };
}

import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { X509Source } from '@precinct/spiffe/workloadapi';
import type { IdentityServer } from '@precinct/identity-server';
import type { Logger } from '@precinct/runtime';

/**
 * How `precinct up` gives its own services SPIFFE identities the way a pod gets them: a
 * ServiceAccount in kube-dev, a registration entry selecting it, a projected token for the
 * identity server's audience, attestation, then the Workload API. No shortcut through the
 * identity server's internals, so the local platform exercises the same path as production.
 */

/** The token audience the local identity server attests. */
export const ATTEST_AUDIENCE = 'precinct';

export interface LocalWorkload {
  namespace: string;
  serviceAccount: string;
  /** The SPIFFE IDs its socket serves: the first is its own, the rest e.g. agents it hosts. */
  spiffeIds: string[];
  /** `unix://...` of its Workload API socket. */
  address: string;
  source: X509Source;
  close(): Promise<void>;
}

function isConflict(err: unknown): boolean {
  const code = (err as { code?: number; statusCode?: number }).code;
  return code === 409 || (err as { statusCode?: number }).statusCode === 409;
}

async function attest(adminUrl: string, token: string): Promise<string> {
  const res = await fetch(`${adminUrl}/v1/attest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
    signal: AbortSignal.timeout(20_000),
  });
  if (!res.ok) throw new Error(`attestation refused (HTTP ${res.status})`);
  return ((await res.json()) as { address: string }).address;
}

/**
 * Creates (if missing) the ServiceAccount and the entries, attests and opens an X509Source
 * on the workload's socket. The binding is renewed by attesting again at half the token's
 * life, so a long-running `up` keeps its identities (the identity server caps a binding's life
 * independently of the token).
 */
export async function startLocalWorkload(o: {
  kubeConfig: KubeConfig;
  identity: IdentityServer;
  namespace: string;
  serviceAccount: string;
  spiffeIds: string[];
  logger: Logger;
  /** Token lifetime; re-attested at half of it. Default 1 h. */
  tokenSeconds?: number;
}): Promise<LocalWorkload> {
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  try {
    await core.createNamespace({ body: { metadata: { name: o.namespace } } });
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
  try {
    await core.createNamespacedServiceAccount({
      namespace: o.namespace,
      body: { metadata: { name: o.serviceAccount, namespace: o.namespace } },
    });
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
  const selectors = [`k8s:ns:${o.namespace}`, `k8s:sa:${o.serviceAccount}`];
  const existing = new Set(o.identity.entries.list().map((e) => e.spiffeId));
  for (const spiffeId of o.spiffeIds) {
    if (!existing.has(spiffeId)) await o.identity.entries.create({ spiffeId, selectors });
  }
  const seconds = o.tokenSeconds ?? 3600;
  const token = async () =>
    (
      await core.createNamespacedServiceAccountToken({
        name: o.serviceAccount,
        namespace: o.namespace,
        body: { spec: { audiences: [ATTEST_AUDIENCE], expirationSeconds: seconds } },
      })
    ).status?.token ?? '';
  const address = await attest(o.identity.adminUrl, await token());
  const source = await X509Source.create({ address, timeoutMs: 20_000 });
  const renew = setInterval(
    () => {
      void token()
        .then((t) => attest(o.identity.adminUrl, t))
        .catch((err: unknown) =>
          o.logger.warn(
            { workload: `${o.namespace}/${o.serviceAccount}`, err: (err as Error).message },
            're-attestation failed; retrying at the next interval',
          ),
        );
    },
    (seconds * 1000) / 2,
  );
  renew.unref();
  return {
    namespace: o.namespace,
    serviceAccount: o.serviceAccount,
    spiffeIds: o.spiffeIds,
    address,
    source,
    close: async () => {
      clearInterval(renew);
      source.close();
    },
  };
}

import {
  CoreV1Api,
  makeInformer,
  type Informer,
  type KubeConfig,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import type { Logger } from '@precinct/runtime';

/** What the callout needs to know about a ServiceAccount. */
export interface ServiceAccountRecord {
  namespace: string;
  name: string;
  uid?: string;
  annotations: Readonly<Record<string, string>>;
}

export interface ServiceAccountSourceStatus {
  /** The first list completed: lookups are answered from a full picture. */
  synced: boolean;
  /** The watch is connected; false while serving the last synced cache through an outage. */
  healthy: boolean;
  size: number;
}

/**
 * Where ServiceAccounts are looked up. `get` answers from memory and never blocks on the
 * Kubernetes API; an unknown ServiceAccount is `undefined` (the callout denies it).
 */
export interface ServiceAccountSource {
  get(namespace: string, name: string): ServiceAccountRecord | undefined;
  status(): ServiceAccountSourceStatus;
  /** Resolves after the first successful list (or rejects after `timeoutMs`). */
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** A fixed set of ServiceAccounts, always synced: for tests and static deployments. */
export function staticServiceAccounts(records: ServiceAccountRecord[]): ServiceAccountSource & {
  set(record: ServiceAccountRecord): void;
  delete(namespace: string, name: string): void;
} {
  const map = new Map(records.map((r) => [`${r.namespace}/${r.name}`, r]));
  return {
    get: (ns, name) => map.get(`${ns}/${name}`),
    status: () => ({ synced: true, healthy: true, size: map.size }),
    ready: async () => {},
    close: async () => {},
    set: (r) => void map.set(`${r.namespace}/${r.name}`, r),
    delete: (ns, name) => void map.delete(`${ns}/${name}`),
  };
}

export interface InformerOptions {
  kubeConfig: KubeConfig;
  /** Watch one namespace only (K8S_NAMESPACE); all namespaces when absent. */
  namespace?: string;
  logger: Logger;
  onChange?: (status: ServiceAccountSourceStatus) => void;
  onRestart?: () => void;
  /** Restart backoff after a watch error: starts here, doubles, capped at 30 s. */
  initialBackoffMs?: number;
}

/**
 * A ServiceAccount cache fed by an informer (list + watch) from @kubernetes/client-node. The
 * cache is ours, not the informer's: each successful list replaces it with that snapshot and
 * watch events update it. When the API goes away, the last synced cache keeps answering (status
 * `healthy: false`); a fresh informer is started with capped exponential backoff, and its first
 * list replaces the cache again (dropping what was deleted meanwhile).
 */
export function serviceAccountInformer(opts: InformerOptions): ServiceAccountSource {
  const api = opts.kubeConfig.makeApiClient(CoreV1Api);
  const ns = opts.namespace;
  const path = ns ? `/api/v1/namespaces/${ns}/serviceaccounts` : '/api/v1/serviceaccounts';
  const rawList = ns
    ? () => api.listNamespacedServiceAccount({ namespace: ns })
    : () => api.listServiceAccountForAllNamespaces();
  let cache = new Map<string, ServiceAccountRecord>();
  let synced = false;
  let healthy = false;
  let closed = false;
  let informer: Informer<V1ServiceAccount> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const initialBackoff = opts.initialBackoffMs ?? 500;
  let backoff = initialBackoff;
  const waiters: Array<() => void> = [];

  const status = (): ServiceAccountSourceStatus => ({ synced, healthy, size: cache.size });
  const changed = () => opts.onChange?.(status());
  const upsert = (sa: V1ServiceAccount) => {
    const r = toRecord(sa);
    if (r) cache.set(`${r.namespace}/${r.name}`, r);
    changed();
  };
  const remove = (sa: V1ServiceAccount) => {
    cache.delete(`${sa.metadata?.namespace ?? ''}/${sa.metadata?.name ?? ''}`);
    changed();
  };

  const start = (generation: number) => {
    if (closed) return;
    // The list that seeds (or re-seeds) the cache: an authoritative snapshot.
    const list = async () => {
      const res = await rawList();
      if (generation === current && !closed) {
        const next = new Map<string, ServiceAccountRecord>();
        for (const sa of res.items) {
          const r = toRecord(sa);
          if (r) next.set(`${r.namespace}/${r.name}`, r);
        }
        cache = next;
        if (!synced) opts.logger.info({ size: cache.size }, 'serviceaccount cache synced');
        else if (!healthy) opts.logger.info({ size: cache.size }, 'serviceaccount watch restored');
        synced = true;
        healthy = true;
        backoff = initialBackoff;
        changed();
        for (const w of waiters.splice(0)) w();
      }
      return res;
    };
    const inf = makeInformer<V1ServiceAccount>(opts.kubeConfig, path, list);
    informer = inf;
    inf.on('add', (sa) => generation === current && upsert(sa));
    inf.on('update', (sa) => generation === current && upsert(sa));
    inf.on('delete', (sa) => generation === current && remove(sa));
    inf.on('error', (err: unknown) => {
      if (closed || generation !== current) return;
      const wasHealthy = healthy;
      healthy = false;
      changed();
      opts.logger.warn(
        {
          err: err instanceof Error ? err.message : String(err),
          retryInMs: backoff,
          cached: cache.size,
        },
        wasHealthy
          ? 'serviceaccount watch failed: serving the last synced cache'
          : 'serviceaccount list/watch failed',
      );
      clearTimeout(timer);
      timer = setTimeout(() => {
        void inf.stop().catch(() => {});
        opts.onRestart?.();
        start(++current);
      }, backoff);
      timer.unref();
      backoff = Math.min(backoff * 2, 30_000);
    });
    // start() settles only once the watch is open; progress is reported through the events.
    inf.start().catch(() => {});
  };
  let current = 0;
  start(current);

  return {
    get: (namespace, name) => cache.get(`${namespace}/${name}`),
    status,
    ready(timeoutMs = 30_000) {
      if (synced) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error('serviceaccount cache did not sync in time')),
          timeoutMs,
        );
        t.unref();
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await informer?.stop().catch(() => {});
    },
  };
}

function toRecord(sa: V1ServiceAccount): ServiceAccountRecord | undefined {
  const m = sa.metadata;
  if (!m?.name || !m.namespace) return undefined;
  return {
    namespace: m.namespace,
    name: m.name,
    ...(m.uid ? { uid: m.uid } : {}),
    annotations: m.annotations ?? {},
  };
}

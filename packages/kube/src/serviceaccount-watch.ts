import { EventEmitter } from 'node:events';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { CachingVerifier } from './cache.js';
import { clientNode } from './client-node.js';
import { KubeAuthError, KubeUnavailableError } from './errors.js';
import type { TokenVerifier } from './verifier.js';

/** An object a watch follows, as far as revocation cares: where it is and which incarnation. */
export interface WatchedObject {
  namespace: string;
  name: string;
  /** metadata.uid: a deleted and recreated object of the same name has a new one. */
  uid: string;
}

/**
 * `starting` until the first list arrived; `synced` while the view is current (a dropped watch
 * stays `synced` while it reconnects, up to `staleAfterMs`); `stale` past that bound (fail
 * closed: nothing is `live`); `unsupported` when the API does not serve the resource (kube-dev
 * has no pods); `closed` after close().
 */
export type ObjectWatchState = 'starting' | 'synced' | 'stale' | 'unsupported' | 'closed';

/** `live`: this uid exists now. `gone`: deleted or replaced. `unknown`: not seen, or not synced. */
export type ObjectStatus = 'live' | 'gone' | 'unknown';

export interface ObjectWatchOptions {
  kubeConfig: KubeConfig;
  /** Only this namespace; default: all namespaces (needs cluster-wide list and watch). */
  namespace?: string;
  /**
   * How long the watch may be down (reconnecting, re-listing) before the view counts as stale
   * and consumers fail closed. Default 30 s.
   */
  staleAfterMs?: number;
  /** First reconnect delay; doubles on each failure up to 10 s. Default 500 ms. */
  retryMs?: number;
  /** Server-side watch timeout, after which the watch is resumed. Default 300 s. */
  watchTimeoutSeconds?: number;
  logger?: Logger;
}

/** The events of an {@link ObjectWatch}. */
export interface ObjectWatchEvents {
  /** The object of this uid no longer exists: DELETED, replaced by a new uid, or gone at a re-list. */
  deleted: [WatchedObject];
  /** A list completed: the view is current (first start, after a 410 or after being stale). */
  synced: [];
  /** The watch has been down for longer than `staleAfterMs`: fail closed until `synced`. */
  stale: [];
  /** The API answered 404 for the resource: the watch stopped. */
  unsupported: [];
}

/**
 * The uids of one kind of object (ServiceAccounts or pods), kept current by list + watch through
 * the Kubernetes API, for revoking what rests on an object once it is gone. Holds only
 * namespace, name and uid of each object. A dropped watch is resumed from the last
 * resourceVersion, or re-listed (410 Gone, or after being stale), and objects missing from a
 * re-list are reported `deleted`.
 */
export interface ObjectWatch extends EventEmitter<ObjectWatchEvents> {
  readonly resource: string;
  readonly state: ObjectWatchState;
  /** Resolves once the first list arrived, or the resource turned out unsupported. */
  ready(): Promise<void>;
  /** Whether the object of `ref.uid` exists (see ObjectStatus); a stale view says `unknown`. */
  status(ref: WatchedObject): ObjectStatus;
  /** {@link status}, waiting up to `timeoutMs` for it to leave `unknown` (a new object on its way). */
  waitForStatus(ref: WatchedObject, timeoutMs: number): Promise<ObjectStatus>;
  /** The current uid of namespace/name, if the view has one. */
  uidOf(namespace: string, name: string): string | undefined;
  /** Stops watching. Idempotent. */
  close(): void;
}

const MAX_TOMBSTONES = 10_000;
const MAX_RETRY_MS = 10_000;

interface ListResult {
  metadata?: { resourceVersion?: string };
  items: { metadata?: { namespace?: string; name?: string; uid?: string } }[];
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;

class KubeObjectWatch extends EventEmitter<ObjectWatchEvents> implements ObjectWatch {
  readonly resource: string;
  #state: ObjectWatchState = 'starting';
  readonly #opts: Required<Omit<ObjectWatchOptions, 'namespace' | 'logger' | 'kubeConfig'>> &
    ObjectWatchOptions;
  readonly #list: (resourceVersion?: string) => Promise<ListResult>;
  readonly #path: string;
  /** namespace/name -> uid */
  readonly #byName = new Map<string, string>();
  /** uid -> object */
  readonly #byUid = new Map<string, WatchedObject>();
  /** uids known to be gone (a uid never comes back); insertion-ordered, bounded. */
  readonly #tombstones = new Set<string>();
  // Fires on every applied change, so waitForStatus can re-check.
  readonly #changes = new EventEmitter();
  #resourceVersion = '';
  #abort: (() => void) | undefined;
  #staleTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #ready: Promise<void>;
  #resolveReady!: () => void;

  constructor(resource: 'serviceaccounts' | 'pods', opts: ObjectWatchOptions) {
    super();
    this.resource = resource;
    this.#opts = {
      staleAfterMs: 30_000,
      retryMs: 500,
      watchTimeoutSeconds: 300,
      ...opts,
    };
    if (!(this.#opts.staleAfterMs > 0)) throw new TypeError('staleAfterMs must be positive');
    this.#changes.setMaxListeners(0);
    this.#ready = new Promise((r) => (this.#resolveReady = r));
    const core = opts.kubeConfig.makeApiClient(clientNode().CoreV1Api);
    const ns = opts.namespace;
    this.#path = ns
      ? `/api/v1/namespaces/${encodeURIComponent(ns)}/${resource}`
      : `/api/v1/${resource}`;
    this.#list =
      resource === 'serviceaccounts'
        ? ns
          ? () => core.listNamespacedServiceAccount({ namespace: ns })
          : () => core.listServiceAccountForAllNamespaces()
        : ns
          ? () => core.listNamespacedPod({ namespace: ns })
          : () => core.listPodForAllNamespaces();
    void this.#run();
  }

  get state(): ObjectWatchState {
    return this.#state;
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  status(ref: WatchedObject): ObjectStatus {
    if (this.#tombstones.has(ref.uid)) return 'gone';
    if (this.#state !== 'synced') return 'unknown';
    const o = this.#byUid.get(ref.uid);
    if (o) return o.namespace === ref.namespace && o.name === ref.name ? 'live' : 'gone';
    // The name now belongs to another uid: this one was replaced.
    return this.#byName.has(keyOf(ref.namespace, ref.name)) ? 'gone' : 'unknown';
  }

  async waitForStatus(ref: WatchedObject, timeoutMs: number): Promise<ObjectStatus> {
    const now = this.status(ref);
    if (now !== 'unknown' || this.#state === 'closed') return now;
    return new Promise<ObjectStatus>((resolve) => {
      const check = () => {
        const s = this.status(ref);
        if (s !== 'unknown' || this.#state === 'closed') done(s);
      };
      const done = (s: ObjectStatus) => {
        clearTimeout(timer);
        this.#changes.off('change', check);
        resolve(s);
      };
      const timer = setTimeout(() => done(this.status(ref)), timeoutMs);
      timer.unref();
      this.#changes.on('change', check);
    });
  }

  uidOf(namespace: string, name: string): string | undefined {
    return this.#state === 'synced' ? this.#byName.get(keyOf(namespace, name)) : undefined;
  }

  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#staleTimer);
    clearTimeout(this.#retryTimer);
    this.#abort?.();
    this.#wake?.();
    this.#resolveReady();
    this.#changes.emit('change');
  }

  #closed(): boolean {
    return this.#state === 'closed';
  }

  #bury(o: WatchedObject): void {
    this.#byUid.delete(o.uid);
    if (this.#byName.get(keyOf(o.namespace, o.name)) === o.uid) {
      this.#byName.delete(keyOf(o.namespace, o.name));
    }
    this.#tombstones.add(o.uid);
    if (this.#tombstones.size > MAX_TOMBSTONES) {
      const oldest = this.#tombstones.values().next().value;
      if (oldest !== undefined) this.#tombstones.delete(oldest);
    }
    this.emit('deleted', o);
  }

  #upsert(meta: { namespace?: string; name?: string; uid?: string } | undefined): void {
    if (!meta?.name || !meta.uid) return;
    const o = { namespace: meta.namespace ?? '', name: meta.name, uid: meta.uid };
    const key = keyOf(o.namespace, o.name);
    const prev = this.#byName.get(key);
    if (prev === o.uid) return;
    // A new uid under a known name: the old object was deleted (its DELETED event may have
    // been missed while disconnected).
    if (prev !== undefined) this.#bury(this.#byUid.get(prev)!);
    if (this.#tombstones.has(o.uid)) return;
    this.#byName.set(key, o.uid);
    this.#byUid.set(o.uid, o);
  }

  #applyList(list: ListResult): void {
    const seen = new Set<string>();
    for (const item of list.items) {
      this.#upsert(item.metadata);
      if (item.metadata?.uid) seen.add(item.metadata.uid);
    }
    for (const o of [...this.#byUid.values()]) if (!seen.has(o.uid)) this.#bury(o);
    this.#resourceVersion = list.metadata?.resourceVersion ?? '';
  }

  /** The connection is down: arm the stale bound, once. */
  #down(): void {
    if (this.#staleTimer || this.#closed()) return;
    this.#staleTimer = setTimeout(() => {
      if (this.#closed() || this.#state === 'stale') return;
      const wasStarting = this.#state === 'starting';
      this.#state = 'stale';
      // Re-list before trusting the view again: events missed may be beyond replay.
      this.#resourceVersion = '';
      this.#opts.logger?.warn(
        { resource: this.resource, staleAfterMs: this.#opts.staleAfterMs },
        'watch down too long: failing closed until it re-lists',
      );
      if (!wasStarting) this.emit('stale');
      this.#changes.emit('change');
    }, this.#opts.staleAfterMs);
    this.#staleTimer.unref();
  }

  #up(): void {
    clearTimeout(this.#staleTimer);
    this.#staleTimer = undefined;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closed()) {
      try {
        if (!this.#resourceVersion) {
          const list = (await this.#list()) as unknown as ListResult;
          if (this.#closed()) return;
          this.#applyList(list);
          this.#up();
          const was = this.#state;
          this.#state = 'synced';
          if (was !== 'synced') {
            this.#opts.logger?.info({ resource: this.resource }, 'watch synced');
            this.emit('synced');
          }
          this.#resolveReady();
          this.#changes.emit('change');
        }
        const started = Date.now();
        await this.#watchOnce();
        failures = 0;
        // A server that ends every watch at once must not be re-dialled in a tight loop.
        if (Date.now() - started < 1000) await this.#sleep(this.#opts.retryMs);
      } catch (err) {
        if (this.#closed()) return;
        const status = statusOf(err);
        if (status === 404 && this.#state === 'starting') {
          this.#state = 'unsupported';
          this.#opts.logger?.info(
            { resource: this.resource },
            'the API does not serve this resource',
          );
          this.emit('unsupported');
          this.#resolveReady();
          return;
        }
        if (status === 410) {
          this.#resourceVersion = '';
          continue;
        }
        this.#down();
        failures++;
        const delay = Math.min(this.#opts.retryMs * 2 ** (failures - 1), MAX_RETRY_MS);
        this.#opts.logger?.warn(
          {
            resource: this.resource,
            status,
            // The first line only: client-node appends the response body and headers.
            reason: String((err as Error)?.message ?? err).split('\n')[0],
            retryInMs: delay,
          },
          status === 401 || status === 403
            ? `watch refused: grant list and watch on ${this.resource}; failing closed meanwhile`
            : 'watch failed; retrying',
        );
        await this.#sleep(delay);
      }
    }
  }

  /** Waits `ms`, or until close(). */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((r) => {
      this.#wake = r;
      this.#retryTimer = setTimeout(r, ms);
      this.#retryTimer.unref();
    });
  }

  /** One watch request from the current resourceVersion; resolves when it ends normally. */
  #watchOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let finished = false;
      let connected = false;
      const timeoutSeconds = this.#opts.watchTimeoutSeconds;
      // The server ends the watch after timeoutSeconds; one that outlives that by far is
      // a silently dead connection.
      const guard = setTimeout(() => controller?.abort(), (timeoutSeconds + 30) * 1000);
      guard.unref();
      let controller: AbortController | undefined;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        clearTimeout(guard);
        this.#abort = undefined;
        if (err) reject(err);
        else {
          // A normal end (server timeout or close): resume at once, but the view is not
          // current until the next watch connects.
          if (connected) this.#down();
          resolve();
        }
      };
      // The watch is up; one that connects after the view went stale is dropped, so that the
      // loop re-lists before anything counts as live again.
      const onConnected = () => {
        if (connected || finished) return;
        connected = true;
        if (this.#state === 'stale') {
          controller?.abort();
          return finish();
        }
        this.#up();
      };
      const watch = new (clientNode().Watch)(this.#opts.kubeConfig);
      watch
        .watch(
          this.#path,
          {
            resourceVersion: this.#resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds,
          },
          (type: string, obj: Record<string, unknown>) => {
            onConnected();
            if (finished) return;
            const meta = obj?.metadata as
              | { namespace?: string; name?: string; uid?: string; resourceVersion?: string }
              | undefined;
            if (type === 'ERROR') {
              // A Status object: 410 means our resourceVersion is too old to resume from.
              const code = (obj as { code?: unknown })?.code;
              if (code === 410) this.#resourceVersion = '';
              controller?.abort();
              return finish(code === 410 ? undefined : new Error(`watch error ${String(code)}`));
            }
            if (type === 'ADDED' || type === 'MODIFIED') this.#upsert(meta);
            else if (type === 'DELETED' && meta?.uid) {
              const o = this.#byUid.get(meta.uid);
              if (o) this.#bury(o);
              else if (meta.name) {
                this.#bury({ namespace: meta.namespace ?? '', name: meta.name, uid: meta.uid });
              }
            }
            if (meta?.resourceVersion) this.#resourceVersion = meta.resourceVersion;
            this.#changes.emit('change');
          },
          // After an abort of our own (stale, ERROR) this is a no-op: finish() already ran.
          (err: unknown) => finish(err ?? undefined),
        )
        .then(
          (c: AbortController) => {
            controller = c;
            if (finished) return;
            this.#abort = () => c.abort();
            // The response headers arrived with 200 (otherwise done() already ran).
            onConnected();
          },
          (err: unknown) => finish(err),
        );
    });
  }
}

/** Watches ServiceAccounts (see {@link ObjectWatch}). Needs list and watch on serviceaccounts. */
export function watchServiceAccounts(opts: ObjectWatchOptions): ObjectWatch {
  return new KubeObjectWatch('serviceaccounts', opts);
}

/**
 * Watches pods, for tokens bound to one (see {@link ObjectWatch}). Needs list and watch on
 * pods; an API without pods (kube-dev) makes it `unsupported`.
 */
export function watchPods(opts: ObjectWatchOptions): ObjectWatch {
  return new KubeObjectWatch('pods', opts);
}

/**
 * Wires a ServiceAccount watch to a cachingVerifier: a deleted (or replaced) ServiceAccount's
 * cached identities are evicted when the watch sees it go; when the watch was stale, every
 * identity whose ServiceAccount is not live is evicted once it has re-listed. Returns a
 * function that unwires. Without a watch (or while it is down) the cache's own TTL is the bound.
 */
export function evictOnServiceAccountChange(
  cache: Pick<CachingVerifier, 'evictServiceAccount' | 'evictWhere'>,
  watch: ObjectWatch,
): () => void {
  const onDeleted = (o: WatchedObject) => {
    cache.evictServiceAccount({ namespace: o.namespace, name: o.name, uid: o.uid });
  };
  // Down too long: nothing cached before can be trusted to be current.
  const onStale = () => {
    cache.evictWhere(() => true);
  };
  const onSynced = () => {
    cache.evictWhere((sa) =>
      sa.uid === undefined
        ? watch.uidOf(sa.namespace, sa.name) === undefined
        : watch.status({ namespace: sa.namespace, name: sa.name, uid: sa.uid }) !== 'live',
    );
  };
  watch.on('deleted', onDeleted);
  watch.on('synced', onSynced);
  watch.on('stale', onStale);
  return () => {
    watch.off('stale', onStale);
    watch.off('deleted', onDeleted);
    watch.off('synced', onSynced);
  };
}

/**
 * Accepts an identity from `inner` only while `watch` shows its ServiceAccount (by uid) live:
 * what makes an offline (JWKS) verifier, whose signatures stay valid until `exp`, refuse a
 * deleted ServiceAccount's token. One map lookup per call, so it goes outside a cache:
 * `requireLiveServiceAccount(cachingVerifier(jwks), watch)`. A ServiceAccount the watch has not
 * seen yet is waited for up to `waitMs` (default 5 s); a stale watch gives ERR_KUBE_UNAVAILABLE
 * (fail closed). Tokens without a ServiceAccount uid are refused (ERR_TOKEN_CLAIMS).
 */
export function requireLiveServiceAccount(
  inner: TokenVerifier,
  watch: ObjectWatch,
  opts: { waitMs?: number } = {},
): TokenVerifier {
  const waitMs = opts.waitMs ?? 5000;
  return {
    async verify(token) {
      const id = await inner.verify(token);
      if (!id.uid) {
        throw new KubeAuthError('ERR_TOKEN_CLAIMS', 'the token names no ServiceAccount uid');
      }
      const ref = { namespace: id.namespace, name: id.serviceAccountName, uid: id.uid };
      const status = watch.status(ref) === 'live' ? 'live' : await watch.waitForStatus(ref, waitMs);
      if (status === 'gone') {
        throw new KubeAuthError('ERR_TOKEN_REJECTED', 'the ServiceAccount no longer exists');
      }
      if (status !== 'live') {
        throw new KubeUnavailableError(
          'the ServiceAccount watch cannot confirm the ServiceAccount',
        );
      }
      return id;
    },
    close() {
      inner.close?.();
    },
  };
}

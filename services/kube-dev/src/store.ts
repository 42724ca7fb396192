import { randomUUID } from 'node:crypto';
import { renameSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { ApiError, alreadyExists, conflict, notFound } from './errors.js';
import { KubeDevError } from './errors.js';

/** A stored Kubernetes object (JSON). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: WatchEventType;
  rv: number;
  /** `<group>/<resource>`, e.g. `/serviceaccounts` or `rbac.authorization.k8s.io/roles`. */
  kind: string;
  object: KubeObject;
}

interface Watcher {
  kind: string;
  namespace: string | undefined;
  send(e: StoreEvent): void;
}

/** How many events a watch may replay; an older resourceVersion gets 410 Gone. */
const HISTORY = 2000;

const key = (kind: string, ns: string | undefined, name: string) =>
  `${kind}\u0000${ns ?? ''}\u0000${name}`;

/**
 * Every object kube-dev serves, a global resourceVersion counter, an event history for watches
 * that resume from a resourceVersion, and (with a file) a snapshot written after each change.
 */
export class ObjectStore {
  private objects = new Map<string, KubeObject>();
  private rv = 0;
  private history: StoreEvent[] = [];
  /** The oldest resourceVersion a watch can resume from. */
  private floor = 0;
  private watchers = new Set<Watcher>();

  constructor(private readonly file?: string) {
    if (file && existsSync(file)) {
      try {
        const snap = JSON.parse(readFileSync(file, 'utf8')) as {
          rv: number;
          objects: Array<[string, KubeObject]>;
        };
        this.rv = snap.rv;
        this.objects = new Map(snap.objects);
      } catch (err) {
        throw new KubeDevError('ERR_KUBE_DEV_STATE', `cannot read state file ${file}`, {
          cause: err,
        });
      }
    }
    this.floor = this.rv;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get(kind: string, ns: string | undefined, name: string): KubeObject | undefined {
    const o = this.objects.get(key(kind, ns, name));
    return o && structuredClone(o);
  }

  /** Objects of `kind`, in one namespace or all, sorted by namespace and name. */
  list(kind: string, ns?: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const [k, o] of this.objects) {
      if (!k.startsWith(`${kind}\u0000`)) continue;
      if (ns !== undefined && o.metadata.namespace !== ns) continue;
      out.push(o);
    }
    out.sort(
      (a, b) =>
        (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
        a.metadata.name.localeCompare(b.metadata.name),
    );
    return out.map((o) => structuredClone(o));
  }

  /** Direct read access for hot paths (RBAC evaluation); callers must not mutate. */
  peek(kind: string, ns: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(key(kind, ns, name));
  }

  *iterate(kind: string, ns?: string): Iterable<KubeObject> {
    for (const [k, o] of this.objects) {
      if (k.startsWith(`${kind}\u0000`) && (ns === undefined || o.metadata.namespace === ns))
        yield o;
    }
  }

  create(
    kind: string,
    resource: string,
    group: string,
    obj: KubeObject,
    dryRun = false,
  ): KubeObject {
    const k = key(kind, obj.metadata.namespace, obj.metadata.name);
    if (this.objects.has(k)) throw alreadyExists(resource, group, obj.metadata.name);
    const o = structuredClone(obj);
    o.metadata.uid = randomUUID();
    o.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (dryRun) {
      o.metadata.resourceVersion = '';
      return o;
    }
    o.metadata.resourceVersion = String(++this.rv);
    this.objects.set(k, o);
    this.emit('ADDED', kind, o);
    return structuredClone(o);
  }

  /** Replaces an existing object; a resourceVersion in `obj` must match (optimistic concurrency). */
  update(
    kind: string,
    resource: string,
    group: string,
    obj: KubeObject,
    dryRun = false,
  ): KubeObject {
    const k = key(kind, obj.metadata.namespace, obj.metadata.name);
    const cur = this.objects.get(k);
    if (!cur) throw notFound(resource, group, obj.metadata.name);
    const want = obj.metadata.resourceVersion;
    if (want && want !== cur.metadata.resourceVersion) {
      throw conflict(
        resource,
        group,
        obj.metadata.name,
        'the object has been modified; please apply your changes to the latest version and try again',
      );
    }
    const o = structuredClone(obj);
    o.metadata.uid = cur.metadata.uid;
    o.metadata.creationTimestamp = cur.metadata.creationTimestamp;
    // A no-op update keeps the resourceVersion and emits nothing, as kube-apiserver does.
    o.metadata.resourceVersion = cur.metadata.resourceVersion;
    if (JSON.stringify(o) === JSON.stringify(cur) || dryRun) return structuredClone(o);
    o.metadata.resourceVersion = String(++this.rv);
    this.objects.set(k, o);
    this.emit('MODIFIED', kind, o);
    return structuredClone(o);
  }

  delete(
    kind: string,
    resource: string,
    group: string,
    ns: string | undefined,
    name: string,
    dryRun = false,
  ) {
    const k = key(kind, ns, name);
    const cur = this.objects.get(k);
    if (!cur) throw notFound(resource, group, name);
    if (dryRun) return structuredClone(cur);
    this.objects.delete(k);
    const o = structuredClone(cur);
    o.metadata.resourceVersion = String(++this.rv);
    this.emit('DELETED', kind, o);
    return structuredClone(o);
  }

  /**
   * Subscribes to changes of `kind` (in `ns`, or everywhere) after resourceVersion `since`.
   * Replays retained history first; throws 410 Gone when `since` is older than the history.
   */
  watch(
    kind: string,
    ns: string | undefined,
    since: number,
    send: (e: StoreEvent) => void,
  ): () => void {
    if (since < this.floor) {
      throw new ApiError(410, 'Expired', `too old resource version: ${since} (${this.floor})`);
    }
    for (const e of this.history) {
      if (
        e.rv > since &&
        e.kind === kind &&
        (ns === undefined || e.object.metadata.namespace === ns)
      )
        send(e);
    }
    const w: Watcher = { kind, namespace: ns, send };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /**
   * Forgets the event history, like etcd compaction: watches must then start from a
   * resourceVersion at or after this point (kube-dev compacts once, after start-up).
   */
  compact(): void {
    this.history = [];
    this.floor = this.rv;
  }

  /** Flushes a snapshot to the state file (no-op without one). */
  save(): void {
    if (!this.file) return;
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ rv: this.rv, objects: [...this.objects] }), {
      mode: 0o600,
    });
    renameSync(tmp, this.file);
  }

  closeWatchers(): void {
    this.watchers.clear();
  }

  private emit(type: WatchEventType, kind: string, object: KubeObject) {
    const e: StoreEvent = { type, rv: this.rv, kind, object };
    this.history.push(e);
    if (this.history.length > HISTORY) {
      const dropped = this.history.shift()!;
      this.floor = dropped.rv;
    }
    this.save();
    for (const w of this.watchers) {
      if (
        w.kind === kind &&
        (w.namespace === undefined || w.namespace === object.metadata.namespace)
      ) {
        w.send(e);
      }
    }
  }
}

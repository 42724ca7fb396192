import type { IncomingMessage, ServerResponse } from 'node:http';
import { badRequest } from './errors.js';
import { apiVersionOf, withTypeMeta, type ResourceDef } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import type { ObjectStore, StoreEvent } from './store.js';

const BOOKMARK_INTERVAL_MS = 10_000;

/**
 * Watch streams: newline-delimited JSON events over a chunked response, with the initial
 * state, bookmarks and timeouts as kube-apiserver sends them. Keeps the open streams so
 * shutdown can end them.
 */
export class Watches {
  private readonly open = new Set<ServerResponse>();

  constructor(private readonly store: ObjectStore) {}

  /** Ends every open watch (on shutdown). */
  closeAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }

  /**
   * Answers a watch of `def` in `ns` (all namespaces when undefined). Returns once the
   * headers and the initial events are written; the stream lives until the client goes, the
   * timeout ends it or {@link closeAll}. Throws 400 for bad parameters, before any byte is sent.
   */
  serve(
    req: IncomingMessage,
    res: ServerResponse,
    def: ResourceDef,
    ns: string | undefined,
    q: URLSearchParams,
  ): void {
    const lf = parseLabelSelector(q.get('labelSelector'));
    const ff = parseFieldSelector(q.get('fieldSelector'));
    const rvParam = q.get('resourceVersion') ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam))
      throw badRequest(`invalid resourceVersion "${rvParam}"`);
    const timeout = q.get('timeoutSeconds');
    if (timeout !== null && !/^\d+$/.test(timeout)) throw badRequest('invalid timeoutSeconds');
    const bookmarks =
      q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1';
    const initialEvents = q.get('sendInitialEvents') === 'true';
    // No resourceVersion (or 0): start with the current state as ADDED events, like kube-apiserver.
    const replayAll = rvParam === '' || rvParam === '0' || initialEvents;
    const since = replayAll ? Number(this.store.resourceVersion) : Number(rvParam);
    const initial = replayAll ? this.store.list(def.storeKind, ns) : [];

    const write = (type: string, object: unknown) => {
      // An ended or broken stream may still get a store event before its 'close' arrives.
      if (res.writableEnded || res.destroyed) return;
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const pending: StoreEvent[] = [];
    let started = false;
    const onEvent = (e: StoreEvent) => {
      if (!started) {
        pending.push(e);
        return;
      }
      if (lf(e.object) && ff(e.object)) write(e.type, withTypeMeta(def, e.object));
    };
    const unsubscribe = this.store.watch(def.storeKind, ns, since, onEvent);
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    // Clients resolve the watch on the response headers; send them before the first event.
    res.flushHeaders();
    this.open.add(res);
    for (const o of initial) if (lf(o) && ff(o)) write('ADDED', withTypeMeta(def, o));
    const bookmark = (extra: Record<string, string> = {}) =>
      write('BOOKMARK', {
        kind: def.kind,
        apiVersion: apiVersionOf(def.group, def.version),
        metadata: {
          resourceVersion: this.store.resourceVersion,
          ...(Object.keys(extra).length ? { annotations: extra } : {}),
        },
      });
    if (initialEvents && bookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    started = true;
    for (const e of pending) onEvent(e);
    const timers: NodeJS.Timeout[] = [];
    if (bookmarks) {
      const t = setInterval(() => bookmark(), BOOKMARK_INTERVAL_MS);
      t.unref();
      timers.push(t);
    }
    // timeoutSeconds=0 means no timeout, as in kube-apiserver (which then picks its default).
    if (timeout !== null && Number(timeout) > 0) {
      const t = setTimeout(() => res.end(), Number(timeout) * 1000);
      t.unref();
      timers.push(t);
    }
    const cleanup = () => {
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      this.open.delete(res);
    };
    res.on('close', cleanup);
    res.on('error', cleanup);
    req.on('close', cleanup);
  }
}

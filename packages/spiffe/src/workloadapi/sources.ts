import { EventEmitter } from 'node:events';
import { SpiffeError } from '../errors.js';
import { WorkloadApiClient, type WorkloadApiClientOptions, type JwtSvidParams } from './client.js';
import {
  bundleForTrustDomain,
  svidExpiresAt,
  x509BundleSetEntries,
  type JwtBundleLike,
  type JwtBundleSetLike,
  type JwtSvidLike,
  type TrustDomainLike,
  type X509BundleLike,
  type X509BundleSetLike,
  type X509Context,
  type X509SvidLike,
} from './convert.js';
import * as grpc from '@grpc/grpc-js';
import type { X509SvidSource } from '../svid/x509svid.js';
import type { JwtSvidSource } from '../svid/jwtsvid.js';
import type { X509BundleSource } from '../bundle/x509bundle.js';
import type { JwtBundleSource } from '../bundle/jwtbundle.js';

/** What a source emits: `update` after each good Workload API response, `error` otherwise. */
export type SourceEvent = { type: 'update' } | { type: 'error'; error: SpiffeError };

export interface SourceOptions extends WorkloadApiClientOptions {
  /**
   * A client to share between sources (the source then does not close it). Default: the
   * source opens its own from `address` / `SPIFFE_ENDPOINT_SOCKET`.
   */
  client?: WorkloadApiClient;
  /**
   * How long `create()` waits for the first update, in ms (default 30000; `Infinity` waits
   * until the update, an abort or `close()`).
   */
  timeoutMs?: number;
  /** Aborting it makes a pending `create()` reject and closes the source. */
  signal?: AbortSignal;
}

export interface X509SourceOptions extends SourceOptions {
  /**
   * Picks the SVID `getX509Svid()` returns from the list (default: the first, which the
   * Workload API spec makes the default identity), e.g. by `hint`.
   */
  pick?: (svids: readonly X509SvidLike[]) => X509SvidLike | undefined;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function checkSourceOptions(opts: SourceOptions): void {
  const t = opts.timeoutMs;
  if (t !== undefined && (typeof t !== 'number' || Number.isNaN(t) || t <= 0)) {
    throw new TypeError('workloadapi: timeoutMs must be a positive number of milliseconds');
  }
}

/**
 * Shared lifecycle of the three sources: a watch on one client, a first update to wait for,
 * update/error events, idempotent close. Like go-spiffe's sources (which run until Close), a
 * source keeps the process alive from `create()` until `close()`, whether its stream is open
 * or it is waiting to reconnect; after `close()` it holds nothing.
 */
abstract class WatchedSource extends EventEmitter {
  protected readonly client: WorkloadApiClient;
  readonly #ownsClient: boolean;
  protected readonly stopper = new AbortController();
  #closed = false;
  #waiters: (() => void)[] = [];
  #watches: Promise<void>[] = [];

  protected constructor(opts: SourceOptions) {
    super();
    checkSourceOptions(opts);
    this.#ownsClient = !opts.client;
    this.client = opts.client ?? new WorkloadApiClient(opts);
  }

  protected startWatch(p: Promise<void>): void {
    // A permanent error (InvalidArgument) ends the watch; it was already reported as an
    // error event, and the source keeps what it had.
    this.#watches.push(p.catch(() => undefined));
  }

  protected markUpdated(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
    this.emit('update', { type: 'update' } satisfies SourceEvent);
  }

  protected reportError(error: SpiffeError): void {
    // 'watchError', not 'error': an EventEmitter throws on 'error' without a listener, and a
    // Workload API hiccup must not crash a process that did not subscribe.
    this.emit('watchError', { type: 'error', error } satisfies SourceEvent);
  }

  protected abstract hasFirstUpdate(): boolean;

  /** Throws ERR_SOURCE_CLOSED after `close()`. */
  protected ensureOpen(): void {
    if (this.#closed) {
      throw new SpiffeError('ERR_SOURCE_CLOSED', 'workloadapi: source is closed');
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves at the next good update (SVID rotation, bundle change). */
  waitUntilUpdated(signal?: AbortSignal): Promise<void> {
    this.ensureOpen();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        reject(signal?.reason ?? new SpiffeError('ERR_SOURCE_CLOSED', 'workloadapi: wait aborted'));
      };
      const done = () => {
        signal?.removeEventListener('abort', onAbort);
        if (this.#closed)
          reject(new SpiffeError('ERR_SOURCE_CLOSED', 'workloadapi: source is closed'));
        else resolve();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(done);
    });
  }

  /** Update and error events as an async iterable of tagged unions; ends at `close()`. */
  async *events(signal?: AbortSignal): AsyncGenerator<SourceEvent> {
    const queue: SourceEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (e: SourceEvent) => {
      queue.push(e);
      wake?.();
    };
    const end = () => wake?.();
    this.on('update', push);
    this.on('watchError', push);
    this.stopper.signal.addEventListener('abort', end);
    signal?.addEventListener('abort', end);
    try {
      while (!this.#closed && !signal?.aborted) {
        if (queue.length === 0) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        while (queue.length > 0) yield queue.shift()!;
      }
    } finally {
      this.off('update', push);
      this.off('watchError', push);
      this.stopper.signal.removeEventListener('abort', end);
      signal?.removeEventListener('abort', end);
    }
  }

  /**
   * Resolves once the first update arrived; rejects on timeout, abort or close. While it is
   * pending a ref'd timer holds the event loop: between two connection attempts nothing
   * else may, and a program awaiting `create()` must not end before it settles.
   */
  protected async waitFirst(opts: SourceOptions): Promise<void> {
    if (this.hasFirstUpdate()) return;
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const ac = new AbortController();
    // setTimeout fires at once for delays beyond 2^31-1 ms; longer waits hold the loop with
    // an interval that never aborts.
    const timer =
      timeoutMs <= MAX_TIMER_MS
        ? setTimeout(() => ac.abort(), timeoutMs)
        : setInterval(() => undefined, MAX_TIMER_MS);
    const signals = [ac.signal, ...(opts.signal ? [opts.signal] : [])];
    try {
      await this.waitUntilUpdated(AbortSignal.any(signals));
    } catch (cause) {
      await this.close();
      if (opts.signal?.aborted) throw cause;
      throw new SpiffeError(
        'ERR_SOURCE_TIMEOUT',
        `workloadapi: no update from the Workload API within ${timeoutMs} ms`,
        { cause },
      );
    } finally {
      clearTimeout(timer); // Node's clearTimeout also ends an interval
    }
  }

  /** Stops the watches and (unless shared) the client; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.stopper.abort();
    for (const w of this.#waiters.splice(0)) w();
    if (this.#ownsClient) this.client.close();
    await Promise.all(this.#watches);
    this.emit('close');
  }
}

function noBundle(reason: string): SpiffeError {
  return new SpiffeError('ERR_SOURCE_NO_BUNDLE', `workloadapi: ${reason}`);
}

/** Workload API 5.2.2 / 6.2.2: after PermissionDenied, the bundles must no longer be used. */
const DENIED = 'the Workload API denied the workload its bundles';

function noSvid(reason: string): SpiffeError {
  return new SpiffeError('ERR_SOURCE_NO_SVID', `workloadapi: no usable X.509-SVID: ${reason}`);
}

/**
 * X.509-SVIDs and X.509 bundles kept current from the Workload API (`FetchX509SVID`).
 * Implements X509SvidSource and X509BundleSource. Usable once `create()` resolved.
 */
export class X509Source extends WatchedSource implements X509SvidSource, X509BundleSource {
  #ctx: X509Context | undefined;
  #denied = false;
  readonly #pick: (svids: readonly X509SvidLike[]) => X509SvidLike | undefined;

  private constructor(opts: X509SourceOptions) {
    super(opts);
    this.#pick = opts.pick ?? ((svids) => svids[0]);
  }

  /** Opens a source and resolves after its first X.509 update. */
  static async create(opts: X509SourceOptions = {}): Promise<X509Source> {
    const s = new X509Source(opts);
    s.startWatch(
      s.client.watchX509Context(
        {
          onUpdate: (ctx) => {
            s.#ctx = ctx;
            s.#denied = false;
            s.markUpdated();
          },
          onError: (err) => s.reportError(err),
        },
        s.stopper.signal,
        (code) => {
          // Workload API 5.2.1: the workload is no longer entitled to these identities.
          if (code === grpc.status.PERMISSION_DENIED) s.#denied = true;
        },
      ),
    );
    await s.waitFirst(opts);
    return s;
  }

  protected hasFirstUpdate(): boolean {
    return this.#ctx !== undefined;
  }

  /**
   * The SVID picked from the latest update (by default the first). Throws
   * ERR_SOURCE_CLOSED, or ERR_SOURCE_NO_SVID after PermissionDenied or past the SVID's expiry.
   */
  getX509Svid(): X509SvidLike {
    this.ensureOpen();
    if (!this.#ctx) throw noSvid('no update received yet');
    if (this.#denied) throw noSvid('the Workload API denied the workload its identities');
    const svid = this.#pick(this.#ctx.svids);
    if (!svid) throw noSvid('the pick function selected none');
    const exp = svidExpiresAt(svid);
    if (exp !== undefined && exp.getTime() <= Date.now()) throw noSvid('it has expired');
    return svid;
  }

  /** All SVIDs of the latest update, default first (the same usability rules apply). */
  getX509Svids(): readonly X509SvidLike[] {
    this.getX509Svid();
    return this.#ctx!.svids.filter((s) => (svidExpiresAt(s)?.getTime() ?? Infinity) > Date.now());
  }

  /** The X.509 bundle of `td` from the latest update; throws if there is none. */
  getX509BundleForTrustDomain(td: TrustDomainLike | string): X509BundleLike {
    this.ensureOpen();
    if (!this.#ctx)
      throw new SpiffeError('ERR_SOURCE_NO_BUNDLE', 'workloadapi: no update received yet');
    return bundleForTrustDomain(this.#ctx.bundles, td);
  }

  /** Every X.509 bundle of the latest update (the SVIDs' own trust domain and federated). */
  getX509Bundles(): X509BundleLike[] {
    this.ensureOpen();
    return this.#ctx ? x509BundleSetEntries(this.#ctx.bundles) : [];
  }

  /** The bundle set of the latest update. */
  getX509BundleSet(): X509BundleSetLike | undefined {
    this.ensureOpen();
    return this.#ctx?.bundles;
  }
}

/**
 * JWT bundles kept current from the Workload API (`FetchJWTBundles`), and JWT-SVIDs fetched
 * on demand (`FetchJWTSVID`). Implements JwtSvidSource and JwtBundleSource.
 */
export class JwtSource extends WatchedSource implements JwtSvidSource, JwtBundleSource {
  #bundles: JwtBundleSetLike | undefined;
  #denied = false;

  private constructor(opts: SourceOptions) {
    super(opts);
  }

  static async create(opts: SourceOptions = {}): Promise<JwtSource> {
    const s = new JwtSource(opts);
    s.startWatch(
      s.client.watchJwtBundles(
        {
          onUpdate: (b) => {
            s.#bundles = b;
            s.#denied = false;
            s.markUpdated();
          },
          onError: (err) => s.reportError(err),
        },
        s.stopper.signal,
        (code) => {
          if (code === grpc.status.PERMISSION_DENIED) s.#denied = true;
        },
      ),
    );
    await s.waitFirst(opts);
    return s;
  }

  protected hasFirstUpdate(): boolean {
    return this.#bundles !== undefined;
  }

  /** Fetches a JWT-SVID (a Workload API call each time: tokens are audience-bound). */
  async fetchJwtSvid(params: JwtSvidParams): Promise<JwtSvidLike> {
    this.ensureOpen();
    return this.client.fetchJwtSvid(params, { signal: this.stopper.signal });
  }

  /** Fetches every JWT-SVID the workload has for the audiences. */
  async fetchJwtSvids(params: JwtSvidParams): Promise<JwtSvidLike[]> {
    this.ensureOpen();
    return this.client.fetchJwtSvids(params, { signal: this.stopper.signal });
  }

  /**
   * The JWT bundle of `td` from the latest update; throws ERR_SOURCE_NO_BUNDLE if there is
   * none, or while the Workload API denies the workload its bundles (PermissionDenied).
   */
  getJwtBundleForTrustDomain(td: TrustDomainLike | string): JwtBundleLike {
    this.ensureOpen();
    if (!this.#bundles) throw noBundle('no update received yet');
    if (this.#denied) throw noBundle(DENIED);
    return bundleForTrustDomain(this.#bundles, td);
  }
}

/**
 * X.509 bundles (`FetchX509Bundles`) and JWT bundles (`FetchJWTBundles`) kept current, for
 * workloads that validate peers but hold no SVID. Implements X509BundleSource and
 * JwtBundleSource; usable once both kinds arrived.
 */
export class BundleSource extends WatchedSource implements X509BundleSource, JwtBundleSource {
  #x509: X509BundleSetLike | undefined;
  #jwt: JwtBundleSetLike | undefined;
  #x509Denied = false;
  #jwtDenied = false;

  private constructor(opts: SourceOptions) {
    super(opts);
  }

  static async create(opts: SourceOptions = {}): Promise<BundleSource> {
    const s = new BundleSource(opts);
    const watcher = <T>(set: (v: T) => void) => ({
      onUpdate: (v: T) => {
        set(v);
        if (s.hasFirstUpdate()) s.markUpdated();
      },
      onError: (err: SpiffeError) => s.reportError(err),
    });
    const onDenied = (deny: () => void) => (code: number) => {
      if (code === grpc.status.PERMISSION_DENIED) deny();
    };
    s.startWatch(
      s.client.watchX509Bundles(
        watcher((v) => ((s.#x509 = v), (s.#x509Denied = false))),
        s.stopper.signal,
        onDenied(() => (s.#x509Denied = true)),
      ),
    );
    s.startWatch(
      s.client.watchJwtBundles(
        watcher((v) => ((s.#jwt = v), (s.#jwtDenied = false))),
        s.stopper.signal,
        onDenied(() => (s.#jwtDenied = true)),
      ),
    );
    await s.waitFirst(opts);
    return s;
  }

  protected hasFirstUpdate(): boolean {
    return this.#x509 !== undefined && this.#jwt !== undefined;
  }

  /** Throws ERR_SOURCE_NO_BUNDLE without one, or while X.509 bundles are denied. */
  getX509BundleForTrustDomain(td: TrustDomainLike | string): X509BundleLike {
    this.ensureOpen();
    if (!this.#x509) throw noBundle('no update received yet');
    if (this.#x509Denied) throw noBundle(DENIED);
    return bundleForTrustDomain(this.#x509, td);
  }

  /** Every X.509 bundle of the latest update (none while they are denied). */
  getX509Bundles(): X509BundleLike[] {
    this.ensureOpen();
    return this.#x509 && !this.#x509Denied ? x509BundleSetEntries(this.#x509) : [];
  }

  /** Throws ERR_SOURCE_NO_BUNDLE without one, or while JWT bundles are denied. */
  getJwtBundleForTrustDomain(td: TrustDomainLike | string): JwtBundleLike {
    this.ensureOpen();
    if (!this.#jwt) throw noBundle('no update received yet');
    if (this.#jwtDenied) throw noBundle(DENIED);
    return bundleForTrustDomain(this.#jwt, td);
  }
}

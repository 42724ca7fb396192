import * as grpc from '@grpc/grpc-js';
import { SpiffeError, type SpiffeErrorCode } from '../errors.js';
import { Backoff, defaultSleep, type BackoffOptions } from './backoff.js';
import { resolveWorkloadEndpoint, type WorkloadEndpoint } from './endpoint.js';
import {
  SECURITY_HEADER,
  structToJson,
  workloadApiClientConstructor,
  type RawJwtBundlesResponse,
  type RawJwtSvidResponse,
  type RawValidateJwtSvidResponse,
  type RawX509BundlesResponse,
  type RawX509SvidResponse,
} from './proto.js';
import {
  jwtBundlesFromResponse,
  jwtSvidsFromResponse,
  validatedJwtSvidFromResponse,
  x509BundlesFromResponse,
  x509ContextFromResponse,
  type JwtBundleSetLike,
  type JwtSvidLike,
  type X509BundleSetLike,
  type X509Context,
} from './convert.js';

/** Minimal logger shape (pino-compatible); the client never logs keys or tokens. */
export interface WorkloadApiLogger {
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface WorkloadApiClientOptions {
  /** `unix:///abs/path` or `tcp://ip:port`; default `SPIFFE_ENDPOINT_SOCKET`. */
  address?: string;
  /** Reconnect timing for watchers (default 1 s doubling to 30 s, 10 % jitter). */
  backoff?: BackoffOptions;
  logger?: WorkloadApiLogger;
}

export interface CallOptions {
  /** Cancels the call. */
  signal?: AbortSignal;
}

export interface JwtSvidParams {
  audience: string;
  extraAudiences?: string[];
  /** Request the JWT-SVID of this SPIFFE ID only (Workload API `spiffe_id`). */
  subject?: string | { toString(): string };
}

/**
 * Receives a watched stream's state. `onUpdate` gets every good response; `onError` gets
 * stream failures (the watch then reconnects unless the code is permanent) and discarded
 * responses (`ERR_WORKLOADAPI_INVALID_RESPONSE`, the last good value stays current).
 */
export interface Watcher<T> {
  onUpdate(value: T): void;
  onError?(err: SpiffeError): void;
}

const STATUS_CODE: Partial<Record<grpc.status, SpiffeErrorCode>> = {
  [grpc.status.UNAVAILABLE]: 'ERR_WORKLOADAPI_UNAVAILABLE',
  [grpc.status.PERMISSION_DENIED]: 'ERR_WORKLOADAPI_PERMISSION_DENIED',
  [grpc.status.INVALID_ARGUMENT]: 'ERR_WORKLOADAPI_INVALID_ARGUMENT',
  [grpc.status.CANCELLED]: 'ERR_WORKLOADAPI_CANCELLED',
};

/** A gRPC status as the SDK's error; the gRPC code stays on `cause`. */
export function statusError(s: { code: number; details?: string }, op: string): SpiffeError {
  const code = STATUS_CODE[s.code as grpc.status] ?? 'ERR_WORKLOADAPI_CALL_FAILED';
  return new SpiffeError(
    code,
    `workloadapi: ${op} failed: ${grpc.status[s.code] ?? s.code}${s.details ? `: ${s.details}` : ''}`,
    { cause: { grpcCode: s.code, details: s.details } },
  );
}

/** True when the gRPC code that ended a call means "do not retry" (Workload Endpoint 6). */
function isPermanent(code: number): boolean {
  return code === grpc.status.INVALID_ARGUMENT;
}

/**
 * A client of the SPIFFE Workload API (gRPC). One instance holds one channel; fetches are
 * single calls, watches keep a stream open and re-establish it with backoff after
 * `Unavailable`, `PermissionDenied` and other transient failures. `InvalidArgument` is
 * permanent: the watch reports it and ends. Every call carries `workload.spiffe.io: true`.
 */
export class WorkloadApiClient {
  readonly endpoint: WorkloadEndpoint;
  readonly #stub: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  readonly #backoff: BackoffOptions;
  readonly #log: WorkloadApiLogger | undefined;
  readonly #closer = new AbortController();
  #closed = false;

  constructor(opts: WorkloadApiClientOptions = {}) {
    this.endpoint = resolveWorkloadEndpoint(opts.address);
    this.#backoff = opts.backoff ?? {};
    this.#log = opts.logger;
    const Ctor = workloadApiClientConstructor();
    // The channel's own reconnect timer follows the watch backoff, so a restarted agent is
    // picked up on the schedule the caller chose rather than grpc-js's (up to 120 s).
    const initial = this.#backoff.initialMs ?? 1000;
    const max = this.#backoff.maxMs ?? 30_000;
    this.#stub = new Ctor(this.endpoint.grpcTarget, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': initial,
      'grpc.max_reconnect_backoff_ms': max,
    }) as never;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the channel and ends every watch; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closer.abort();
    this.#stub.close();
  }

  #metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(SECURITY_HEADER, 'true');
    return md;
  }

  #ensureOpen(): void {
    if (this.#closed) {
      throw new SpiffeError('ERR_WORKLOADAPI_CLOSED', 'workloadapi: client is closed');
    }
  }

  /** The first message of a server stream, converted; cancels the stream afterwards. */
  #first<R, T>(method: string, convert: (raw: R) => T, opts: CallOptions = {}): Promise<T> {
    this.#ensureOpen();
    return new Promise<T>((resolve, reject) => {
      const call = this.#stub[method]!({}, this.#metadata()) as grpc.ClientReadableStream<R>;
      let settled = false;
      const signals = [this.#closer.signal, opts.signal].filter(Boolean) as AbortSignal[];
      const onAbort = () => call.cancel();
      for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
      const done = (fn: () => void) => {
        if (settled) return;
        settled = true;
        for (const s of signals) s.removeEventListener('abort', onAbort);
        fn();
      };
      call.on('data', (raw: R) => {
        done(() => {
          try {
            resolve(convert(raw));
          } catch (err) {
            reject(err);
          }
        });
        call.cancel();
      });
      call.on('error', () => {
        /* reported through 'status' */
      });
      call.on('status', (s: grpc.StatusObject) => {
        done(() => reject(statusError(s, method)));
      });
      if (signals.some((s) => s.aborted)) call.cancel();
    });
  }

  #unary<Req, Res, T>(
    method: string,
    req: Req,
    convert: (raw: Res) => T,
    opts: CallOptions = {},
  ): Promise<T> {
    this.#ensureOpen();
    return new Promise<T>((resolve, reject) => {
      const signals = [this.#closer.signal, opts.signal].filter(Boolean) as AbortSignal[];
      const call = this.#stub[method]!(
        req,
        this.#metadata(),
        (err: grpc.ServiceError | null, res: Res) => {
          for (const s of signals) s.removeEventListener('abort', onAbort);
          if (err) return reject(statusError(err, method));
          try {
            resolve(convert(res));
          } catch (e) {
            reject(e);
          }
        },
      ) as grpc.ClientUnaryCall;
      const onAbort = () => call.cancel();
      for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
      if (signals.some((s) => s.aborted)) call.cancel();
    });
  }

  /**
   * Keeps a server stream open until `signal` aborts or the client closes. Resolves then;
   * rejects with the permanent error (after reporting it to the watcher) on InvalidArgument.
   */
  async #watch<R, T>(
    method: string,
    convert: (raw: R) => T,
    watcher: Watcher<T>,
    signal?: AbortSignal,
    onStreamEnd?: (code: number) => void,
  ): Promise<void> {
    this.#ensureOpen();
    const stop = signal ? AbortSignal.any([signal, this.#closer.signal]) : this.#closer.signal;
    const backoff = new Backoff(this.#backoff);
    const sleep = this.#backoff.sleep ?? defaultSleep;
    while (!stop.aborted) {
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        const call = this.#stub[method]!({}, this.#metadata()) as grpc.ClientReadableStream<R>;
        const onAbort = () => call.cancel();
        stop.addEventListener('abort', onAbort, { once: true });
        call.on('data', (raw: R) => {
          let value: T;
          try {
            value = convert(raw);
          } catch (err) {
            // Workload API 4.5: a response with a missing mandatory field is discarded and the
            // last good value stays in use.
            this.#log?.warn(
              { method, code: (err as SpiffeError).code },
              'discarding invalid response',
            );
            watcher.onError?.(err as SpiffeError);
            return;
          }
          backoff.reset();
          watcher.onUpdate(value);
        });
        call.on('error', () => {
          /* reported through 'status' */
        });
        call.on('status', (s: grpc.StatusObject) => {
          stop.removeEventListener('abort', onAbort);
          resolve(s);
        });
      });
      if (stop.aborted) return;
      onStreamEnd?.(status.code);
      const err = statusError(status, method);
      watcher.onError?.(err);
      if (isPermanent(status.code)) {
        this.#log?.warn({ method, code: err.code }, 'watch stopped: permanent error');
        throw err;
      }
      const delay = backoff.next();
      this.#log?.debug?.({ method, code: err.code, delay }, 'stream ended; retrying');
      await sleep(delay, stop);
    }
  }

  // --- X.509 ---

  /** The current X.509 context (SVIDs, default first, and bundles) from one response. */
  fetchX509Context(opts?: CallOptions): Promise<X509Context> {
    return this.#first<RawX509SvidResponse, X509Context>(
      'FetchX509SVID',
      x509ContextFromResponse,
      opts,
    );
  }

  /** Watches X.509 contexts; see {@link Watcher}. `onStreamEnd` sees each ending gRPC code. */
  watchX509Context(
    watcher: Watcher<X509Context>,
    signal?: AbortSignal,
    onStreamEnd?: (code: number) => void,
  ): Promise<void> {
    return this.#watch('FetchX509SVID', x509ContextFromResponse, watcher, signal, onStreamEnd);
  }

  /** The X.509 bundles of every trust domain the workload trusts. */
  fetchX509Bundles(opts?: CallOptions): Promise<X509BundleSetLike> {
    return this.#first<RawX509BundlesResponse, X509BundleSetLike>(
      'FetchX509Bundles',
      x509BundlesFromResponse,
      opts,
    );
  }

  watchX509Bundles(
    watcher: Watcher<X509BundleSetLike>,
    signal?: AbortSignal,
    onStreamEnd?: (code: number) => void,
  ): Promise<void> {
    return this.#watch('FetchX509Bundles', x509BundlesFromResponse, watcher, signal, onStreamEnd);
  }

  // --- JWT ---

  /** The default (first) JWT-SVID for the audiences, or the one of `subject`. */
  async fetchJwtSvid(params: JwtSvidParams, opts?: CallOptions): Promise<JwtSvidLike> {
    const svids = await this.fetchJwtSvids(params, opts);
    return svids[0]!;
  }

  /** Every JWT-SVID the workload is entitled to for the audiences (default first). */
  fetchJwtSvids(params: JwtSvidParams, opts?: CallOptions): Promise<JwtSvidLike[]> {
    if (typeof params?.audience !== 'string' || params.audience === '') {
      throw new TypeError('fetchJwtSvid: audience is required');
    }
    const audience = [params.audience, ...(params.extraAudiences ?? [])];
    const req = { audience, spiffe_id: params.subject ? String(params.subject) : '' };
    return this.#unary<typeof req, RawJwtSvidResponse, JwtSvidLike[]>(
      'FetchJWTSVID',
      req,
      (raw) => jwtSvidsFromResponse(raw, audience),
      opts,
    );
  }

  fetchJwtBundles(opts?: CallOptions): Promise<JwtBundleSetLike> {
    return this.#first<RawJwtBundlesResponse, JwtBundleSetLike>(
      'FetchJWTBundles',
      jwtBundlesFromResponse,
      opts,
    );
  }

  watchJwtBundles(
    watcher: Watcher<JwtBundleSetLike>,
    signal?: AbortSignal,
    onStreamEnd?: (code: number) => void,
  ): Promise<void> {
    return this.#watch('FetchJWTBundles', jwtBundlesFromResponse, watcher, signal, onStreamEnd);
  }

  /**
   * Asks the Workload API to validate a JWT-SVID (Workload API 6.3). Resolves with the
   * token's SPIFFE ID and claims as the server returned them; rejects when the server
   * refuses it (`InvalidArgument`).
   */
  validateJwtSvid(
    token: string,
    audience: string,
    opts?: CallOptions,
  ): Promise<{ spiffeId: string; claims: Record<string, unknown>; svid: JwtSvidLike }> {
    if (!token || !audience)
      throw new TypeError('validateJwtSvid: token and audience are required');
    return this.#unary<
      { audience: string; svid: string },
      RawValidateJwtSvidResponse,
      {
        spiffeId: string;
        claims: Record<string, unknown>;
        svid: JwtSvidLike;
      }
    >(
      'ValidateJWTSVID',
      { audience, svid: token },
      (raw) => {
        const claims = structToJson(raw.claims);
        return { spiffeId: raw.spiffe_id, claims, svid: validatedJwtSvidFromResponse(raw, token) };
      },
      opts,
    );
  }
}

// A Workload API server for tests: @grpc/grpc-js on a unix socket in a temp dir (or TCP on
// loopback), serving whatever the test sets, pushing updates to open streams, failing calls
// with chosen status codes and recording every call it gets.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { tempDir } from '@precinct/testing';
import {
  SECURITY_HEADER,
  jsonToStruct,
  workloadApiServiceDefinition,
  type RawJwtBundlesResponse,
  type RawJwtSvidRequest,
  type RawJwtSvidResponse,
  type RawValidateJwtSvidRequest,
  type RawValidateJwtSvidResponse,
  type RawX509BundlesResponse,
  type RawX509SvidResponse,
} from '../../src/workloadapi/proto.js';
import type { IssuedSvid } from './ca.js';

export type Method =
  'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTSVID' | 'FetchJWTBundles' | 'ValidateJWTSVID';

export interface RecordedCall {
  method: Method;
  securityHeader: string | undefined;
  request: unknown;
}

export interface Failure {
  code: grpc.status;
  details?: string;
}

type StreamCall = grpc.ServerWritableStream<unknown, unknown>;

/** The X509SVIDResponse for SVIDs (first = default) of one trust domain plus federations. */
export function x509Response(
  svids: IssuedSvid[],
  bundleDer: Buffer,
  federated: Record<string, Buffer> = {},
): RawX509SvidResponse {
  return {
    svids: svids.map((s) => ({
      spiffe_id: s.spiffeId,
      x509_svid: Buffer.concat(s.chainDer),
      x509_svid_key: s.keyDer,
      bundle: bundleDer,
      hint: '',
    })),
    crl: [],
    federated_bundles: federated,
  };
}

export class TestWorkloadApiServer {
  readonly calls: RecordedCall[] = [];
  /** When false, calls without the security header are served anyway. */
  requireSecurityHeader = true;
  x509: RawX509SvidResponse | undefined;
  x509Bundles: RawX509BundlesResponse | undefined;
  jwtBundles: RawJwtBundlesResponse | undefined;
  fetchJwtSvid: (req: RawJwtSvidRequest) => RawJwtSvidResponse | Failure = () => ({
    code: grpc.status.PERMISSION_DENIED,
    details: 'no JWT-SVID configured',
  });
  validateJwtSvid: (req: RawValidateJwtSvidRequest) => RawValidateJwtSvidResponse | Failure =
    () => ({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'not configured',
    });
  /** Per method: the next calls fail with these statuses, in order. */
  readonly failNext = new Map<Method, Failure[]>();

  readonly #streams = new Map<Method, Set<StreamCall>>();
  #server: grpc.Server | undefined;
  #dir: { path: string; cleanup: () => void } | undefined;
  #bind: string;
  address: string;

  private constructor(bind: string, address: string, dir?: { path: string; cleanup: () => void }) {
    this.#bind = bind;
    this.address = address;
    this.#dir = dir;
  }

  /** Starts on a unix socket in a fresh temp dir (or on 127.0.0.1:0 with `tcp: true`). */
  static async start(opts: { tcp?: boolean } = {}): Promise<TestWorkloadApiServer> {
    let s: TestWorkloadApiServer;
    if (opts.tcp) {
      s = new TestWorkloadApiServer('127.0.0.1:0', '');
    } else {
      const dir = tempDir('precinct-wlapi-');
      const sock = join(dir.path, 'agent.sock');
      s = new TestWorkloadApiServer(`unix://${sock}`, `unix://${sock}`, dir);
    }
    await s.#listen();
    return s;
  }

  /** The socket path (unix) for tests that need it. */
  get socketPath(): string {
    return this.#bind.replace(/^unix:\/\//, '');
  }

  async #listen(): Promise<void> {
    const server = new grpc.Server();
    const handler = (method: Method) => (call: StreamCall) => this.#onStream(method, call);
    server.addService(workloadApiServiceDefinition(), {
      FetchX509SVID: handler('FetchX509SVID'),
      FetchX509Bundles: handler('FetchX509Bundles'),
      FetchJWTBundles: handler('FetchJWTBundles'),
      FetchJWTSVID: (
        call: grpc.ServerUnaryCall<RawJwtSvidRequest, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => this.#onUnary('FetchJWTSVID', call, cb, () => this.fetchJwtSvid(call.request)),
      ValidateJWTSVID: (
        call: grpc.ServerUnaryCall<RawValidateJwtSvidRequest, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => this.#onUnary('ValidateJWTSVID', call, cb, () => this.validateJwtSvid(call.request)),
    });
    if (this.#bind.startsWith('unix://')) rmSync(this.socketPath, { force: true });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(this.#bind, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    if (!this.#bind.startsWith('unix://')) {
      this.#bind = `127.0.0.1:${port}`;
      this.address = `tcp://127.0.0.1:${port}`;
    }
    this.#server = server;
  }

  #record(method: Method, md: grpc.Metadata, request: unknown): Failure | undefined {
    const header = md.get(SECURITY_HEADER)[0];
    this.calls.push({
      method,
      securityHeader: header === undefined ? undefined : String(header),
      request,
    });
    if (this.requireSecurityHeader && String(header) !== 'true') {
      return {
        code: grpc.status.INVALID_ARGUMENT,
        details: 'security header missing from request',
      };
    }
    const queue = this.failNext.get(method);
    return queue?.shift();
  }

  #onStream(method: Method, call: StreamCall): void {
    const failure = this.#record(method, call.metadata, call.request);
    if (failure) {
      call.emit('error', failure);
      return;
    }
    let set = this.#streams.get(method);
    if (!set) this.#streams.set(method, (set = new Set()));
    set.add(call);
    const drop = () => set.delete(call);
    call.on('cancelled', drop);
    call.on('close', drop);
    const current = this.#current(method);
    if (current) call.write(current);
  }

  #onUnary(
    method: Method,
    call: grpc.ServerUnaryCall<unknown, unknown>,
    cb: grpc.sendUnaryData<unknown>,
    produce: () => unknown,
  ): void {
    const failure = this.#record(method, call.metadata, call.request);
    if (failure)
      return cb({ code: failure.code, details: failure.details ?? '' } as grpc.ServiceError);
    const res = produce() as Failure & Record<string, unknown>;
    if (typeof res.code === 'number')
      return cb({ code: res.code, details: res.details ?? '' } as grpc.ServiceError);
    cb(null, res);
  }

  #current(method: Method): unknown {
    if (method === 'FetchX509SVID') return this.x509;
    if (method === 'FetchX509Bundles') return this.x509Bundles;
    if (method === 'FetchJWTBundles') return this.jwtBundles;
    return undefined;
  }

  /** Number of streams of `method` currently open. */
  openStreams(method: Method): number {
    return this.#streams.get(method)?.size ?? 0;
  }

  /** Sends a raw message on every open stream of `method` (without storing it). */
  push(method: 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles', msg: unknown): void {
    for (const call of this.#streams.get(method) ?? []) call.write(msg);
  }

  /** Stores and pushes a new X.509 context. */
  setX509(resp: RawX509SvidResponse): void {
    this.x509 = resp;
    this.push('FetchX509SVID', resp);
  }

  setX509Bundles(resp: RawX509BundlesResponse): void {
    this.x509Bundles = resp;
    this.push('FetchX509Bundles', resp);
  }

  setJwtBundles(bundles: Record<string, Buffer>): void {
    this.jwtBundles = { bundles };
    this.push('FetchJWTBundles', this.jwtBundles);
  }

  /** Ends every open stream (of `method`, or all) with the status. */
  failStreams(failure: Failure, method?: Method): void {
    for (const [m, set] of this.#streams) {
      if (method && m !== method) continue;
      for (const call of set) call.emit('error', failure);
      set.clear();
    }
  }

  /** Stops serving (streams end with Unavailable on the client side). */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const set of this.#streams.values()) set.clear();
    if (server) server.forceShutdown();
  }

  /** Starts again on the same address after `stop()`. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#listen();
  }

  async close(): Promise<void> {
    await this.stop();
    this.#dir?.cleanup();
  }
}

export { jsonToStruct };

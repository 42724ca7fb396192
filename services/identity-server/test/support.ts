// Test helpers: a manual clock, a fake ServiceAccount token verifier, a raw Workload API client.
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '@precinct/runtime';
import type { Clock } from '../src/clock.js';
import type { ServiceAccountIdentity, TokenVerifier } from '../src/attestation.js';
import {
  WORKLOAD_API_SECURITY_HEADER as SECURITY_HEADER,
  workloadApiServiceDefinition as workloadApiDefinition,
} from '@precinct/spiffe/workloadapi';

/** A clock that moves only when told; timers fire in order as it passes them. */
export class ManualClock implements Clock {
  #now: number;
  #timers: { at: number; fn: () => void; seq: number }[] = [];
  #seq = 0;
  constructor(start = Date.UTC(2030, 0, 1)) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): () => void {
    const t = { at: this.#now + Math.max(0, ms), fn, seq: this.#seq++ };
    this.#timers.push(t);
    return () => {
      this.#timers = this.#timers.filter((x) => x !== t);
    };
  }
  get pending(): number {
    return this.#timers.length;
  }
  /** Moves time forward by `ms`, firing due timers one by one and letting their work settle. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      const due = this.#timers
        .filter((t) => t.at <= target)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
      await settle();
    }
    this.#now = target;
    await settle();
  }
}

/** Lets queued promise chains and I/O callbacks run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** A verifier that knows a fixed set of tokens; unknown tokens fail like a bad signature. */
export function fakeVerifier(
  clock: Clock,
  tokens: Record<string, Omit<ServiceAccountIdentity, 'expiresAt'> | { error: string }>,
): TokenVerifier & { calls: number } {
  const v = {
    calls: 0,
    async verify(token: string): Promise<ServiceAccountIdentity> {
      v.calls++;
      const t = tokens[token];
      if (!t) throw Object.assign(new Error('bad signature'), { code: 'ERR_TOKEN_SIGNATURE' });
      if ('error' in t) throw Object.assign(new Error(t.error), { code: t.error });
      return { ...t, expiresAt: new Date(clock.now() + 3600_000) };
    },
  };
  return v;
}

export const quietLogger = () =>
  createLogger('identity-server-test', process.env.TEST_LOG_LEVEL ?? 'silent');

export const md = (header = true) => {
  const m = new grpc.Metadata();
  if (header) m.set(SECURITY_HEADER, 'true');
  return m;
};

export interface RawClient extends grpc.Client {
  FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<RawX509SvidResponse>;
  FetchX509Bundles(
    req: object,
    md: grpc.Metadata,
  ): grpc.ClientReadableStream<{ bundles: Record<string, Buffer> }>;
  FetchJWTBundles(
    req: object,
    md: grpc.Metadata,
  ): grpc.ClientReadableStream<{ bundles: Record<string, Buffer> }>;
  FetchJWTSVID(
    req: { audience: string[]; spiffe_id?: string },
    md: grpc.Metadata,
    cb: (
      err: grpc.ServiceError | null,
      res?: { svids: { spiffe_id: string; svid: string; hint: string }[] },
    ) => void,
  ): void;
  ValidateJWTSVID(
    req: { audience: string; svid: string },
    md: grpc.Metadata,
    cb: (
      err: grpc.ServiceError | null,
      res?: { spiffe_id: string; claims: { fields: Record<string, unknown> } },
    ) => void,
  ): void;
}

export interface RawX509SvidResponse {
  svids: {
    spiffe_id: string;
    x509_svid: Buffer;
    x509_svid_key: Buffer;
    bundle: Buffer;
    hint: string;
  }[];
  federated_bundles: Record<string, Buffer>;
}

/** A plain @grpc/grpc-js client (used until the SDK's X509Source is exported). */
export function rawClient(address: string): RawClient {
  const Ctor = grpc.makeGenericClientConstructor(workloadApiDefinition(), 'SpiffeWorkloadAPI');
  return new Ctor(address, grpc.credentials.createInsecure()) as unknown as RawClient;
}

/** Reads stream messages one at a time. */
export function reader<T>(stream: grpc.ClientReadableStream<T>) {
  const queue: T[] = [];
  const waiters: { resolve: (v: T) => void; reject: (e: unknown) => void }[] = [];
  let failure: unknown;
  stream.on('data', (m: T) => {
    const w = waiters.shift();
    if (w) w.resolve(m);
    else queue.push(m);
  });
  stream.on('error', (e) => {
    failure = e;
    for (const w of waiters.splice(0)) w.reject(e);
  });
  return {
    next(): Promise<T> {
      if (queue.length) return Promise.resolve(queue.shift()!);
      if (failure) return Promise.reject(failure);
      return new Promise<T>((resolve, reject) => waiters.push({ resolve, reject }));
    },
    get buffered() {
      return queue.length;
    },
    cancel: () => stream.cancel(),
  };
}

export function unary<T>(
  fn: (cb: (err: grpc.ServiceError | null, res?: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res!))));
}

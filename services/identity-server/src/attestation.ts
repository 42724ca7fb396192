import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type {
  ObjectWatch,
  TokenVerifier as KubeTokenVerifier,
  WatchedObject,
} from '@precinct/kube';
import type { Logger } from '@precinct/runtime';
import type { Clock } from './clock.js';
import { IdentityServerError } from './errors.js';
import type { IdentityMetrics } from './metrics.js';
import { workloadApiServiceDefinition } from '@precinct/spiffe/workloadapi';
import type { WorkloadBinding } from './workload-api.js';

/**
 * The part of @precinct/kube's `ServiceAccountIdentity` attestation reads. Structural, so any
 * @precinct/kube verifier fits (checked at compile time below) and tests can inject their own.
 */
export interface ServiceAccountIdentity {
  /** The ServiceAccount's uid (TokenReview's user.uid, or the token's kubernetes.io claims). */
  uid?: string;
  namespace: string;
  serviceAccountName: string;
  pod?: { name: string; uid?: string };
  expiresAt?: Date;
  extra?: Record<string, string[]>;
}

/** @precinct/kube's `TokenVerifier`: throws an error with `code` ERR_TOKEN_* or ERR_KUBE_UNAVAILABLE. */
export interface TokenVerifier {
  verify(token: string): Promise<ServiceAccountIdentity>;
  close?(): void;
}

/** The result of a successful attestation. */
export interface Attestation {
  /** `unix://` address of the workload's own Workload API socket. */
  address: string;
  socketPath: string;
  expiresAt: Date;
  selectors: string[];
}

/** Selectors a verified ServiceAccount token proves: `k8s:ns`, `k8s:sa`, `k8s:pod-name`, `k8s:pod-uid`. */
export function k8sSelectors(id: ServiceAccountIdentity): string[] {
  const out = [`k8s:ns:${id.namespace}`, `k8s:sa:${id.serviceAccountName}`];
  const podName = id.pod?.name ?? id.extra?.['authentication.kubernetes.io/pod-name']?.[0];
  const podUid = id.pod?.uid ?? id.extra?.['authentication.kubernetes.io/pod-uid']?.[0];
  if (podName) out.push(`k8s:pod-name:${podName}`);
  if (podUid) out.push(`k8s:pod-uid:${podUid}`);
  return out;
}

const MAX_TOKEN = 16_384;
/** A binding's longest life, whatever the token's exp (tokens may live a year). */
export const DEFAULT_MAX_BINDING_MS = 3600_000;
/** How long attestation waits for the watch to see a ServiceAccount it has not seen yet. */
const DEFAULT_WATCH_WAIT_MS = 5000;
/** How long a revoked binding's socket keeps answering PermissionDenied before it goes. */
export const DEFAULT_SOCKET_LINGER_MS = 5000;
const MAX_SOCKET_PATH = 100; // sun_path is 108 bytes on Linux, 104 on macOS

export interface WorkloadSocketsOptions {
  socketDir: string;
  /** Without a verifier every attestation is refused (reason `no_attestor`). */
  verifier: TokenVerifier | undefined;
  clock: Clock;
  metrics: IdentityMetrics;
  logger: Logger;
  implementation: (resolve: () => WorkloadBinding | undefined) => grpc.UntypedServiceImplementation;
  /** Called when a binding ends (or is suspended), so open streams re-check and close. */
  onEnd: () => void;
  /** Longest life of a binding; re-attestation extends it. Default 1 h. */
  maxBindingMs?: number;
  /**
   * Revocation: a binding rests on its ServiceAccount (by uid) and, for a pod-bound token, on
   * its pod; when the watch sees either go, the binding, its streams and its socket end.
   * While a watch is stale every binding is suspended (calls get Unavailable).
   */
  revocation?: { serviceAccounts: ObjectWatch; pods?: ObjectWatch; waitMs?: number };
  /** How long a revoked binding's socket answers PermissionDenied before it goes. Default 5 s. */
  socketLingerMs?: number;
}

interface Bound {
  binding: WorkloadBinding;
  serviceAccount: WatchedObject | undefined;
  pod: WatchedObject | undefined;
  server: grpc.Server;
  dir: string;
  socketPath: string;
  cancelExpiry: () => void;
}

/**
 * Binds attested workloads to sockets. A workload presents its projected ServiceAccount
 * token; the server verifies it (TokenReview or JWKS, audience-checked), derives selectors, and
 * serves that workload alone on a fresh unix socket (0600, in its own 0700 directory under
 * `socketDir`) until the token expires or `maxBindingMs` passes, whichever comes first, or the
 * ServiceAccount (or bound pod) is deleted. Re-attesting the same pod extends the same socket.
 */
export class WorkloadSockets {
  readonly #bound = new Map<string, Bound>();
  readonly #opts: WorkloadSocketsOptions;
  readonly #unwatch: (() => void)[] = [];
  #closed = false;

  constructor(opts: WorkloadSocketsOptions) {
    this.#opts = opts;
    if (opts.maxBindingMs !== undefined && !(opts.maxBindingMs > 0)) {
      throw new TypeError('maxBindingMs must be positive');
    }
    const r = opts.revocation;
    if (r) {
      this.#follow(r.serviceAccounts, (b) => b.serviceAccount);
      if (r.pods) this.#follow(r.pods, (b) => b.pod);
    }
  }

  /** Ends bindings whose object `watch` saw go, and re-checks them all after a re-list. */
  #follow(watch: ObjectWatch, objectOf: (b: Bound) => WatchedObject | undefined): void {
    const onDeleted = (o: WatchedObject) => {
      for (const [key, b] of this.#bound) {
        if (objectOf(b)?.uid === o.uid) this.#revoke(key, b, `${watch.resource}_deleted`);
      }
    };
    const onSynced = () => {
      for (const [key, b] of this.#bound) {
        const o = objectOf(b);
        if (o && watch.status(o) !== 'live') this.#revoke(key, b, `${watch.resource}_gone`);
      }
      this.#opts.onEnd(); // suspended streams may resume
    };
    const onStale = () => this.#opts.onEnd();
    watch.on('deleted', onDeleted);
    watch.on('synced', onSynced);
    watch.on('stale', onStale);
    this.#unwatch.push(() => {
      watch.off('deleted', onDeleted);
      watch.off('synced', onSynced);
      watch.off('stale', onStale);
    });
  }

  #revoke(key: string, b: Bound, reason: string): void {
    if (b.binding.closed) return;
    this.#opts.metrics.bindingsRevoked.inc({ reason });
    this.#opts.logger.info({ binding: b.binding.id, reason }, 'workload binding revoked');
    const ending = this.#unbind(key, b, this.#opts.socketLingerMs ?? DEFAULT_SOCKET_LINGER_MS);
    this.#ending.add(ending);
    void ending.finally(() => this.#ending.delete(ending));
  }

  /**
   * False while a revocation watch is stale (or not yet synced): bindings are then suspended,
   * as a deletion could go unseen.
   */
  available(): boolean {
    const r = this.#opts.revocation;
    if (!r) return true;
    if (r.serviceAccounts.state !== 'synced') return false;
    return !r.pods || r.pods.state === 'synced' || r.pods.state === 'unsupported';
  }

  /** Number of live bindings. */
  get size(): number {
    return this.#bound.size;
  }

  /**
   * Verifies `token` and returns the workload's socket. Throws IdentityServerError
   * ERR_ATTESTATION_FAILED (cause: the verifier's error) for a bad token, and passes an
   * ERR_KUBE_UNAVAILABLE error through so the caller answers 503.
   */
  async attest(token: unknown): Promise<Attestation> {
    const fail = (reason: string, cause?: unknown) => {
      this.#opts.metrics.attestationFailures.inc({ reason });
      this.#opts.logger.info({ reason }, 'attestation refused');
      return new IdentityServerError('ERR_ATTESTATION_FAILED', 'attestation failed', { cause });
    };
    if (this.#closed) throw new IdentityServerError('ERR_CA_UNAVAILABLE', 'server is closing');
    if (!this.#opts.verifier) throw fail('no_attestor');
    if (typeof token !== 'string' || token.length === 0) throw fail('ERR_TOKEN_MISSING');
    if (token.length > MAX_TOKEN) throw fail('ERR_TOKEN_TOO_LARGE');
    let id: ServiceAccountIdentity;
    try {
      id = await this.#opts.verifier.verify(token);
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? 'ERR_TOKEN_REJECTED');
      if (code === 'ERR_KUBE_UNAVAILABLE') {
        this.#opts.metrics.attestationFailures.inc({ reason: code });
        throw err;
      }
      // Bounded label: only ERR_* codes, anything else is folded into one value.
      throw fail(/^ERR_[A-Z_]{1,40}$/.test(code) ? code : 'ERR_TOKEN_REJECTED', err);
    }
    const now = this.#opts.clock.now();
    const cap = now + (this.#opts.maxBindingMs ?? DEFAULT_MAX_BINDING_MS);
    const expiresAt = Math.min(id.expiresAt ? id.expiresAt.getTime() : cap, cap);
    if (expiresAt <= now) throw fail('ERR_TOKEN_EXPIRED');
    const selectors = k8sSelectors(id);
    const podName = id.pod?.name ?? id.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    const podUid = id.pod?.uid ?? id.extra?.['authentication.kubernetes.io/pod-uid']?.[0];
    const serviceAccount = id.uid
      ? { namespace: id.namespace, name: id.serviceAccountName, uid: id.uid }
      : undefined;
    const pod =
      podName && podUid ? { namespace: id.namespace, name: podName, uid: podUid } : undefined;
    const r = this.#opts.revocation;
    if (r) {
      // Revocation is keyed by uid: without one, a deletion could not be told apart.
      if (!serviceAccount) throw fail('no_serviceaccount_uid');
      await this.#checkLive(r.serviceAccounts, serviceAccount, r.waitMs, fail);
      if (r.pods && pod && r.pods.state !== 'unsupported') {
        await this.#checkLive(r.pods, pod, r.waitMs, fail);
      }
      if (this.#closed) throw new IdentityServerError('ERR_CA_UNAVAILABLE', 'server is closing');
    }
    // One socket per pod (per ServiceAccount for tokens not bound to a pod), keyed by the
    // ServiceAccount's uid and the full selector set, so a recreated ServiceAccount or a
    // changed identity never inherits another binding.
    const key = `${serviceAccount?.uid ?? ''}\n${podUid ?? ''}\n${selectors.join('\n')}`;
    const existing = this.#bound.get(key);
    if (existing && !existing.binding.closed) {
      existing.binding.expiresAt = Math.max(existing.binding.expiresAt, expiresAt);
      this.#armExpiry(key, existing);
      return this.#result(existing, selectors);
    }
    const bound = await this.#bind(key, selectors, expiresAt, serviceAccount, pod);
    return this.#result(bound, selectors);
  }

  async #checkLive(
    watch: ObjectWatch,
    o: WatchedObject,
    waitMs: number | undefined,
    fail: (reason: string) => Error,
  ): Promise<void> {
    const status = await watch.waitForStatus(o, waitMs ?? DEFAULT_WATCH_WAIT_MS);
    if (status === 'gone') throw fail(`${watch.resource}_gone`);
    if (status !== 'live') {
      // Not seen by the watch (down, or far behind): fail closed, the caller may retry.
      this.#opts.metrics.attestationFailures.inc({ reason: `${watch.resource}_unknown` });
      throw Object.assign(new Error(`the ${watch.resource} watch cannot confirm the object`), {
        code: 'ERR_KUBE_UNAVAILABLE',
      });
    }
  }

  #result(b: Bound, selectors: string[]): Attestation {
    return {
      address: `unix://${b.socketPath}`,
      socketPath: b.socketPath,
      expiresAt: new Date(b.binding.expiresAt),
      selectors,
    };
  }

  async #bind(
    key: string,
    selectors: string[],
    expiresAt: number,
    serviceAccount: WatchedObject | undefined,
    pod: WatchedObject | undefined,
  ): Promise<Bound> {
    await mkdir(this.#opts.socketDir, { recursive: true, mode: 0o700 });
    await chmod(this.#opts.socketDir, 0o700);
    const name = randomBytes(16).toString('hex');
    const dir = join(this.#opts.socketDir, name);
    const socketPath = join(dir, 'api.sock');
    if (socketPath.length > MAX_SOCKET_PATH) {
      throw new IdentityServerError(
        'ERR_CONFIG_INVALID',
        `socket directory path is too long: ${this.#opts.socketDir}`,
      );
    }
    await mkdir(dir, { mode: 0o700 });
    const binding: WorkloadBinding = {
      id: name,
      selectors: new Set(selectors),
      expiresAt,
      svids: new Map(),
      closed: false,
    };
    const server = new grpc.Server();
    server.addService(
      workloadApiServiceDefinition(),
      this.#opts.implementation(() => binding),
    );
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    // The 0700 directory already keeps others out; 0600 on the socket is defence in depth.
    await chmod(socketPath, 0o600);
    const bound: Bound = {
      binding,
      serviceAccount,
      pod,
      server,
      dir,
      socketPath,
      cancelExpiry: () => undefined,
    };
    this.#bound.set(key, bound);
    // Deleted while the socket was being made: the event found no binding to end.
    const r = this.#opts.revocation;
    if (
      r &&
      ((serviceAccount && r.serviceAccounts.status(serviceAccount) === 'gone') ||
        (pod && r.pods?.status(pod) === 'gone'))
    ) {
      this.#revoke(key, bound, 'deleted_while_binding');
    }
    this.#armExpiry(key, bound);
    this.#opts.logger.info({ binding: name, selectors }, 'workload attested');
    return bound;
  }

  #armExpiry(key: string, b: Bound): void {
    b.cancelExpiry();
    const check = () => {
      if (this.#opts.clock.now() >= b.binding.expiresAt) void this.#unbind(key, b);
      else
        b.cancelExpiry = this.#opts.clock.setTimeout(
          check,
          b.binding.expiresAt - this.#opts.clock.now(),
        );
    };
    b.cancelExpiry = this.#opts.clock.setTimeout(
      check,
      b.binding.expiresAt - this.#opts.clock.now(),
    );
  }

  async #unbind(key: string, b: Bound, lingerMs = 0): Promise<void> {
    b.cancelExpiry();
    b.binding.closed = true;
    if (this.#bound.get(key) === b) this.#bound.delete(key);
    // Open streams see the binding closed and end with PermissionDenied at once.
    this.#opts.onEnd();
    // The socket lingers a little, answering PermissionDenied, so a client's next call hears a
    // definitive no rather than a missing socket it would retry as Unavailable.
    if (lingerMs > 0 && !this.#closed) {
      await new Promise<void>((resolve) => {
        const stop = () => {
          clearTimeout(t);
          this.#lingering.delete(stop);
          resolve();
        };
        const t = setTimeout(stop, lingerMs);
        t.unref();
        this.#lingering.add(stop);
      });
    }
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        b.server.forceShutdown();
        resolve();
      }, 1000);
      force.unref();
      b.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    await rm(b.dir, { recursive: true, force: true });
  }

  readonly #lingering = new Set<() => void>();
  /** Revoked bindings whose sockets are still lingering or closing. */
  readonly #ending = new Set<Promise<void>>();

  /** Ends every binding and removes its socket. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const u of this.#unwatch.splice(0)) u();
    for (const stop of [...this.#lingering]) stop();
    await Promise.all([...this.#ending]);
    await Promise.all([...this.#bound].map(([k, b]) => this.#unbind(k, b)));
  }
}

// Compile-time proof that @precinct/kube's verifiers are accepted as attestors.
type KubeVerifierFits = KubeTokenVerifier extends TokenVerifier ? true : never;
const kubeVerifierFits: KubeVerifierFits = true;
void kubeVerifierFits;

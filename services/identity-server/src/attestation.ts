import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { TokenVerifier as KubeTokenVerifier } from '@precinct/kube';
import type { Logger } from '@precinct/runtime';
import type { Clock } from './clock.js';
import { IdentityServerError } from './errors.js';
import type { IdentityMetrics } from './metrics.js';
import { workloadApiDefinition, type WorkloadBinding } from './workload-api.js';

/**
 * The part of @precinct/kube's `ServiceAccountIdentity` attestation reads. Structural, so any
 * @precinct/kube verifier fits (checked at compile time below) and tests can inject their own.
 */
export interface ServiceAccountIdentity {
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
// A token without exp (legacy secret tokens) still gets a bounded binding.
const DEFAULT_BINDING_MS = 3600_000;
const MAX_SOCKET_PATH = 100; // sun_path is 108 bytes on Linux, 104 on macOS

export interface WorkloadSocketsOptions {
  socketDir: string;
  /** Without a verifier every attestation is refused (reason `no_attestor`). */
  verifier: TokenVerifier | undefined;
  clock: Clock;
  metrics: IdentityMetrics;
  logger: Logger;
  implementation: (resolve: () => WorkloadBinding | undefined) => grpc.UntypedServiceImplementation;
  /** Called when a binding ends, so open streams re-check and close. */
  onEnd: () => void;
}

interface Bound {
  binding: WorkloadBinding;
  server: grpc.Server;
  dir: string;
  socketPath: string;
  cancelExpiry: () => void;
}

/**
 * Binds attested workloads to sockets. A workload presents its projected ServiceAccount
 * token; the server verifies it (TokenReview or JWKS, audience-checked), derives selectors, and
 * serves that workload alone on a fresh unix socket (0600, in its own 0700 directory under
 * `socketDir`) until the token expires. Re-attesting the same pod extends the same socket.
 */
export class WorkloadSockets {
  readonly #bound = new Map<string, Bound>();
  readonly #opts: WorkloadSocketsOptions;
  #closed = false;

  constructor(opts: WorkloadSocketsOptions) {
    this.#opts = opts;
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
    const expiresAt = id.expiresAt ? id.expiresAt.getTime() : now + DEFAULT_BINDING_MS;
    if (expiresAt <= now) throw fail('ERR_TOKEN_EXPIRED');
    const selectors = k8sSelectors(id);
    const podUid = id.pod?.uid ?? id.extra?.['authentication.kubernetes.io/pod-uid']?.[0];
    // One socket per pod (per ServiceAccount for tokens not bound to a pod), keyed by the
    // full selector set so a changed identity never inherits another binding.
    const key = `${podUid ?? ''}\n${selectors.join('\n')}`;
    const existing = this.#bound.get(key);
    if (existing && !existing.binding.closed) {
      existing.binding.expiresAt = Math.max(existing.binding.expiresAt, expiresAt);
      this.#armExpiry(key, existing);
      return this.#result(existing, selectors);
    }
    const bound = await this.#bind(key, selectors, expiresAt);
    return this.#result(bound, selectors);
  }

  #result(b: Bound, selectors: string[]): Attestation {
    return {
      address: `unix://${b.socketPath}`,
      socketPath: b.socketPath,
      expiresAt: new Date(b.binding.expiresAt),
      selectors,
    };
  }

  async #bind(key: string, selectors: string[], expiresAt: number): Promise<Bound> {
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
      workloadApiDefinition(),
      this.#opts.implementation(() => binding),
    );
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    // The 0700 directory already keeps others out; 0600 on the socket is defence in depth.
    await chmod(socketPath, 0o600);
    const bound: Bound = { binding, server, dir, socketPath, cancelExpiry: () => undefined };
    this.#bound.set(key, bound);
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

  async #unbind(key: string, b: Bound): Promise<void> {
    b.cancelExpiry();
    b.binding.closed = true;
    if (this.#bound.get(key) === b) this.#bound.delete(key);
    // Open streams see the binding closed and end with PermissionDenied; give them a moment
    // to say so before the socket goes.
    this.#opts.onEnd();
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

  /** Ends every binding and removes its socket. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#bound].map(([k, b]) => this.#unbind(k, b)));
  }
}

// Compile-time proof that @precinct/kube's verifiers are accepted as attestors.
type KubeVerifierFits = KubeTokenVerifier extends TokenVerifier ? true : never;
const kubeVerifierFits: KubeVerifierFits = true;
void kubeVerifierFits;

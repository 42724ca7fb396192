/**
 * Reconnect timing for Workload API streams. The SPIFFE Workload Endpoint spec (appendix A)
 * asks clients to back off exponentially; the defaults follow go-spiffe: 1 s doubling to 30 s.
 */
export interface BackoffOptions {
  /** First delay in ms (default 1000). */
  initialMs?: number;
  /** Upper bound in ms (default 30000). */
  maxMs?: number;
  /** Growth factor (default 2). */
  multiplier?: number;
  /**
   * Random spread as a fraction of the delay, 0 to 1 (default 0.1): the delay becomes
   * `d * (1 - jitter * r)` with `r` from `random()`, so it never exceeds the bound.
   */
  jitter?: number;
  /** Random source in [0, 1) (default Math.random); tests pass a constant. */
  random?: () => number;
  /**
   * Waits `ms` or until `signal` aborts. Tests replace it to record the computed delays
   * without waiting for them.
   */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/**
 * Sleeps with a ref'd timer: a watch (and so a source) keeps the process alive until it is
 * stopped, also between two attempts. An unref'd timer would let a program end silently
 * exactly when the agent is briefly unreachable, while an open stream holds it otherwise.
 */
export function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Exponential backoff state for one stream; `reset()` after every good message. */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #multiplier: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #next: number;

  constructor(opts: BackoffOptions = {}) {
    this.#initial = opts.initialMs ?? 1000;
    this.#max = opts.maxMs ?? 30_000;
    this.#multiplier = opts.multiplier ?? 2;
    this.#jitter = Math.min(Math.max(opts.jitter ?? 0.1, 0), 1);
    this.#random = opts.random ?? Math.random;
    if (!(this.#initial > 0) || !(this.#max >= this.#initial) || !(this.#multiplier >= 1)) {
      throw new TypeError('backoff: need 0 < initialMs <= maxMs and multiplier >= 1');
    }
    this.#next = this.#initial;
  }

  /** The delay before the next attempt, in ms; grows the one after it. */
  next(): number {
    const base = this.#next;
    this.#next = Math.min(base * this.#multiplier, this.#max);
    return Math.round(base * (1 - this.#jitter * this.#random()));
  }

  reset(): void {
    this.#next = this.#initial;
  }
}

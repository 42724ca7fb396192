/**
 * Time and timers, injectable so rotation and refresh are tested by moving a fake clock, never
 * by waiting. `setTimeout` returns a cancel function; real timers are unref'd so a pending
 * refresh never keeps the process alive.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    // setTimeout's limit is 2^31-1 ms; a longer wait is re-armed by the caller's next check.
    const t = setTimeout(fn, Math.min(Math.max(0, ms), 2 ** 31 - 1));
    t.unref();
    return () => clearTimeout(t);
  },
};

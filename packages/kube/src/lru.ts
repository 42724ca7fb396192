/**
 * A bounded map with per-entry expiry, least recently used evicted first. Hand-written (a Map
 * keeps insertion order, so delete+set moves an entry to the back): the hot path of every
 * cached verification, and 40 lines need no dependency.
 *
 * Sized for hundreds of thousands of entries, so an entry is the value alone: its expiry is
 * part of the value (read back with `expiryOf`), in the units of `deadline` below.
 */
export class TtlLru<V> {
  private readonly map = new Map<string, V>();
  private readonly base: number;

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number,
    private readonly expiryOf: (value: V) => number,
  ) {
    if (!(maxEntries > 0)) throw new TypeError('maxEntries must be positive');
    this.base = now();
  }

  /**
   * The expiry a value should carry to end at or before `atMs` (same clock as `now`): whole
   * seconds since this cache was made, rounded down. Small integers, so V8 keeps them inside
   * the value (or as the value) instead of a 16-byte heap number each; rounding down means an
   * entry can end up to a second early, never late.
   */
  deadline(atMs: number): number {
    return Math.floor((atMs - this.base) / 1000);
  }

  private expired(value: V): boolean {
    // Written so that NaN counts as expired.
    return !(this.expiryOf(value) * 1000 + this.base > this.now());
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    this.map.delete(key);
    if (this.expired(v)) return undefined;
    this.map.set(key, v);
    return v;
  }

  /** Stores `value` unless its expiry has already passed. */
  set(key: string, value: V): void {
    this.map.delete(key);
    if (this.expired(value)) return;
    this.map.set(key, value);
    if (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
  }

  /** Deletes every entry whose value `drop` selects; returns how many. O(size): for rare events. */
  deleteWhere(drop: (value: V) => boolean): number {
    let n = 0;
    for (const [k, v] of this.map) {
      if (drop(v)) {
        this.map.delete(k); // deleting the current key while iterating a Map is safe
        n++;
      }
    }
    return n;
  }

  clear(): void {
    this.map.clear();
  }
}

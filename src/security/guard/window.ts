/**
 * Events per key within a sliding window. A key keeps at most `limit` timestamps (enough to know when the
 * limit is passed), and the map at most `maxKeys` keys, the longest unseen dropped first: an attacker who
 * cycles through addresses costs bounded memory.
 */
export class SlidingWindow {
  private readonly times = new Map<string, number[]>();

  constructor(private readonly limit: number, private readonly windowMs: number, private readonly maxKeys = 100_000) {}

  /** Records one event; returns how many fell within the window, this one included. */
  hit(key: string, now: number): number {
    let list = this.times.get(key);
    if (list) this.times.delete(key); // re-inserted below: Map order is then least recently seen first
    else list = [];
    const from = now - this.windowMs;
    let keep = 0;
    while (keep < list.length && list[keep]! <= from) keep++;
    if (keep > 0) list.splice(0, keep);
    list.push(now);
    if (list.length > this.limit) list.shift();
    this.times.set(key, list);
    // A key unseen for a whole window holds nothing: the least recently seen (first in Map order) go now,
    // not only when the map is full (20,000 one-off client identifiers kept 11 MiB for good).
    for (const [oldest, times] of this.times) {
      if (times[times.length - 1]! > from) break;
      this.times.delete(oldest);
    }
    if (this.times.size > this.maxKeys) this.times.delete(this.times.keys().next().value!);
    return list.length;
  }

  /** Events within the window for `key` (without recording one). */
  count(key: string, now: number): number {
    const list = this.times.get(key);
    if (!list) return 0;
    const from = now - this.windowMs;
    return list.filter((t) => t > from).length;
  }

  forget(key: string): void {
    this.times.delete(key);
  }

  get keys(): number {
    return this.times.size;
  }
}

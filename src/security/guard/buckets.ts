/**
 * Token buckets per key: `rate` tokens a second up to `burst`; taking from an empty bucket fails. Buckets
 * are created full, so a first burst (a fleet reconnecting behind one NAT address) passes; the map keeps at
 * most `maxKeys` buckets, the longest unused dropped first (a dropped bucket comes back full, which only
 * errs towards letting clients in).
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly rate: number, private readonly burst: number, private readonly maxKeys = 100_000) {}

  take(key: string, now: number): boolean {
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key);
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate);
      bucket.at = now;
    } else {
      bucket = { tokens: this.burst, at: now };
    }
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}

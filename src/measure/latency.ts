/**
 * A latency histogram kept as plain counts, for /metrics: observing is a short scan of fixed bounds and three
 * increments, and nothing is allocated. Read at scrape time (`LatencyFigures`), summed over workers like any count.
 */

/** Upper bounds of the buckets, in seconds: 50 µs to 5 s, then +Inf. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** Counts per bucket (not cumulative; the last is above every bound), their sum in seconds and how many. */
export interface LatencyFigures {
  counts: number[];
  sum: number;
  count: number;
}

export class LatencyHistogram implements LatencyFigures {
  readonly counts: number[] = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }

  /** Milliseconds elapsed since `startMs` (a `performance.now()` reading). */
  observeSince(startMs: number): void {
    this.observe((performance.now() - startMs) / 1000);
  }

  figures(): LatencyFigures {
    return { counts: [...this.counts], sum: this.sum, count: this.count };
  }
}

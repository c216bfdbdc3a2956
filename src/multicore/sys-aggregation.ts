import type { SysAggregation, SysReport } from '../broker/peers.js';
import type { BrokerStats } from '../broker/stats.js';

/**
 * $SYS topics whose value is the same in every worker (state they share), so the whole broker's value is any one
 * worker's, not their sum: the bans in force are held by every worker.
 */
const SHARED_VALUES = new Set(['$SYS/broker/security/bans/active']);

/**
 * $SYS for a multi-core broker: every worker sends its figures to the primary at each $SYS interval; worker 0 is
 * given the others' latest and publishes the sums (retained, so they reach every worker's subscribers); the others
 * publish nothing. A subscriber anywhere sees one value per topic for the whole broker, as from one process.
 */
export class WorkerSysAggregation implements SysAggregation {
  /** The latest figures of each other worker (on worker 0). */
  private readonly others = new Map<number, SysReport>();
  private maxConnected = 0;

  constructor(private readonly index: number, private readonly send: (report: SysReport) => void) {}

  /** Another worker's figures, passed on by the primary. */
  received(index: number, report: SysReport): void {
    if (index !== this.index) this.others.set(index, report);
  }

  combine(local: SysReport): SysReport | undefined {
    if (this.index !== 0) {
      this.send(local);
      return undefined;
    }
    const combined = sumReports([local, ...this.others.values()]);
    // The peak of the sum, seen from here (the workers' own peaks need not coincide).
    this.maxConnected = Math.max(this.maxConnected, combined.snapshot.stats.connectedClients);
    combined.snapshot.stats.maxConnectedClients = this.maxConnected;
    return combined;
  }
}

/** The whole broker's figures: counts summed, the earliest start, overloaded if any worker is. */
export function sumReports(reports: SysReport[]): SysReport {
  const [first] = reports;
  if (!first) throw new Error('no $SYS report to sum');
  const stats = { ...first.snapshot.stats } as unknown as Record<string, number>;
  for (const report of reports.slice(1)) {
    for (const [key, value] of Object.entries(report.snapshot.stats as unknown as Record<string, number>)) {
      if (typeof value !== 'number') continue;
      stats[key] = key === 'startedAt' ? Math.min(stats[key] ?? value, value) : (stats[key] ?? 0) + value;
    }
  }
  const sum = (pick: (r: SysReport) => number): number => reports.reduce((total, r) => total + pick(r), 0);
  const extra = new Map<string, string>();
  for (const report of reports) {
    for (const [topic, value] of report.extra) {
      const before = extra.get(topic);
      const number = Number(value);
      if (before === undefined || value.trim() === '' || !Number.isFinite(number)) extra.set(topic, before ?? value);
      else extra.set(topic, String(SHARED_VALUES.has(topic) ? Math.max(Number(before), number) : Number(before) + number));
    }
  }
  return {
    snapshot: {
      stats: stats as unknown as BrokerStats,
      version: first.snapshot.version,
      disconnectedSessions: sum((r) => r.snapshot.disconnectedSessions),
      subscriptions: sum((r) => r.snapshot.subscriptions),
      // Every worker holds every retained message.
      retained: Math.max(...reports.map((r) => r.snapshot.retained)),
      overloaded: reports.some((r) => r.snapshot.overloaded),
      storedSessions: sum((r) => r.snapshot.storedSessions),
      heapUsed: sum((r) => r.snapshot.heapUsed),
    },
    extra: [...extra],
  };
}

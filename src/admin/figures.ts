import type { Broker } from '../broker/broker.js';
import type { LatencyFigures } from '../measure/latency.js';
import { BrokerStats, type DropCounts } from '../broker/stats.js';
import type { Guard, GuardCounters } from '../security/guard/index.js';

/**
 * What /metrics reports about a broker, as plain data read in one pass at scrape time: from the broker of this
 * process (`brokerFigures`), or summed over the workers of a multi-core broker (src/multicore/admin-view.ts), which
 * compute it the same way and send it over IPC.
 */

const PROTOCOLS: Record<number, string> = { 3: '3.1', 4: '3.1.1', 5: '5' };

/** BrokerStats as plain data: its counts, the counts by QoS, cause and reason, and the latency histogram. */
export type StatFigures = { -readonly [K in keyof BrokerStats as BrokerStats[K] extends number ? K : never]: number } & {
  publishReceivedByQos: number[];
  payloadBytesReceivedByQos: number[];
  publishSentByQos: number[];
  payloadBytesSentByQos: number[];
  droppedBy: { -readonly [K in keyof DropCounts]: number };
  connectsRefusedBy: Record<string, number>;
  disconnectsBy: Record<string, number>;
  deliveryLatency: LatencyFigures;
};

/** A copy of the counts as they are now (the broker goes on counting in its own). */
export function statFigures(stats: BrokerStats): StatFigures {
  return {
    ...stats,
    publishReceivedByQos: [...stats.publishReceivedByQos],
    payloadBytesReceivedByQos: [...stats.payloadBytesReceivedByQos],
    publishSentByQos: [...stats.publishSentByQos],
    payloadBytesSentByQos: [...stats.payloadBytesSentByQos],
    droppedBy: { ...stats.droppedBy },
    connectsRefusedBy: { ...stats.connectsRefusedBy },
    disconnectsBy: { ...stats.disconnectsBy },
    deliveryLatency: stats.deliveryLatency.figures(),
  };
}

/** Every count at 0 (a scrape no worker answered). */
export function zeroStatFigures(): StatFigures {
  return { ...statFigures(new BrokerStats()), startedAt: 0 };
}

/**
 * The counts of several processes added up: numbers, lists of numbers (by QoS, histogram buckets) and records of
 * them (by cause or reason, whichever keys each has), the earliest start.
 */
export function sumStatFigures(reports: readonly StatFigures[]): StatFigures {
  const total = zeroStatFigures() as unknown as Record<string, unknown>;
  for (const report of reports) addCounts(total, report as unknown as Record<string, unknown>);
  const starts = reports.map((r) => r.startedAt);
  (total as { startedAt: number }).startedAt = starts.length > 0 ? Math.min(...starts) : 0;
  return total as unknown as StatFigures;
}

export function sumStoreFigures(stores: readonly StoreFigures[]): StoreFigures {
  const total: Record<string, unknown> = {};
  for (const store of stores) addCounts(total, store as unknown as Record<string, unknown>);
  return total as unknown as StoreFigures;
}

function addCounts(into: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(from)) {
    const mine = into[key];
    if (typeof value === 'number') into[key] = (typeof mine === 'number' ? mine : 0) + value;
    else if (Array.isArray(value)) {
      const list = Array.isArray(mine) ? (mine as number[]) : [];
      value.forEach((n: unknown, i) => { if (typeof n === 'number') list[i] = (list[i] ?? 0) + n; });
      into[key] = list;
    } else if (typeof value === 'object' && value !== null) {
      const record = typeof mine === 'object' && mine !== null ? (mine as Record<string, unknown>) : {};
      addCounts(record, value as Record<string, unknown>);
      into[key] = record;
    }
  }
}

/** The store's timings: each batch written (a transaction, a MULTI/EXEC), and each fsync that made batches durable. */
export interface StoreFigures {
  write: LatencyFigures;
  sync?: LatencyFigures;
}

/** The guard's counters, and the bans in force. */
export type GuardFigures = GuardCounters & { bansActive: number };

export interface BrokerFigures {
  version: string;
  stats: StatFigures;
  /** Connected clients (CONNECT accepted) by listener and protocol version. */
  connections: Array<{ listener: string; protocol: string; count: number }>;
  sessions: { online: number; offline: number; queued: number; queuedBytes: number; inflight: number; inflightBytes: number; stored: number };
  subscriptions: number;
  retained: number;
  memory: { held: number; highWater: number; overloaded: boolean };
  /** Present when the broker has a guard (something authenticates, or a guard section). */
  guard?: GuardFigures;
  /** Present when the store times its writes (SQLite, Redis). */
  store?: StoreFigures;
}

/** One process's own figures (a multi-core worker's, labelled by `worker`). */
export interface ProcessFigures {
  heapUsedBytes: number;
  residentBytes: number;
  cpuSeconds: number;
  /** How late a callback scheduled with setImmediate ran, as prom-client's nodejs_eventloop_lag_seconds measures it. */
  eventLoopLagSeconds: number;
}

/** What one scrape reads: the whole broker, and in multi-core mode each worker. */
export interface ScrapeFigures {
  broker: BrokerFigures;
  /** Multi-core mode: every worker, `process` absent for one that did not answer in time. */
  workers?: Array<{ index: number; process?: ProcessFigures }>;
}

/** Where /metrics reads its figures, once per scrape. */
export interface MetricsSource {
  read(): ScrapeFigures | Promise<ScrapeFigures>;
}

/** The figures of the broker in this process: one pass over connections and sessions. */
export function brokerFigures(broker: Broker, guard: Guard | undefined): BrokerFigures {
  const counts = new Map<string, { listener: string; protocol: string; count: number }>();
  for (const conn of broker.connections) {
    if (conn.state !== 'connected') continue;
    const protocol = PROTOCOLS[conn.version] ?? String(conn.version);
    const key = `${conn.listener.name}\u0000${protocol}`;
    const entry = counts.get(key) ?? { listener: conn.listener.name, protocol, count: 0 };
    entry.count++;
    counts.set(key, entry);
  }
  const sessions = { online: 0, offline: 0, queued: 0, queuedBytes: 0, inflight: 0, inflightBytes: 0, stored: broker.sessionCaps.size };
  for (const session of broker.sessions.values()) {
    if (session.connection) sessions.online++;
    else sessions.offline++;
    sessions.queued += session.queue.length;
    sessions.queuedBytes += session.queuedBytes;
    sessions.inflight += session.inflight.size;
    sessions.inflightBytes += session.inflightBytes;
  }
  const usage = process.memoryUsage();
  const figures: BrokerFigures = {
    version: broker.version,
    stats: statFigures(broker.stats),
    connections: [...counts.values()],
    sessions,
    subscriptions: broker.router.subscriptionCount,
    retained: broker.retained.size,
    memory: { held: usage.heapUsed + usage.external, highWater: broker.limits.memoryHighWater, overloaded: broker.memory.overloaded },
  };
  const timings = broker.store.timings;
  if (timings) figures.store = { write: timings.write.figures(), ...(timings.sync && { sync: timings.sync.figures() }) };
  if (guard) {
    figures.guard = { ...guard.counters, bansActive: guard.bans.list().length };
  }
  return figures;
}

/** This process's heap, resident memory, CPU time and event-loop lag (the lag takes one turn of the loop to measure). */
export function processFigures(): Promise<ProcessFigures> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => {
    const lag = Number(process.hrtime.bigint() - start) / 1e9;
    const usage = process.memoryUsage();
    const cpu = process.cpuUsage();
    resolve({ heapUsedBytes: usage.heapUsed, residentBytes: usage.rss, cpuSeconds: (cpu.user + cpu.system) / 1e6, eventLoopLagSeconds: lag });
  }));
}

import type { ListenerAddress } from '../broker/broker.js';
import type { AdminUsers, BrokerFigures, BrokerInfo, BrokerView, ProcessFigures, ScrapeFigures, WorkerState } from '../admin/index.js';
import type { Readiness } from '../admin/health.js';
import { sumStatFigures, sumStoreFigures } from '../admin/figures.js';
import { AddressSet, addressKey } from '../security/guard/addresses.js';
import type { Ban, BanKind } from '../security/guard/bans.js';
import { QUERY_TIMEOUT_MS, type WorkerQueries } from './worker-queries.js';

/**
 * The admin listener of a multi-core broker runs in the primary, which holds no broker: this view asks the workers
 * over IPC (src/multicore/worker-queries.ts) and describes the whole broker, as $SYS does (sys-aggregation.ts).
 */

/** What the primary tells of itself and its workers (the `Primary` class fits). */
export interface PrimaryStatus {
  readonly queries: WorkerQueries;
  /** Each worker, in index order, with its state as the primary knows it. */
  workerStates(): Array<{ index: number; pid: number | undefined; state: WorkerState }>;
  /** The listeners bound (empty before they are). */
  readonly listening: ListenerAddress[];
  /** Every worker ready and connections handed over. */
  readonly started: boolean;
  readonly stopping: boolean;
  readonly startedAt: number;
}

/** The whole broker from the primary: readiness from the workers' reported states, figures and info asked for at each request. */
export class PrimaryBrokerView implements BrokerView {
  /** The peak of the summed connections, as the scrapes saw it (the workers' own peaks need not coincide). */
  private maxConnected = 0;

  constructor(private readonly primary: PrimaryStatus, private readonly version: string, private readonly timeoutMs = QUERY_TIMEOUT_MS) {}

  readiness(): Readiness {
    const reasons: string[] = [];
    const states = this.primary.workerStates();
    if (this.primary.stopping || states.some((w) => w.state === 'stopped')) reasons.push('stopping');
    else if (!this.primary.started) reasons.push('starting: listeners binding or the workers recovering their stored state');
    const overloaded = states.filter((w) => w.state === 'overloaded').map((w) => w.index);
    if (overloaded.length > 0) reasons.push(`overloaded: memory past the high-water mark in worker ${overloaded.join(', ')}, new clients refused there`);
    return { ready: reasons.length === 0, reasons };
  }

  /** Every worker's figures, asked for at once; one that does not answer within the timeout is left out (and reported down). */
  async read(): Promise<ScrapeFigures> {
    const states = this.primary.workerStates();
    const answers = await Promise.allSettled(states.map((w) => this.primary.queries.ask(w.index, { kind: 'figures' }, this.timeoutMs)));
    const workers: NonNullable<ScrapeFigures['workers']> = [];
    const reports: BrokerFigures[] = [];
    for (const [i, answer] of answers.entries()) {
      const index = states[i]!.index;
      if (answer.status === 'fulfilled') {
        reports.push(answer.value.broker);
        workers.push({ index, process: answer.value.process satisfies ProcessFigures });
      } else workers.push({ index });
    }
    const broker = sumFigures(reports, this.version);
    const connected = broker.connections.reduce((n, c) => n + c.count, 0);
    this.maxConnected = Math.max(this.maxConnected, connected, ...reports.map((r) => r.stats.maxConnectedClients));
    broker.stats.maxConnectedClients = this.maxConnected;
    return { broker, workers };
  }

  /** With the clients and sessions of every worker that answered in time (`workers_missing` names the others). */
  async info(): Promise<BrokerInfo> {
    const { broker, workers } = await this.read();
    const missing = (workers ?? []).filter((w) => !w.process).map((w) => w.index);
    return {
      version: this.version,
      uptime_seconds: Math.floor((Date.now() - this.primary.startedAt) / 1000),
      listeners: this.primary.listening,
      ready: this.readiness().ready,
      workers: this.primary.workerStates(),
      connected_clients: broker.connections.reduce((n, c) => n + c.count, 0),
      sessions: broker.sessions.online + broker.sessions.offline,
      ...(missing.length > 0 && { partial: true, workers_missing: missing }),
    };
  }
}

const ZERO_SESSIONS: BrokerFigures['sessions'] = { online: 0, offline: 0, queued: 0, queuedBytes: 0, inflight: 0, inflightBytes: 0, stored: 0 };

/**
 * The whole broker's figures from the workers': counts summed, connections per listener and protocol summed, the
 * earliest start; the retained messages and the bans in force, which every worker holds alike, are not multiplied
 * (the same rule as $SYS, sys-aggregation.ts); overloaded if any worker is.
 */
export function sumFigures(reports: readonly BrokerFigures[], version: string): BrokerFigures {
  const connections = new Map<string, { listener: string; protocol: string; count: number }>();
  for (const report of reports) {
    for (const c of report.connections) {
      const key = `${c.listener}\u0000${c.protocol}`;
      const entry = connections.get(key) ?? { listener: c.listener, protocol: c.protocol, count: 0 };
      entry.count += c.count;
      connections.set(key, entry);
    }
  }
  const sessions = { ...ZERO_SESSIONS };
  for (const report of reports) for (const key of Object.keys(sessions) as Array<keyof typeof sessions>) sessions[key] += report.sessions[key];
  const sum = (pick: (r: BrokerFigures) => number): number => reports.reduce((total, r) => total + pick(r), 0);
  const figures: BrokerFigures = {
    version: reports[0]?.version ?? version,
    stats: sumStatFigures(reports.map((r) => r.stats)),
    connections: [...connections.values()],
    sessions,
    subscriptions: sum((r) => r.subscriptions),
    // Every worker holds every retained message.
    retained: Math.max(0, ...reports.map((r) => r.retained)),
    memory: { held: sum((r) => r.memory.held), highWater: sum((r) => r.memory.highWater), overloaded: reports.some((r) => r.memory.overloaded) },
  };
  const guards = reports.flatMap((r) => (r.guard ? [r.guard] : []));
  if (guards.length > 0) {
    const guard = { ...guards[0]! };
    for (const other of guards.slice(1)) for (const key of Object.keys(guard) as Array<keyof typeof guard>) guard[key] += other[key];
    // Every worker holds every ban in force.
    guard.bansActive = Math.max(...guards.map((g) => g.bansActive));
    figures.guard = guard;
  }
  const stores = reports.flatMap((r) => (r.store ? [r.store] : []));
  if (stores.length > 0) figures.store = sumStoreFigures(stores);
  return figures;
}

/**
 * Admin users in multi-core mode: the primary has no security layer of its own, so it hands the Basic credentials
 * to worker 0, whose authentication chain, guard and ACL judge them as they judge an MQTT client (one source of truth
 * for passwords and roles, reloaded with the workers on SIGHUP; failures count in one guard, and a ban it sets is
 * shared with every worker and the primary's table). No answer in time: 503.
 */
export function workerAdminUsers(queries: WorkerQueries, timeoutMs = QUERY_TIMEOUT_MS): AdminUsers {
  return async (login) => {
    try {
      return await queries.ask(0, { kind: 'admin-login', login }, timeoutMs);
    } catch {
      return { ok: false, reason: 'failed' };
    }
  };
}

/**
 * Whether an address is banned, from the primary's table of bans in force (shared-bans.ts) and the configuration's
 * bans (which the workers do not report): API tokens are judged in the primary, and a banned address is refused
 * before them, as in one process.
 */
export function primaryBanCheck(inForce: () => Ban[], configured: ReadonlyArray<{ kind: BanKind; value: string }>): (remoteAddress: string) => boolean {
  return (remoteAddress) => {
    const key = addressKey(remoteAddress);
    const networks: string[] = [];
    for (const ban of [...configured, ...inForce()]) {
      if (ban.kind === 'address' && addressKey(ban.value) === key) return true;
      if (ban.kind === 'network') networks.push(ban.value);
    }
    return networks.length > 0 && new AddressSet(networks).has(remoteAddress);
  };
}

import type { Broker, ListenerAddress } from '../broker/broker.js';
import type { Guard } from '../security/guard/index.js';
import { brokerFigures, type MetricsSource, type ScrapeFigures } from './figures.js';
import { readiness, type Readiness } from './health.js';

/**
 * The broker as the admin listener sees it: the seam between the admin routes and where the broker runs. One
 * process: `localBrokerView`, read from the broker object. Multi-core mode: the primary's view
 * (src/multicore/admin-view.ts), which holds no broker and asks the workers over IPC, summing their answers.
 * Routes that need more of the broker (clients, sessions, retained messages) grow this interface, with both
 * implementations, rather than reaching for a `Broker`.
 */
export interface BrokerView extends MetricsSource {
  /** /readyz: every part serving, none shedding load. Synchronous: probes come every few seconds and must not wait. */
  readiness(): Readiness;
  /** GET /api/v1/broker. */
  info(): Promise<BrokerInfo>;
}

export interface BrokerInfo {
  version: string;
  uptime_seconds: number;
  listeners: ListenerAddress[];
  ready: boolean;
  /** Multi-core mode: each worker and its state. */
  workers?: Array<{ index: number; pid: number | undefined; state: WorkerState }>;
}

/** A worker as the primary knows it: starting (not yet ready), ready, overloaded (refusing newcomers), stopped. */
export type WorkerState = 'starting' | 'ready' | 'overloaded' | 'stopped';

/** The broker of this process. */
export function localBrokerView(broker: Broker, guard: Guard | undefined): BrokerView {
  return {
    readiness: () => readiness(broker),
    read: (): ScrapeFigures => ({ broker: brokerFigures(broker, guard) }),
    info: () => Promise.resolve({
      version: broker.version,
      uptime_seconds: Math.floor((Date.now() - broker.stats.startedAt) / 1000),
      listeners: broker.addresses,
      ready: readiness(broker).ready,
    }),
  };
}

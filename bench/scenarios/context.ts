import type { BrokerKind } from '../lib/brokers.js';

/** What every scenario gets from the runner, and what it gives back. */
export interface BenchContext {
  /** Small sizes and short windows: the harness smoke run in `npm test`. */
  quick: boolean;
  rounds: number;
  /** CPUs for the broker and for the load generator (undefined: not pinned). */
  brokerCpu: number | undefined;
  loadCpu: number | undefined;
  /** The brokers the side-by-side scenarios compare (Moat first). */
  brokers: BrokerKind[];
  log(line: string): void;
}

export interface ScenarioReport {
  id: string;
  title: string;
  /** How it was measured, in a sentence or two. */
  setup: string;
  /** A Markdown table. */
  table: string;
  /** Problems the checks found (loss, duplicates, failures): a benchmark that lost messages says so. */
  errors: string[];
  /** The figures behind the table, for tests and for JSON output. */
  data: unknown;
}

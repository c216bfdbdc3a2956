import { runLoad, type LoadResult } from '../load/run-load.js';
import { startMoat } from '../lib/brokers.js';
import { fmt, fmtSummary, summarize } from '../lib/system.js';
import type { BenchContext, ScenarioReport } from './context.js';

/** QoS 1 toward persistent sessions with each `durability` setting: what the promise of docs/storage.md costs. */

// Publishers are acknowledged once a message is stored, not once it is delivered; a queue larger than the
// default 1,000 keeps a momentary stall of the subscriber process from turning into drops.
const QUEUE = 'limits:\n  max_queued_messages: 100000\n';

export const PERSISTENT_QUEUE_LIMIT = QUEUE;

const MODES = {
  strict: 'store:\n  type: sqlite\n  directory: ./data\n  durability: strict\n' + QUEUE,
  periodic: 'store:\n  type: sqlite\n  directory: ./data\n  durability: periodic\n  flush_interval_ms: 100\n' + QUEUE,
  memory: 'store:\n  type: memory\n' + QUEUE,
} as const;
const WINDOW = 16;

export async function durabilityScenario(ctx: BenchContext): Promise<ScenarioReport> {
  return persistentQos1(ctx, MODES, { id: 'durability', title: 'QoS 1 throughput by durability setting', column: 'durability' });
}

/** The same QoS 1 load toward persistent sessions, against one Moat configuration per mode (a `store:` section and limits). */
export async function persistentQos1(ctx: BenchContext, modes: Record<string, string>, report: { id: string; title: string; column: string }): Promise<ScenarioReport> {
  type Mode = string;
  const MODES = modes;
  const pairs = ctx.quick ? 2 : 8;
  const results = new Map<Mode, LoadResult[]>(Object.keys(MODES).map((m) => [m as Mode, []]));
  for (let round = 0; round < ctx.rounds; round++) {
    // Interleaved: one run of each mode per round, so drift on the machine hits all modes alike.
    for (const mode of Object.keys(MODES) as Mode[]) {
      const broker = await startMoat({ yaml: MODES[mode], cpu: ctx.brokerCpu });
      try {
        const result = await runLoad({
          port: broker.port, brokerPid: broker.pid, cpu: ctx.loadCpu, idPrefix: `dur-${mode}-${round}`,
          publishers: pairs, subscribers: pairs, wildcard: false, qos: 1, cleanSubscribers: false,
          payloadSize: 64, window: WINDOW, warmupMs: ctx.quick ? 300 : 1000, measureMs: ctx.quick ? 700 : 5000,
        });
        results.get(mode)!.push(result);
        ctx.log(`${report.id} ${mode} round ${round + 1}: ${fmt(result.deliveriesPerSecond)} msg/s, ${fmt(result.cpuUsPerDelivery, 1)} µs CPU/msg, p99 ${fmt(result.latency.p99, 2)} ms; missing ${result.missing}, duplicates ${result.duplicates}, undelivered ${result.undelivered}`);
      } finally {
        await broker.stop();
      }
    }
  }
  const rows = (Object.keys(MODES) as Mode[]).map((mode) => {
    const runs = results.get(mode)!;
    const all = (f: (r: LoadResult) => number) => summarize(runs.map(f));
    return {
      mode,
      rate: all((r) => r.deliveriesPerSecond),
      cpu: all((r) => r.cpuUsPerDelivery),
      p50: all((r) => r.latency.p50),
      p99: all((r) => r.latency.p99),
      missing: runs.reduce((a, r) => a + r.missing + r.undelivered, 0),
      duplicates: runs.reduce((a, r) => a + r.duplicates, 0),
    };
  });
  const table = [
    `| ${report.column} | msg/s delivered | broker CPU µs/msg | latency p50 ms | latency p99 ms | lost | duplicates |`,
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| \`${r.mode}\` | ${fmtSummary(r.rate)} | ${fmtSummary(r.cpu, 1)} | ${fmtSummary(r.p50, 2)} | ${fmtSummary(r.p99, 2)} | ${r.missing} | ${r.duplicates} |`),
  ].join('\n');
  const setup = `${pairs} publisher → persistent-session subscriber pairs (clean session 0, QoS 1 subscriptions), QoS 1, 64-byte payloads, ` +
    `${WINDOW} messages in flight per publisher (below the broker's default inflight window toward each subscriber, so no queue builds up and nothing is dropped by the queue limit); ${ctx.rounds} interleaved round(s), warm-up then a measured window; median (min–max).`;
  const errors = rows.filter((r) => r.missing > 0 || r.duplicates > 0).map((r) => `${r.mode}: ${r.missing} lost, ${r.duplicates} duplicates`);
  return { id: report.id, title: report.title, setup, table, errors, data: rows };
}

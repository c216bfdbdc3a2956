import { runLoad, type LoadOptions, type LoadResult } from '../load/run-load.js';
import { startMoat } from '../lib/brokers.js';
import { fmt, fmtSummary, summarize } from '../lib/system.js';
import type { BenchContext, ScenarioReport } from './context.js';

/** One row of a mode table: Moat's configuration, and what the load generator does differently in it. */
export interface Mode {
  yaml: string;
  load?: Pick<LoadOptions, 'envelope' | 'rate'>;
}

export type LoadShape = Pick<LoadOptions, 'publishers' | 'subscribers' | 'wildcard' | 'qos' | 'cleanSubscribers' | 'payloadSize' | 'window'>;

/**
 * The same load against one Moat configuration per mode, rounds interleaved so drift on the machine hits every mode
 * alike; a row per mode with throughput, the broker's CPU per delivery, latency, and what was lost.
 */
export async function modeTable(
  ctx: BenchContext, modes: Record<string, Mode>, shape: LoadShape,
  report: { id: string; title: string; column: string; describe: string },
): Promise<ScenarioReport> {
  const names = Object.keys(modes);
  const results = new Map<string, LoadResult[]>(names.map((m) => [m, []]));
  for (let round = 0; round < ctx.rounds; round++) {
    for (const mode of names) {
      const broker = await startMoat({ yaml: modes[mode]!.yaml, cpu: ctx.brokerCpu });
      try {
        const result = await runLoad({
          ...shape, ...modes[mode]!.load,
          port: broker.port, brokerPid: broker.pid, cpu: ctx.loadCpu, idPrefix: `${report.id}-${mode}-${round}`.replace(/[^\w-]/g, '-'),
          warmupMs: ctx.quick ? 300 : 1000, measureMs: ctx.quick ? 700 : 5000,
        });
        results.get(mode)!.push(result);
        ctx.log(`${report.id} ${mode} round ${round + 1}: ${fmt(result.deliveriesPerSecond)} msg/s, ${fmt(result.cpuUsPerDelivery, 1)} µs CPU/msg, p99 ${fmt(result.latency.p99, 2)} ms, load generator ${fmt(result.loadCpuPercent)} %; missing ${result.missing}, duplicates ${result.duplicates}, undelivered ${result.undelivered}`);
      } finally {
        await broker.stop();
      }
    }
  }
  const rows = names.map((mode) => {
    const runs = results.get(mode)!;
    const all = (f: (r: LoadResult) => number) => summarize(runs.map(f));
    return {
      mode,
      rate: all((r) => r.deliveriesPerSecond),
      cpu: all((r) => r.cpuUsPerDelivery),
      p50: all((r) => r.latency.p50),
      p99: all((r) => r.latency.p99),
      loadCpu: all((r) => r.loadCpuPercent),
      missing: runs.reduce((a, r) => a + r.missing + r.undelivered, 0),
      duplicates: runs.reduce((a, r) => a + r.duplicates, 0),
    };
  });
  const table = [
    `| ${report.column} | msg/s delivered | broker CPU µs/msg | latency p50 ms | latency p99 ms | load generator CPU % | lost | duplicates |`,
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| \`${r.mode}\` | ${fmtSummary(r.rate)} | ${fmtSummary(r.cpu, 1)} | ${fmtSummary(r.p50, 2)} | ${fmtSummary(r.p99, 2)} | ${fmtSummary(r.loadCpu)} | ${r.missing} | ${r.duplicates} |`),
  ].join('\n');
  const setup = `${report.describe}; ${ctx.rounds} interleaved round(s), warm-up then a measured window; median (min–max).`;
  const errors = rows.filter((r) => r.missing > 0 || r.duplicates > 0).map((r) => `${r.mode}: ${r.missing} lost, ${r.duplicates} duplicates`);
  return { id: report.id, title: report.title, setup, table, errors, data: rows };
}

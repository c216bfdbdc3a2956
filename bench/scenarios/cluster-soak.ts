import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runLoad } from '../load/run-load.js';
import { startMoat, type BrokerProcess } from '../lib/brokers.js';
import { startRedis } from '../lib/redis.js';
import { fmt, sampleProcess } from '../lib/system.js';
import type { BenchContext, ScenarioReport } from './context.js';

/**
 * Memory over time in cluster mode (docs/cluster.md): two nodes and their Redis under a steady cross-node QoS 1 flow
 * for ten minutes; the resident memory of each is sampled every ten seconds. What matters is that it stops growing
 * once warm: a leak (a map that keeps every message id, an inbox never trimmed) shows as a slope.
 */

const PAIRS = 4;
const RATE = 4000;
const SAMPLE_MS = 10_000;
/** Growth from the end of the warm-up to the end, past which the row is a problem. */
const MAX_GROWTH = 0.1;

interface SoakSeries {
  process: string;
  samplesMiB: number[];
  warmMiB: number;
  endMiB: number;
  maxMiB: number;
  /** Least-squares slope over the samples after the warm-up, MiB per minute. */
  slopeMiBPerMinute: number;
}

export async function clusterSoakScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const minutes = ctx.quick ? 0.5 : 10;
  const warmupMs = ctx.quick ? 5000 : 60_000;
  const sampleMs = ctx.quick ? 2000 : SAMPLE_MS;
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-bench-soak-'));
  const redis = await startRedis(dir, ctx.brokerCpu);
  const brokers: BrokerProcess[] = [];
  const samples = new Map<string, number[]>([['node a', []], ['node b', []], ['redis-server', []]]);
  let result;
  try {
    const store = `store:\n  type: redis\n  url: ${redis.url}\n  key_prefix: "soak:"\nlimits:\n  max_queued_messages: 100000\n`;
    for (const node of ['a', 'b']) brokers.push(await startMoat({ yaml: `${store}cluster:\n  node_id: ${node}\n`, cpu: ctx.brokerCpu }));
    const sample = (): void => {
      samples.get('node a')!.push(sampleProcess(brokers[0]!.pid).rssKiB / 1024);
      samples.get('node b')!.push(sampleProcess(brokers[1]!.pid).rssKiB / 1024);
      samples.get('redis-server')!.push(sampleProcess(redis.pid).rssKiB / 1024);
    };
    const timer = setInterval(sample, sampleMs);
    try {
      result = await runLoad({
        port: brokers[0]!.port, brokerPid: brokers[0]!.pid, otherBrokerPids: [brokers[1]!.pid], sidePids: [redis.pid],
        subscriberPorts: [brokers[1]!.port], cpu: ctx.loadCpu, idPrefix: 'soak', publishers: PAIRS, subscribers: PAIRS, wildcard: false,
        qos: 1, cleanSubscribers: true, payloadSize: 64, window: 16, rate: RATE / PAIRS, warmupMs, measureMs: minutes * 60_000,
      });
    } finally {
      clearInterval(timer);
    }
    sample();
  } finally {
    for (const broker of brokers) await broker.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const warmSamples = Math.ceil(warmupMs / sampleMs);
  const series: SoakSeries[] = [...samples].map(([process, all]) => {
    const after = all.slice(warmSamples);
    return {
      process, samplesMiB: all, warmMiB: after[0] ?? all.at(-1)!, endMiB: all.at(-1)!, maxMiB: Math.max(...all),
      slopeMiBPerMinute: slope(after) * (60_000 / sampleMs),
    };
  });
  ctx.log(`cluster soak: ${fmt(result.deliveriesPerSecond)} msg/s for ${minutes} min; ${series.map((s) => `${s.process} ${fmt(s.warmMiB, 1)} → ${fmt(s.endMiB, 1)} MiB`).join(', ')}`);
  const table = [
    '| process | RSS after warm-up MiB | RSS at the end MiB | max MiB | slope MiB/min |',
    '|---|---|---|---|---|',
    ...series.map((s) => `| ${s.process} | ${fmt(s.warmMiB, 1)} | ${fmt(s.endMiB, 1)} | ${fmt(s.maxMiB, 1)} | ${fmt(s.slopeMiBPerMinute, 2)} |`),
  ].join('\n');
  const setup = `Two nodes on one redis-server (\`appendfsync always\`), ${PAIRS} publishers on node a and ${PAIRS} subscribers on node b, QoS 1 at ` +
    `${fmt(RATE)} msg/s in all, every message crossing through Redis, for ${minutes} minutes after a ${warmupMs / 1000} s warm-up; RSS sampled every ` +
    `${sampleMs / 1000} s. Delivered ${fmt(result.deliveriesPerSecond)} msg/s, p99 ${fmt(result.latency.p99, 2)} ms, lost ${result.missing + result.undelivered}, duplicates ${result.duplicates}.`;
  const errors = [
    ...series.filter((s) => s.endMiB > s.warmMiB * (1 + MAX_GROWTH)).map((s) => `${s.process} grew from ${fmt(s.warmMiB, 1)} to ${fmt(s.endMiB, 1)} MiB`),
    ...(result.missing + result.undelivered > 0 || result.duplicates > 0 ? [`${result.missing + result.undelivered} lost, ${result.duplicates} duplicates`] : []),
  ];
  return { id: 'cluster-soak', title: 'Cluster on Redis: memory under steady load', setup, table, errors, data: { series, rate: result.deliveriesPerSecond } };
}

/** Least-squares slope of equally spaced samples, per sample. */
function slope(values: number[]): number {
  const n = values.length;
  if (n < 2) return 0;
  const meanX = (n - 1) / 2;
  const meanY = values.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  values.forEach((y, x) => {
    num += (x - meanX) * (y - meanY);
    den += (x - meanX) ** 2;
  });
  return num / den;
}

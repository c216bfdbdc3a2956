import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runLoad, type LoadResult } from '../load/run-load.js';
import { startMoat, type BrokerProcess } from '../lib/brokers.js';
import { startRedis } from '../lib/redis.js';
import { fmt, fmtSummary, summarize } from '../lib/system.js';
import type { BenchContext, ScenarioReport } from './context.js';

/**
 * What the Redis hop of cluster mode costs (docs/cluster.md): point-to-point pairs with publishers on one node and
 * subscribers on another (every message crosses through Redis), with two and three nodes, against one node on the
 * same Redis store. CPU is summed over every node; Redis' own is shown apart.
 */

const PAIRS = 4;
/** The fixed-rate rows: QoS 1 at this many messages a second in all, well under what crosses at full speed. */
const FIXED_RATE = 4000;
/** Full speed, then QoS 1 at a fixed rate (the latency a steady flow sees). */
const LOADS = [{ qos: 0, rate: undefined }, { qos: 1, rate: undefined }, { qos: 1, rate: FIXED_RATE }] as const;
const loadName = (l: (typeof LOADS)[number]): string => (l.rate === undefined ? 'full speed' : `${fmt(l.rate)} msg/s`);
const NODES = { '1 node': 1, '2 nodes': 2, '3 nodes': 3 } as const;
type Nodes = keyof typeof NODES;

interface ClusterRow {
  nodes: Nodes;
  qos: 0 | 1;
  offered: string;
  rate: ReturnType<typeof summarize>;
  cpu: ReturnType<typeof summarize>;
  redisCpu: ReturnType<typeof summarize>;
  p50: ReturnType<typeof summarize>;
  p99: ReturnType<typeof summarize>;
  missing: number;
  duplicates: number;
}

export async function clusterScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-bench-cluster-'));
  const redis = await startRedis(dir, ctx.brokerCpu);
  const results = new Map<string, LoadResult[]>();
  try {
    for (let round = 0; round < ctx.rounds; round++) {
      for (const load of LOADS) {
        const qos = load.qos;
        for (const nodes of Object.keys(NODES) as Nodes[]) {
          const prefix = `bench-${round}-${qos}-${load.rate ?? 0}-${NODES[nodes]}:`;
          const store = `store:\n  type: redis\n  url: ${redis.url}\n  key_prefix: "${prefix}"\nlimits:\n  max_queued_messages: 100000\n`;
          const brokers: BrokerProcess[] = [];
          try {
            for (let n = 0; n < NODES[nodes]; n++) {
              const cluster = NODES[nodes] > 1 ? `cluster:\n  node_id: n${n}\n` : '';
              brokers.push(await startMoat({ yaml: store + cluster, cpu: ctx.brokerCpu }));
            }
            // Publishers on the first node, subscribers on the others (on the only one for a single node).
            const subscriberNodes = brokers.length > 1 ? brokers.slice(1) : brokers;
            const result = await runLoad({
              port: brokers[0]!.port, brokerPid: brokers[0]!.pid, otherBrokerPids: brokers.slice(1).map((b) => b.pid), sidePids: [redis.pid],
              subscriberPorts: subscriberNodes.map((b) => b.port), cpu: ctx.loadCpu, idPrefix: `cl-${round}-${qos}-${NODES[nodes]}`,
              publishers: PAIRS, subscribers: PAIRS, wildcard: false, qos, cleanSubscribers: true, payloadSize: 64, window: 16,
              ...(load.rate !== undefined && { rate: load.rate / PAIRS }),
              warmupMs: ctx.quick ? 500 : 1000, measureMs: ctx.quick ? 700 : 5000,
            });
            const key = `${nodes}|${qos}|${loadName(load)}`;
            results.set(key, [...(results.get(key) ?? []), result]);
            ctx.log(`cluster ${nodes} QoS ${qos} ${loadName(load)} round ${round + 1}: ${fmt(result.deliveriesPerSecond)} msg/s, nodes ${fmt(result.cpuUsPerDelivery, 1)} µs/msg, Redis ${fmt(result.sideCpuUsPerDelivery, 1)} µs/msg, p99 ${fmt(result.latency.p99, 2)} ms; missing ${result.missing}, duplicates ${result.duplicates}, undelivered ${result.undelivered}`);
          } finally {
            for (const broker of brokers) await broker.stop();
          }
        }
      }
    }
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: ClusterRow[] = [];
  for (const load of LOADS) {
    for (const nodes of Object.keys(NODES) as Nodes[]) {
      const runs = results.get(`${nodes}|${load.qos}|${loadName(load)}`) ?? [];
      const all = (f: (r: LoadResult) => number) => summarize(runs.map(f));
      rows.push({
        nodes, qos: load.qos, offered: loadName(load), rate: all((r) => r.deliveriesPerSecond), cpu: all((r) => r.cpuUsPerDelivery), redisCpu: all((r) => r.sideCpuUsPerDelivery),
        p50: all((r) => r.latency.p50), p99: all((r) => r.latency.p99),
        missing: runs.reduce((a, r) => a + r.missing + r.undelivered, 0), duplicates: runs.reduce((a, r) => a + r.duplicates, 0),
      });
    }
  }
  const table = [
    '| QoS | offered | nodes | msg/s delivered | nodes\' CPU µs/msg (all nodes) | Redis CPU µs/msg | latency p50 ms | latency p99 ms | lost | duplicates |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.qos} | ${r.offered} | ${r.nodes} | ${fmtSummary(r.rate)} | ${fmtSummary(r.cpu, 1)} | ${fmtSummary(r.redisCpu, 1)} | ${fmtSummary(r.p50, 2)} | ${fmtSummary(r.p99, 2)} | ${r.missing} | ${r.duplicates} |`),
  ].join('\n');
  const setup = `${PAIRS} publisher → subscriber pairs (each on its own topic), 16 messages in flight per publisher (QoS 0: per write), 64-byte payloads, ` +
    'Redis store (`appendfsync always`) on one redis-server; `1 node`: every client on one broker; `2 nodes`: publishers on one node, subscribers on the other, ' +
    'so every message crosses through Redis; `3 nodes`: subscribers spread over the two other nodes. Every node and Redis on one core, the load generator on the other; ' +
    `CPU summed over the nodes, Redis' apart; \`offered\`: as fast as acknowledgements allow, or QoS 1 at ${fmt(FIXED_RATE)} msg/s in all (the latency of a steady flow); ` +
    `${ctx.rounds} interleaved round(s), warm-up then a measured window; median (min–max).`;
  const errors = rows.filter((r) => (r.qos === 1 && r.missing > 0) || r.duplicates > 0).map((r) => `${r.nodes} QoS ${r.qos} ${r.offered}: ${r.missing} lost, ${r.duplicates} duplicates`);
  return { id: 'cluster', title: 'Cluster on Redis: point-to-point across nodes', setup, table, errors, data: rows };
}

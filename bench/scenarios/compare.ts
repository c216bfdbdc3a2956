import { BROKER_LABELS, startBroker, type BrokerKind } from '../lib/brokers.js';
import { runLoad, type LoadOptions, type LoadResult } from '../load/run-load.js';
import { runNativeLatency } from '../load/native-latency.js';
import { fmt, fmtSummary, summarize, type Summary } from '../lib/system.js';
import { measureStalls, type StallReport } from '../lib/stalls.js';
import type { BenchContext, ScenarioReport } from './context.js';

/**
 * The side-by-side rows: one load shape run against every broker, interleaved
 * over the rounds (one run of each broker per round, so drift on the machine hits
 * all alike), each broker pinned to the same CPU.
 */

type Shape = Omit<LoadOptions, 'port' | 'transport' | 'brokerPid' | 'cpu' | 'idPrefix' | 'warmupMs' | 'measureMs'>;

export interface CompareRow {
  broker: BrokerKind;
  rate: Summary;
  cpu: Summary;
  p50: Summary;
  p99: Summary;
  max: Summary;
  /** QoS 0: deliveries the broker dropped (allowed under overload); QoS 1/2: lost messages (an error). */
  missing: number;
  duplicates: number;
}

export interface CompareDefinition {
  id: string;
  title: string;
  /** What the row measures, for the setup sentence. */
  describe: string;
  shape: Shape;
  /** Which figure the targets read: CPU per delivery or per published message. */
  cpuPer: 'delivery' | 'publish';
  /** Latency columns make sense only when the load is paced or windowed. */
  latency: boolean;
  /** Same queue limit for Moat and Mosquitto, so a momentary stall of the subscriber process is not a drop. */
  maxQueuedMessages?: number;
  /** The brokers of this row, where they differ from the run's (those the run also asked for, or Moat's modes). */
  brokers?: BrokerKind[];
  /** CPUs the brokers may use in this row ("0,1": the second core allowed), instead of the run's one. */
  brokerCpus?: string;
  /** Processes that are not brokers, run in every round beside them to show a floor. */
  references?: BrokerKind[];
  /** Measure, before the rounds, how often the machine takes the CPUs away (see bench/lib/stalls.ts). */
  measureStalls?: boolean;
  /** Load from bench/load/latency-probe.c instead of the Node.js workers (one paced QoS 0 pair). */
  nativeGenerator?: boolean;
  /** Every client over WebSockets (`ws://127.0.0.1:port/mqtt`, each broker's WebSocket listener) instead of TCP. */
  transport?: 'ws';
}

/** A side-by-side row's report: the rows per broker, and the machine's stalls where the row measured them. */
export interface CompareReport extends ScenarioReport {
  data: CompareRow[];
  stalls?: StallReport;
}

export async function compareBrokers(ctx: BenchContext, def: CompareDefinition): Promise<CompareReport> {
  const kinds = [
    ...(def.brokers
      ? def.brokers.filter((k) => ctx.brokers.includes(k) || (k.startsWith('moat') && ctx.brokers.includes('moat')))
      : ctx.brokers),
    ...(def.references ?? []),
  ];
  const stalls = def.measureStalls ? await measureStalls([ctx.brokerCpu, ctx.loadCpu], ctx.quick ? 500 : 5000) : undefined;
  if (stalls) ctx.log(`${def.id} machine stalls: ${describeStalls(stalls)}`);
  const cpu = ctx.brokerCpu === undefined ? undefined : (def.brokerCpus ?? ctx.brokerCpu);
  const runs = new Map<BrokerKind, LoadResult[]>(kinds.map((k) => [k, []]));
  const errors: string[] = [];
  const shape: Shape = ctx.quick ? quickShape(def.shape) : def.shape;
  for (let round = 0; round < ctx.rounds; round++) {
    for (const kind of kinds) {
      const broker = await startBroker(kind, { cpu, maxQueuedMessages: def.maxQueuedMessages, websocket: def.transport === 'ws' });
      try {
        const result = await (def.nativeGenerator ? runNativeLatency : runLoad)({
          ...shape, port: broker.port, transport: def.transport, brokerPid: broker.pid, cpu: ctx.loadCpu, idPrefix: `${def.id}-${kind}-${round}`,
          warmupMs: ctx.quick ? 300 : 1500, measureMs: ctx.quick ? 700 : 5000,
        });
        runs.get(kind)!.push(result);
        const cpu = def.cpuPer === 'delivery' ? result.cpuUsPerDelivery : result.cpuUsPerPublish;
        ctx.log(`${def.id} ${kind} round ${round + 1}: ${fmt(result.deliveriesPerSecond)} deliveries/s, ${fmt(result.publishesPerSecond)} publishes/s, ` +
          `${fmt(cpu, 2)} µs CPU/${def.cpuPer}, p50 ${fmt(result.latency.p50, 2)} ms, p99 ${fmt(result.latency.p99, 2)} ms; ` +
          `missing ${result.missing}, duplicates ${result.duplicates}, undelivered ${result.undelivered}; broker CPU ${fmt(brokerPercent(result, def), 0)} %, load generator CPU ${fmt(result.loadCpuPercent, 0)} %`);
      } catch (err) {
        errors.push(`${kind} round ${round + 1}: ${(err as Error).message.split('\n')[0]}`);
        ctx.log(`${def.id} ${kind} round ${round + 1} failed: ${(err as Error).message}`);
      } finally {
        await broker.stop();
      }
    }
  }
  const rows: CompareRow[] = [];
  for (const kind of kinds) {
    const results = runs.get(kind)!;
    if (results.length === 0) continue;
    const all = (f: (r: LoadResult) => number): Summary => summarize(results.map(f));
    rows.push({
      broker: kind,
      rate: all((r) => (def.cpuPer === 'delivery' ? r.deliveriesPerSecond : r.publishesPerSecond)),
      cpu: all((r) => (def.cpuPer === 'delivery' ? r.cpuUsPerDelivery : r.cpuUsPerPublish)),
      p50: all((r) => r.latency.p50),
      p99: all((r) => r.latency.p99),
      max: all((r) => r.latency.max),
      missing: results.reduce((a, r) => a + r.missing + r.undelivered, 0),
      duplicates: results.reduce((a, r) => a + r.duplicates, 0),
    });
  }
  for (const row of rows) {
    if (row.duplicates > 0) errors.push(`${row.broker}: ${row.duplicates} duplicates`);
    if (shape.qos > 0 && row.missing > 0) errors.push(`${row.broker}: ${row.missing} messages lost`);
  }
  const rateHeader = def.cpuPer === 'delivery' ? 'deliveries/s' : 'msg/s';
  const lossHeader = shape.qos === 0 ? 'dropped (QoS 0)' : 'lost';
  const latencyHeaders = def.latency ? ' latency p50 ms | p99 ms | max ms |' : '';
  const table = [
    `| broker | ${rateHeader} | broker CPU µs per ${def.cpuPer === 'delivery' ? 'delivery' : 'message'} |${latencyHeaders} ${lossHeader} | duplicates |`,
    `|---|---|---|${def.latency ? '---|---|---|' : ''}---|---|`,
    ...rows.map((r) => {
      const latency = def.latency ? ` ${fmtSummary(r.p50, 2)} | ${fmtSummary(r.p99, 2)} | ${fmtSummary(r.max, 2)} |` : '';
      return `| ${BROKER_LABELS[r.broker]} | ${fmtSummary(r.rate)} | ${fmtSummary(r.cpu, 2)} |${latency} ${fmt(r.missing)} | ${r.duplicates} |`;
    }),
  ].join('\n');
  const setup = `${def.describe}; ${ctx.rounds} interleaved round(s) of ${ctx.quick ? 0.7 : 5} s after a warm-up; median (min–max).` +
    (stalls ? ` Before the rounds, ${describeStalls(stalls)}.` : '');
  return { id: def.id, title: def.title, setup, table, errors, data: rows, stalls };
}

function describeStalls(report: StallReport): string {
  const perCpu = report.cpus.map((c) =>
    `${c.cpu === undefined ? 'the CPU' : `CPU ${c.cpu}`} ${fmt(c.perSecond, 1)} times a second (${fmt(c.lostPercent, 2)} % of the time, longest ${fmt(c.longestMs, 2)} ms)`);
  return `a process spinning on each CPU lost it for more than 0.2 ms ${perCpu.join(', ')}`;
}

function brokerPercent(r: LoadResult, def: CompareDefinition): number {
  return def.cpuPer === 'delivery' ? (r.cpuUsPerDelivery * r.deliveriesPerSecond) / 1e4 : (r.cpuUsPerPublish * r.publishesPerSecond) / 1e4;
}

/** The smoke run: same shape, fewer connections. */
function quickShape(shape: Shape): Shape {
  return { ...shape, publishers: Math.min(shape.publishers, 2), subscribers: Math.min(shape.subscribers, 4) };
}

const BIG_QUEUE = 1_000_000;

/**
 * The WebSocket rows: one configuration per broker, since Nagle's algorithm is off on every WebSocket connection
 * here whatever the setting (libwebsockets sets TCP_NODELAY, and so does Node's HTTP server).
 */
const WS_BROKERS: BrokerKind[] = ['moat', 'mosquitto', 'aedes'];
const WS_SETUP = 'binary frames, subprotocol `mqtt`, path `/mqtt`; what a client writes in one turn, a batch of publishes or the acknowledgements for one read, is one frame: ' +
  'Moat `websocket: {}`; Mosquitto `listener` + `protocol websockets` (libwebsockets); ' +
  "Aedes on a Node HTTP server with `ws` and `createWebSocketStream`, as its documentation shows";

export const COMPARISONS: CompareDefinition[] = [
  {
    id: 'fanin-qos0', title: 'QoS 0 fan-in, 8 → 1', cpuPer: 'delivery', latency: false,
    describe: '8 publishers (as fast as their sockets take it, 16-byte payloads) → 1 subscriber of `prefix/+`, QoS 0',
    shape: { publishers: 8, subscribers: 1, wildcard: true, qos: 0, cleanSubscribers: true, payloadSize: 16, window: 64 },
  },
  {
    id: 'fanin-qos0-2cores', title: 'QoS 0 fan-in, 8 → 1, second core allowed', cpuPer: 'delivery', latency: false,
    describe: 'as QoS 0 fan-in, with each broker allowed CPUs 0 and 1 (the load generator stays on CPU 1, so it shares that core)',
    shape: { publishers: 8, subscribers: 1, wildcard: true, qos: 0, cleanSubscribers: true, payloadSize: 16, window: 64 },
    brokers: ['moat', 'moat-2-workers', 'mosquitto', 'mosquitto-nodelay'], brokerCpus: '0,1',
  },
  {
    id: 'fanout-qos0', title: 'QoS 0 fan-out, 1 → 100', cpuPer: 'delivery', latency: false,
    describe: '1 publisher (as fast as its socket takes it, 16-byte payloads) → 100 subscribers of `prefix/+`, QoS 0',
    shape: { publishers: 1, subscribers: 100, wildcard: true, qos: 0, cleanSubscribers: true, payloadSize: 16, window: 16 },
  },
  {
    id: 'fanin-qos1', title: 'QoS 1 fan-in, 8 → 1', cpuPer: 'delivery', latency: false, maxQueuedMessages: BIG_QUEUE,
    describe: '8 publishers with 32 QoS 1 messages in flight each → 1 subscriber of `prefix/+` at QoS 1 (queue limit 1,000,000 for Moat and Mosquitto)',
    shape: { publishers: 8, subscribers: 1, wildcard: true, qos: 1, cleanSubscribers: true, payloadSize: 16, window: 32 },
  },
  {
    id: 'p2p-qos1', title: 'QoS 1 point-to-point, 4 pairs', cpuPer: 'delivery', latency: true, maxQueuedMessages: BIG_QUEUE,
    describe: '4 publisher → subscriber pairs (each on its own topic), QoS 1 both ways, 16 messages in flight per publisher, 64-byte payloads',
    shape: { publishers: 4, subscribers: 4, wildcard: false, qos: 1, cleanSubscribers: true, payloadSize: 64, window: 16 },
  },
  {
    id: 'p2p-qos2', title: 'QoS 2 point-to-point, 4 pairs', cpuPer: 'delivery', latency: true, maxQueuedMessages: BIG_QUEUE,
    describe: '4 publisher → subscriber pairs (each on its own topic), QoS 2 both ways, 16 messages in flight per publisher, 64-byte payloads',
    shape: { publishers: 4, subscribers: 4, wildcard: false, qos: 2, cleanSubscribers: true, payloadSize: 64, window: 16 },
  },
  {
    id: 'latency', title: 'Latency at 1,000 msg/s', cpuPer: 'delivery', latency: true,
    describe: '1 publisher at a fixed 1,000 msg/s → 1 subscriber, QoS 0, 64-byte payloads, both in a C program on blocking sockets ' +
      '(`bench/load/latency-probe.c`); latency from the publisher\'s write to the subscriber\'s read',
    shape: { publishers: 1, subscribers: 1, wildcard: false, qos: 0, cleanSubscribers: true, payloadSize: 64, window: 1, rate: 1000 },
    references: ['node-relay'], measureStalls: true, nativeGenerator: true,
  },
  {
    id: 'fanin-qos0-ws', title: 'QoS 0 fan-in over WebSockets, 8 → 1', cpuPer: 'delivery', latency: false, transport: 'ws',
    describe: 'as QoS 0 fan-in (8 publishers as fast as their sockets take it, 16-byte payloads → 1 subscriber of `prefix/+`, QoS 0), ' +
      `every client over \`ws://\` (${WS_SETUP})`,
    shape: { publishers: 8, subscribers: 1, wildcard: true, qos: 0, cleanSubscribers: true, payloadSize: 16, window: 64 },
    brokers: WS_BROKERS,
  },
  {
    id: 'p2p-qos1-ws', title: 'QoS 1 point-to-point over WebSockets, 4 pairs', cpuPer: 'delivery', latency: true, maxQueuedMessages: BIG_QUEUE, transport: 'ws',
    describe: 'as QoS 1 point-to-point (4 publisher → subscriber pairs, QoS 1 both ways, 16 messages in flight per publisher, 64-byte payloads), ' +
      `every client over \`ws://\` (${WS_SETUP})`,
    shape: { publishers: 4, subscribers: 4, wildcard: false, qos: 1, cleanSubscribers: true, payloadSize: 64, window: 16 },
    brokers: WS_BROKERS,
  },
  {
    id: 'p2p-qos1-ws-2cores', title: 'QoS 1 point-to-point over WebSockets, 4 pairs, second core allowed', cpuPer: 'delivery', latency: true,
    maxQueuedMessages: BIG_QUEUE, transport: 'ws',
    describe: 'as QoS 1 point-to-point over WebSockets, with each broker allowed CPUs 0 and 1; in multi-core mode half the ' +
      'connections run their WebSocket in the worker that does not own them and are relayed (docs/multicore.md)',
    shape: { publishers: 4, subscribers: 4, wildcard: false, qos: 1, cleanSubscribers: true, payloadSize: 64, window: 16 },
    brokers: ['moat', 'moat-2-workers'], brokerCpus: '0,1',
  },
];

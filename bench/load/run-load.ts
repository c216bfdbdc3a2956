import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { latencySummary, pin, sampleProcess } from '../lib/system.js';
import type { Counters, EnvelopeLoad, WorkerCommand, WorkerReply, WorkerSetup } from './protocol.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface LoadOptions {
  port: number;
  /** How the clients reach the broker: TCP (the default) or MQTT over WebSockets at `ws://127.0.0.1:port/mqtt`. */
  transport?: 'tcp' | 'ws';
  /** The broker's PID, for its CPU time. */
  brokerPid: number;
  /** Cluster rows: the other nodes (their CPU counts as the broker's) and the ports subscribers connect to. */
  otherBrokerPids?: number[];
  subscriberPorts?: number[];
  /** Processes whose CPU is reported apart (Redis). */
  sidePids?: number[];
  /** CPU for the load generator processes (undefined: not pinned). */
  cpu?: number;
  publishers: number;
  subscribers: number;
  /** Subscribers take `prefix/+`, so each gets every publisher's stream. */
  wildcard: boolean;
  qos: 0 | 1 | 2;
  cleanSubscribers: boolean;
  payloadSize: number;
  window: number;
  rate?: number;
  warmupMs: number;
  measureMs: number;
  /** Time allowed after the run for messages in flight to arrive. */
  drainMs?: number;
  /** The latency probe's drain also ends once nothing has arrived for this long (default 200 ms). */
  drainQuietMs?: number;
  idPrefix: string;
  /** Payload envelopes sealed by the publishers and/or opened by the subscribers (the broker's key file holds the key). */
  envelope?: EnvelopeLoad;
}

export interface LoadResult {
  /** Deliveries per second to subscribers in the measured window. */
  deliveriesPerSecond: number;
  /** Messages per second acknowledged to (QoS 1/2) or written by (QoS 0) publishers. */
  publishesPerSecond: number;
  /** Broker CPU per delivery and per published message in the window, µs. */
  cpuUsPerDelivery: number;
  cpuUsPerPublish: number;
  /** Latency publish → delivery in the window, ms. */
  latency: { p50: number; p95: number; p99: number; max: number; samples: number };
  /** Checks over the whole run: gaps and repeats in the sequence numbers, and messages acknowledged but never delivered. */
  missing: number;
  duplicates: number;
  undelivered: number;
  brokerRssKiB: number;
  /** CPU used by the load generator's processes in the window, % of one core: near 100 means the generator, not the broker, set the rate. */
  loadCpuPercent: number;
  /** CPU of `sidePids` (Redis) per delivery, µs. */
  sideCpuUsPerDelivery: number;
}

class Worker {
  private readonly child: ChildProcess;
  private readonly replies: WorkerReply[] = [];
  private wake: (() => void) | undefined;
  private exited = false;

  get pid(): number {
    return this.child.pid!;
  }

  constructor(cpu: number | undefined) {
    this.child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    if (cpu !== undefined) pin(this.child.pid!, cpu);
    this.child.on('message', (reply: WorkerReply) => {
      this.replies.push(reply);
      this.wake?.();
    });
    this.child.once('exit', () => {
      this.exited = true;
      this.wake?.();
    });
  }

  send(command: WorkerCommand): void {
    this.child.send(command);
  }

  async next<T extends WorkerReply['type']>(type: T, timeoutMs = 60_000): Promise<Extract<WorkerReply, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.replies.shift();
      if (reply?.type === 'error') throw new Error(`load worker: ${reply.message}`);
      if (reply?.type === type) return reply as Extract<WorkerReply, { type: T }>;
      if (reply) continue;
      if (this.exited) throw new Error(`load worker exited while waiting for ${type}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`load worker: no ${type} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

/** One run: subscribers, then publishers, each role in its own process; measured over a window after a warm-up. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const base: Omit<WorkerSetup, 'role' | 'streams'> = {
    host: '127.0.0.1', port: o.port, transport: o.transport ?? 'tcp', idPrefix: o.idPrefix, topicPrefix: `bench/${o.idPrefix}`, wildcard: o.wildcard,
    qos: o.qos, cleanSubscribers: o.cleanSubscribers, payloadSize: o.payloadSize, window: o.window, rate: o.rate ?? 0,
    ...(o.envelope && { envelope: o.envelope }),
  };
  const subscriberSetup = o.subscriberPorts ? { ports: o.subscriberPorts } : {};
  const brokerPids = [o.brokerPid, ...(o.otherBrokerPids ?? [])];
  const cpuOf = (pids: number[]): number => pids.reduce((sum, pid) => sum + sampleProcess(pid).cpuMs, 0);
  const subs = new Worker(o.cpu);
  const pubs = new Worker(o.cpu);
  try {
    subs.send({ type: 'setup', setup: { ...base, ...subscriberSetup, role: 'subscribe', streams: o.subscribers } });
    await subs.next('ready');
    pubs.send({ type: 'setup', setup: { ...base, role: 'publish', streams: o.publishers } });
    await pubs.next('ready');

    const go: WorkerCommand = { type: 'go', warmupMs: o.warmupMs, measureMs: o.measureMs };
    subs.send(go);
    pubs.send(go);
    await new Promise((resolve) => setTimeout(resolve, o.warmupMs));
    const cpu0 = sampleProcess(o.brokerPid);
    const brokers0 = cpuOf(brokerPids);
    const side0 = cpuOf(o.sidePids ?? []);
    const load0 = sampleProcess(subs.pid).cpuMs + sampleProcess(pubs.pid).cpuMs;
    await new Promise((resolve) => setTimeout(resolve, o.measureMs));
    const cpu1 = sampleProcess(o.brokerPid);
    const brokers1 = cpuOf(brokerPids);
    const side1 = cpuOf(o.sidePids ?? []);
    const load1 = sampleProcess(subs.pid).cpuMs + sampleProcess(pubs.pid).cpuMs;
    const [subWindow, pubWindow] = [(await subs.next('measured')).window, (await pubs.next('measured')).window];

    const finish: WorkerCommand = { type: 'finish', drainMs: o.drainMs ?? 3000 };
    pubs.send(finish);
    const pubTotals = await pubs.next('totals');
    subs.send(finish);
    const subTotals = await subs.next('totals');

    const seconds = subWindow.elapsedMs / 1000;
    const cpuUs = (brokers1 - brokers0) * 1000;
    const fanout = o.wildcard ? o.subscribers : 1;
    const expected = pubTotals.perStream.reduce((a, b) => a + b, 0) * fanout;
    const delivered = subTotals.perStream.reduce((a, b) => a + b, 0);
    return {
      deliveriesPerSecond: subWindow.messages / seconds,
      publishesPerSecond: pubWindow.messages / (pubWindow.elapsedMs / 1000),
      cpuUsPerDelivery: cpuUs / Math.max(1, subWindow.messages),
      cpuUsPerPublish: cpuUs / Math.max(1, pubWindow.messages),
      latency: latencySummary(subTotals.latencies),
      missing: subTotals.counters.missing,
      duplicates: subTotals.counters.duplicates,
      undelivered: o.qos === 0 ? 0 : Math.max(0, expected - delivered),
      brokerRssKiB: cpu1.rssKiB,
      loadCpuPercent: ((load1 - load0) / (cpu1.at - cpu0.at)) * 100,
      sideCpuUsPerDelivery: ((side1 - side0) * 1000) / Math.max(1, subWindow.messages),
    };
  } finally {
    subs.kill();
    pubs.kill();
  }
}

export type { Counters };

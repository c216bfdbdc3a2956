import { execFileSync, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BROKER_LABELS, startBroker, startCommand, type BrokerKind } from '../lib/brokers.js';
import { fmt, fmtSummary, pin, sampleProcess, summarize, type Summary } from '../lib/system.js';
import type { IdleCommand, IdleReply } from '../load/idle-worker.js';
import { PER_ADDRESS } from '../load/protocol.js';
import type { BenchContext, ScenarioReport } from './context.js';

/**
 * Idle connections: many clients connect (CONNECT, CONNACK, keep-alive 0) and stay
 * idle; what each costs the broker in resident memory, and how fast they connect.
 */

const WORKER = fileURLToPath(new URL('../load/idle-worker.js', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface IdleRow {
  broker: BrokerKind | 'node-net';
  label: string;
  connections: number;
  connectsPerSecond: Summary;
  kibPerConnection: Summary;
  marginalKibPerConnection: Summary;
  failed: number;
}

/** Each run takes fresh source addresses (127.0.0.2–127.0.0.250) for its connections beyond the first PER_ADDRESS. */
let nextAddress = 2;
function sourceAddresses(count: number): number {
  const needed = Math.max(0, Math.ceil(count / PER_ADDRESS) - 1);
  if (nextAddress + needed > 250) nextAddress = 2;
  const first = nextAddress;
  nextAddress += needed;
  return first;
}

/** The hard open-file limit of this process, which a process cannot raise past without CAP_SYS_RESOURCE. */
function hardFileLimit(): number {
  const line = /Max open files\s+\S+\s+(\S+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return line?.[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(line?.[1] ?? 1024);
}

function raiseFileLimit(pid: number, limit: number): void {
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`], { stdio: 'ignore' });
}

interface IdleRun {
  /** Connections per second over both halves. */
  rate: number;
  /** (RSS after all − RSS before the first) / connections. */
  kib: number;
  /** (RSS after all − RSS after the first half) / second half: the cost of one more connection, without the runtime's fixed growth. */
  marginalKib: number;
  failed: number;
  connected: number;
}

/**
 * Opens the connections in two halves and samples the broker's RSS before, between and after,
 * each time once it has settled.
 */
async function once(target: Target, count: number, ctx: BenchContext, idPrefix: string): Promise<IdleRun> {
  const broker = await target.start(count + 1024);
  const worker = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    raiseFileLimit(worker.pid!, count + 1024);
    if (ctx.loadCpu !== undefined) pin(worker.pid!, ctx.loadCpu);
    const reply = (): Promise<IdleReply> => new Promise((resolve, reject) => {
      worker.once('message', (m: IdleReply) => resolve(m));
      worker.once('exit', () => reject(new Error('idle worker exited')));
    });
    const firstAddress = sourceAddresses(count);
    const open = async (from: number, n: number): Promise<Extract<IdleReply, { type: 'opened' }>> => {
      const opened = reply();
      worker.send({ type: 'open', port: broker.port, from, count: n, parallel: 64, idPrefix, firstAddress } satisfies IdleCommand);
      const result = await opened;
      if (result.type !== 'opened') throw new Error('unexpected reply');
      if (result.failed > 0) ctx.log(`idle ${target.label}: ${result.failed} connections failed, first: ${result.firstError}`);
      return result;
    };
    const settle = (): Promise<void> => sleep(ctx.quick ? 300 : 3000); // garbage collection, lazy allocations
    await sleep(500);
    const rss0 = sampleProcess(broker.pid).rssKiB;
    const half = Math.floor(count / 2);
    const first = await open(0, half);
    await settle();
    const rss1 = sampleProcess(broker.pid).rssKiB;
    const second = await open(half, count - half);
    await settle();
    const rss2 = sampleProcess(broker.pid).rssKiB;
    const closed = reply();
    worker.send({ type: 'close' } satisfies IdleCommand);
    await closed;
    const connected = first.connected + second.connected;
    return {
      rate: (connected / (first.elapsedMs + second.elapsedMs)) * 1000,
      kib: (rss2 - rss0) / Math.max(1, connected),
      marginalKib: (rss2 - rss1) / Math.max(1, second.connected),
      failed: first.failed + second.failed,
      connected,
    };
  } finally {
    worker.kill('SIGKILL');
    await broker.stop();
  }
}

interface Target {
  key: BrokerKind | 'node-net';
  label: string;
  start(nofile: number): Promise<{ pid: number; port: number; stop(): Promise<void> }>;
}

/** A Node.js net server that answers CONNECT and nothing else: the floor under any broker written for Node. */
const NODE_FLOOR = fileURLToPath(new URL('../brokers/node-net-floor.js', import.meta.url));

function targets(ctx: BenchContext): Target[] {
  const brokers: Target[] = ctx.brokers.map((kind) => ({
    key: kind, label: BROKER_LABELS[kind], start: (nofile) => startBroker(kind, { cpu: ctx.brokerCpu, nofile }),
  }));
  const floor: Target = {
    key: 'node-net', label: 'Node.js `net` server, no MQTT (reference)',
    start: (nofile) => startCommand('node-net', (port) => [process.execPath, NODE_FLOOR, String(port)], { cpu: ctx.brokerCpu, nofile }),
  };
  return ctx.quick ? brokers : [...brokers, floor];
}

export async function idleScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const limit = hardFileLimit();
  const wanted = ctx.quick ? [500] : [10_000, 50_000];
  const counts = wanted.filter((n) => n + 1024 <= limit);
  const notRun = wanted.filter((n) => !counts.includes(n));
  // A count the limit rules out is replaced, for Moat alone, by the most it allows, so the trend toward it shows.
  const mostAllowed = Math.floor((limit - 1024) / 1000) * 1000;
  if (notRun.length > 0 && mostAllowed > Math.max(0, ...counts)) counts.push(mostAllowed);
  const rows: IdleRow[] = [];
  const errors: string[] = [];
  for (const count of counts) {
    // The rows beyond 10,000 are for Moat's target; the peers are measured at 10,000.
    const list = targets(ctx).filter((t) => count <= 10_000 || t.key === 'moat');
    const runs = new Map<string, IdleRun[]>(list.map((t) => [t.key, []]));
    for (let round = 0; round < ctx.rounds; round++) {
      for (const target of list) {
        try {
          const r = await once(target, count, ctx, `idle-${target.key}-${round}`);
          runs.get(target.key)!.push(r);
          ctx.log(`idle ${target.key} ${fmt(count)} round ${round + 1}: ${fmt(r.connected)} connected at ${fmt(r.rate)}/s, ` +
            `${fmt(r.kib, 2)} KiB RSS each on average, ${fmt(r.marginalKib, 2)} KiB for each of the second half; ${r.failed} failed`);
        } catch (err) {
          errors.push(`${target.key} ${count} round ${round + 1}: ${(err as Error).message}`);
        }
      }
    }
    for (const target of list) {
      const results = runs.get(target.key)!;
      if (results.length === 0) continue;
      const failed = results.reduce((a, r) => a + r.failed, 0);
      if (failed > 0) errors.push(`${target.key}: ${failed} of ${count} connections failed`);
      rows.push({
        broker: target.key, label: target.label, connections: count, failed,
        connectsPerSecond: summarize(results.map((r) => r.rate)),
        kibPerConnection: summarize(results.map((r) => r.kib)),
        marginalKibPerConnection: summarize(results.map((r) => r.marginalKib)),
      });
    }
  }
  const table = [
    '| server | idle connections | connects/s (CONNECT → CONNACK, 64 at a time) | RSS per connection, KiB: average | marginal (second half) | failed |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.label} | ${fmt(r.connections)} | ${fmtSummary(r.connectsPerSecond)} | ${fmtSummary(r.kibPerConnection, 2)} | ${fmtSummary(r.marginalKibPerConnection, 2)} | ${r.failed} |`),
  ].join('\n');
  const setup = `Clients connect from 127.0.0.1 (beyond ${fmt(PER_ADDRESS)} from further 127.0.0.x addresses, fresh ones each run), 64 handshakes at a time, keep-alive 0, then stay idle; ` +
    `the connections open in two halves and the server's RSS is read before, between and after them, each time ${ctx.quick ? 0.3 : 3} s after the last CONNACK. ` +
    `Average = (RSS after all − RSS before) / connections, which includes the runtime's fixed growth (for Node, the young generation growing to its working size); ` +
    `marginal = (RSS after all − RSS after the first half) / second half, the cost of one more connection. ` +
    `The Node.js \`net\` row is a server that only answers CONNECT: the floor under any broker written for Node. ${ctx.rounds} interleaved round(s); median (min–max).` +
    (notRun.length > 0
      ? ` Not run: ${notRun.map((n) => fmt(n)).join(', ')} connections, because this machine's hard open-file limit is ${fmt(limit)} per process and cannot be raised here;` +
        (counts.includes(mostAllowed) ? ` Moat runs at ${fmt(mostAllowed)} instead, the most that limit leaves room for.` : '')
      : '');
  return { id: 'idle', title: 'Idle connections', setup, table, errors, data: { rows, notRun, fileLimit: limit } };
}

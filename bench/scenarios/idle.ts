import { execFileSync, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BROKER_LABELS, startBroker, type BrokerKind } from '../lib/brokers.js';
import { fmt, fmtSummary, pin, sampleProcess, summarize, type Summary } from '../lib/system.js';
import type { IdleCommand, IdleReply } from '../load/idle-worker.js';
import type { BenchContext, ScenarioReport } from './context.js';

/**
 * Idle connections: many clients connect (CONNECT, CONNACK, keep-alive 0) and stay
 * idle; what each costs the broker in resident memory, and how fast they connect.
 */

const WORKER = fileURLToPath(new URL('../load/idle-worker.js', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface IdleRow {
  broker: BrokerKind;
  connections: number;
  connectsPerSecond: Summary;
  kibPerConnection: Summary;
  failed: number;
}

/** Each run takes fresh source addresses (127.0.0.2–127.0.0.250). */
let nextAddress = 2;
function sourceAddresses(count: number): number {
  const needed = Math.ceil(count / 25_000);
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

async function once(kind: BrokerKind, count: number, ctx: BenchContext, idPrefix: string): Promise<{ rate: number; kib: number; failed: number; connected: number }> {
  const broker = await startBroker(kind, { cpu: ctx.brokerCpu, nofile: count + 1024 });
  const worker = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    raiseFileLimit(worker.pid!, count + 1024);
    if (ctx.loadCpu !== undefined) pin(worker.pid!, ctx.loadCpu);
    const reply = (): Promise<IdleReply> => new Promise((resolve, reject) => {
      worker.once('message', (m: IdleReply) => resolve(m));
      worker.once('exit', () => reject(new Error('idle worker exited')));
    });
    await sleep(500);
    const before = sampleProcess(broker.pid).rssKiB;
    const opened = reply();
    worker.send({ type: 'open', port: broker.port, count, parallel: 64, idPrefix, firstAddress: sourceAddresses(count) } satisfies IdleCommand);
    const result = await opened;
    if (result.type !== 'opened') throw new Error('unexpected reply');
    await sleep(ctx.quick ? 300 : 3000); // let the broker settle (garbage collection, lazy allocations)
    const after = sampleProcess(broker.pid).rssKiB;
    const closed = reply();
    worker.send({ type: 'close' } satisfies IdleCommand);
    await closed;
    if (result.failed > 0) ctx.log(`idle ${kind}: ${result.failed} connections failed, first: ${result.firstError}`);
    return { rate: (result.connected / result.elapsedMs) * 1000, kib: (after - before) / Math.max(1, result.connected), failed: result.failed, connected: result.connected };
  } finally {
    worker.kill('SIGKILL');
    await broker.stop();
  }
}

export async function idleScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const limit = hardFileLimit();
  const wanted = ctx.quick ? [500] : [10_000, 50_000];
  const counts = wanted.filter((n) => n + 1024 <= limit);
  const notRun = wanted.filter((n) => !counts.includes(n));
  const rows: IdleRow[] = [];
  const errors: string[] = [];
  for (const count of counts) {
    const runs = new Map<BrokerKind, Array<{ rate: number; kib: number; failed: number }>>(ctx.brokers.map((k) => [k, []]));
    // The 50,000 row is for Moat's target; the peers are measured at 10,000.
    const kinds = count > 10_000 ? ctx.brokers.filter((k) => k === 'moat') : ctx.brokers;
    for (let round = 0; round < ctx.rounds; round++) {
      for (const kind of kinds) {
        try {
          const r = await once(kind, count, ctx, `idle-${kind}-${round}`);
          runs.get(kind)!.push(r);
          ctx.log(`idle ${kind} ${fmt(count)} round ${round + 1}: ${fmt(r.connected)} connected at ${fmt(r.rate)}/s, ${fmt(r.kib, 2)} KiB RSS each, ${r.failed} failed`);
        } catch (err) {
          errors.push(`${kind} ${count} round ${round + 1}: ${(err as Error).message}`);
        }
      }
    }
    for (const kind of kinds) {
      const results = runs.get(kind)!;
      if (results.length === 0) continue;
      const failed = results.reduce((a, r) => a + r.failed, 0);
      if (failed > 0) errors.push(`${kind}: ${failed} of ${count} connections failed`);
      rows.push({
        broker: kind, connections: count, failed,
        connectsPerSecond: summarize(results.map((r) => r.rate)),
        kibPerConnection: summarize(results.map((r) => r.kib)),
      });
    }
  }
  const table = [
    '| broker | idle connections | connects/s (CONNECT → CONNACK, 64 at a time) | broker RSS per connection, KiB | failed |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${BROKER_LABELS[r.broker]} | ${fmt(r.connections)} | ${fmtSummary(r.connectsPerSecond)} | ${fmtSummary(r.kibPerConnection, 2)} | ${r.failed} |`),
  ].join('\n');
  const setup = `Clients connect from 127.0.0.2, 127.0.0.3, … (25,000 per source address), 64 handshakes at a time, keep-alive 0, then stay idle; ` +
    `RSS per connection = (broker RSS ${ctx.quick ? 0.3 : 3} s after the last CONNACK − RSS before the first) / connections; ${ctx.rounds} interleaved round(s); median (min–max).` +
    (notRun.length > 0 ? ` Not run: ${notRun.map((n) => fmt(n)).join(', ')} connections, because this machine's hard open-file limit is ${fmt(limit)} per process and cannot be raised here.` : '');
  return { id: 'idle', title: 'Idle connections', setup, table, errors, data: { rows, notRun, fileLimit: limit } };
}

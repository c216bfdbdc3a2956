import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BROKER_LABELS, startBroker, type BrokerKind, type BrokerProcess } from '../lib/brokers.js';
import { makePki } from '../lib/pki.js';
import { fmt, fmtSummary, pin, sampleProcess, summarize, type Summary } from '../lib/system.js';
import type { TlsCommand, TlsReply } from '../load/tls-worker.js';
import type { BenchContext, ScenarioReport } from './context.js';

/** TLS connects per second: full handshakes, and handshakes resuming an earlier TLS session. */

const WORKER = fileURLToPath(new URL('../load/tls-worker.js', import.meta.url));
const PARALLEL = 16;

export interface TlsRow {
  broker: BrokerKind;
  mode: 'full' | 'resumed';
  connectsPerSecond: Summary;
  cpuMsPerConnect: Summary;
  /** Share of handshakes the server resumed. */
  reusedShare: number;
  failed: number;
}

export async function tlsScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const pki = makePki();
  const modes = ['full', 'resumed'] as const;
  const runs = new Map<string, Array<{ rate: number; cpu: number; reused: number; connects: number; failed: number }>>();
  const errors: string[] = [];
  const durationMs = ctx.quick ? 700 : 5000;
  for (let round = 0; round < ctx.rounds; round++) {
    for (const kind of ctx.brokers) {
      let broker: BrokerProcess | undefined;
      try {
        broker = await startBroker(kind, { cpu: ctx.brokerCpu, tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile } });
        for (const mode of modes) {
          const worker = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
          try {
            if (ctx.loadCpu !== undefined) pin(worker.pid!, ctx.loadCpu);
            const done = new Promise<TlsReply>((resolve, reject) => {
              worker.once('message', (m: TlsReply) => resolve(m));
              worker.once('exit', () => reject(new Error('TLS worker exited')));
            });
            const cpu0 = sampleProcess(broker.pid);
            worker.send({ type: 'run', port: broker.port, parallel: PARALLEL, durationMs, resume: mode === 'resumed' } satisfies TlsCommand);
            const r = await done;
            const cpu1 = sampleProcess(broker.pid);
            const entry = { rate: (r.connects / r.elapsedMs) * 1000, cpu: (cpu1.cpuMs - cpu0.cpuMs) / Math.max(1, r.connects), reused: r.reused, connects: r.connects, failed: r.failed };
            const key = `${kind}/${mode}`;
            runs.set(key, [...(runs.get(key) ?? []), entry]);
            ctx.log(`tls ${kind} ${mode} round ${round + 1}: ${fmt(entry.rate)} connects/s, ${fmt(entry.cpu, 3)} ms broker CPU each, ${fmt(r.reused)} of ${fmt(r.connects)} resumed, ${r.failed} failed${r.firstError ? ` (${r.firstError})` : ''}`);
          } finally {
            worker.kill('SIGKILL');
          }
        }
      } catch (err) {
        errors.push(`${kind} round ${round + 1}: ${(err as Error).message}`);
      } finally {
        await broker?.stop();
      }
    }
  }
  const rows: TlsRow[] = [];
  for (const kind of ctx.brokers) {
    for (const mode of modes) {
      const results = runs.get(`${kind}/${mode}`) ?? [];
      if (results.length === 0) continue;
      const connects = results.reduce((a, r) => a + r.connects, 0);
      const failed = results.reduce((a, r) => a + r.failed, 0);
      if (failed > 0) errors.push(`${kind} ${mode}: ${failed} connections failed`);
      rows.push({
        broker: kind, mode, failed,
        connectsPerSecond: summarize(results.map((r) => r.rate)),
        cpuMsPerConnect: summarize(results.map((r) => r.cpu)),
        reusedShare: results.reduce((a, r) => a + r.reused, 0) / Math.max(1, connects),
      });
    }
  }
  const table = [
    '| broker | handshake | connects/s (TLS + CONNECT → CONNACK + close) | broker CPU ms per connect | resumed by the server | failed |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${BROKER_LABELS[r.broker]} | ${r.mode} | ${fmtSummary(r.connectsPerSecond)} | ${fmtSummary(r.cpuMsPerConnect, 3)} | ${fmt(r.reusedShare * 100)} % | ${r.failed} |`),
  ].join('\n');
  const setup = `${PARALLEL} client lanes, each connecting over TLS (ECDSA P-256 server certificate, Node's default TLS 1.3), sending CONNECT, waiting for CONNACK and closing, for ${durationMs / 1000} s; ` +
    `"full" makes a new TLS session every time, "resumed" offers the session ticket of the lane's previous connection. ${ctx.rounds} interleaved round(s); median (min–max).`;
  return { id: 'tls', title: 'TLS connects per second', setup, table, errors, data: rows };
}

import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { latencySummary, pin, sampleProcess, type ProcessSample } from '../lib/system.js';
import type { LoadOptions, LoadResult } from './run-load.js';

/**
 * The latency row's runner: bench/load/latency-probe.c, built with the machine's C
 * compiler, publishes at a fixed rate and receives on blocking sockets, so the
 * figures are the broker's and the kernel's, not a Node.js generator's wake-ups.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LATENCY_PROBE_SOURCE = path.join(ROOT, 'bench', 'load', 'latency-probe.c');
const LATENCY_PROBE = path.join(ROOT, 'dist', 'bench', 'load', 'latency-probe');

interface ProbeOutput {
  sent: number;
  windowSent: number;
  received: number;
  windowReceived: number;
  windowMs: number;
  missing: number;
  duplicates: number;
  latencies: number[];
}

/** Compiles the probe to `output` unless it is newer than its source; the compiler is `CC` or `cc`. */
export function buildLatencyProbe(output = LATENCY_PROBE, compiler = process.env.CC ?? 'cc'): Promise<string> {
  if (existsSync(output) && statSync(output).mtimeMs >= statSync(LATENCY_PROBE_SOURCE).mtimeMs) return Promise.resolve(output);
  mkdirSync(path.dirname(output), { recursive: true });
  return new Promise((resolve, reject) => {
    execFile(compiler, ['-O2', '-pthread', '-o', output, LATENCY_PROBE_SOURCE], (err, _stdout, stderr) => {
      if (err) {
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${compiler} not found` : stderr.trim() || err.message;
        reject(new Error(`the latency row's probe needs a C compiler (set CC, or apt-get install gcc): ${why}`));
      } else resolve(output);
    });
  });
}

/** One run of the latency row: 1 publisher at `o.rate` → 1 subscriber, QoS 0. */
export async function runNativeLatency(o: LoadOptions): Promise<LoadResult> {
  if (o.publishers !== 1 || o.subscribers !== 1 || o.qos !== 0 || !o.rate) {
    throw new Error('the native latency probe runs one paced QoS 0 publisher and one subscriber');
  }
  const probe = await buildLatencyProbe();
  const drainMs = o.drainMs ?? 3000;
  const child = spawn(probe, [
    String(o.port), o.idPrefix, `bench/${o.idPrefix}/0`, String(o.rate), String(o.payloadSize),
    String(o.warmupMs), String(o.measureMs), String(drainMs), String(o.drainQuietMs ?? 200),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (o.cpu !== undefined) pin(child.pid!, o.cpu);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'close', not 'exit': by then stderr has been read to its end, for the error message.
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  const timer = setTimeout(() => child.kill('SIGKILL'), o.warmupMs + o.measureMs + drainMs + 30_000);

  let start: { broker: ProcessSample; load: number } | undefined;
  let end: { broker: ProcessSample; load: number } | undefined;
  let output: ProbeOutput | undefined;
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      if (line === 'measure-start') start = { broker: sampleProcess(o.brokerPid), load: sampleProcess(child.pid!).cpuMs };
      else if (line === 'measure-end') end = { broker: sampleProcess(o.brokerPid), load: sampleProcess(child.pid!).cpuMs };
      else if (line.startsWith('{')) output = JSON.parse(line) as ProbeOutput;
    }
    const code = await exited;
    if (code !== 0 || !output || !start || !end) throw new Error(`latency probe failed (exit ${code}): ${stderr.trim() || 'no result'}`);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill('SIGKILL');
  }

  const seconds = output.windowMs / 1000;
  const cpuUs = (end.broker.cpuMs - start.broker.cpuMs) * 1000;
  return {
    deliveriesPerSecond: output.windowReceived / seconds,
    publishesPerSecond: output.windowSent / seconds,
    cpuUsPerDelivery: cpuUs / Math.max(1, output.windowReceived),
    cpuUsPerPublish: cpuUs / Math.max(1, output.windowSent),
    latency: latencySummary(output.latencies),
    missing: output.missing,
    duplicates: output.duplicates,
    undelivered: 0,
    brokerRssKiB: end.broker.rssKiB,
    loadCpuPercent: ((end.load - start.load) / (end.broker.at - start.broker.at)) * 100,
    sideCpuUsPerDelivery: 0,
  };
}

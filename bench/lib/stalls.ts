import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

/**
 * How often the machine takes a CPU away from a running process, measured by a
 * process spinning on each CPU at once. On a virtual machine the host's scheduling
 * shows here, and in every broker's longest latencies.
 */

const PROBE = fileURLToPath(new URL('../load/stall-probe.js', import.meta.url));

export interface CpuStalls {
  cpu: number | undefined;
  /** Gaps longer than 0.2 ms, per second. */
  perSecond: number;
  /** Share of the time lost in gaps longer than 0.2 ms, %. */
  lostPercent: number;
  longestMs: number;
}

/**
 * A spinning process is taken off its CPU more often than an idle one is kept from
 * waking (the host preempts a busy virtual CPU), so these figures describe the
 * machine; they are not a share of messages delayed.
 */
export interface StallReport {
  cpus: CpuStalls[];
}

function probe(cpu: number | undefined, ms: number): Promise<CpuStalls> {
  const command = cpu === undefined ? [process.execPath, PROBE, String(ms)] : ['taskset', '-c', String(cpu), process.execPath, PROBE, String(ms)];
  return new Promise((resolve, reject) => {
    execFile(command[0]!, command.slice(1), { timeout: ms + 30_000 }, (err, stdout) => {
      if (err) return reject(err);
      const { durationMs, gaps } = JSON.parse(stdout) as { durationMs: number; gaps: Array<[number, number]> };
      const long = gaps.filter(([, length]) => length > 0.2);
      resolve({
        cpu,
        perSecond: long.length / (durationMs / 1000),
        lostPercent: (long.reduce((sum, [, length]) => sum + length, 0) / durationMs) * 100,
        longestMs: gaps.reduce((max, [, length]) => Math.max(max, length), 0),
      });
    });
  });
}

/** Spins on each of `cpus` at the same time for `ms` (nothing else should run meanwhile). */
export async function measureStalls(cpus: Array<number | undefined>, ms: number): Promise<StallReport> {
  const wanted = os.cpus().length >= 2 ? cpus : [undefined];
  const results = await Promise.all(wanted.map((cpu) => probe(cpu, ms)));
  return { cpus: results };
}

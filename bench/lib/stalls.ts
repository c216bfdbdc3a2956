import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

/**
 * How often the machine takes a CPU away from a running process, measured by a
 * process spinning on each CPU at once. On a virtual machine the host's scheduling
 * shows here; it sets a floor under every broker's latency tail that no broker code
 * can lower.
 */

const PROBE = fileURLToPath(new URL('../load/stall-probe.js', import.meta.url));

/** Latency a stall must add to push a message past 0.5 ms when the path itself takes 0.15 ms. */
export const STALL_BUDGET_MS = 0.35;

export interface CpuStalls {
  cpu: number | undefined;
  /** Gaps longer than 0.2 ms, per second. */
  perSecond: number;
  /** Share of the time lost in gaps longer than 0.2 ms, %. */
  lostPercent: number;
  longestMs: number;
  /**
   * Share of moments, %, at which a message arriving on this CPU would wait more than
   * STALL_BUDGET_MS for it: the sum over gaps of (length − budget), over the time measured.
   */
  overBudgetPercent: number;
}

export interface StallReport {
  cpus: CpuStalls[];
  /** The CPUs' over-budget shares added: roughly the share of messages that a stall alone makes later than 0.5 ms. */
  overBudgetPercent: number;
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
        overBudgetPercent: (gaps.reduce((sum, [, length]) => sum + Math.max(0, length - STALL_BUDGET_MS), 0) / durationMs) * 100,
      });
    });
  });
}

/** Spins on each of `cpus` at the same time for `ms` (nothing else should run meanwhile). */
export async function measureStalls(cpus: Array<number | undefined>, ms: number): Promise<StallReport> {
  const wanted = os.cpus().length >= 2 ? cpus : [undefined];
  const results = await Promise.all(wanted.map((cpu) => probe(cpu, ms)));
  return { cpus: results, overBudgetPercent: results.reduce((sum, r) => sum + r.overBudgetPercent, 0) };
}

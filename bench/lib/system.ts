import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

/** What the broker used, read from /proc: all threads, and the worker processes of multi-core mode. */
export interface ProcessSample {
  /** CPU time (user + system), ms. */
  cpuMs: number;
  /** Resident set size, KiB. */
  rssKiB: number;
  at: number;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export function sampleProcess(pid: number): ProcessSample {
  const at = performance.now();
  let cpuMs = 0;
  let rssKiB = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const one = sampleOne(p);
      cpuMs += one.cpuMs;
      rssKiB += one.rssKiB;
    } catch (err) {
      if (p === pid) throw err; // a child may exit between listing and reading
    }
  }
  return { cpuMs, rssKiB, at };
}

function descendants(pid: number): number[] {
  const found: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return found;
  }
  for (const tid of tasks) {
    let children = '';
    try {
      children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const child of children.split(' ')) {
      if (child.trim() === '') continue;
      found.push(Number(child), ...descendants(Number(child)));
    }
  }
  return found;
}

function sampleOne(pid: number): { cpuMs: number; rssKiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /VmRSS:\s+(\d+) kB/.exec(status);
  return { cpuMs: ((utime + stime) * 1000) / TICKS_PER_SECOND, rssKiB: rss ? Number(rss[1]) : 0 };
}

/**
 * Pins every thread of a process to one CPU (or a list, "0,1"), as the benchmark rules ask (broker
 * on one core, load on the other). Processes it forks later inherit the mask.
 */
export function pin(pid: number, cpu: number | string): void {
  if (os.cpus().length < 2) return;
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

export function machineDescription(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? 'unknown CPU';
  const memGiB = Math.round(os.totalmem() / 2 ** 30);
  return `${cpus.length} × ${model}, ${memGiB} GiB RAM, Linux ${os.release()}, Node ${process.version}`;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
}

export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

/** p50, p95, p99 and the maximum of latencies in ms, and how many there were. */
export function latencySummary(latencies: ArrayLike<number>): { p50: number; p95: number; p99: number; max: number; samples: number } {
  const sorted = Float64Array.from(latencies).sort();
  return {
    p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99),
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : NaN, samples: sorted.length,
  };
}

/** "12,345" style figures; `digits` after the point for small values. */
export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtSummary(s: Summary, digits = 0): string {
  return s.min === s.max ? fmt(s.median, digits) : `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';

const SAMPLE_INTERVAL_MS = 1000;
/** V8 aborts the process when its heap is full, whatever the water marks say: past this share of it counts as high. */
const HEAP_HIGH = 0.85;
const HEAP_LOW = 0.7;
/** Under pressure a client this many bytes behind is a slow consumer, and gets no more QoS 0 messages. */
export const OVERLOAD_OUTBOUND_LIMIT = 64 * 1024;

/** Memory the process may use: the machine's, or less if a control group limits it (a container). */
function availableMemory(): number {
  const machine = totalmem();
  try {
    const limit = Number(readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim());
    return Number.isFinite(limit) && limit > 0 ? Math.min(limit, machine) : machine;
  } catch {
    return machine;
  }
}

/** The default high-water mark: three quarters of the memory the process may use. */
export function defaultMemoryHighWater(): number {
  return Math.floor(availableMemory() * 0.75);
}

export interface MemoryReading {
  /** Bytes the broker's objects and buffers hold (V8 heap in use plus memory outside it, such as Buffers). */
  used: number;
  heapUsed: number;
  heapLimit: number;
}

function readMemory(): MemoryReading {
  const usage = process.memoryUsage();
  return { used: usage.heapUsed + usage.external, heapUsed: usage.heapUsed, heapLimit: getHeapStatistics().heap_size_limit };
}

/**
 * Watches the broker's memory once a second. Above the high-water mark (or near V8's heap limit) the broker is
 * overloaded until it is back below the low-water mark: the gap keeps it from flapping. Memory held by live objects
 * and Buffers is measured, not the resident set, which the allocator may keep long after the broker let go.
 */
export class MemoryWatch {
  overloaded = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly marks: { readonly memoryHighWater: number; readonly memoryLowWater: number },
    private readonly changed: (overloaded: boolean, reading: MemoryReading) => void,
    private readonly read: () => MemoryReading = readMemory,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.sample(), SAMPLE_INTERVAL_MS).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  sample(): void {
    // Without a mark only V8's heap limit counts.
    const high = this.marks.memoryHighWater > 0 ? this.marks.memoryHighWater : Infinity;
    const low = this.marks.memoryLowWater > 0 ? Math.min(this.marks.memoryLowWater, high) : high * 0.8;
    const reading = this.read();
    if (!this.overloaded && (reading.used > high || reading.heapUsed > reading.heapLimit * HEAP_HIGH)) this.set(true, reading);
    else if (this.overloaded && reading.used < low && reading.heapUsed < reading.heapLimit * HEAP_LOW) this.set(false, reading);
  }

  private set(overloaded: boolean, reading: MemoryReading): void {
    this.overloaded = overloaded;
    this.changed(overloaded, reading);
  }
}

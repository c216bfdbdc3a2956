import { workerFor } from '../../src/multicore/affinity.js';

let next = 0;

/** A fresh client identifier that a primary with `workers` workers hands to `worker` (it routes by `workerFor`). */
export function idOn(worker: number, prefix: string, workers = 2): string {
  for (;;) {
    const id = `${prefix}-${(next++).toString(36)}`;
    if (workerFor(id, workers) === worker) return id;
  }
}

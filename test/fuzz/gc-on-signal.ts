/**
 * Preloaded into the broker under fuzz (`node --expose-gc --import …/gc-on-signal.js`): SIGUSR2 runs a
 * full garbage collection and writes one JSON line with `process.memoryUsage()` to stdout (beside the
 * broker's own JSON log), so the memory compared with the baseline is what the broker really holds:
 * the heap, and the Buffers outside it (`arrayBuffers`), which `$SYS/broker/heap/current` does not count.
 * Nothing else in the broker changes.
 */
const gc = (globalThis as { gc?: () => void }).gc;
process.on('SIGUSR2', () => {
  gc?.();
  process.stdout.write(`${JSON.stringify({ level: 30, msg: 'fuzz memory', ...process.memoryUsage() })}\n`);
});

/**
 * Spins on its CPU for a while, reading the monotonic clock, and prints every gap
 * longer than 0.1 ms as `[startMs, lengthMs]` (JSON on stdout): the time the CPU was
 * taken from a process that never sleeps, by the kernel or by the machine under it.
 * `node stall-probe.js MILLISECONDS`.
 */
const durationMs = Number(process.argv[2] ?? 5000);
const gaps: Array<[number, number]> = [];
const end = performance.now() + durationMs;
let last = performance.now();
for (let now = last; now < end; now = performance.now()) {
  if (now - last > 0.1) gaps.push([last, now - last]);
  last = now;
}
process.stdout.write(JSON.stringify({ durationMs, gaps }));

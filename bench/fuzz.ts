/**
 * Long fuzz runs against a real broker process (test/fuzz/live-broker.ts; docs/fuzzing.md).
 *
 *   node dist/bench/fuzz.js --packets N [--seed S] [--connections C] [--store memory|sqlite|both]
 *                           [--minutes M] [--script I] [--moat path/to/moat.js] [--auth]
 *
 * Without --seed the seed is random; it is printed first, and again with a replay command on failure.
 * --script replays one connection of a run (its index is in the failure report). Exit status 1 on any
 * violation. --moat fuzzes another build of the broker (the fuzzer's own codec stays this checkout's).
 * --auth fuzzes an authenticated broker (password file, guard, topic permissions; docs/fuzzing.md).
 */
import { parseArgs } from 'node:util';
import { randomSeed } from '../test/fuzz/prng.js';
import { runLiveFuzz, summarize, type FuzzReport } from '../test/fuzz/live-broker.js';
import type { StoreKind } from '../test/fuzz/broker-process.js';

function usage(message: string): never {
  process.stderr.write(`fuzz: ${message}\nusage: node dist/bench/fuzz.js --packets N [--seed S] [--connections C] [--store memory|sqlite|both] [--minutes M] [--script I] [--moat path/to/moat.js] [--auth]\n`);
  process.exit(2);
}

function integer(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) usage(`--${name}: expected an integer >= ${min}, got "${value}"`);
  return n;
}

type Options = { packets?: string; seed?: string; connections?: string; store?: string; minutes?: string; script?: string; moat?: string; auth?: boolean };
let values: Options;
try {
  ({ values } = parseArgs({
    options: {
      packets: { type: 'string' },
      seed: { type: 'string' },
      connections: { type: 'string' },
      store: { type: 'string' },
      minutes: { type: 'string' },
      script: { type: 'string' },
      moat: { type: 'string' },
      auth: { type: 'boolean' },
    },
    strict: true,
  }) as { values: Options });
} catch (err) {
  usage((err as Error).message);
}

const packets = integer(values.packets, 'packets', 100_000, 1);
const seed = integer(values.seed, 'seed', randomSeed()) >>> 0;
const connections = integer(values.connections, 'connections', 32, 1);
const minutes = integer(values.minutes, 'minutes', 30, 1);
const onlyScript = values.script === undefined ? undefined : integer(values.script, 'script', 0);
const auth = values.auth === true;
const storeArg = values.store ?? 'memory';
if (!['memory', 'sqlite', 'both'].includes(storeArg)) usage(`--store: memory, sqlite or both, not "${storeArg}"`);
const stores: StoreKind[] = storeArg === 'both' ? ['memory', 'sqlite'] : [storeArg as StoreKind];

console.log(`fuzz seed ${seed}: ${packets} packets per store, ${connections} connections at once, store ${stores.join(' and ')}${auth ? ', authenticated broker (password file, guard, permissions)' : ''}`);
let failed = false;
let lastLine = Date.now();
for (const store of stores) {
  const t0 = Date.now();
  const report: FuzzReport = await runLiveFuzz({
    seed, packets, connections, store, maxDurationMs: minutes * 60_000, onlyScript, moatPath: values.moat, auth,
    progress: (r) => {
      const line = `${store}: ${r.packets} packets, ${r.packetsPerSecond}/s, ${r.connections.opened} connections, ${r.violations.length} violations`;
      if (process.stdout.isTTY) process.stdout.write(`\r  ${line}   `);
      else if (Date.now() - lastLine >= 30_000) {
        lastLine = Date.now();
        console.log(`  ${line}`);
      }
    },
  });
  if (process.stdout.isTTY) process.stdout.write('\n');
  console.log(summarize(report));
  console.log(`(${((Date.now() - t0) / 1000).toFixed(1)} s with start-up and checks)`);
  if (report.violations.length > 0) {
    failed = true;
    const crashed = report.violations.some((v) => v.what.startsWith('the broker exited'));
    const script = crashed ? undefined : report.violations.find((v) => v.script !== undefined)?.script;
    console.log(`\nFAILED with seed ${seed}. Replay: node dist/bench/fuzz.js --seed ${seed} --packets ${packets} --connections ${connections} --store ${store}${values.moat ? ` --moat ${values.moat}` : ''}${auth ? ' --auth' : ''}`);
    if (script !== undefined) console.log(`One connection alone: node dist/bench/fuzz.js --seed ${seed} --packets ${packets} --store ${store} --script ${script}${values.moat ? ` --moat ${values.moat}` : ''}${auth ? ' --auth' : ''}`);
  }
}
process.exit(failed ? 1 : 0);

/**
 * A reconnect storm of honest clients against a real `moat` process with a password file (docs/security.md,
 * "Password files"): every client its own user, from addresses spread over 127.0.0.x, all at the same moment.
 *
 *   node dist/bench/reconnect-storm.js [--users 5000] [--log-n 15] [--connect-timeout 30] [--addresses 250]
 *                                      [--store memory|sqlite] [--retry-after MS] [--cache DIR] [--moat path/to/moat.js]
 *
 * 1. cold: right after the broker starts, nothing remembered: every check hashes (scrypt N = 2^logN);
 * 2. remembered: all disconnect, then all reconnect at once: the credentials are remembered (HMAC), no hashing.
 *
 * The password file is made once per user count and cost and kept in --cache (default
 * $TMPDIR/moat-reconnect-storm): 5,000 users at N = 2^15, what `moat passwd` writes, take minutes.
 * Prints the outcome of each storm (accepted, refused by code, closed, timed out), its times, and the CPU
 * the broker, the clients and the rest of the machine used meanwhile. Exit status 1 unless all were accepted.
 */
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  CpuWatch, disconnectAll, makeClients, storm, StormBroker, usersFile, type CpuReport, type StormResult,
} from './lib/reconnect-storm.js';

function usage(message: string): never {
  process.stderr.write(`reconnect-storm: ${message}\nusage: node dist/bench/reconnect-storm.js [--users N] [--log-n L] [--connect-timeout S] [--addresses A] [--store memory|sqlite] [--retry-after MS] [--cache DIR] [--moat path]\n`);
  process.exit(2);
}

let values: Record<string, string | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      users: { type: 'string' }, 'log-n': { type: 'string' }, 'connect-timeout': { type: 'string' }, addresses: { type: 'string' },
      store: { type: 'string' }, 'retry-after': { type: 'string' }, cache: { type: 'string' }, moat: { type: 'string' },
    },
    strict: true,
  }) as { values: Record<string, string | undefined> });
} catch (err) {
  usage((err as Error).message);
}

function num(name: string, fallback: number, min: number, max: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) usage(`--${name}: expected a number from ${min} to ${max}, got "${v}"`);
  return n;
}

const users = num('users', 5000, 1, 100_000);
const logN = num('log-n', 15, 1, 22);
const connectTimeout = num('connect-timeout', 30, 0.5, 86_400);
const addresses = num('addresses', 250, 1, 253);
const retryAfter = values['retry-after'] === undefined ? undefined : num('retry-after', 1000, 0, 600_000);
const store = values.store ?? 'memory';
if (store !== 'memory' && store !== 'sqlite') usage(`--store: memory or sqlite, not "${store}"`);
const cache = values.cache ?? path.join(tmpdir(), 'moat-reconnect-storm');

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

function describe(name: string, r: StormResult, cpu: CpuReport): string {
  const refused = Object.entries(r.refused).map(([code, n]) => `${n} × CONNACK ${code}`).join(', ') || 'none';
  return [
    `${name}: ${r.accepted} of ${r.clients} accepted; refused ${refused}; closed without CONNACK ${r.closed}; no CONNACK in time ${r.timedOut}; errors ${r.errors}${r.errorDetails.length ? ` (${r.errorDetails.join(', ')})` : ''}; ${r.attempts} connection attempts`,
    r.accepted > 0
      ? `  accepted from ${s(r.firstMs)} to ${s(r.lastMs)} after the storm began (median ${s(r.p50Ms)}, 90th percentile ${s(r.p90Ms)}, 99th ${s(r.p99Ms)}); all answered in ${s(r.wallMs)}`
      : `  all answered in ${s(r.wallMs)}`,
    `  accepted within: ${Object.entries(r.acceptedWithin).map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `  CPU over ${cpu.wallS.toFixed(1)} s: broker ${cpu.brokerS.toFixed(1)} s, clients (this process) ${cpu.clientsS.toFixed(1)} s, rest of the machine ${cpu.othersS.toFixed(1)} s (busiest: ${cpu.others.slice(0, 3).map((p) => `${p.cpuS.toFixed(1)} s ${p.command.slice(0, 60)}`).join('; ') || 'none'}); machine ${cpu.machineS.toFixed(1)} CPU-s of ${(cpu.wallS * 2).toFixed(1)} on 2 CPUs`,
  ].join('\n');
}

console.log(`reconnect storm: ${users} users (scrypt N = 2^${logN}, r = 8, p = 1) from ${addresses} addresses 127.0.0.2-${1 + addresses}, connect_timeout ${connectTimeout} s, ${store} store${retryAfter !== undefined ? `, clients retry ${retryAfter} ms after "busy" or a close` : ', no retries'}`);
let lastShown = 0;
const { file, generatedMs } = await usersFile({
  count: users, logN, dir: cache,
  progress: (done, count) => {
    if (Date.now() - lastShown > 10_000) {
      lastShown = Date.now();
      console.log(`  hashing the password file: ${done} of ${count}`);
    }
  },
});
console.log(generatedMs === undefined ? `password file ${file} (made earlier)` : `password file ${file} made in ${s(generatedMs)}`);

const broker = await StormBroker.start({
  passwordFile: file, connectTimeout, store, limitMs: 4 * 3600_000, ...(values.moat && { moatPath: values.moat }),
});
let ok = false;
try {
  const clients = makeClients(users, addresses);
  const patienceMs = connectTimeout * 1000 + 5000;
  const within = [5, 10, 30, 60, 120, 300, 600, 900, 1200].filter((x) => x <= Math.max(30, connectTimeout + 5));
  const options = { patienceMs, within, ...(retryAfter !== undefined && { retryAfterMs: retryAfter }) };

  let cpu = new CpuWatch(broker.pid);
  const cold = await storm(broker.port, clients, options);
  console.log(describe('cold (nothing remembered, every check hashes)', cold, cpu.stop()));

  const disconnectMs = await disconnectAll(clients);
  console.log(`all disconnected in ${s(disconnectMs)}`);
  cpu = new CpuWatch(broker.pid);
  const warm = await storm(broker.port, clients, options);
  console.log(describe('remembered (all reconnect at once)', warm, cpu.stop()));
  await disconnectAll(clients);
  console.log(`audit: ${broker.count('connect.accepted')} connect.accepted, ${broker.count('connect.refused')} connect.refused, ${broker.count('guard.banned')} guard.banned`);
  ok = cold.accepted === users && warm.accepted === users;
} finally {
  const exit = await broker.stop();
  if (exit.code !== 0) console.log(`broker exit ${JSON.stringify(exit)}; stderr: ${broker.stderr.slice(0, 2000)}`);
}
console.log(ok ? 'all accepted in both storms' : 'NOT all accepted');
process.exit(ok ? 0 : 1);

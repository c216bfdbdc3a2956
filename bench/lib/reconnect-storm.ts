/**
 * A reconnect storm against a real `moat` process with a password file: every client its own user, from
 * source addresses spread over 127.0.0.x, all connecting at the same moment; first with nothing remembered
 * (every check a password hash), then, after all disconnect, again with the credentials remembered.
 * Used by bench/reconnect-storm.ts (the figures) and test/security/reconnect-storm.test.ts (the outcome).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePacket, PacketType, type ConnectPacket } from '../../src/protocol/index.js';
import { createEntry, formatEntry } from '../../src/security/password-file.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
/** Preloaded into the broker to count scrypt derivations (password checks that hashed): count-scrypt.ts. */
export const COUNT_SCRYPT = fileURLToPath(new URL('./count-scrypt.js', import.meta.url));

export const username = (i: number): string => `storm-user-${i}`;
export const password = (i: number): string => `storm-password-${i}`;

// ---------------------------------------------------------------- the password file

export interface UsersFileOptions {
  count: number;
  /** scrypt cost: log2 N (15 is what `moat passwd` writes), r = 8, p = 1. */
  logN: number;
  /** Directory where generated files are kept and found again (hashing 5,000 users takes minutes). */
  dir: string;
  /** Hashes computed at once (default: the CPUs this process may use). */
  parallel?: number;
  progress?: (done: number, count: number) => void;
}

/**
 * A Moat-format password file of `count` users (`storm-user-i` / `storm-password-i`), each line as
 * `moat passwd` writes it (scrypt N = 2^logN, r = 8, p = 1, 16-byte salt, and SCRAM-SHA-256 keys). Made once
 * per count and cost, then found again in `dir`.
 */
export async function usersFile(options: UsersFileOptions): Promise<{ file: string; generatedMs: number | undefined }> {
  mkdirSync(options.dir, { recursive: true });
  const file = path.join(options.dir, `users-${options.count}-scrypt${options.logN}-r8-p1.pw`);
  const header = `# moat reconnect storm: ${options.count} users, scrypt logN ${options.logN}, r 8, p 1`;
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    if (text.startsWith(`${header}\n`) && lines.length === options.count) return { file, generatedMs: undefined };
  }
  const started = performance.now();
  const lines: string[] = new Array<string>(options.count);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < options.count; i = next++) {
      lines[i] = formatEntry(await createEntry(username(i), Buffer.from(password(i)), { logN: options.logN, r: 8, p: 1 }));
      options.progress?.(++done, options.count);
    }
  };
  await Promise.all(Array.from({ length: options.parallel ?? os.availableParallelism() }, worker));
  writeFileSync(`${file}.tmp`, `${header}\n${lines.join('\n')}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return { file, generatedMs: performance.now() - started };
}

// ---------------------------------------------------------------- the broker

export interface StormBrokerOptions {
  passwordFile: string;
  /** `limits.connect_timeout`, seconds. */
  connectTimeout: number;
  store?: 'memory' | 'sqlite';
  /** Another build of moat (dist/src/cli/moat.js of a copy). */
  moatPath?: string;
  /** Preload count-scrypt.js (the broker then reports its scrypt derivations on SIGUSR2). */
  countScrypt?: boolean;
  /** Environment additions (UV_THREADPOOL_SIZE...). */
  env?: NodeJS.ProcessEnv;
  /** SIGKILL after this long. */
  limitMs: number;
}

/** A `moat` process on a free port of 127.0.0.1, password file authentication (the guard on with it). */
export class StormBroker {
  readonly dir: string;
  readonly child: ChildProcess;
  port = 0;
  stderr = '';
  /** Log lines by message, and audit events by name. */
  readonly messages = new Map<string, number>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private partial = '';
  private onListening: ((port: number) => void) | undefined;
  private readonly countFile: string;
  private countSeq = 0;

  private constructor(options: StormBrokerOptions) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'moat-storm-'));
    this.countFile = path.join(this.dir, 'scrypt-count');
    const config = path.join(this.dir, 'moat.yaml');
    writeFileSync(config, [
      'listeners:',
      '  - host: 127.0.0.1',
      '    port: 0',
      'store:',
      options.store === 'sqlite' ? `  type: sqlite\n  directory: ${JSON.stringify(path.join(this.dir, 'data'))}` : '  type: memory',
      'limits:',
      `  connect_timeout: ${options.connectTimeout}`,
      'authentication:',
      '  - type: password_file',
      `    path: ${JSON.stringify(options.passwordFile)}`,
      'log:',
      '  level: info',
      '  format: json',
      '',
    ].join('\n'));
    const preload = options.countScrypt ? ['--import', COUNT_SCRYPT] : [];
    this.child = spawn(process.execPath, [...preload, options.moatPath ?? MOAT, '-c', config], {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env, MOAT_SCRYPT_COUNT_FILE: this.countFile },
    });
    const limit = setTimeout(() => this.child.kill('SIGKILL'), options.limitMs);
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => {
      const lines = (this.partial + s).split('\n');
      this.partial = lines.pop()!;
      for (const line of lines) this.onLine(line);
    });
    this.child.stderr!.on('data', (s: string) => {
      if (this.stderr.length < 64_000) this.stderr += s;
    });
    this.exited = new Promise((resolve) => this.child.once('close', (code, signal) => {
      clearTimeout(limit);
      this.exit = { code, signal };
      resolve(this.exit);
    }));
  }

  static async start(options: StormBrokerOptions): Promise<StormBroker> {
    const broker = new StormBroker(options);
    const listening = new Promise<number>((resolve) => {
      broker.onListening = resolve;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`moat did not start within 30 s; stderr: ${broker.stderr}`)), 30_000);
    });
    const exited = broker.exited.then((exit) => {
      throw new Error(`moat exited at start (${JSON.stringify(exit)}); stderr: ${broker.stderr}`);
    });
    try {
      broker.port = await Promise.race([listening, timeout, exited]);
    } catch (err) {
      await broker.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return broker;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private onLine(line: string): void {
    if (!line.startsWith('{')) return;
    let entry: { msg?: string; event?: string; port?: number };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    if (entry.msg === 'listening' && typeof entry.port === 'number') this.onListening?.(entry.port);
    const key = entry.event ?? entry.msg;
    if (key !== undefined) this.messages.set(key, (this.messages.get(key) ?? 0) + 1);
  }

  count(key: string): number {
    return this.messages.get(key) ?? 0;
  }

  /** Scrypt derivations the broker has done so far (count-scrypt.js preloaded). */
  async scryptCalls(timeoutMs = 5000): Promise<number> {
    const seq = ++this.countSeq;
    process.kill(this.pid, 'SIGUSR2');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const [got, calls] = readFileSync(this.countFile, 'utf8').trim().split(' ').map(Number);
        if (got !== undefined && got >= seq && calls !== undefined) return calls;
      } catch {
        // not written yet
      }
      if (Date.now() > deadline) throw new Error('the broker did not report its scrypt calls (count-scrypt.js preloaded?)');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exit) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
    return this.exit!;
  }
}

// ---------------------------------------------------------------- the clients

export type Outcome = { result: 'accepted' | 'refused'; code: number; ms: number } | { result: 'closed' | 'timeout' | 'error'; ms: number; detail?: string };

/** One device: its own user, its own source address, a persistent session (Clean Session 0), MQTT 3.1.1. */
export class StormClient {
  socket: net.Socket | undefined;
  attempts = 0;

  constructor(readonly index: number, readonly localAddress: string, readonly secret = password(index)) {}

  private connectPacket(): Buffer {
    const packet: ConnectPacket = {
      type: PacketType.CONNECT, protocolName: 'MQTT', protocolVersion: 4, clean: false, keepalive: 300,
      clientId: `storm-device-${this.index}`, username: username(this.index), password: Buffer.from(this.secret),
    };
    return encodePacket(packet, 4);
  }

  /** Opens a connection and sends CONNECT; resolves with the CONNACK (the connection stays open when accepted) or how it ended. */
  connect(port: number, startedAt: number, patienceMs: number): Promise<Outcome> {
    this.attempts++;
    return new Promise((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: this.localAddress });
      socket.setNoDelay(true);
      let header = Buffer.alloc(0);
      let settled = false;
      const done = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (outcome.result === 'accepted') this.socket = socket;
        else socket.destroy();
        resolve(outcome);
      };
      const timer = setTimeout(() => done({ result: 'timeout', ms: performance.now() - startedAt }), patienceMs);
      socket.once('connect', () => socket.write(this.connectPacket()));
      socket.on('data', (chunk: Buffer) => {
        if (settled) return;
        header = Buffer.concat([header, chunk]);
        if (header.length < 4) return;
        if (header[0] !== 0x20) return done({ result: 'error', ms: performance.now() - startedAt, detail: `first byte ${header[0]}` });
        const code = header[3]!;
        done({ result: code === 0 ? 'accepted' : 'refused', code, ms: performance.now() - startedAt });
      });
      socket.on('error', (err: NodeJS.ErrnoException) => done({ result: 'error', ms: performance.now() - startedAt, detail: err.code ?? err.message }));
      socket.on('close', () => done({ result: 'closed', ms: performance.now() - startedAt }));
    });
  }

  /** DISCONNECT, then waits for the broker to close the connection. */
  disconnect(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => socket.destroy(), 10_000);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end(Buffer.from([0xe0, 0x00]));
    });
  }
}

/**
 * Clients 0..count-1 spread evenly over 127.0.0.2 .. 127.0.0.(addresses+1): never 127.0.0.1, which the guard
 * allow-lists. Client i is user i, with user i's password unless `secret` says otherwise.
 */
export function makeClients(count: number, addresses: number, secret: (i: number) => string = password): StormClient[] {
  if (addresses < 1 || addresses > 253) throw new RangeError('addresses: 1 to 253 (127.0.0.2 to 127.0.0.254)');
  return Array.from({ length: count }, (_, i) => new StormClient(i, `127.0.0.${2 + (i % addresses)}`, secret(i)));
}

export interface StormResult {
  clients: number;
  accepted: number;
  /** Refusals by CONNACK return code (3: server unavailable / busy, 4: bad credentials, 5: not authorized). */
  refused: Record<number, number>;
  /** Closed by the broker without a CONNACK (its CONNECT timeout, a limit at accept). */
  closed: number;
  /** No CONNACK within the client's patience. */
  timedOut: number;
  errors: number;
  errorDetails: string[];
  /** Connection attempts in all (more than `clients` when clients retry). */
  attempts: number;
  /** ms from the storm's start: first and last CONNACK accepting, and percentiles of the accepted. */
  firstMs: number;
  lastMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Accepted within n seconds of the start, for a few n (how many a CONNECT timeout of n seconds would have let in). */
  acceptedWithin: Record<string, number>;
  wallMs: number;
}

export interface StormOptions {
  /** How long a client waits for its CONNACK (the broker's CONNECT timeout plus a margin). */
  patienceMs: number;
  /** A client told "busy" or closed without an answer tries again after this many ms, as real clients do (default: never). */
  retryAfterMs?: number;
  /** Retrying stops after this long (default 30 minutes). */
  retryForMs?: number;
  /** Checkpoints for `acceptedWithin`, seconds. */
  within?: number[];
}

/** All clients connect at the same moment; resolves once each has its answer. */
export async function storm(port: number, clients: readonly StormClient[], options: StormOptions): Promise<StormResult> {
  const started = performance.now();
  const accepted: number[] = [];
  const result: StormResult = {
    clients: clients.length, accepted: 0, refused: {}, closed: 0, timedOut: 0, errors: 0, errorDetails: [], attempts: 0,
    firstMs: 0, lastMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, acceptedWithin: {}, wallMs: 0,
  };
  const retryFor = options.retryForMs ?? 30 * 60_000;
  await Promise.all(clients.map(async (client) => {
    client.attempts = 0;
    for (;;) {
      const outcome = await client.connect(port, started, options.patienceMs);
      const retry = options.retryAfterMs !== undefined && outcome.result !== 'accepted' && performance.now() - started < retryFor
        && (outcome.result === 'closed' || outcome.result === 'timeout' || (outcome.result === 'refused' && outcome.code === 3));
      if (retry) {
        await new Promise((r) => setTimeout(r, options.retryAfterMs));
        continue;
      }
      result.attempts += client.attempts;
      if (outcome.result === 'accepted') accepted.push(outcome.ms);
      else if (outcome.result === 'refused') result.refused[outcome.code] = (result.refused[outcome.code] ?? 0) + 1;
      else if (outcome.result === 'closed') result.closed++;
      else if (outcome.result === 'timeout') result.timedOut++;
      else {
        result.errors++;
        if (result.errorDetails.length < 5 && 'detail' in outcome && outcome.detail) result.errorDetails.push(outcome.detail);
      }
      return;
    }
  }));
  result.wallMs = performance.now() - started;
  accepted.sort((a, b) => a - b);
  result.accepted = accepted.length;
  if (accepted.length > 0) {
    const at = (q: number): number => accepted[Math.min(accepted.length - 1, Math.floor(q * accepted.length))]!;
    result.firstMs = accepted[0]!;
    result.lastMs = accepted[accepted.length - 1]!;
    result.p50Ms = at(0.5);
    result.p90Ms = at(0.9);
    result.p99Ms = at(0.99);
  }
  for (const s of options.within ?? []) result.acceptedWithin[`${s}s`] = accepted.filter((ms) => ms <= s * 1000).length;
  return result;
}

/** Every accepted client sends DISCONNECT; resolves once the broker has closed them all. */
export async function disconnectAll(clients: readonly StormClient[]): Promise<number> {
  const started = performance.now();
  await Promise.all(clients.map((c) => c.disconnect()));
  return performance.now() - started;
}

// ---------------------------------------------------------------- CPU, honestly

interface CpuSnapshot {
  at: number;
  /** Machine: busy and total jiffies over all CPUs (/proc/stat). */
  busy: number;
  total: number;
  /** Per process: CPU jiffies (user + system), and the command line. */
  processes: Map<number, { jiffies: number; command: string }>;
}

function snapshot(): CpuSnapshot {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const idle = fields[3]! + (fields[4] ?? 0);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  const processes = new Map<number, { jiffies: number; command: string }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const command = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ').trim() || stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      processes.set(Number(name), { jiffies: Number(f[11]) + Number(f[12]), command });
    } catch {
      // gone meanwhile
    }
  }
  return { at: performance.now(), busy: total - idle, total, processes };
}

export interface CpuReport {
  wallS: number;
  /** CPU seconds over the interval. */
  machineS: number;
  brokerS: number;
  clientsS: number;
  /** The busiest other processes (CPU seconds, command). */
  others: Array<{ pid: number; cpuS: number; command: string }>;
  othersS: number;
}

const HZ = 100; // USER_HZ on Linux

/** Machine-wide CPU between start() and stop(): the broker's, this process's (the clients), and everyone else's. */
export class CpuWatch {
  private readonly first = snapshot();

  constructor(private readonly brokerPid: number) {}

  stop(): CpuReport {
    const last = snapshot();
    const per: Array<{ pid: number; cpuS: number; command: string }> = [];
    for (const [pid, p] of last.processes) {
      const before = this.first.processes.get(pid)?.jiffies ?? 0;
      const cpuS = (p.jiffies - before) / HZ;
      if (cpuS > 0) per.push({ pid, cpuS, command: p.command.slice(0, 100) });
    }
    per.sort((a, b) => b.cpuS - a.cpuS);
    const broker = per.find((p) => p.pid === this.brokerPid)?.cpuS ?? 0;
    const clients = per.find((p) => p.pid === process.pid)?.cpuS ?? 0;
    const others = per.filter((p) => p.pid !== this.brokerPid && p.pid !== process.pid);
    return {
      wallS: (last.at - this.first.at) / 1000,
      machineS: (last.busy - this.first.busy) / HZ,
      brokerS: broker,
      clientsS: clients,
      others: others.slice(0, 5),
      // Processes that came and went meanwhile count too: the machine's total less the broker and the clients.
      othersS: Math.max(0, (last.busy - this.first.busy) / HZ - broker - clients),
    };
  }
}

/**
 * The broker under fuzz: a real `moat` process (`node dist/src/cli/moat.js -c <yaml>`) on a free port of
 * 127.0.0.1, with the memory store or SQLite in a temporary directory, anonymous or (`auth`) with a password
 * file, the guard and topic permissions. Its JSON log is read line by line
 * (never kept whole: a long run logs a line per protocol error): error and fatal lines, and protocol
 * errors whose reason shows the codec threw something other than a ProtocolError, are findings.
 *
 * One instrument is added to the process: `--expose-gc` and a preloaded module that runs a full garbage
 * collection on SIGUSR2 and prints `process.memoryUsage()` (gc-on-signal.ts), so the memory compared
 * with the baseline is live memory, not garbage that V8 has not collected yet.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const GC_PRELOAD = fileURLToPath(new URL('./gc-on-signal.js', import.meta.url));

export type StoreKind = 'memory' | 'sqlite';

export interface BrokerOptions {
  store: StoreKind;
  /** The `moat` entry point to run (default: this checkout's dist/src/cli/moat.js). */
  moatPath?: string;
  /** Seconds a socket may take to send CONNECT (default 2). */
  connectTimeout?: number;
  /** Hard limit on the process (SIGKILL), ms. */
  limitMs: number;
  /**
   * An authenticated run: the text of a password file (written as `passwords` beside the configuration) and
   * the YAML that uses it (authentication, guard, authorization).
   */
  auth?: { passwords: string; yaml: string };
}

export interface LogFindings {
  lines: number;
  /** Log lines at error or fatal level (first few, whole). */
  errors: string[];
  errorCount: number;
  /** Protocol errors by reason, with numbers and quoted values blurred so that kinds group. */
  protocolErrors: Map<string, number>;
  /** Protocol errors that say the codec threw something other than a ProtocolError. */
  undecodable: string[];
  /** Log lines by message. */
  messages: Map<string, number>;
}

export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export class BrokerProcess {
  readonly dir: string;
  private readonly child: ChildProcess;
  port = 0;
  stderr = '';
  readonly log: LogFindings = { lines: 0, errors: [], errorCount: 0, protocolErrors: new Map(), undecodable: [], messages: new Map() };
  /** The last `process.memoryUsage()` the process wrote after a forced collection (gc-on-signal.ts). */
  memory: MemoryUsage | undefined;
  memoryReports = 0;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;
  private partial = '';
  private onListening: ((port: number) => void) | undefined;
  private readonly limit: NodeJS.Timeout;

  private constructor(readonly options: BrokerOptions) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'moat-fuzz-'));
    const config = path.join(this.dir, 'moat.yaml');
    if (options.auth) writeFileSync(path.join(this.dir, 'passwords'), options.auth.passwords, { mode: 0o600 });
    writeFileSync(config, [
      'listeners:',
      '  - host: 127.0.0.1',
      '    port: 0',
      'store:',
      options.store === 'memory' ? '  type: memory' : `  type: sqlite\n  directory: ${JSON.stringify(path.join(this.dir, 'data'))}`,
      'limits:',
      `  connect_timeout: ${options.connectTimeout ?? 2}`,
      'sys_interval: 0.25',
      'log:',
      '  level: debug',
      '  format: json',
      options.auth?.yaml ?? '',
      '',
    ].join('\n'));
    this.child = spawn(process.execPath, ['--expose-gc', '--import', GC_PRELOAD, options.moatPath ?? MOAT, '-c', config], {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.limit = setTimeout(() => this.child.kill('SIGKILL'), options.limitMs);
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => this.onStdout(s));
    this.child.stderr!.on('data', (s: string) => {
      if (this.stderr.length < 64_000) this.stderr += s;
    });
    this.exited = new Promise((resolve) => this.child.once('close', (code, signal) => {
      this.exit = { code, signal };
      clearTimeout(this.limit);
      resolve();
    }));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  static async start(options: BrokerOptions): Promise<BrokerProcess> {
    const broker = new BrokerProcess(options);
    const listening = new Promise<number>((resolve) => {
      broker.onListening = resolve;
    });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`moat did not start within 15 s; stderr: ${broker.stderr}`)), 15_000).unref());
    const exited = broker.exited.then(() => {
      throw new Error(`moat exited at start (${JSON.stringify(broker.exit)}); stderr: ${broker.stderr}`);
    });
    try {
      broker.port = await Promise.race([listening, timeout, exited]);
    } catch (err) {
      await broker.kill();
      throw err;
    }
    return broker;
  }

  private onStdout(s: string): void {
    const text = this.partial + s;
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) this.onLine(line);
  }

  private onLine(line: string): void {
    if (!line.startsWith('{')) return;
    this.log.lines++;
    let entry: { level?: number; msg?: string; reason?: string; port?: number } & Partial<MemoryUsage>;
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    if ((entry.level ?? 0) >= 50) {
      this.log.errorCount++;
      if (this.log.errors.length < 5) this.log.errors.push(line.slice(0, 2000));
    }
    if (entry.msg === 'listening' && typeof entry.port === 'number') this.onListening?.(entry.port);
    if (entry.msg === 'fuzz memory') {
      this.memory = { rss: entry.rss ?? 0, heapUsed: entry.heapUsed ?? 0, external: entry.external ?? 0, arrayBuffers: entry.arrayBuffers ?? 0 };
      this.memoryReports++;
      return;
    }
    if (entry.msg !== undefined) this.log.messages.set(entry.msg, (this.log.messages.get(entry.msg) ?? 0) + 1);
    if (entry.msg === 'protocol error' && typeof entry.reason === 'string') {
      if (entry.reason.includes('undecodable packet') && this.log.undecodable.length < 5) this.log.undecodable.push(entry.reason);
      const kind = entry.reason.replace(/"[^"]*"/g, '"…"').replace(/\d+/g, 'N').slice(0, 120);
      this.log.protocolErrors.set(kind, (this.log.protocolErrors.get(kind) ?? 0) + 1);
    }
  }

  /** Open file descriptors of the process (/proc/<pid>/fd). */
  fdCount(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /** Resident set size in bytes (/proc/<pid>/status VmRSS), or its peak so far (VmHWM). */
  rss(which: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
    const m = new RegExp(`${which}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  }

  /** Asks the process for a full garbage collection (gc-on-signal.ts). */
  collectGarbage(): void {
    if (!this.exit) process.kill(this.pid, 'SIGUSR2');
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** SIGTERM, then waits for the exit (SIGKILL after `timeoutMs`); returns the exit status. */
  async stop(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exit) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.partial) this.onLine(this.partial);
    this.cleanup();
    return this.exit!;
  }

  async kill(): Promise<void> {
    if (!this.exit) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    this.cleanup();
  }

  private cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

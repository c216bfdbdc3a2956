import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

/**
 * Child processes for interop and CLI tests: output collected, a hard time
 * limit on every process (SIGKILL), and `killAll()` for `after` hooks, which
 * signals only the PIDs spawned here.
 */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written to stdout / stderr so far. */
  stdout: string;
  stderr: string;
  readonly exited: Promise<ExitStatus>;
  /** Set once the process has exited. */
  status: ExitStatus | undefined;
  /** Resolves once `predicate(stdout)` holds; rejects if the process exits first or after `timeoutMs`. */
  waitStdout(predicate: (stdout: string) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  /** Resolves with the exit status; rejects after `timeoutMs` (the process is then SIGKILLed). */
  waitExit(timeoutMs?: number): Promise<ExitStatus>;
  kill(signal?: NodeJS.Signals): void;
}

const running = new Set<Proc>();

export interface SpawnOptions {
  /** Hard limit: the process is SIGKILLed after this many ms (default 15 s). */
  limitMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed. Without it stdin is closed at once. */
  input?: string | Buffer;
}

export function spawnProc(command: string, args: string[], options: SpawnOptions = {}): Proc {
  const child = spawn(command, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: options.env ?? process.env,
    cwd: options.cwd,
  });
  let notify: () => void = () => {};
  const changed = (): void => notify();
  let resolveExit!: (s: ExitStatus) => void;
  const exited = new Promise<ExitStatus>((resolve) => {
    resolveExit = resolve;
  });
  const limit = setTimeout(() => child.kill('SIGKILL'), options.limitMs ?? 15_000);
  const proc: Proc = {
    child,
    pid: child.pid ?? -1,
    stdout: '',
    stderr: '',
    exited,
    status: undefined,
    async waitStdout(predicate, timeoutMs = 5000, what = 'output') {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(proc.stdout)) {
        if (proc.status) {
          throw new Error(`${command} exited (${JSON.stringify(proc.status)}) before ${what}; stdout: ${proc.stdout} stderr: ${proc.stderr}`);
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what} from ${command}; stdout: ${proc.stdout} stderr: ${proc.stderr}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          notify = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    },
    async waitExit(timeoutMs = 5000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`${command} ${args.join(' ')} did not exit within ${timeoutMs} ms; stdout: ${proc.stdout} stderr: ${proc.stderr}`));
        }, timeoutMs);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    kill(signal = 'SIGTERM') {
      if (!proc.status && child.pid !== undefined) {
        try {
          process.kill(child.pid, signal);
        } catch {
          // already gone
        }
      }
    },
  };
  running.add(proc);
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => {
    proc.stdout += s;
    changed();
  });
  child.stderr!.on('data', (s: string) => {
    proc.stderr += s;
    changed();
  });
  child.stdin!.on('error', () => {});
  if (options.input !== undefined) child.stdin!.end(options.input);
  else child.stdin!.end();
  child.on('error', (err) => {
    proc.stderr += `spawn error: ${err.message}\n`;
    if (!proc.status) {
      proc.status = { code: null, signal: null };
      clearTimeout(limit);
      running.delete(proc);
      resolveExit(proc.status);
      changed();
    }
  });
  child.on('close', (code, signal) => {
    if (proc.status) return;
    proc.status = { code, signal };
    clearTimeout(limit);
    running.delete(proc);
    resolveExit(proc.status);
    changed();
  });
  return proc;
}

/** Runs a command to completion. */
export async function run(command: string, args: string[], options: SpawnOptions = {}): Promise<ExitStatus & { stdout: string; stderr: string }> {
  const proc = spawnProc(command, args, options);
  const status = await proc.waitExit(options.limitMs ?? 15_000);
  return { ...status, stdout: proc.stdout, stderr: proc.stderr };
}

/** SIGKILLs every process spawned here that is still running (by its PID), and waits for them. */
export async function killAll(): Promise<void> {
  const procs = [...running];
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}

/** A TCP port that was free a moment ago (bound on 127.0.0.1 port 0, then released). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

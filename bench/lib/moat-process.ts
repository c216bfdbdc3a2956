import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectPacket } from './frames.js';
import { pin } from './system.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MOAT_CLI = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

export interface BrokerProcess {
  readonly pid: number;
  readonly port: number;
  /** Milliseconds from spawn to the first CONNACK. */
  readonly readyMs: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves true once a CONNECT on `port` gets a CONNACK. */
function connackOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('error', () => done(false));
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => socket.write(connectPacket(`bench-probe-${process.pid}`, true)));
    socket.once('data', (chunk) => done(chunk[0] === 0x20 && chunk[3] === 0));
  });
}

export interface MoatOptions {
  /** YAML lines below `listeners` (store, limits...). */
  yaml?: string;
  /** CPU to pin the broker to (undefined: not pinned). */
  cpu?: number;
  /** Working directory (its ./data is the default store). */
  cwd?: string;
  timeoutMs?: number;
}

/** Starts the `moat` CLI on a free loopback port and waits until it answers a CONNECT. */
export async function startMoat(options: MoatOptions = {}): Promise<BrokerProcess> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-bench-'));
  const config = path.join(dir, 'moat.yaml');
  writeFileSync(config, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\nsys_interval: 0\nlog:\n  level: warn\n  format: json\n${options.yaml ?? ''}`);
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [MOAT_CLI, '--config', config], {
    cwd: options.cwd ?? dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  if (options.cpu !== undefined) pin(child.pid!, options.cpu);
  const deadline = started + (options.timeoutMs ?? 120_000);
  let readyMs = -1;
  while (performance.now() < deadline && !gone) {
    if (await connackOnce(port)) {
      readyMs = performance.now() - started;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (readyMs < 0) {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`moat did not start: ${stderr}`);
  }
  return {
    pid: child.pid!,
    port,
    readyMs,
    async stop() {
      if (!gone) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

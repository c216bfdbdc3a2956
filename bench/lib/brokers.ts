import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectPacket } from './frames.js';
import { pin } from './system.js';
import { WebSocketLink } from './ws-link.js';

/**
 * The brokers a benchmark can run: Moat and its peers, each a real process on a
 * free loopback port, pinned to one CPU, ready once a CONNECT gets its CONNACK.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MOAT_CLI = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const AEDES_SERVER = path.join(ROOT, 'dist', 'bench', 'brokers', 'aedes-server.js');
const NODE_RELAY = path.join(ROOT, 'dist', 'bench', 'brokers', 'node-relay-floor.js');

/** `node-relay` is not a broker: the latency row's reference, a Node process that only copies PUBLISH packets on. */
export type BrokerKind = 'moat' | 'moat-2-workers' | 'mosquitto' | 'mosquitto-nodelay' | 'aedes' | 'aedes-nodelay' | 'node-relay';

export const BROKER_LABELS: Record<BrokerKind, string> = {
  moat: 'Moat',
  'moat-2-workers': 'Moat, multi-core mode (`workers: 2`)',
  mosquitto: 'Mosquitto (default)',
  'mosquitto-nodelay': 'Mosquitto (`set_tcp_nodelay true`)',
  aedes: 'Aedes',
  'aedes-nodelay': 'Aedes (`noDelay`)',
  'node-relay': 'Node.js relay, no MQTT work (reference)',
};

export interface BrokerProcess extends ServerProcess {
  readonly kind: BrokerKind;
}

export interface BrokerLaunch {
  /** CPU (or list of CPUs, "0,1") to pin the broker to (undefined: not pinned). */
  cpu?: number | string;
  /** Moat only: YAML lines below `listeners` (store, limits...). */
  yaml?: string;
  /** Moat only: working directory (its ./data is the default store). */
  cwd?: string;
  /** Per-session queue limit given to Moat and Mosquitto alike (their default is 1,000). */
  maxQueuedMessages?: number;
  /** Open-file limit for the broker process (idle-connection runs). */
  nofile?: number;
  /** Serve MQTT over TLS with this certificate and key (PEM files) instead of plain TCP. */
  tls?: { certFile: string; keyFile: string };
  /**
   * Serve MQTT over WebSockets, `ws://127.0.0.1:port/mqtt`, instead of plain TCP (Moat, Mosquitto and Aedes; not
   * with `tls`): Moat `websocket: {}`, Mosquitto `protocol websockets`, Aedes on `ws` (bench/brokers/aedes-server.ts).
   */
  websocket?: boolean;
  timeoutMs?: number;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * The probe's client id, one per broker: brokers of one cluster would otherwise pass one session between them, and
 * the rows would measure a session move.
 */
const probeId = (port: number): string => `bench-probe-${process.pid}-${port}`;

/** Resolves true once a CONNECT on `port` gets a CONNACK. */
function connackOnce(port: number, transport: 'tcp' | 'tls' | 'ws'): Promise<boolean> {
  if (transport === 'ws') return connackOverWebSocket(port);
  const overTls = transport === 'tls';
  return new Promise((resolve) => {
    const socket = overTls ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('error', () => done(false));
    socket.setTimeout(2000, () => done(false));
    socket.once(overTls ? 'secureConnect' : 'connect', () => socket.write(connectPacket(probeId(port), true)));
    socket.once('data', (chunk) => done(chunk[0] === 0x20 && chunk[3] === 0));
  });
}

/** The same over WebSockets: the upgrade, then a CONNECT in one frame, and its CONNACK. */
async function connackOverWebSocket(port: number): Promise<boolean> {
  let link: WebSocketLink;
  try {
    link = await WebSocketLink.open(port, '127.0.0.1');
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      link.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 2000);
    let connack = Buffer.alloc(0);
    link.on('error', () => done(false));
    link.on('data', (chunk) => {
      connack = Buffer.concat([connack, chunk]); // Aedes sends a packet in several frames
      if (connack.length >= 4) done(connack[0] === 0x20 && connack[3] === 0);
    });
    link.write(connectPacket(probeId(port), true));
  });
}

/**
 * The command line of each broker, given its port and a scratch directory for its configuration
 * (`spare`: a second free port, for the TCP listener Mosquitto needs beside a WebSocket one).
 */
function commandOf(kind: BrokerKind, port: number, dir: string, o: BrokerLaunch, spare: number): string[] {
  switch (kind) {
    case 'moat':
    case 'moat-2-workers': {
      const config = path.join(dir, 'moat.yaml');
      const workers = kind === 'moat-2-workers' ? 'workers: 2\n' : '';
      const queue = o.maxQueuedMessages === undefined ? '' : `limits:\n  max_queued_messages: ${o.maxQueuedMessages}\n`;
      const sys = o.yaml?.includes('sys_interval:') ? '' : 'sys_interval: 0\n';
      const tls = o.tls ? `    tls:\n      cert_file: ${o.tls.certFile}\n      key_file: ${o.tls.keyFile}\n` : '';
      const websocket = o.websocket ? '    websocket: {}\n' : '';
      writeFileSync(config, `${workers}listeners:\n  - port: ${port}\n    host: 127.0.0.1\n${tls}${websocket}${sys}log:\n  level: warn\n  format: json\n${queue}${o.yaml ?? ''}`);
      // Moat runs as the `moat` command does, with the Node flags of its #! line; BENCH_MOAT_NODE_FLAGS
      // replaces them (for the Moat processes only, not the load generator) to compare settings.
      const flags = (process.env.BENCH_MOAT_NODE_FLAGS ?? moatNodeFlags()).split(' ').filter((f) => f !== '');
      return [process.execPath, ...flags, MOAT_CLI, '--config', config];
    }
    case 'mosquitto':
    case 'mosquitto-nodelay': {
      const config = path.join(dir, 'mosquitto.conf');
      // Debian's Mosquitto 2.0.11 does not start with a WebSocket listener alone ("Unable to start any listening
      // sockets"): a plain one, unused, goes beside it.
      const listeners = o.websocket ? [`listener ${spare} 127.0.0.1`, `listener ${port} 127.0.0.1`, 'protocol websockets'] : [`listener ${port} 127.0.0.1`];
      const lines = [...listeners, 'allow_anonymous true', 'persistence false', 'log_dest none', 'sys_interval 0'];
      if (o.maxQueuedMessages !== undefined) lines.push(`max_queued_messages ${o.maxQueuedMessages}`);
      if (kind === 'mosquitto-nodelay') lines.push('set_tcp_nodelay true');
      if (o.tls) lines.push(`certfile ${o.tls.certFile}`, `keyfile ${o.tls.keyFile}`);
      writeFileSync(config, `${lines.join('\n')}\n`);
      return ['mosquitto', '-c', config];
    }
    case 'aedes':
    case 'aedes-nodelay':
      return [process.execPath, AEDES_SERVER, String(port), o.websocket ? 'ws' : kind === 'aedes-nodelay' ? 'nodelay' : 'delay', ...(o.tls ? [o.tls.certFile, o.tls.keyFile] : [])];
    case 'node-relay':
      return [process.execPath, NODE_RELAY, String(port)];
  }
}

/** The Node flags on the `#!/usr/bin/env -S node …` line of the moat command. */
function moatNodeFlags(): string {
  const first = readFileSync(MOAT_CLI, 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!\S*env -S node(.*)$/.exec(first);
  return match ? match[1]!.trim() : '';
}

/** Which peers this machine can run (Mosquitto needs the Debian package `mosquitto`). */
export function availableBrokers(): BrokerKind[] {
  const kinds: BrokerKind[] = ['moat', 'aedes', 'aedes-nodelay'];
  const mosquitto = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].some((p) => existsSync(p));
  return mosquitto ? ['moat', 'mosquitto', 'mosquitto-nodelay', 'aedes', 'aedes-nodelay'] : kinds;
}

export interface ServerProcess {
  readonly pid: number;
  readonly port: number;
  /** Milliseconds from spawn to the first CONNACK. */
  readonly readyMs: number;
  stop(): Promise<void>;
}

/** Starts a server process given its command line for a free loopback port, and waits until it answers a CONNECT. */
export async function startCommand(name: string, commandFor: (port: number, dir: string) => string[], o: BrokerLaunch = {}): Promise<ServerProcess> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), `bench-${name}-`));
  let command = commandFor(port, dir);
  if (o.nofile !== undefined) command = ['prlimit', `--nofile=${o.nofile}:${o.nofile}`, '--', ...command];
  const started = performance.now();
  const child: ChildProcess = spawn(command[0]!, command.slice(1), { cwd: o.cwd ?? dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.once('error', (err) => (stderr += String(err)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  if (o.cpu !== undefined && child.pid !== undefined) pin(child.pid, o.cpu);
  const deadline = started + (o.timeoutMs ?? 120_000);
  let readyMs = -1;
  while (performance.now() < deadline && !gone) {
    if (await connackOnce(port, o.websocket ? 'ws' : o.tls ? 'tls' : 'tcp')) {
      readyMs = performance.now() - started;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (readyMs < 0) {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${name} did not start: ${stderr}`);
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

/** Starts a broker on a free loopback port and waits until it answers a CONNECT. */
export async function startBroker(kind: BrokerKind, o: BrokerLaunch = {}): Promise<BrokerProcess> {
  if (o.websocket && (o.tls || kind === 'node-relay')) throw new Error(`${kind}: the benchmark serves WebSockets from Moat, Mosquitto and Aedes, without TLS`);
  const spare = o.websocket && kind.startsWith('mosquitto') ? await freePort() : 0;
  const server = await startCommand(kind, (port, dir) => commandOf(kind, port, dir, o, spare), o);
  return { kind, pid: server.pid, port: server.port, readyMs: server.readyMs, stop: () => server.stop() };
}

/** Moat with its own configuration lines, as the storage scenarios need. */
export function startMoat(o: BrokerLaunch = {}): Promise<BrokerProcess> {
  return startBroker('moat', o);
}

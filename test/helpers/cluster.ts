import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './broker.js';
import { freePort, spawnProc, type Proc } from './process.js';

/** Real processes for the cluster tests: a redis-server of their own and `moat` nodes started from a YAML file. */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

export interface RedisServer {
  proc: Proc;
  port: number;
  url: string;
}

/** A redis-server on a free port, its files (AOF) in `dir`; `args` are added to its command line. */
export async function startRedis(dir: string, args: string[] = [], port?: number): Promise<RedisServer> {
  const at = port ?? (await freePort());
  const proc = spawnProc('redis-server', ['--port', String(at), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', ...args], { limitMs: 300_000 });
  await waitFor(() => proc.stdout.includes('Ready to accept connections') || proc.status !== undefined, 10_000, 'redis-server');
  assert.equal(proc.status, undefined, `redis-server could not start: ${proc.stderr}`);
  return { proc, port: at, url: `redis://127.0.0.1:${at}` };
}

/** The configuration lines of a test node: an anonymous listener, the Redis store, cluster mode, JSON logs; `extra` before the cluster line. */
export function nodeLines(o: { node: string; port: number; redisUrl: string; deadAfterMs: number; extra?: string[] }): string[] {
  return [
    `listeners:\n  - { host: 127.0.0.1, port: ${o.port}, allow_anonymous: true }`,
    `store: { type: redis, url: "${o.redisUrl}" }`,
    ...(o.extra ?? []),
    `cluster: { node_id: ${o.node}, heartbeat_ms: 200, dead_after_ms: ${o.deadAfterMs} }`,
    'log: { format: json }',
    'sys_interval: 0',
  ];
}

/** Writes `{dir}/{name}.yaml` from its lines and starts `moat` on it; resolves once it says it started. */
export async function startMoat(dir: string, name: string, lines: string[] | undefined, limitMs = 240_000): Promise<Proc> {
  const file = path.join(dir, `${name}.yaml`);
  if (lines) writeFileSync(file, lines.join('\n'));
  const proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs });
  await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, `node ${name} started`);
  return proc;
}

/** Waits until an asynchronous condition (a Redis read) holds. */
export async function eventually(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A steady QoS 1 flow from a publisher on one node to a subscriber (persistent session) on another. */
export interface CrossNodeLoad {
  acknowledged: string[];
  received: Set<string>;
  /** Stops publishing; a publish still waiting for its PUBACK is not counted. */
  stop(): Promise<void>;
  /** Waits until every acknowledged message has arrived; on failure says what is missing. */
  allDelivered(timeoutMs: number): Promise<void>;
  close(): void;
}

export async function crossNodeLoad(publishPort: number, subscribePort: number, topic: string): Promise<CrossNodeLoad> {
  const { default: mqtt } = await import('mqtt');
  const clients = [] as Array<import('mqtt').MqttClient>;
  const connect = async (port: number, options: import('mqtt').IClientOptions = {}): Promise<import('mqtt').MqttClient> => {
    const c = mqtt.connect({ host: '127.0.0.1', port, protocolVersion: 5, reconnectPeriod: 200, ...options });
    c.on('error', () => {}); // reconnects while Redis fails over
    clients.push(c);
    await new Promise((resolve) => c.once('connect', resolve));
    return c;
  };
  const received = new Set<string>();
  const sub = await connect(subscribePort, { clientId: `${topic}-sub`, clean: false, properties: { sessionExpiryInterval: 600 } });
  sub.on('message', (_t, payload) => received.add(payload.toString()));
  await sub.subscribeAsync(`${topic}/#`, { qos: 1 });
  const pub = await connect(publishPort);
  const acknowledged: string[] = [];
  let running = true;
  const publishing = (async () => {
    for (let i = 0; running; i++) {
      await pub.publishAsync(`${topic}/t`, `m${i}`, { qos: 1 });
      acknowledged.push(`m${i}`);
    }
  })();
  return {
    acknowledged, received,
    async stop() {
      running = false;
      await Promise.race([publishing, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    },
    async allDelivered(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!acknowledged.every((m) => received.has(m))) {
        if (Date.now() > deadline) {
          const lost = acknowledged.filter((m) => !received.has(m));
          throw new Error(`${lost.length} of ${acknowledged.length} acknowledged messages never arrived: ${lost.slice(0, 10).join(' ')}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    close() {
      for (const c of clients) c.end(true);
    },
  };
}

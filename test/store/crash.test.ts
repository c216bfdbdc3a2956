import assert from 'node:assert/strict';
import * as netModule from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { delay, waitFor } from '../helpers/broker.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/**
 * The durability promise, tested with a real process: a broker with the
 * embedded store under steady QoS 1 and QoS 2 load toward persistent sessions
 * is killed with SIGKILL at random moments and restarted. Every message the
 * broker acknowledged must be delivered at least once (QoS 1) and exactly once
 * (QoS 2); retained messages and subscriptions must be intact.
 */

const MOAT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'moat.js');
const KILLS = 20;
const SEED = Number(process.env.MOAT_CRASH_SEED ?? 7);

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function client(port: number, clientId: string): MqttClient {
  return mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    clientId, clean: false, reconnectPeriod: 50, connectTimeout: 2000, keepalive: 0, resubscribe: false,
  });
}

describe('crash safety of the embedded store (SIGKILL)', () => {
  crashScenario('moat-crash-', () => [
    'store:',
    `  durability: ${process.env.MOAT_CRASH_DURABILITY ?? 'strict'}`,
  ]);
});

describe('crash safety of the Redis store (SIGKILL of the broker)', () => {
  let redis: Proc | undefined;
  let redisPort = 0;
  const redisDir = mkdtempSync(path.join(tmpdir(), 'moat-redis-'));
  before(async () => {
    // A real redis-server, durable per write: the store's promise is Redis' own (appendfsync always).
    redisPort = await freePort();
    redis = spawnProc('redis-server', [
      '--port', String(redisPort), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes',
      '--appendfsync', 'always', '--save', '',
    ], { limitMs: 300_000 });
    await waitFor(() => redis!.stdout.includes('Ready to accept connections') || redis!.status !== undefined, 10_000, 'redis-server to start')
      .catch((err: Error) => {
        throw new Error(`redis-server could not start (install the Debian package redis-server): ${err.message} ${redis?.stderr ?? ''}`);
      });
    assert.equal(redis.status, undefined, `redis-server exited: ${redis.stdout} ${redis.stderr}`);
  });
  after(() => rmSync(redisDir, { recursive: true, force: true }));
  crashScenario('moat-crash-redis-', () => ['store:', '  type: redis', `  url: redis://127.0.0.1:${redisPort}`]);
});

function crashScenario(prefix: string, storeLines: () => string[]): void {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const clients: MqttClient[] = [];
  after(async () => {
    for (const c of clients) c.end(true);
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`every acknowledged QoS 1 message arrives at least once and every QoS 2 message exactly once across ${KILLS} kills`, async () => {
    const random = rng(SEED);
    console.log(`crash test seed ${SEED} (MOAT_CRASH_SEED to reproduce)`);
    const port = await freePort();
    const config = path.join(dir, 'moat.yaml');
    writeFileSync(config, [
      'listeners:',
      `  - { host: 127.0.0.1, port: ${port} }`,
      ...storeLines(),
      `  directory: ${JSON.stringify(path.join(dir, 'data'))}`,
      'sys_interval: 0',
      'log:',
      '  level: warn',
      '',
    ].join('\n'));

    let broker: Proc;
    const start = async (): Promise<void> => {
      broker = spawnProc(process.execPath, [MOAT, '--config', config], { cwd: dir, limitMs: 120_000 });
      await waitFor(() => broker.status !== undefined || portOpen, 10_000, 'the broker to listen');
      assert.equal(broker.status, undefined, `broker exited: ${broker.stderr}`);
    };
    let portOpen = false;
    const probe = setInterval(() => {
      const s = new netModule.Socket();
      s.once('connect', () => { portOpen = true; s.destroy(); });
      s.once('error', () => { portOpen = false; });
      s.connect(port, '127.0.0.1');
    }, 20);

    try {
      await start();
      // Persistent subscribers, subscribed once: their subscriptions must survive every crash.
      const received1 = new Map<number, number>();
      const received2 = new Map<number, number>();
      const sub1 = client(port, 'crash-sub1');
      const sub2 = client(port, 'crash-sub2');
      clients.push(sub1, sub2);
      sub1.on('message', (_t, p) => received1.set(Number(p), (received1.get(Number(p)) ?? 0) + 1));
      sub2.on('message', (_t, p) => received2.set(Number(p), (received2.get(Number(p)) ?? 0) + 1));
      await Promise.all([sub1.subscribeAsync('crash/q1', { qos: 1 }), sub2.subscribeAsync('crash/q2', { qos: 2 })]);

      const pub = client(port, 'crash-pub');
      clients.push(pub);
      await new Promise<void>((resolve) => pub.once('connect', () => resolve()));
      for (const n of [1, 2, 3]) await pub.publishAsync(`crash/retained/${n}`, `r${n}`, { qos: 1, retain: true });

      const acked1 = new Set<number>();
      const acked2 = new Set<number>();
      let next = 0;
      let publishing = true;
      const load = setInterval(() => {
        if (!publishing) return;
        const n = next++;
        pub.publish('crash/q1', String(n), { qos: 1 }, (err) => { if (!err) acked1.add(n); });
        pub.publish('crash/q2', String(n), { qos: 2 }, (err) => { if (!err) acked2.add(n); });
      }, 4);

      for (let kill = 0; kill < KILLS; kill++) {
        await delay(150 + Math.floor(random() * 350));
        broker!.kill('SIGKILL');
        await broker!.exited;
        portOpen = false;
        await start();
      }
      await delay(1000);
      publishing = false;
      clearInterval(load);

      // The promise covers what the broker acknowledged. Clients resend the rest after reconnects;
      // wait until publishing works again after the last restart and acknowledgements settle.
      // The broker works after the last restart: a fresh client's QoS 1 and 2 publishes are acknowledged.
      // (The long-lived publisher's own library may take long to replay thousands of stored messages.)
      const fresh = client(port, 'crash-fresh');
      clients.push(fresh);
      await new Promise<void>((resolve) => fresh.once('connect', () => resolve()));
      await fresh.publishAsync('crash/probe', 'p1', { qos: 1 });
      await fresh.publishAsync('crash/probe', 'p2', { qos: 2 });
      // The promise covers what the broker acknowledged; let the publisher's resends settle, then judge.
      let last = -1;
      for (let i = 0; i < 30 && (acked1.size < next || acked2.size < next); i++) {
        if (acked1.size + acked2.size === last) break;
        last = acked1.size + acked2.size;
        await delay(1000);
      }
      await waitFor(
        () => [...acked1].every((n) => received1.has(n)) && [...acked2].every((n) => received2.has(n)),
        30_000,
        'every acknowledged message delivered',
      ).catch((err: Error) => {
        const lost1 = [...acked1].filter((n) => !received1.has(n));
        const lost2 = [...acked2].filter((n) => !received2.has(n));
        throw new Error(`${err.message}: QoS 1 lost ${lost1.length} (${lost1.slice(0, 5).join(',')}), QoS 2 lost ${lost2.length} (${lost2.slice(0, 5).join(',')})`);
      });
      await delay(500); // late duplicates would show up here

      const duplicates2 = [...received2].filter(([, count]) => count > 1).map(([n]) => n);
      console.log(`${next} messages per QoS published, ${acked1.size} QoS 1 and ${acked2.size} QoS 2 acknowledged, ${KILLS} kills; ` +
        `QoS 1 duplicates: ${[...received1.values()].filter((c) => c > 1).length}`);
      assert.deepEqual(duplicates2, [], 'QoS 2 messages delivered more than once');
      assert.ok(acked1.size > 500 && acked2.size > 500, `load was steady (${acked1.size} and ${acked2.size} acknowledged of ${next})`);

      // Retained messages intact.
      const late = client(port, 'crash-late');
      clients.push(late);
      const retained: string[] = [];
      late.on('message', (_t, p, packet) => { if (packet.retain) retained.push(p.toString()); });
      await late.subscribeAsync('crash/retained/#', { qos: 1 });
      await waitFor(() => retained.length === 3, 5000, 'three retained messages');
      assert.deepEqual(retained.sort(), ['r1', 'r2', 'r3']);
    } finally {
      clearInterval(probe);
    }
  });
}

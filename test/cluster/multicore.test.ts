import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { waitFor } from '../helpers/broker.js';
import { eventually, nodeLines, startMoat, startRedis } from '../helpers/cluster.js';
import { freePort, killAll, type Proc } from '../helpers/process.js';

/**
 * Multi-core and cluster mode together, real processes: node a runs two workers (nodes "a.0" and "a.1" of the
 * cluster), node b one process; clients on either worker of a and on b exchange QoS 1 messages, and a persistent
 * session moves from node a to node b with what was queued for it.
 */

describe('cluster on Redis with a multi-core node (real processes)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-cluster-multicore-'));
  let redis: Redis;
  const ports = new Map<string, number>();
  const clients: MqttClient[] = [];
  const procs: Proc[] = [];

  const connect = async (node: string, options: Partial<IClientOptions> = {}): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.get(node)}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...options });
    clients.push(client);
    return client;
  };

  before(async () => {
    const server = await startRedis(dir);
    redis = new Redis(server.url);
    for (const [node, workers] of [['a', 2], ['b', 1]] as const) {
      ports.set(node, await freePort());
      procs.push(await startMoat(dir, node, nodeLines({ node, port: ports.get(node)!, redisUrl: server.url, deadAfterMs: 5000, extra: [`workers: ${workers}`] })));
    }
  });
  after(async () => {
    for (const c of clients) c.end(true);
    redis?.disconnect();
    // Stopped as an operator would, while Redis is up: the primary stops its workers (SIGKILL would leave them behind).
    for (const proc of procs) proc.kill('SIGTERM');
    await Promise.all(procs.map((proc) => Promise.race([proc.exited, new Promise((resolve) => setTimeout(resolve, 15_000))])));
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('each worker of node a is a node of the cluster; clients on every worker and on node b exchange messages', async () => {
    await eventually(async () => (await redis.hkeys('moat:cluster:nodes')).sort().join() === 'a.0,a.1,b', 10_000, 'nodes a.0, a.1 and b');
    // Client identifiers spread over node a's two workers (multi-core mode hands a connection to the worker its id maps to).
    const subscribers = new Map<string, string[]>();
    for (const [node, id] of [['a', 'mc-sub-1'], ['a', 'mc-sub-2'], ['a', 'mc-sub-3'], ['a', 'mc-sub-4'], ['b', 'mc-sub-5']] as const) {
      const client = await connect(node, { clientId: id });
      const got: string[] = [];
      client.on('message', (_t, payload) => got.push(payload.toString()));
      await client.subscribeAsync('mc/#', { qos: 1 });
      subscribers.set(id, got);
    }
    await eventually(async () => {
      const filters = await Promise.all(['a.0', 'a.1', 'b'].map((n) => redis.smembers(`moat:cluster:filters:${n}`)));
      return filters.every((f) => f.includes('mc/#'));
    }, 5000, 'the filter registered by both workers of a and by b');
    const fromB = await connect('b');
    const fromA = await connect('a', { clientId: 'mc-pub' });
    for (let i = 0; i < 10; i++) {
      await fromB.publishAsync('mc/t', `b${i}`, { qos: 1 });
      await fromA.publishAsync('mc/t', `a${i}`, { qos: 1 });
    }
    const expected = Array.from({ length: 10 }, (_, i) => [`b${i}`, `a${i}`]).flat().sort();
    for (const [id, got] of subscribers) {
      await waitFor(() => got.length >= 20, 5000, `${id}: twenty messages`);
      assert.deepEqual([...got].sort(), expected, `${id}: each once`);
    }
  });

  it('a persistent session moves from node a (a worker of it) to node b with its queue', async () => {
    const options = { clientId: 'mc-mover', clean: false, properties: { sessionExpiryInterval: 600 } };
    const first = await connect('a', options);
    await first.subscribeAsync('mv/#', { qos: 1 });
    await first.endAsync();
    const pub = await connect('b');
    for (let i = 0; i < 5; i++) await pub.publishAsync('mv/t', `q${i}`, { qos: 1 });
    const again = mqtt.connect(`mqtt://127.0.0.1:${ports.get('b')}`, { protocolVersion: 5, reconnectPeriod: 0, ...options });
    clients.push(again);
    const got: string[] = [];
    again.on('message', (_t, payload) => got.push(payload.toString()));
    const connack = await new Promise<mqtt.IConnackPacket>((resolve) => again.once('connect', resolve));
    assert.equal(connack.sessionPresent, true);
    await waitFor(() => got.length >= 5, 5000, 'the queued messages');
    assert.deepEqual(got, ['q0', 'q1', 'q2', 'q3', 'q4']);
    assert.equal(await redis.hget('moat:cluster:owners', 'mc-mover'), 'b');
  });
});

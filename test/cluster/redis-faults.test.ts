import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import mqtt, { type MqttClient } from 'mqtt';
import { waitFor } from '../helpers/broker.js';
import { eventually, nodeLines, startMoat, startRedis } from '../helpers/cluster.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { freePort, killAll } from '../helpers/process.js';

/**
 * The network between a node and Redis failing at the worst moment: Redis has done what the node asked, and the
 * answer never reaches it. Node b reaches a real redis-server through a relay that loses replies and cuts
 * connections; node a reaches it directly.
 */

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('cluster on Redis: replies lost between a node and Redis (real processes)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-redis-faults-'));
  let redis: Redis;
  let proxy: FaultProxy;
  const ports = { a: 0, b: 0 };
  const clients: MqttClient[] = [];
  const connect = async (port: number): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(client);
    return client;
  };

  before(async () => {
    const server = await startRedis(dir);
    redis = new Redis(server.url);
    proxy = await startFaultProxy(server.port);
    for (const node of ['a', 'b'] as const) {
      ports[node] = await freePort();
      const redisPort = node === 'b' ? proxy.port : server.port;
      await startMoat(dir, node, nodeLines({ node, port: ports[node], redisUrl: `redis://127.0.0.1:${redisPort}`, deadAfterMs: 7000 }));
    }
  });
  after(async () => {
    for (const client of clients) client.end(true);
    redis?.disconnect();
    await proxy?.close();
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an inbox read whose reply is lost (its entries pending for the node, unseen) is read again with the whole backlog: every acknowledged message arrives, and reading goes on', async () => {
    const received: string[] = [];
    const sub = await connect(ports.b);
    sub.on('message', (_topic, payload) => received.push(payload.toString()));
    await sub.subscribeAsync('lost/#', { qos: 1 });
    await eventually(async () => (await redis.smembers('moat:cluster:filters:b')).includes('lost/#'), 5000, 'node b registered lost/#');
    const pub = await connect(ports.a);
    const publish = async (from: number, to: number): Promise<string[]> => {
      const sent: string[] = [];
      for (let i = from; i <= to; i++) {
        await pub.publishAsync('lost/t', `m${i}`, { qos: 1 });
        sent.push(`m${i}`);
      }
      return sent;
    };
    const allArrive = async (expected: string[], what: string): Promise<void> => {
      await waitFor(() => expected.every((m) => received.includes(m)), 15_000, what).catch((err: Error) => {
        const missing = expected.filter((m) => !received.includes(m));
        throw new Error(`${err.message}; ${missing.length} missing, from ${missing.slice(0, 5).join(' ')}`);
      });
    };
    const sent = await publish(0, 0);
    await allArrive(sent, 'm0 crossed');

    // Node b's blocking inbox read: Redis answers it with m1's entry (now pending for b), and the answer is lost.
    const readers = proxy.connectionsSending('moat-b-inbox');
    assert.equal(readers.length, 1, 'node b reads its inbox on one connection');
    readers[0]!.swallowReplies();
    sent.push(...await publish(1, 1));
    await eventually(async () => {
      const [count] = await redis.xpending('moat:cluster:inbox:b', 'moat') as [number];
      return count >= 1;
    }, 5000, 'm1\'s entry delivered to node b\'s consumer');
    // More than one read's worth waits behind it: the read ioredis sends again after the cut takes 512 of them (pending
    // too), so the pending list is longer than one read and is read in pages.
    sent.push(...await publish(2, 700));
    await sleep(200);
    assert.ok(!received.includes('m1'), 'the answer carrying m1 did not reach node b');
    readers[0]!.cut();
    await allArrive(sent, 'every acknowledged message at node b');

    // Reading goes on past the backlog: later messages arrive too.
    await sleep(1500);
    sent.push(...await publish(701, 720));
    await allArrive(sent, 'messages published after the recovery');
    assert.equal(received.length, new Set(received).size, 'each message once');
    await eventually(async () => {
      const [count] = await redis.xpending('moat:cluster:inbox:b', 'moat') as [number];
      return count === 0;
    }, 5000, 'nothing left pending in node b\'s inbox');
  });
});

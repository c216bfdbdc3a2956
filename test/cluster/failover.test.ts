import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { waitFor } from '../helpers/broker.js';
import { eventually, startMoat, startRedis } from '../helpers/cluster.js';
import { freePort, killAll, type Proc } from '../helpers/process.js';

/**
 * A node killed (SIGKILL) under QoS 1 and QoS 2 load, against a real redis-server and three `moat` processes: its
 * clients reconnect to another node (MQTT.js with a list of servers, as behind a load balancer) and go on; every
 * message acknowledged to a publisher reaches its subscribers, QoS 2 ones exactly once; the survivor that removes the
 * node adopts its persistent sessions with what its inbox held, and publishes its clients' wills once (a delayed will
 * after its delay, unless its client came back first).
 */

const NODES = ['a', 'b', 'c'] as const;
type Node = (typeof NODES)[number];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('cluster on Redis: a node killed under load (real processes)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-failover-'));
  let redis: Redis;
  const ports = new Map<Node, number>();
  const procs = new Map<Node, Proc>();
  const clients: MqttClient[] = [];
  const server = (node: Node): { host: string; port: number } => ({ host: '127.0.0.1', port: ports.get(node)! });

  /** Where node c's clients reconnect to: node c until the test knows which survivor adopted its sessions. */
  const fallback: Array<{ host: string; port: number }> = []; // node c, once its port is known
  /** An MQTT 5 client on `node`; node c's reconnect to `fallback` when it goes away (its session with it). */
  const client = (node: Node, options: Partial<IClientOptions>): MqttClient => {
    const c = mqtt.connect({
      protocolVersion: 5, connectTimeout: 3000, reconnectPeriod: 300, servers: node === 'c' ? fallback : [server(node)], ...options,
    });
    c.on('error', () => {}); // refused while the dead node's sessions are adopted: it tries again
    clients.push(c);
    return c;
  };
  const portOf = (node: Node): number => ports.get(node)!;
  const connected = (c: MqttClient): Promise<void> => new Promise((resolve) => (c.connected ? resolve() : c.once('connect', () => resolve())));

  before(async () => {
    redis = new Redis((await startRedis(dir)).url);
    const url = `redis://127.0.0.1:${(redis.options.port as number)}`;
    for (const node of NODES) ports.set(node, await freePort());
    fallback.push(server('c'));
    for (const node of NODES) {
      procs.set(node, await startMoat(dir, node, [
        `listeners:\n  - { host: 127.0.0.1, port: ${ports.get(node)}, allow_anonymous: true }`,
        `store: { type: redis, url: "${url}" }`,
        `cluster: { node_id: ${node}, heartbeat_ms: 200, dead_after_ms: 2000 }`,
        // The subscribers are away for seconds at full speed: a queue long enough that the usual policy (oldest dropped
        // past the limit) does not apply.
        'limits: { max_queued_messages: 100000 }',
        'log: { format: json }',
        'sys_interval: 0',
      ]));
    }
  });
  after(async () => {
    for (const c of clients) c.end(true);
    redis?.disconnect();
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a persistent session moved from node to node under QoS 1 and 2 load gets every acknowledged message, QoS 2 once', { timeout: 120_000 }, async () => {
    // One MQTT.js client whose connection is cut three times: it reconnects to the next server of its list, and its
    // session (queue, in-flight messages) follows it each time, taken over from the node it left.
    const mover = mqtt.connect({
      protocolVersion: 5, clientId: 'mover', clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 100,
      connectTimeout: 3000, servers: [server('a'), server('c'), server('b'), server('a')],
    });
    mover.on('error', () => {});
    clients.push(mover);
    const got: string[] = [];
    const received = new Set<string>();
    mover.on('message', (_t, payload) => {
      got.push(payload.toString());
      received.add(payload.toString());
    });
    await connected(mover);
    await mover.subscribeAsync('move/#', { qos: 2 });
    await sleep(300);
    const acknowledged: string[] = [];
    const qos2: string[] = [];
    let running = true;
    const publish = async (c: MqttClient, qos: 1 | 2, prefix: string): Promise<void> => {
      await connected(c);
      for (let i = 0; running; i++) {
        const text = `${prefix}${i}`;
        await c.publishAsync(`move/${prefix}`, text, { qos });
        acknowledged.push(text);
        if (qos === 2) qos2.push(text);
      }
    };
    const loads = [publish(client('a', {}), 1, 'qa'), publish(client('b', {}), 2, 'qb'), publish(client('c', {}), 2, 'qc')];
    const visited: number[] = [];
    const moveMarks: string[] = [];
    for (let move = 0; move < 3; move++) {
      const before = acknowledged.length;
      await waitFor(() => acknowledged.length > before + 300, 15_000, 'publishing');
      const reconnected = new Promise<void>((resolve) => mover.once('connect', () => resolve()));
      moveMarks.push(acknowledged.slice(-3).join(','));
      mover.stream.destroy();
      await reconnected;
      visited.push(mover.options.port as number);
    }
    assert.deepEqual(visited, [portOf('c'), portOf('b'), portOf('a')], 'it went to c, then b, then back to a');
    const last = acknowledged.length;
    await waitFor(() => acknowledged.length > last + 300, 15_000, 'publishing after the last move');
    running = false;
    await Promise.all(loads);
    await waitFor(() => acknowledged.every((m) => received.has(m)), 20_000, 'every acknowledged message delivered').catch((err: Error) => {
      const lost = acknowledged.filter((m) => !received.has(m));
      console.log('lost', lost.length, 'of', acknowledged.length, lost.join(' '), 'moves at', JSON.stringify(moveMarks));
      for (const n of NODES) console.log(n, procs.get(n)!.stdout.split('\n').filter((l) => l.includes('mover') || /"level":(40|50)/.test(l)).join('\n'));
      throw err;
    });
    await sleep(500);
    const counts = new Map<string, number>();
    for (const m of got) counts.set(m, (counts.get(m) ?? 0) + 1);
    const twice = qos2.filter((m) => counts.get(m)! > 1);
    assert.deepEqual(twice, [], 'no QoS 2 message twice');
  });

  it('SIGKILL of node c under load: its clients go on on the survivor that adopted its sessions, every acknowledged message arrives, QoS 2 once, wills once', { timeout: 120_000 }, async () => {
    const persistent = { clean: false, properties: { sessionExpiryInterval: 600 } };
    // Subscribers with persistent sessions on the node that dies: QoS 1 and QoS 2.
    const received = { q1: [] as string[], q2: [] as string[], fromC: [] as string[], wills: [] as string[] };
    const subQ1 = client('c', { clientId: 'sub-q1', ...persistent });
    subQ1.on('message', (_t, payload) => received.q1.push(payload.toString()));
    const subQ2 = client('c', { clientId: 'sub-q2', ...persistent });
    subQ2.on('message', (_t, payload) => received.q2.push(payload.toString()));
    await Promise.all([connected(subQ1), connected(subQ2)]);
    await subQ1.subscribeAsync('load/q1/#', { qos: 1 });
    await subQ2.subscribeAsync('load/q2/#', { qos: 2 });
    // Both survivors have subscribers of their own on the QoS 2 topics too: a message sent both to the adopter and to
    // the dead node's inbox during the adoption still reaches the adopted session once.
    for (const node of ['a', 'b'] as const) {
      const also = client(node, {});
      await connected(also);
      await also.subscribeAsync('load/q2/#', { qos: 2 });
    }
    // A subscriber on a for what a publisher on c sends at QoS 2.
    const subFromC = client('a', { clientId: 'sub-from-c', ...persistent });
    subFromC.on('message', (_t, payload) => received.fromC.push(payload.toString()));
    await connected(subFromC);
    await subFromC.subscribeAsync('load/fromc/#', { qos: 2 });
    const willWatch = client('b', {});
    willWatch.on('message', (topic, payload) => received.wills.push(`${topic} ${payload.toString()}`));
    await connected(willWatch);
    await willWatch.subscribeAsync('wills/#', { qos: 1 });
    // Clients of node c with wills: none delayed; delayed 2 s; delayed 30 s and back (on b) before that.
    const willNow = client('c', { clientId: 'will-now', reconnectPeriod: 0, will: { topic: 'wills/now', payload: Buffer.from('now'), qos: 1, retain: false } });
    const willLater = client('c', {
      clientId: 'will-later', reconnectPeriod: 0, ...persistent,
      will: { topic: 'wills/later', payload: Buffer.from('later'), qos: 1, retain: false, properties: { willDelayInterval: 2 } },
    });
    const willBack = client('c', {
      clientId: 'will-back', reconnectPeriod: 0, ...persistent,
      will: { topic: 'wills/back', payload: Buffer.from('back'), qos: 1, retain: false, properties: { willDelayInterval: 30 } },
    });
    await Promise.all([connected(willNow), connected(willLater), connected(willBack)]);
    await eventually(async () => (await redis.hlen('moat:cluster:wills:c')) === 3, 5000, 'the wills kept in Redis');
    await eventually(async () => (await redis.smembers('moat:cluster:filters:c')).length >= 2, 5000, 'node c\'s filters registered');
    await eventually(async () => (await redis.smembers('moat:cluster:filters:a')).length >= 2, 5000, 'node a\'s filters registered');

    // Load: QoS 1 from node a, QoS 2 from node b, QoS 2 from node c (whose publisher moves to node a with its session).
    const acknowledged = { q1: [] as string[], q2: [] as string[], fromC: [] as string[] };
    let running = true;
    const finished: boolean[] = [];
    const publish = async (c: MqttClient, topic: string, qos: 1 | 2, into: string[], prefix: string): Promise<void> => {
      await connected(c);
      for (let i = 0; running; i++) {
        const text = `${prefix}${i}`;
        try {
          await c.publishAsync(topic, text, { qos });
        } catch (err) {
          // PUBCOMP 0x92 after a PUBREL resent on the new node: the dead node had released it (routed, once) and its
          // store forgot the packet identifier before the PUBCOMP reached the client [MQTT-4.3.3], so acknowledged.
          if ((err as { code?: number }).code !== 0x92) throw err;
        }
        into.push(text);
      }
    };
    const pubA = client('a', {});
    const pubB = client('b', {});
    const pubC = client('c', { clientId: 'pub-c', ...persistent });
    const loads = [
      publish(pubA, 'load/q1/a', 1, acknowledged.q1, 'a'),
      publish(pubB, 'load/q2/b', 2, acknowledged.q2, 'b'),
      publish(pubC, 'load/fromc/c', 2, acknowledged.fromC, 'c'),
    ].map((load, i) => load.then(() => (finished[i] = true)));
    await waitFor(() => acknowledged.q1.length >= 200 && acknowledged.q2.length >= 100 && acknowledged.fromC.length >= 100, 15_000, 'load under way');
    const killedAt = Date.now();
    procs.get('c')!.kill('SIGKILL');
    await procs.get('c')!.exited;
    const atKill = { q1: acknowledged.q1.length, q2: acknowledged.q2.length, fromC: acknowledged.fromC.length };
    // Node c is declared dead after 2 s and adopted by a survivor; its clients go on there.
    await waitFor(() => willBack.connected === false, 5000, 'will-back lost its connection');
    const adopted = (n: Node): boolean => procs.get(n)!.stdout.includes('"cluster: the sessions of a dead node adopted here"');
    await waitFor(() => adopted('a') || adopted('b'), 10_000, 'a survivor adopted node c\'s sessions');
    const adopter: Node = adopted('a') ? 'a' : 'b';
    fallback.splice(0, 1, server(adopter));
    await waitFor(
      () => acknowledged.q1.length > atKill.q1 + 200 && acknowledged.q2.length > atKill.q2 + 100 && acknowledged.fromC.length > atKill.fromC + 50,
      30_000, 'acknowledgements after the kill (the publisher of node c on node a)',
    );
    // will-back returns, on the other survivor, within its delay: its will is not published [MQTT-3.1.3-9], and its
    // session comes from the adopter.
    const back = mqtt.connect({ ...server(adopter === 'a' ? 'b' : 'a'), protocolVersion: 5, reconnectPeriod: 0, clientId: 'will-back', ...persistent });
    clients.push(back);
    const backAck = await new Promise<mqtt.IConnackPacket>((resolve) => back.once('connect', resolve));
    assert.equal(backAck.sessionPresent, true, 'will-back\'s session came along');
    running = false;
    // A publish still waiting for its acknowledgement is not counted (it may or may not be delivered).
    await Promise.race([Promise.all(loads), sleep(10_000)]);
    assert.deepEqual(finished, [true, true, true], 'every publisher had its last publish acknowledged');

    const missing = (sent: string[], got: string[]): string[] => {
      const seen = new Set(got);
      return sent.filter((m) => !seen.has(m));
    };
    const twice = (got: string[]): string[] => got.filter((m, i) => got.indexOf(m) !== i);
    await waitFor(
      () => missing(acknowledged.q1, received.q1).length === 0 && missing(acknowledged.q2, received.q2).length === 0
        && missing(acknowledged.fromC, received.fromC).length === 0,
      20_000, 'every acknowledged message delivered',
    ).catch((err: Error) => {
      for (const [name, sent, got] of [['q1', acknowledged.q1, received.q1], ['q2', acknowledged.q2, received.q2], ['fromC', acknowledged.fromC, received.fromC]] as const) {
        const lost = missing(sent, got);
        console.log('missing', name, lost.length, 'of', sent.length, lost.slice(0, 3), lost.slice(-3), 'at kill', atKill);
      }
      for (const n of ['a', 'b'] as const) console.log(n, procs.get(n)!.stdout.split('\n').filter((l) => /"level":(40|50)/.test(l) || l.includes('adopted')).slice(-15).join('\n'));
      throw err;
    });
    await sleep(1000);
    assert.deepEqual(twice(received.q2), [], 'QoS 2 from node b: nothing twice');
    assert.deepEqual(twice(received.fromC), [], 'QoS 2 from the publisher that moved from c to a: nothing twice');
    assert.ok(subQ1.connected && subQ2.connected && pubC.connected, 'node c\'s clients are connected (to the adopter)');

    // Wills: the undelayed one at once, the 2 s one after its delay, the one whose client came back never; once each.
    await waitFor(() => received.wills.length >= 2, 10_000, 'two wills');
    await sleep(1500);
    assert.deepEqual([...received.wills].sort(), ['wills/later later', 'wills/now now']);
    assert.equal(adopted('a') && adopted('b'), false, 'one survivor adopted node c');
    const adoption = procs.get(adopter)!.stdout.split('\n').find((l) => l.includes('adopted here'))!;
    assert.match(adoption, /"sessions":5,/, 'sub-q1, sub-q2, pub-c, will-later and will-back');
    assert.equal(await redis.exists('moat:cluster:inbox:c', 'moat:cluster:applied:c', 'moat:node:c:sessions'), 0, 'node c\'s inbox and sessions left Redis');
    assert.ok(Date.now() - killedAt >= 2000, 'the delayed will waited');
  });
});

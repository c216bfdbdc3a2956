import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { FrameWriter } from '../../src/multicore/frames.js';
import { waitFor } from '../helpers/broker.js';
import { eventually, startMoat, startRedis } from '../helpers/cluster.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/**
 * Cluster mode against a real redis-server and three `moat` processes (nodes a, b and c) sharing it: clients on one
 * node receive what is published on another, each message crosses only to nodes with a matching subscription, MQTT 5
 * properties survive the hop, retained messages and shared groups span the nodes, and a QoS 1 message acknowledged
 * while its subscriber's node is down (killed) waits in that node's inbox until it is back.
 */

const NODES = ['a', 'b', 'c'] as const;
type Node = (typeof NODES)[number];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('cluster on Redis: routing between nodes (real processes)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-cluster-'));
  let redisUrl = '';
  let redis: Redis;
  let redisServer: Proc;
  let redisPort = 0;
  const ports = new Map<Node, number>();
  const procs = new Map<Node, Proc>();
  const clients: MqttClient[] = [];

  const startNode = async (node: Node): Promise<void> => {
    procs.set(node, await startMoat(dir, node, undefined));
  };
  const connect = async (node: Node, options: Partial<IClientOptions> = {}): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.get(node)}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...options });
    clients.push(client);
    return client;
  };
  /** Collects what reaches `filter` on `node`, as [topic, text]. */
  const listen = async (node: Node, filter: string, options: mqtt.IClientSubscribeOptions = { qos: 2 }, connectOptions: Partial<IClientOptions> = {}) => {
    const client = await connect(node, connectOptions);
    const got: Array<[string, string]> = [];
    const packets: mqtt.IPublishPacket[] = [];
    client.on('message', (topic, payload, packet) => {
      got.push([topic, payload.toString()]);
      packets.push(packet);
    });
    await client.subscribeAsync(filter, options);
    return { client, got, packets };
  };
  const mosquittoPub = async (node: Node, args: string[]): Promise<void> => {
    const result = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(ports.get(node)), ...args], { limitMs: 8000 });
    assert.equal(result.code, 0, `mosquitto_pub ${args.join(' ')}: ${result.stderr}`);
  };
  const inboxLength = (node: Node): Promise<number> => redis.xlen(`moat:cluster:inbox:${node}`);
  /** How many times a node has logged the adoption of `dead`'s sessions, done (the last step of an adoption). */
  const adoptionsOf = (dead: Node): number => NODES.flatMap((n) => procs.get(n)!.stdout.split('\n'))
    .filter((l) => l.includes('the sessions of a dead node adopted here') && l.includes(`"node":"${dead}"`)).length;

  before(async () => {
    ({ proc: redisServer, port: redisPort, url: redisUrl } = await startRedis(dir));
    redis = new Redis(redisUrl);
    for (const node of NODES) {
      ports.set(node, await freePort());
      writeFileSync(path.join(dir, `${node}.yaml`), [
        `listeners:\n  - { host: 127.0.0.1, port: ${ports.get(node)}, allow_anonymous: true }`,
        `store: { type: redis, url: "${redisUrl}" }`,
        // Long enough that a Redis restarted under load (the test below) is not taken for a partition.
        `cluster: { node_id: ${node}, heartbeat_ms: 200, dead_after_ms: 7000 }`,
        'log: { format: json }',
        'sys_interval: 0',
      ].join('\n'));
    }
    for (const node of NODES) await startNode(node);
  });
  after(async () => {
    for (const client of clients) client.end(true);
    redis?.disconnect();
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every node sees the others join', async () => {
    await eventually(async () => (await redis.hkeys('moat:cluster:nodes')).sort().join() === 'a,b,c', 5000, 'three nodes registered');
    for (const node of NODES) assert.match(procs.get(node)!.stdout, /"cluster joined"/);
    // Started one after the other: the last one knew the two others when it joined.
    const joined = JSON.parse(procs.get('c')!.stdout.split('\n').find((l) => l.includes('"cluster joined"'))!) as { nodes: string[] };
    assert.deepEqual(joined.nodes.sort(), ['a', 'b']);
  });

  it('QoS 0, 1 and 2 published with mosquitto_pub on node a reach MQTT.js on node b and mosquitto_sub on node c', async () => {
    const onB = await listen('b', 'x/#');
    const sub = spawnProc('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(ports.get('c')), '-V', 'mqttv311', '-t', 'x/#', '-q', '2', '-v', '-C', '3', '-W', '10'], { limitMs: 15_000 });
    await eventually(async () => (await redis.smembers('moat:cluster:filters:c')).includes('x/#'), 5000, 'node c registered x/#');
    await sleep(100);
    for (const qos of [0, 1, 2]) await mosquittoPub('a', ['-t', `x/q${qos}`, '-m', `hello at qos ${qos}`, '-q', String(qos)]);
    await waitFor(() => onB.got.length === 3, 5000, 'node b got three messages');
    assert.deepEqual(onB.got, [['x/q0', 'hello at qos 0'], ['x/q1', 'hello at qos 1'], ['x/q2', 'hello at qos 2']]);
    assert.deepEqual(onB.packets.map((p) => p.qos), [0, 1, 2]);
    await sub.waitExit(10_000);
    assert.deepEqual(sub.stdout.trim().split('\n'), ['x/q0 hello at qos 0', 'x/q1 hello at qos 1', 'x/q2 hello at qos 2']);
  });

  it('a message crosses only to the nodes with a matching subscription, once each', async () => {
    const onB = await listen('b', 'only-b/#');
    await listen('b', 'only-b/+'); // a second, overlapping subscription on b: still one crossing
    const before = { b: await inboxLength('b'), c: await inboxLength('c'), a: await inboxLength('a') };
    const pub = await connect('a');
    for (let i = 0; i < 10; i++) await pub.publishAsync('only-b/t', `m${i}`, { qos: 1 });
    await waitFor(() => onB.got.length === 10, 5000, 'node b got ten messages');
    assert.equal(await inboxLength('b') - before.b, 10, 'ten entries in node b\'s inbox');
    assert.equal(await inboxLength('c') - before.c, 0, 'nothing sent to node c');
    assert.equal(await inboxLength('a') - before.a, 0, 'nothing sent back to the publishing node');
  });

  it('MQTT 5 properties, subscription identifiers and retain-as-published survive the hop', async () => {
    const onC = await listen('c', 'props/#', { qos: 1, rap: true, properties: { subscriptionIdentifier: 7 } });
    const pub = await connect('a');
    await pub.publishAsync('props/p', 'with properties', {
      qos: 1, retain: true,
      properties: {
        contentType: 'text/plain', responseTopic: 'reply/here', correlationData: Buffer.from('c0ffee', 'hex'), payloadFormatIndicator: true,
        userProperties: { origin: 'node-a', kind: 'test' }, messageExpiryInterval: 300,
      },
    });
    await waitFor(() => onC.packets.length === 1, 5000, 'node c got it');
    const props = onC.packets[0]!.properties!;
    assert.equal(props.contentType, 'text/plain');
    assert.equal(props.responseTopic, 'reply/here');
    assert.deepEqual(props.correlationData, Buffer.from('c0ffee', 'hex'));
    assert.equal(props.payloadFormatIndicator, true);
    assert.deepEqual({ ...props.userProperties }, { origin: 'node-a', kind: 'test' });
    assert.deepEqual(props.subscriptionIdentifier, 7, 'the subscriber\'s own identifier, added on its node');
    assert.ok(props.messageExpiryInterval !== undefined && props.messageExpiryInterval <= 300 && props.messageExpiryInterval > 290);
    assert.equal(onC.packets[0]!.retain, true, 'retain as published');
    await pub.publishAsync('props/p', '', { qos: 1, retain: true });
  });

  it('a retained message published on one node is sent to a new subscriber on another', async () => {
    await mosquittoPub('a', ['-t', 'kept/one', '-m', 'retained on a', '-r', '-q', '1']);
    await sleep(300);
    const onC = await listen('c', 'kept/#', { qos: 1 });
    await waitFor(() => onC.got.length === 1, 5000, 'the retained message on node c');
    assert.deepEqual(onC.got, [['kept/one', 'retained on a']]);
    assert.equal(onC.packets[0]!.retain, true);
    await mosquittoPub('b', ['-t', 'kept/one', '-m', '', '-r', '-q', '1']); // cleared from node b: gone everywhere
    await sleep(300);
    const late = await listen('a', 'kept/#', { qos: 1 });
    await sleep(300);
    assert.deepEqual(late.got, [], 'cleared on every node');
  });

  it('a shared group with members on three nodes gets every message exactly once', async () => {
    const members = await Promise.all(NODES.map((node) => listen(node, '$share/workers/jobs/#', { qos: 1 })));
    await sleep(200);
    const pub = await connect('a');
    for (let i = 0; i < 30; i++) await pub.publishAsync(`jobs/${i}`, `job ${i}`, { qos: 1 });
    await waitFor(() => members.reduce((n, m) => n + m.got.length, 0) >= 30, 5000, 'thirty jobs handed out');
    await sleep(300);
    const all = members.flatMap((m) => m.got.map(([, text]) => text)).sort();
    assert.equal(all.length, 30, `each job once: ${all.join(', ')}`);
    assert.equal(new Set(all).size, 30);
    assert.ok(members.every((m) => m.got.length > 0), `every node's member got some: ${members.map((m) => m.got.length).join(', ')}`);
  });

  it('a client identifier connecting on another node takes its session over: DISCONNECT 0x8E there, subscriptions and queue follow', async () => {
    const options = { clientId: 'mover', clean: false, properties: { sessionExpiryInterval: 600 } };
    const onA = await connect('a', options);
    await onA.subscribeAsync('move/#', { qos: 1 });
    const kicked = new Promise<number | undefined>((resolve) => onA.on('disconnect', (packet) => resolve(packet.reasonCode)));
    // Listening before the CONNACK, as queued messages would follow it at once.
    const onB = mqtt.connect(`mqtt://127.0.0.1:${ports.get('b')}`, { protocolVersion: 5, reconnectPeriod: 0, ...options });
    clients.push(onB);
    const connack = await new Promise<mqtt.IConnackPacket>((resolve) => onB.once('connect', resolve));
    assert.equal(await kicked, 0x8e, 'the connection on node a: Session taken over');
    assert.equal(connack.sessionPresent, true, 'the session came with it');
    const gotB: string[] = [];
    onB.on('message', (_topic, payload) => gotB.push(payload.toString()));
    await eventually(async () => (await redis.smembers('moat:cluster:filters:b')).includes('move/#'), 5000, 'node b has the subscription');
    await mosquittoPub('c', ['-t', 'move/1', '-m', 'to the new node', '-q', '1']);
    await waitFor(() => gotB.length === 1, 5000, 'delivered on node b');
    assert.equal(await redis.hget('moat:cluster:owners', 'mover'), 'b');
    // Offline on b: what is published waits in its queue, and follows the session to node c.
    onB.end(true);
    await sleep(200);
    for (let i = 0; i < 5; i++) await mosquittoPub('a', ['-t', 'move/q', '-m', `queued ${i}`, '-q', '1']);
    await sleep(300);
    const onC = mqtt.connect(`mqtt://127.0.0.1:${ports.get('c')}`, { protocolVersion: 5, reconnectPeriod: 0, ...options });
    clients.push(onC);
    const gotC: string[] = [];
    onC.on('message', (_topic, payload) => gotC.push(payload.toString()));
    const second = await new Promise<mqtt.IConnackPacket>((resolve) => onC.once('connect', resolve));
    assert.equal(second.sessionPresent, true);
    await waitFor(() => gotC.length === 5, 5000, 'the queue followed');
    assert.deepEqual(gotC, ['queued 0', 'queued 1', 'queued 2', 'queued 3', 'queued 4']);
    assert.equal(await redis.hget('moat:cluster:owners', 'mover'), 'c');
    assert.equal(await redis.exists('moat:node:b:subs:mover'), 0, 'gone from node b\'s store');
  });

  it('two CONNECTs with one client identifier at once, on two nodes and twice on one: one connection keeps the session', async () => {
    const options = { clientId: 'twin', clean: false, properties: { sessionExpiryInterval: 600 } };
    const first = await connect('c', options);
    await first.subscribeAsync('twin/#', { qos: 1 });
    const open = (node: Node): MqttClient => {
      const client = mqtt.connect(`mqtt://127.0.0.1:${ports.get(node)}`, { protocolVersion: 5, reconnectPeriod: 0, ...options });
      client.on('error', () => {});
      clients.push(client);
      return client;
    };
    const contenders = [open('a'), open('b'), open('b')];
    await sleep(1500);
    const connected = contenders.filter((c) => c.connected);
    assert.equal(connected.length, 1, `one connection left, not ${connected.length}`);
    assert.equal(first.connected, false, 'the first one was taken over');
    const owner = await redis.hget('moat:cluster:owners', 'twin');
    const winner = NODES.find((n) => ports.get(n) === (connected[0]!.options.port as number));
    assert.equal(owner, winner, 'the owner is the node of the connection left');
    await eventually(async () => (await redis.smembers(`moat:cluster:filters:${winner}`)).includes('twin/#'), 5000, 'its subscription came along');
  });

  it('an inbox entry Redis holds twice (a batch run again) or that is read again after a crash is routed once: QoS 2 exactly once', async () => {
    const options = { clientId: 'twice', clean: false, properties: { sessionExpiryInterval: 600 } };
    const first = await connect('a', options);
    await first.subscribeAsync('twice/#', { qos: 2 });
    await first.endAsync();
    // Entries as node "x" writes them: one sender number, twice (its batch sent again after a lost reply), then the next.
    const entry = (text: string): Buffer => {
      const writer = new FrameWriter();
      writer.publish({
        topic: 'twice/t', payload: Buffer.from(text), qos: 2, retain: false, deliver: true, retainStamp: 0, origin: 0,
        expiresAt: undefined, properties: undefined, groups: [], id: Date.now(),
      });
      return writer.take()!;
    };
    const seq = Date.now() * 1000;
    const inbox = 'moat:cluster:inbox:a';
    const once = entry('once');
    await redis.xadd(inbox, '*', 'f', once, 'n', 'x', 's', String(seq));
    await redis.xadd(inbox, '*', 'f', once, 'n', 'x', 's', String(seq));
    await redis.xadd(inbox, '*', 'f', entry('next'), 'n', 'x', 's', String(seq + 1));
    await eventually(async () => (await redis.hget('moat:cluster:applied:a', 'x')) === String(seq + 1), 5000, 'routed by node a');
    await sleep(300);
    // Read again: node a killed, its consumer group rewound as if it had died before acknowledging anything.
    procs.get('a')!.kill('SIGKILL');
    await procs.get('a')!.exited;
    await redis.xgroup('SETID', inbox, 'moat', '0');
    await startNode('a');
    const again = mqtt.connect(`mqtt://127.0.0.1:${ports.get('a')}`, { protocolVersion: 5, reconnectPeriod: 0, ...options });
    clients.push(again);
    const got: string[] = [];
    again.on('message', (_topic, payload) => got.push(payload.toString()));
    await waitFor(() => got.length >= 2, 5000, 'the queued messages');
    await sleep(1000);
    assert.deepEqual(got, ['once', 'next']);
  });

  it('QoS 1 messages acknowledged while the subscriber\'s node was killed wait in its inbox and arrive once it is back', async () => {
    const first = await connect('b', { clientId: 'keeper', clean: false, properties: { sessionExpiryInterval: 600 } });
    await first.subscribeAsync('durable/#', { qos: 1 });
    await sleep(200);
    first.end(true);
    procs.get('b')!.kill('SIGKILL');
    await procs.get('b')!.exited;
    const pub = await connect('a');
    for (let i = 0; i < 20; i++) await pub.publishAsync('durable/t', `kept ${i}`, { qos: 1 }); // each PUBACK: in node b's inbox
    await startNode('b');
    // Listening before the CONNACK: the queued messages follow it at once.
    const again = mqtt.connect(`mqtt://127.0.0.1:${ports.get('b')}`, { protocolVersion: 5, reconnectPeriod: 0, clientId: 'keeper', clean: false, properties: { sessionExpiryInterval: 600 } });
    clients.push(again);
    const got: string[] = [];
    again.on('message', (_topic, payload) => got.push(payload.toString()));
    await waitFor(() => got.length >= 20, 10_000, 'twenty messages after the restart');
    await sleep(300);
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `kept ${i}`));
  });

  it('a node that stops answering is declared dead, and once its sessions are adopted nothing is routed to it any more; back, it drops what others took and rejoins', async () => {
    await listen('c', 'dying/#', { qos: 1 });
    await eventually(async () => (await redis.smembers('moat:cluster:filters:c')).includes('dying/#'), 5000, 'registered');
    const staleOptions = { clientId: 'stale', clean: false, properties: { sessionExpiryInterval: 600 } };
    const stale = await connect('c', staleOptions);
    await stale.subscribeAsync('stale/#', { qos: 1 });
    let staleClosed = false;
    stale.on('close', () => (staleClosed = true));
    procs.get('c')!.kill('SIGSTOP');
    try {
      const declaredDead = (): boolean => procs.get('a')!.stdout.split('\n').some((l) => l.includes('a node stopped answering') && l.includes('"node":"c"'));
      await waitFor(declaredDead, 15_000, 'node a declares c dead');
      await eventually(async () => !(await redis.hkeys('moat:cluster:nodes')).includes('c'), 5000, 'c removed from the nodes');
      // Its filters are routed to until a survivor has adopted its sessions (they may hold them): that survivor's
      // event takes them out everywhere, and it logs the adoption after the event.
      await waitFor(() => adoptionsOf('c') === 1, 15_000, 'a survivor adopted the sessions of c');
      const before = await inboxLength('c');
      const pub = await connect('a');
      const reasonCodes: Array<number | undefined> = [];
      pub.on('packetreceive', (packet) => {
        if (packet.cmd === 'puback') reasonCodes.push(packet.reasonCode);
      });
      await pub.publishAsync('dying/t', 'to nobody', { qos: 1 });
      assert.deepEqual(reasonCodes, [0x10], 'No matching subscribers: c is gone');
      assert.equal(await inboxLength('c'), before);
      // The client of the stopped node connects to another: its session comes out of node c's store.
      const moved = mqtt.connect(`mqtt://127.0.0.1:${ports.get('a')}`, { protocolVersion: 5, reconnectPeriod: 0, ...staleOptions });
      clients.push(moved);
      const connack = await new Promise<mqtt.IConnackPacket>((resolve) => moved.once('connect', resolve));
      assert.equal(connack.sessionPresent, true);
    } finally {
      procs.get('c')!.kill('SIGCONT');
    }
    // Back: it finds itself removed, drops the session node a owns now (closing the old connection) and its clients,
    // registers again, and its subscribers get messages again.
    await waitFor(() => procs.get('c')!.stdout.includes('declared dead by the others; rejoining'), 5000, 'c notices');
    await waitFor(() => staleClosed, 5000, 'the old connection on c closed');
    await eventually(async () => (await redis.hkeys('moat:cluster:nodes')).includes('c'), 5000, 'c back among the nodes');
    assert.equal(await redis.hget('moat:cluster:owners', 'stale'), 'a', 'node c did not take the session back');
    await sleep(300);
    const onC = await listen('c', 'back/#', { qos: 1 });
    await eventually(async () => (await redis.smembers('moat:cluster:filters:c')).includes('dying/#'), 5000, 'c registered its filters again');
    const pub = await connect('a');
    await pub.publishAsync('back/t', 'welcome back', { qos: 1 });
    await waitFor(() => onC.got.length === 1, 5000, 'delivered to c again');
  });

  it('a killed node: a survivor publishes its clients\' wills once, and its persistent sessions resume on another node', async () => {
    const willsOnA = await listen('a', 'wills/#', { qos: 1 });
    const willsOnB = await listen('b', 'wills/#', { qos: 1 });
    await connect('c', { clientId: 'will-holder', will: { topic: 'wills/c', payload: Buffer.from('gone with node c'), qos: 1, retain: false } });
    const options = { clientId: 'resumer', clean: false, properties: { sessionExpiryInterval: 600 } };
    const first = await connect('c', options);
    await first.subscribeAsync('resume/#', { qos: 1 });
    await first.endAsync();
    await eventually(async () => (await redis.smembers('moat:cluster:filters:c')).includes('resume/#'), 5000, 'registered on c');
    await mosquittoPub('a', ['-t', 'resume/1', '-m', 'queued on c', '-q', '1']);
    await eventually(async () => (await redis.hlen('moat:node:c:queue:resumer')) === 1, 5000, 'queued in node c\'s store');
    const adoptionsBefore = adoptionsOf('c');
    procs.get('c')!.kill('SIGKILL');
    await waitFor(() => willsOnA.got.length + willsOnB.got.length >= 2, 15_000, 'the will published by a survivor');
    await sleep(1000);
    assert.deepEqual(willsOnA.got, [['wills/c', 'gone with node c']], 'once, on every node');
    assert.deepEqual(willsOnB.got, [['wills/c', 'gone with node c']]);
    const reapers = ['a', 'b'].filter((n) => procs.get(n as Node)!.stdout.includes('"cluster: will of a dead node\'s client published"'));
    assert.equal(reapers.length, 1, 'one survivor published it');
    // A claim made during the adoption waits for it for 3 s (then 0x88, and a client tries again): this one waits first.
    await waitFor(() => adoptionsOf('c') === adoptionsBefore + 1, 15_000, 'a survivor adopted the sessions of c');
    const again = mqtt.connect(`mqtt://127.0.0.1:${ports.get('a')}`, { protocolVersion: 5, reconnectPeriod: 0, ...options });
    clients.push(again);
    const got: string[] = [];
    again.on('message', (_topic, payload) => got.push(payload.toString()));
    const connack = await new Promise<mqtt.IConnackPacket>((resolve) => again.once('connect', resolve));
    assert.equal(connack.sessionPresent, true, 'the session came from the dead node\'s store');
    await waitFor(() => got.length === 1, 5000, 'the queued message');
    assert.deepEqual(got, ['queued on c']);
    assert.equal(await redis.hexists('moat:node:c:sessions', 'resumer'), 0, 'taken out of node c\'s store');
    await mosquittoPub('b', ['-t', 'resume/2', '-m', 'routed to a now', '-q', '1']);
    await waitFor(() => got.length === 2, 5000, 'its subscription lives on node a');
  });

  it('a node cut from Redis for longer than dead_after_ms disconnects its clients and refuses new ones until Redis is back', async () => {
    const client = await connect('b');
    let closed = false;
    client.on('close', () => (closed = true));
    redisServer.kill('SIGSTOP');
    try {
      await waitFor(() => closed, 12_000, 'the client on node b disconnected');
      assert.match(procs.get('b')!.stdout, /cut from Redis for nearly dead_after_ms/);
      const refused = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.get('b')}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000 }).then(
        () => undefined, (err: { code?: number }) => err.code,
      );
      assert.equal(refused, 0x88, 'CONNACK 0x88 Server unavailable');
    } finally {
      redisServer.kill('SIGCONT');
    }
    await waitFor(() => procs.get('b')!.stdout.includes('serving clients again'), 10_000, 'node b serves again');
    const back = await connect('b');
    assert.ok(back.connected);
    // Node a was cut off too (fenced or not, as its beats fell): the next test starts once both beat again and have
    // read each other's beats (and removed and re-registered, should one have taken the other for dead).
    await sleep(2000);
    await eventually(async () => {
      const beats = await redis.hgetall('moat:cluster:nodes');
      const now = Number((await redis.time())[0]) * 1000;
      return ['a', 'b'].every((n) => beats[n] !== undefined && now - Number(beats[n]) < 1000);
    }, 10_000, 'nodes a and b beating');
  });

  it('redis-server restarted under QoS 1 load (AOF): the nodes reconnect, and every acknowledged message arrives', async () => {
    const received = new Set<string>();
    const logFrom = { a: procs.get('a')!.stdout.length, b: procs.get('b')!.stdout.length };
    const sub = await listen('b', 'restart/#', { qos: 1 });
    sub.client.on('message', (_topic, payload) => received.add(payload.toString()));
    await eventually(async () => (await redis.smembers('moat:cluster:filters:b')).includes('restart/#'), 5000, 'registered');
    const pub = await connect('a');
    const acknowledged: string[] = [];
    let publishing = true;
    const publisher = (async () => {
      for (let i = 0; publishing; i++) {
        await pub.publishAsync('restart/t', `m${i}`, { qos: 1 });
        acknowledged.push(`m${i}`);
      }
    })();
    await waitFor(() => acknowledged.length >= 100, 5000, 'publishing');
    // A clean stop (the AOF is complete), then the same server again on the same port and directory.
    redisServer.kill('SIGTERM');
    await redisServer.exited;
    const countAtStop = acknowledged.length;
    redisServer = (await startRedis(dir, [], redisPort)).proc;
    await waitFor(() => acknowledged.length >= countAtStop + 100, 15_000, 'acknowledgements again after the restart').catch((err: Error) => {
      for (const n of ['a', 'b'] as const) console.log('LOG', n, procs.get(n)!.stdout.split('\n').filter((l) => /"level":(40|50)/.test(l)).slice(-12).join('\n'));
      throw err;
    });
    publishing = false;
    await publisher;
    await waitFor(() => acknowledged.every((m) => received.has(m)), 10_000, 'every acknowledged message delivered').catch(async (err: Error) => {
      const missing = acknowledged.filter((m) => !received.has(m));
      console.log('MISSING', missing.length, missing.slice(0, 5), missing.slice(-5), countAtStop, acknowledged.length);
      for (const n of ['a', 'b'] as const) console.log(n, procs.get(n)!.stdout.slice(logFrom[n]));
      const inbox = 'moat:cluster:inbox:b';
      console.log('DIAG', JSON.stringify({
        xlen: await redis.xlen(inbox).catch(String), groups: await redis.xinfo('GROUPS', inbox).catch(String),
        pending: await redis.xpending(inbox, 'moat').catch(String), applied: await redis.hgetall('moat:cluster:applied:b').catch(String),
        last: await redis.xrevrange(inbox, '+', '-', 'COUNT', 3).then((es) => es.map(([id, f]) => [id, f.filter((_, i) => i > 1)])).catch(String),
        nodes: await redis.hgetall('moat:cluster:nodes').catch(String), filters: await redis.smembers('moat:cluster:filters:b').catch(String),
        subConnected: sub.client.connected,
      }));
      throw err;
    });
  });
});

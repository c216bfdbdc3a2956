import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { encodePacket, PacketType } from '../../src/protocol/index.js';
import { connectClient, delay, RawClient, waitFor } from '../helpers/broker.js';
import { rawConnectV5, rawPublishV5 } from '../helpers/codec-v5.js';
import { idOn } from '../helpers/multicore.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/**
 * Multi-core mode as run: the `moat` command with `workers: 2`, real MQTT.js and
 * mosquitto clients, client identifiers chosen so that publisher and subscriber
 * land on different workers (the primary routes by `workerFor`).
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const WORKERS = 2;

/** Unique topics for each test. */
let counter = 0;

/** The worker processes of a primary, lowest PID (worker 0, forked first) first; read from /proc (no procps needed). */
function workerPids(primary: number): number[] {
  return readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/).filter((p) => p !== '').map(Number).sort((a, b) => a - b);
}

interface RunningMoat {
  proc: Proc;
  port: number;
  url: string;
}

async function startMoat(dir: string, yaml: string, limitMs = 90_000): Promise<RunningMoat> {
  const port = await freePort();
  const file = path.join(dir, `moat-${port}.yaml`);
  writeFileSync(file, `workers: ${WORKERS}\nlisteners:\n  - port: ${port}\n    allow_anonymous: true\nlog:\n  level: info\n  format: json\n${yaml}`);
  const proc = spawnProc(process.execPath, [MOAT, '--config', file], { cwd: dir, limitMs });
  await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
  return { proc, port, url: `mqtt://127.0.0.1:${port}` };
}

async function stopMoat(m: RunningMoat): Promise<void> {
  m.proc.kill('SIGTERM');
  const status = await m.proc.waitExit(20_000);
  assert.equal(status.code, 0, `exit ${JSON.stringify(status)}; stderr: ${m.proc.stderr}`);
}

/** Connects with listeners in place before the CONNACK (queued messages may follow it at once). */
async function connectCollecting(url: string, options: IClientOptions): Promise<{
  client: MqttClient; connack: IConnackPacket; got: ReturnType<typeof collect>;
}> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  const got = collect(client);
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return { client, connack, got };
}

function collect(client: MqttClient): Array<{ topic: string; payload: string; retain: boolean }> {
  const got: Array<{ topic: string; payload: string; retain: boolean }> = [];
  client.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
  return got;
}

describe('multi-core mode (workers: 2)', () => {
  let dir: string;
  let moat: RunningMoat;
  const clients: MqttClient[] = [];
  const client = async (id: string, options: Parameters<typeof connectClient>[1] = {}): Promise<MqttClient> => {
    const c = await connectClient(moat.url, { clientId: id, ...options });
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-multicore-'));
    moat = await startMoat(dir, 'store:\n  type: memory\nsys_interval: 0.2\n');
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await stopMoat(moat).catch(() => {});
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the primary spreads clients over the workers by client identifier (each is logged by the worker it maps to)', async () => {
    const pids = workerPids(moat.proc.pid);
    const ids: Array<[string, number]> = [[idOn(0, 'here'), 0], [idOn(1, 'elsewhere'), 1], [idOn(1, 'elsewhere'), 1], [idOn(0, 'here'), 0]];
    for (const [id] of ids) await client(id);
    const line = (id: string): string | undefined => moat.proc.stdout.split('\n').find((l) => l.includes('"client connected"') && l.includes(`"clientId":"${id}"`));
    await waitFor(() => ids.every(([id]) => line(id) !== undefined), 3000, 'every client logged');
    for (const [id, worker] of ids) assert.equal((JSON.parse(line(id)!) as { pid: number }).pid, pids[worker], `${id} on worker ${worker}`);
  });

  for (const qos of [0, 1, 2] as const) {
    it(`[MQTT-4.5.0-1] a QoS ${qos} message reaches subscribers on both workers, whichever worker the publisher is on`, async () => {
      const topic = `mc/qos${qos}/${counter++}`;
      const subs = [await client(idOn(0, 'sub')), await client(idOn(1, 'sub'))];
      const got = subs.map(collect);
      for (const s of subs) await s.subscribeAsync(topic, { qos });
      for (const worker of [0, 1]) {
        const pub = await client(idOn(worker, 'pub'));
        await pub.publishAsync(topic, `from-${worker}`, { qos });
      }
      await waitFor(() => got.every((g) => g.length === 2), 3000, 'both messages at both subscribers');
      for (const g of got) assert.deepStrictEqual(g.map((m) => m.payload).sort(), ['from-0', 'from-1']);
    });
  }

  it('[MQTT-4.5.0-1] a message published on the other worker right after SUBACK for a filter new to both is delivered (50 in a row)', async () => {
    const sub = await client(idOn(0, 'barrier-sub'));
    const pub = await client(idOn(1, 'barrier-pub'));
    const got = collect(sub);
    for (let i = 0; i < 50; i++) {
      const topic = `mc/barrier/${counter++}/${i}`;
      await sub.subscribeAsync(topic, { qos: 0 });
      pub.publish(topic, String(i), { qos: 0 });
    }
    await waitFor(() => got.length === 50, 3000, '50 messages');
    assert.deepStrictEqual(got.map((m) => Number(m.payload)), [...Array(50).keys()]);
  });

  it('[MQTT-3.4.2-1] an MQTT 5 PUBACK says 0x10 (no matching subscribers) only when no worker has one', async () => {
    const topic = `mc/puback/${counter++}`;
    const raw = await RawClient.connect(moat.port, 5);
    raw.sendBytes(rawConnectV5({ clientId: idOn(0, 'puback'), flags: 0x02 }));
    assert.equal((await raw.nextPacket()).type, PacketType.CONNACK);
    const pubackCode = async (packetId: number): Promise<number> => {
      raw.sendBytes(rawPublishV5({ qos: 1, topic, packetId, payload: [1] }));
      const ack = await raw.nextPacket() as unknown as { type: number; reasonCode?: number };
      assert.equal(ack.type, PacketType.PUBACK);
      return ack.reasonCode ?? 0;
    };
    assert.equal(await pubackCode(1), 0x10, 'nobody subscribes yet');
    const sub = await client(idOn(1, 'puback-sub'));
    await sub.subscribeAsync(topic, { qos: 1 });
    assert.equal(await pubackCode(2), 0x00, 'a subscriber on the other worker counts');
    raw.destroy();
  });

  it('[MQTT-3.10.4-2] after an unsubscribe nothing more arrives from the other worker; a new subscribe delivers again', async () => {
    const topic = `mc/unsub/${counter++}`;
    const sub = await client(idOn(1, 'unsub-sub'));
    const pub = await client(idOn(0, 'unsub-pub'));
    const got = collect(sub);
    await sub.subscribeAsync(topic);
    await pub.publishAsync(topic, 'one', { qos: 1 });
    await waitFor(() => got.length === 1, 3000, 'the first message');
    await sub.unsubscribeAsync(topic);
    await pub.publishAsync(topic, 'two', { qos: 1 });
    await delay(300);
    assert.deepStrictEqual(got.map((m) => m.payload), ['one']);
    await sub.subscribeAsync(topic);
    await pub.publishAsync(topic, 'three', { qos: 1 });
    await waitFor(() => got.length === 2, 3000, 'the third message');
    assert.deepStrictEqual(got.map((m) => m.payload), ['one', 'three']);
  });

  it('[MQTT-3.3.1-6] [MQTT-3.3.1-10] a retained message set on one worker is sent to new subscribers on the other, and cleared from both', async () => {
    const topic = `mc/retained/${counter++}`;
    const pub = await client(idOn(1, 'ret-pub'));
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });
    await delay(100);
    for (const worker of [0, 1]) {
      const sub = await client(idOn(worker, 'ret-sub'));
      const got = collect(sub);
      await sub.subscribeAsync(topic);
      await waitFor(() => got.length === 1, 3000, `retained message on worker ${worker}`);
      assert.deepStrictEqual(got[0], { topic, payload: 'kept', retain: true });
    }
    const clearer = await client(idOn(0, 'ret-clear'));
    await clearer.publishAsync(topic, '', { qos: 1, retain: true });
    await delay(200);
    for (const worker of [0, 1]) {
      const sub = await client(idOn(worker, 'ret-after'));
      const got = collect(sub);
      await sub.subscribeAsync(topic);
      await delay(200);
      assert.deepStrictEqual(got, [], `worker ${worker} has no retained message left`);
    }
  });

  it('[MQTT-3.3.1-5] competing retained publishes from both workers leave the same retained message on both', async () => {
    const topic = `mc/race/${counter++}`;
    const pubs = [await client(idOn(0, 'race')), await client(idOn(1, 'race'))];
    for (let round = 0; round < 20; round++) {
      await Promise.all(pubs.map((p, w) => p.publishAsync(topic, `${round}-${w}`, { qos: 1, retain: true })));
    }
    await delay(300);
    const seen: string[] = [];
    for (const worker of [0, 1]) {
      const sub = await client(idOn(worker, 'race-sub'));
      const got = collect(sub);
      await sub.subscribeAsync(topic);
      await waitFor(() => got.length === 1, 3000, 'the retained message');
      seen.push(got[0]!.payload);
    }
    assert.equal(seen[0], seen[1], `both workers keep one value: ${seen.join(' vs ')}`);
    assert.match(seen[0]!, /^19-[01]$/);
  });

  it('[MQTT-3.1.2-4] [MQTT-3.2.2-2] a persistent session resumes on its worker with what was published on the other while it was away', async () => {
    const id = idOn(0, 'persistent');
    const topic = `mc/persist/${counter++}`;
    const first = await connectClient(moat.url, { clientId: id, clean: false });
    await first.subscribeAsync(topic, { qos: 1 });
    await first.endAsync();
    const pub = await client(idOn(1, 'persist-pub'));
    for (let i = 0; i < 5; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    const again = await connectCollecting(moat.url, { clientId: id, clean: false });
    clients.push(again.client);
    const got = again.got;
    await waitFor(() => got.length === 5, 3000, 'the five queued messages');
    assert.equal(again.connack.sessionPresent, true);
    assert.deepStrictEqual(got.map((m) => m.payload), ['0', '1', '2', '3', '4']);
  });

  it('[MQTT-3.1.4-2] a second connection with the same client identifier takes the session over', async () => {
    const id = idOn(1, 'takeover');
    const first = await client(id);
    const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    await client(id);
    await closed;
  });

  it('[MQTT-3.2.2-16] an assigned client identifier brings the client back to the same session', async () => {
    const v5 = { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 300 } };
    // A session with an expiry outlives its connection even when it started clean [MQTT-3.1.2-23].
    const { client: first, connack } = await connectCollecting(moat.url, { ...v5, clean: true, clientId: '' });
    const assigned = connack.properties?.assignedClientIdentifier;
    assert.ok(assigned, 'CONNACK assigns an identifier');
    const topic = `mc/assigned/${counter++}`;
    await first.subscribeAsync(topic, { qos: 1 });
    await first.endAsync();
    for (let i = 0; i < 6; i++) {
      // Whichever worker assigned it, the identifier maps back there.
      const again = await connectCollecting(moat.url, { ...v5, clientId: assigned });
      assert.equal(again.connack.sessionPresent, true, `attempt ${i}`);
      await again.client.endAsync();
    }
  });

  it('shared subscription (MQTT 5.0 §4.8.2) with members on both workers: each message goes to exactly one member', async () => {
    const topic = `mc/shared/${counter++}`;
    const members = [
      await client(idOn(0, 'member'), { protocolVersion: 5 }), await client(idOn(1, 'member'), { protocolVersion: 5 }),
    ];
    const got = members.map(collect);
    for (const m of members) await m.subscribeAsync(`$share/workers/${topic}`, { qos: 1 });
    const pubs = [await client(idOn(0, 'shared-pub')), await client(idOn(1, 'shared-pub'))];
    for (let i = 0; i < 100; i++) await pubs[i % 2]!.publishAsync(topic, String(i), { qos: 1 });
    await waitFor(() => got[0]!.length + got[1]!.length >= 100, 5000, '100 deliveries');
    await delay(200);
    const all = [...got[0]!, ...got[1]!].map((m) => Number(m.payload)).sort((a, b) => a - b);
    assert.deepStrictEqual(all, [...Array(100).keys()], 'every message once, none twice');
    assert.ok(got[0]!.length > 0 && got[1]!.length > 0, `both members served: ${got[0]!.length} / ${got[1]!.length}`);
  });

  it('[MQTT-3.1.2-8] a will from a client on one worker reaches a subscriber on the other', async () => {
    const topic = `mc/will/${counter++}`;
    const sub = await client(idOn(1, 'will-sub'));
    const got = collect(sub);
    await sub.subscribeAsync(topic);
    const socket = net.connect(moat.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const dying = await connectClient(moat.url, { clientId: idOn(0, 'dying'), will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } });
    socket.destroy();
    (dying as unknown as { stream: net.Socket }).stream.destroy(); // the network goes, no DISCONNECT
    await waitFor(() => got.length === 1, 3000, 'the will');
    assert.equal(got[0]!.payload, 'gone');
  });

  it('[MQTT-4.6.0-6] packets a client sends right behind its CONNECT, while the primary hands its socket over, all arrive in order', async () => {
    const topic = `mc/handover/${counter++}`;
    const sub = await client(idOn(0, 'handover-sub'));
    const got = collect(sub);
    await sub.subscribeAsync(topic);
    const count = 300;
    for (let attempt = 0; attempt < 3; attempt++) {
      got.length = 0;
      const socket = net.connect(moat.port, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(encodePacket({
        type: PacketType.CONNECT, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepAlive: 30, clientId: idOn(1, 'streamer'),
      } as never, 4));
      // One write per event-loop turn, so they keep arriving while the socket changes process.
      for (let i = 0; i < count; i++) {
        socket.write(encodePacket({ type: PacketType.PUBLISH, dup: false, qos: 0, retain: false, topic, payload: Buffer.from(String(i)) } as never, 4));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await waitFor(() => got.length === count, 5000, `${count} messages (attempt ${attempt}, got ${got.length})`);
      assert.deepStrictEqual(got.map((m) => Number(m.payload)), [...Array(count).keys()]);
      socket.destroy();
    }
  });

  it('[MQTT-3.1.0-1] a first packet that is not CONNECT is closed by a worker; everyone else carries on', async () => {
    const topic = `mc/robust/${counter++}`;
    const sub = await client(idOn(0, 'robust-sub'));
    const got = collect(sub);
    await sub.subscribeAsync(topic);
    for (const garbage of [Buffer.from([0x30, 0x03, 0x00, 0x01, 0x61]), Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])]) {
      const socket = net.connect(moat.port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(garbage);
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    }
    const pub = await client(idOn(1, 'robust-pub'));
    await pub.publishAsync(topic, 'still here', { qos: 1 });
    await waitFor(() => got.length === 1, 3000, 'a message after the garbage');
  });

  it('[MQTT-3.1.2-2] an unsupported protocol level gets its CONNACK from the worker (return code 1)', async () => {
    const socket = net.connect(moat.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    // CONNECT, protocol "MQTT" level 9, clean session, keep alive 30, client id "lvl".
    socket.write(Buffer.from([0x10, 15, 0, 4, 0x4d, 0x51, 0x54, 0x54, 9, 0x02, 0, 30, 0, 3, 0x6c, 0x76, 0x6c]));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    assert.deepStrictEqual([...Buffer.concat(chunks)], [0x20, 0x02, 0x00, 0x01]);
  });

  it('mosquitto_sub and mosquitto_pub work across the workers', async () => {
    const topic = `mc/mosquitto/${counter++}`;
    const subId = idOn(0, 'msub');
    const sub = spawnProc('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(moat.port), '-i', subId, '-t', topic, '-q', '1', '-C', '2', '-W', '8'], { limitMs: 10_000 });
    await delay(500);
    for (const [i, worker] of [0, 1].entries()) {
      const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(moat.port), '-i', idOn(worker, 'mpub'), '-t', topic, '-q', '1', '-m', `m${i}`]);
      assert.equal(r.code, 0, r.stderr);
    }
    const status = await sub.waitExit(9000);
    assert.equal(status.code, 0, sub.stderr);
    assert.deepStrictEqual(sub.stdout.trim().split('\n').sort(), ['m0', 'm1']);
  });
});

describe('multi-core mode: lifecycle and configuration', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-multicore-life-'));
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('[MQTT-3.1.2-5] queued messages of a persistent session survive a restart (each worker keeps its own SQLite directory)', async () => {
    const storeDir = path.join(dir, 'data');
    const yaml = `store:\n  type: sqlite\n  directory: ${storeDir}\n`;
    const id = idOn(1, 'survivor');
    const topic = `mc/restart/${counter++}`;
    let moat = await startMoat(dir, yaml);
    const sub = await connectClient(moat.url, { clientId: id, clean: false });
    await sub.subscribeAsync(topic, { qos: 1 });
    await sub.endAsync();
    const pub = await connectClient(moat.url, { clientId: idOn(0, 'restart-pub') });
    for (let i = 0; i < 3; i++) await pub.publishAsync(topic, `q${i}`, { qos: 1 });
    await pub.endAsync();
    await stopMoat(moat);
    moat = await startMoat(dir, yaml);
    try {
      const again = await connectCollecting(moat.url, { clientId: id, clean: false });
      await waitFor(() => again.got.length === 3, 5000, 'three queued messages after the restart');
      assert.deepStrictEqual(again.got.map((m) => m.payload), ['q0', 'q1', 'q2']);
      await again.client.endAsync();
    } finally {
      await stopMoat(moat);
    }
  });

  it('[MQTT-4.5.0-1] SUBACK for a filter new to a worker waits until the other worker knows it (that worker stopped with SIGSTOP)', async () => {
    const moat = await startMoat(dir, 'store:\n  type: memory\n');
    const topic = `mc/stopped/${counter++}`;
    const sub = await connectClient(moat.url, { clientId: idOn(0, 'wait-sub') });
    const pub = await connectClient(moat.url, { clientId: idOn(1, 'wait-pub') });
    const got = collect(sub);
    const pids = workerPids(moat.proc.pid);
    // Workers are forked in index order, so the higher PID is worker 1.
    const worker1 = pids[1]!;
    process.kill(worker1, 'SIGSTOP');
    let subacked = false;
    const subscribed = sub.subscribeAsync(topic, { qos: 1 }).then(() => (subacked = true));
    try {
      await delay(800);
      assert.equal(subacked, false, 'no SUBACK while the other worker cannot have heard of the filter');
    } finally {
      process.kill(worker1, 'SIGCONT');
    }
    await subscribed;
    await pub.publishAsync(topic, 'after', { qos: 1 });
    await waitFor(() => got.length === 1, 3000, 'the message from the other worker');
    sub.end(true);
    pub.end(true);
    await stopMoat(moat);
  });

  it('SIGTERM stops the primary and every worker with exit status 0', async () => {
    const moat = await startMoat(dir, 'store:\n  type: memory\n');
    const c = await connectClient(moat.url, { clientId: 'bye' });
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    const pids = workerPids(moat.proc.pid);
    assert.equal(pids.length, WORKERS, `worker processes: ${pids.join(', ')}`);
    await stopMoat(moat);
    await closed;
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`);
  });

  it('a worker that dies stops the broker: the other worker closes its clients and the primary exits 1', async () => {
    const moat = await startMoat(dir, 'store:\n  type: memory\n');
    const survivor = await connectClient(moat.url, { clientId: idOn(0, 'survivor') });
    const closed = new Promise<void>((resolve) => survivor.once('close', () => resolve()));
    const pids = workerPids(moat.proc.pid);
    process.kill(pids[1]!, 'SIGKILL');
    const status = await moat.proc.waitExit(20_000);
    assert.equal(status.code, 1, `exit ${JSON.stringify(status)}`);
    await closed;
    assert.throws(() => process.kill(pids[0]!, 0), /ESRCH/, 'worker 0 is gone too');
    assert.match(moat.proc.stdout, /a worker stopped; stopping the broker/);
  });

  it('workers out of range is a configuration error; --workers is checked too', async () => {
    const file = path.join(dir, 'zero.yaml');
    writeFileSync(file, 'listeners:\n  - port: 1883\nworkers: 0\n');
    const r = await run(process.execPath, [MOAT, '--config', file], { cwd: dir, limitMs: 10_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(`${file}:3`) && r.stderr.includes('workers'), r.stderr);
    const flag = await run(process.execPath, [MOAT, '--workers', 'many'], { cwd: dir, limitMs: 10_000 });
    assert.equal(flag.code, 1, flag.stderr);
    assert.match(flag.stderr, /--workers: expected 1-31, got "many"/);
  });
});

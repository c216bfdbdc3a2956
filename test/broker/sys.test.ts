import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { connectClient, delay, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import {
  barrier, closeAll, collect, expectPacket, expectSilence, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBREC, PUBREL, rawConnected,
  rawPublish, rawSubscribe, uniqueId, waitCount, type Received,
} from '../helpers/integration.js';

const EXPECTED_TOPICS = [
  'version', 'uptime', 'clients/connected', 'clients/disconnected', 'clients/total', 'clients/maximum',
  'subscriptions/count', 'retained messages/count', 'messages/received', 'messages/sent', 'bytes/received',
  'bytes/sent', 'publish/messages/received', 'publish/messages/sent', 'publish/messages/dropped',
].map((t) => `$SYS/broker/${t}`);

type Round = Map<string, string>;

/** Watches $SYS/broker/# and hands out complete rounds of live (non-retained) updates. */
class SysWatcher {
  readonly messages: Received[];
  constructor(readonly client: MqttClient) {
    this.messages = collect(client);
  }

  /** The next full round published after this call (each round is one burst every sysInterval). */
  async nextRound(timeoutMs = 4000): Promise<{ values: Round; count: number }> {
    // Start between two bursts: wait for a quiet moment.
    await this.quiet(150, timeoutMs);
    const start = this.messages.length;
    await waitFor(() => this.messages.slice(start).some((m) => !m.retain), timeoutMs, 'a $SYS round');
    await this.quiet(200, timeoutMs);
    const burst = this.messages.slice(start).filter((m) => !m.retain);
    const values: Round = new Map();
    for (const m of burst) {
      assert.ok(!values.has(m.topic), `${m.topic} twice in one round`);
      values.set(m.topic, m.payload);
    }
    return { values, count: burst.length };
  }

  private async quiet(ms: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = this.messages.length;
      await delay(ms);
      if (this.messages.length === n) return;
      if (Date.now() > deadline) throw new Error('$SYS traffic never paused');
    }
  }
}

function num(round: Round, topic: string): number {
  const v = round.get(`$SYS/broker/${topic}`);
  assert.ok(v !== undefined, `missing $SYS/broker/${topic}`);
  assert.match(v, /^\d+$/, `$SYS/broker/${topic} = ${v}`);
  return Number(v);
}

describe('$SYS topics (integration)', () => {
  let tb: TestBroker;
  let observer: MqttClient;
  let watcher: SysWatcher;
  let c1: MqttClient;
  let c2: MqttClient;
  const persistentId = uniqueId('persist');
  const startedAt = Date.now();

  before(async () => {
    tb = await startBroker({ sysInterval: 1 });
    observer = await connectClient(tb.url, { keepalive: 0 });
    watcher = new SysWatcher(observer);
    await observer.subscribeAsync('$SYS/broker/#', { qos: 0 });
    const persist = await connectClient(tb.url, { keepalive: 0, clientId: persistentId, clean: false });
    await persist.subscribeAsync('p/#', { qos: 1 });
    c1 = await connectClient(tb.url, { keepalive: 0 });
    c2 = await connectClient(tb.url, { keepalive: 0 });
    await c1.subscribeAsync(['c1/a', 'c1/b'], { qos: 0 });
    await c2.subscribeAsync('c2/t', { qos: 0 });
    // Four clients were connected at once; now the persistent one goes offline.
    await persist.endAsync();
    await waitFor(() => tb.broker.stats.connectedClients === 3);
  });
  after(async () => {
    await closeAll(observer, c1, c2);
    await tb.close();
  });

  it('publishes every $SYS/broker topic as a retained message, sent on subscription', async () => {
    await waitFor(() => EXPECTED_TOPICS.every((t) => watcher.messages.some((m) => m.topic === t)), 3000, 'all $SYS topics');
    const firstOfEach = EXPECTED_TOPICS.map((t) => watcher.messages.find((m) => m.topic === t)!);
    assert.ok(firstOfEach.every((m) => m.retain), 'the values present at SUBSCRIBE time come as retained messages');
  });

  it('repeats the topics every sysInterval with values that reflect the broker', async () => {
    const { values } = await watcher.nextRound();
    for (const t of EXPECTED_TOPICS) assert.ok(values.has(t), `round lacks ${t}`);

    const version = values.get('$SYS/broker/version')!;
    assert.ok(version.length > 0);
    assert.ok(version.includes(tb.broker.version), `version "${version}" names ${tb.broker.version}`);
    const uptime = values.get('$SYS/broker/uptime')!;
    assert.match(uptime, /^\d+ seconds$/);
    assert.ok(Number.parseInt(uptime, 10) <= Math.ceil((Date.now() - startedAt) / 1000));

    assert.equal(num(values, 'clients/connected'), 3, 'observer, c1, c2');
    assert.equal(num(values, 'clients/disconnected'), 1, 'the offline persistent session');
    assert.equal(num(values, 'clients/total'), 4);
    assert.equal(num(values, 'clients/maximum'), 4);
    assert.equal(num(values, 'subscriptions/count'), 5, '$SYS/broker/#, p/#, c1/a, c1/b, c2/t');
    assert.ok(num(values, 'messages/received') > 0);
    assert.ok(num(values, 'messages/sent') > 0);
    assert.ok(num(values, 'bytes/received') > 0);
    assert.ok(num(values, 'bytes/sent') > 0);
    num(values, 'publish/messages/received');
    num(values, 'publish/messages/sent');
    num(values, 'publish/messages/dropped');
    num(values, 'retained messages/count');
  });

  it('uptime grows between rounds', async () => {
    const a = await watcher.nextRound();
    const b = await watcher.nextRound();
    const ua = Number.parseInt(a.values.get('$SYS/broker/uptime')!, 10);
    const ub = Number.parseInt(b.values.get('$SYS/broker/uptime')!, 10);
    assert.ok(ub > ua, `uptime ${ua} then ${ub}`);
  });

  it('message, byte and publish counters count exactly what happened between two rounds', async () => {
    const a = await watcher.nextRound();
    const big = Buffer.alloc(10 * 1024, 0x61);
    const c2Got = collect(c2);
    // Two PUBLISH packets and one UNSUBSCRIBE from c1: one message reaches c2, one finds only the offline
    // persistent session (QoS 0 to an offline client is dropped).
    c1.publish('p/x', big, { qos: 0 });
    c1.publish('c2/t', big, { qos: 0 });
    await barrier(c1);
    await waitCount(c2Got, 1);
    const b = await watcher.nextRound();

    const d = (t: string): number => num(b.values, t) - num(a.values, t);
    assert.equal(d('publish/messages/received'), 2);
    assert.equal(d('publish/messages/dropped'), 1);
    // Sent: the round of $SYS messages to the observer after round a, plus the copy for c2.
    assert.equal(d('publish/messages/sent'), a.count + 1);
    assert.equal(d('messages/received'), 3, 'PUBLISH, PUBLISH, UNSUBSCRIBE');
    assert.equal(d('messages/sent'), a.count + 2, '$SYS round, PUBLISH to c2, UNSUBACK');
    assert.ok(d('bytes/received') >= 2 * big.length + 2 * 5, `bytes/received grew by ${d('bytes/received')}`);
    assert.ok(d('bytes/received') < 2 * big.length + 100, `bytes/received grew by ${d('bytes/received')}`);
    assert.ok(d('bytes/sent') >= big.length, `bytes/sent grew by ${d('bytes/sent')}`);
    assert.ok(d('bytes/sent') < big.length + 100 + a.count * 80, `bytes/sent grew by ${d('bytes/sent')}`);
  });

  it('retained messages/count follows stored and cleared retained messages', async () => {
    const a = await watcher.nextRound();
    await c1.publishAsync('ret/one', 'x', { qos: 1, retain: true });
    await c1.publishAsync('ret/two', 'y', { qos: 1, retain: true });
    const b = await watcher.nextRound();
    assert.equal(num(b.values, 'retained messages/count') - num(a.values, 'retained messages/count'), 2);
    await c1.publishAsync('ret/one', Buffer.alloc(0), { qos: 1, retain: true });
    const c = await watcher.nextRound();
    assert.equal(num(c.values, 'retained messages/count') - num(a.values, 'retained messages/count'), 1);
  });

  it('clients/connected and clients/maximum follow connections coming and going', async () => {
    const extra = [await rawConnected(tb.port), await rawConnected(tb.port)];
    const a = await watcher.nextRound();
    assert.equal(num(a.values, 'clients/connected'), 5);
    assert.equal(num(a.values, 'clients/maximum'), 5);
    assert.equal(num(a.values, 'clients/total'), 6);
    await closeAll(...extra);
    await waitFor(() => tb.broker.stats.connectedClients === 3);
    const b = await watcher.nextRound();
    assert.equal(num(b.values, 'clients/connected'), 3);
    assert.equal(num(b.values, 'clients/maximum'), 5, 'the maximum is a high-water mark');
    assert.equal(num(b.values, 'clients/disconnected'), 1);
  });

  it('subscriptions/count follows SUBSCRIBE and UNSUBSCRIBE', async () => {
    const a = await watcher.nextRound();
    await c2.subscribeAsync(['s/1', 's/2', 's/3'], { qos: 1 });
    await c2.unsubscribeAsync('s/1');
    const b = await watcher.nextRound();
    assert.equal(num(b.values, 'subscriptions/count') - num(a.values, 'subscriptions/count'), 2);
    await c2.unsubscribeAsync(['s/2', 's/3']);
    const c = await watcher.nextRound();
    assert.equal(num(c.values, 'subscriptions/count'), num(a.values, 'subscriptions/count'));
  });
});

describe('$SYS isolation (integration)', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ sysInterval: 1 });
  });
  after(() => tb.close());

  it("[MQTT-4.7.2-1] subscriptions to '#' and '+/...' never receive $SYS topics", async () => {
    const all = await connectClient(tb.url, { keepalive: 0 });
    const allGot = collect(all);
    const sys = await connectClient(tb.url, { keepalive: 0 });
    const watcher = new SysWatcher(sys);
    try {
      await all.subscribeAsync({ '#': { qos: 0 }, '+/broker/#': { qos: 0 }, '+/+/uptime': { qos: 0 } });
      await sys.subscribeAsync('$SYS/#', { qos: 0 });
      await watcher.nextRound();
      await watcher.nextRound();
      await all.publishAsync('ordinary/topic', 'seen', { qos: 1 });
      await waitCount(allGot, 1);
      assert.deepEqual(allGot.map((m) => m.topic), ['ordinary/topic']);
    } finally {
      await closeAll(all, sys);
    }
  });

  it('a client cannot publish to $SYS: PUBACK is sent, the client stays connected, nobody receives it', async () => {
    const sys = await connectClient(tb.url, { keepalive: 0 });
    const sysGot = collect(sys);
    const spoofer = await connectClient(tb.url, { keepalive: 0 });
    try {
      await sys.subscribeAsync('$SYS/#', { qos: 2 });
      await spoofer.publishAsync('$SYS/broker/fake', 'spoof', { qos: 1 });
      await spoofer.publishAsync('$SYS/broker/uptime', 'spoofed uptime', { qos: 2, retain: true });
      await spoofer.publishAsync('$SYS/broker/clients/connected', '9999', { qos: 0, retain: true });
      await barrier(spoofer);
      assert.equal(spoofer.connected, true);
      await new SysWatcher(sys).nextRound();
      assert.ok(!sysGot.some((m) => m.payload.startsWith('spoof') || m.payload === '9999' || m.topic === '$SYS/broker/fake'),
        JSON.stringify(sysGot.filter((m) => !m.topic.startsWith('$SYS/broker/') || m.topic.endsWith('fake'))));
      // Nor was anything retained from it.
      const late = await rawConnected(tb.port);
      try {
        await rawSubscribe(late, [['$SYS/broker/fake', 0], ['$SYS/broker/uptime', 0]]);
        const uptime = await expectPacket<{ type: 3; topic: string; payload: Buffer }>(late, 3);
        assert.equal(uptime.topic, '$SYS/broker/uptime');
        assert.match(uptime.payload.toString(), /^\d+ seconds$/);
        await expectSilence(late, 200);
      } finally {
        await closeAll(late);
      }
      // Still a working client.
      await spoofer.publishAsync('normal', 'ok', { qos: 1 });
      assert.equal(spoofer.connected, true);
    } finally {
      await closeAll(sys, spoofer);
    }
  });

  it('a raw client publishing to $SYS at QoS 1 and 2 gets PUBACK / PUBREC+PUBCOMP with its packet ids and stays connected', async () => {
    const raw = await rawConnected(tb.port);
    try {
      rawPublish(raw, '$SYS/broker/x', 'a', 1, { packetId: 11 });
      assert.equal((await expectPacket<{ type: 4; packetId: number }>(raw, PUBACK)).packetId, 11);
      rawPublish(raw, '$SYS/broker/y', 'b', 2, { packetId: 12 });
      assert.equal((await expectPacket<{ type: 5; packetId: number }>(raw, PUBREC)).packetId, 12);
      raw.send({ type: PUBREL, packetId: 12 });
      assert.equal((await expectPacket<{ type: 7; packetId: number }>(raw, PUBCOMP)).packetId, 12);
      raw.send({ type: PINGREQ });
      await expectPacket(raw, PINGRESP);
      assert.equal(raw.closed, false);
    } finally {
      await closeAll(raw);
    }
  });
});

describe('$SYS disabled', () => {
  it('with sysInterval 0 no $SYS topics are published', async () => {
    const tb = await startBroker({ sysInterval: 0 });
    const raw = await rawConnected(tb.port);
    try {
      await rawSubscribe(raw, '$SYS/#', 0);
      await expectSilence(raw, 300);
    } finally {
      await closeAll(raw);
      await tb.close();
    }
  });
});

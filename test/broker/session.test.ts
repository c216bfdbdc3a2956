import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import type { Broker } from '../../src/broker/broker.js';
import type { PublishPacket, QoS } from '../../src/protocol/index.js';
import { MemoryStore } from '../../src/store/index.js';
import { connectClient, type RawClient, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import {
  ackPublish, expectSilence, MessageInbox, nextPublish, rawSession, rawSubscribe, uniqueId, trackClients } from '../helpers/connection.js';

/** Resolves once the broker has detached the session of `clientId` from any connection. */
async function offline(broker: Broker, clientId: string): Promise<void> {
  await waitFor(() => broker.sessions.get(clientId)?.connection === undefined, 3000, `${clientId} offline`);
}

/** Ends a raw session with DISCONNECT and waits until the broker has it offline. */
async function disconnect(broker: Broker, raw: RawClient, clientId: string): Promise<void> {
  raw.send({ type: 14 });
  assert.equal(await raw.waitClosed(3000), true);
  await offline(broker, clientId);
}

/** Drops a raw connection without DISCONNECT and waits until the broker has the session offline. */
async function drop(broker: Broker, raw: RawClient, clientId: string): Promise<void> {
  raw.destroy();
  await offline(broker, clientId);
}

function summary(p: PublishPacket): [string, string, number, boolean] {
  return [p.topic, p.payload.toString(), p.qos, p.dup];
}

describe('sessions', () => {
  let tb: TestBroker;
  const track = trackClients();

  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  async function publisher(t: TestBroker = tb): Promise<MqttClient> {
    return track(await connectClient(t.url, { clientId: uniqueId('pub') }));
  }

  /**
   * Asserts that the next PUBLISH on `raw` is a live message published now on
   * `topic` (so nothing else was pending before it), and acknowledges it.
   */
  async function expectNextIsSentinel(raw: RawClient, pub: MqttClient, topic: string): Promise<void> {
    await pub.publishAsync(topic, 'sentinel', { qos: 1 });
    const p = await nextPublish(raw);
    assert.deepEqual([p.topic, p.payload.toString()], [topic, 'sentinel'], 'expected nothing before the sentinel');
    await ackPublish(raw, p);
  }

  describe('CleanSession 1', () => {
    it('[MQTT-3.2.2-1] session present is 0 and subscriptions are gone on reconnect', async () => {
      const clientId = uniqueId('clean');
      const first = await rawSession(tb.port, { clientId, clean: true });
      track(first.raw);
      assert.equal(first.connack.sessionPresent, false);
      await rawSubscribe(first.raw, 'clean/a', 1);
      await disconnect(tb.broker, first.raw, clientId);
      assert.equal(tb.broker.sessions.has(clientId), false, 'a clean session ends with its connection [MQTT-3.1.2-6]');

      const again = await rawSession(tb.port, { clientId, clean: true });
      track(again.raw);
      assert.equal(again.connack.sessionPresent, false);
      await rawSubscribe(again.raw, 'clean/sentinel', 1);
      const pub = await publisher();
      await pub.publishAsync('clean/a', 'old subscription', { qos: 1 });
      await expectNextIsSentinel(again.raw, pub, 'clean/sentinel');
    });

    it('[MQTT-3.1.2-6] a clean connect discards a previous persistent session, its subscriptions and queued messages', async () => {
      const clientId = uniqueId('discard');
      const persistent = await rawSession(tb.port, { clientId, clean: false });
      track(persistent.raw);
      await rawSubscribe(persistent.raw, 'discard/a', 1);
      await disconnect(tb.broker, persistent.raw, clientId);
      const pub = await publisher();
      await pub.publishAsync('discard/a', 'queued for the old session', { qos: 1 });

      const clean = await rawSession(tb.port, { clientId, clean: true });
      track(clean.raw);
      assert.equal(clean.connack.sessionPresent, false, 'session present 0 with CleanSession 1 [MQTT-3.2.2-1]');
      await expectSilence(clean.raw, 150, 'no queued message of the discarded session');
      await rawSubscribe(clean.raw, 'discard/sentinel', 1);
      await pub.publishAsync('discard/a', 'after clean connect', { qos: 1 });
      await expectNextIsSentinel(clean.raw, pub, 'discard/sentinel');
      await disconnect(tb.broker, clean.raw, clientId);

      // The clean session is not kept either: a later CleanSession 0 connect starts afresh.
      const later = await rawSession(tb.port, { clientId, clean: false });
      track(later.raw);
      assert.equal(later.connack.sessionPresent, false, 'no session survives a clean session');
      await expectSilence(later.raw, 150);
      await disconnect(tb.broker, later.raw, clientId);
      // Tidy: remove the persistent session just made.
      const tidy = await rawSession(tb.port, { clientId, clean: true });
      track(tidy.raw);
    });
  });

  describe('CleanSession 0', () => {
    it('[MQTT-3.2.2-2] session present is 1 on reconnect; subscriptions are kept; offline QoS 1 and 2 are delivered in order, QoS 0 is not', async () => {
      const clientId = uniqueId('persist');
      const first = await rawSession(tb.port, { clientId, clean: false });
      track(first.raw);
      assert.equal(first.connack.sessionPresent, false, 'no session yet [MQTT-3.2.2-3]');
      assert.deepEqual(await rawSubscribe(first.raw, 'persist/#', 2), [2]);
      await disconnect(tb.broker, first.raw, clientId);

      const pub = await publisher();
      const sent: Array<[string, QoS]> = [['m1', 1], ['m2', 0], ['m3', 2], ['m4', 1], ['m5', 0], ['m6', 2]];
      for (const [payload, qos] of sent) await pub.publishAsync(`persist/${payload}`, payload, { qos });
      await pub.publishAsync('unrelated', 'barrier', { qos: 1 }); // every message above has been routed

      const again = await rawSession(tb.port, { clientId, clean: false });
      track(again.raw);
      assert.equal(again.connack.sessionPresent, true, 'session present 1 [MQTT-3.2.2-2]');
      const got: Array<[string, string, number, boolean]> = [];
      for (let i = 0; i < 4; i++) {
        const p = await nextPublish(again.raw);
        got.push(summary(p));
        await ackPublish(again.raw, p);
      }
      assert.deepEqual(got, [
        ['persist/m1', 'm1', 1, false],
        ['persist/m3', 'm3', 2, false],
        ['persist/m4', 'm4', 1, false],
        ['persist/m6', 'm6', 2, false],
      ]);
      // No QoS 0 message shows up late, and the kept subscription still routes live messages.
      await expectNextIsSentinel(again.raw, pub, 'persist/sentinel');
      await disconnect(tb.broker, again.raw, clientId);
      const tidy = await rawSession(tb.port, { clientId, clean: true });
      track(tidy.raw);
    });

    it('an MQTT.js persistent client receives the messages published while it was offline', async () => {
      const clientId = uniqueId('jsp');
      const first = await connectClient(tb.url, { clientId, clean: false });
      await first.subscribeAsync('jsp/#', { qos: 2 });
      await first.endAsync();
      await offline(tb.broker, clientId);
      const pub = await publisher();
      await pub.publishAsync('jsp/a', 'one', { qos: 1 });
      await pub.publishAsync('jsp/b', 'two', { qos: 2 });

      const again = track(mqtt.connect(tb.url, { clientId, clean: false, reconnectPeriod: 0 }));
      const inbox = new MessageInbox(again);
      const present = await new Promise<boolean>((resolve, reject) => {
        again.once('connect', (p) => resolve(p.sessionPresent));
        again.once('error', reject);
      });
      assert.equal(present, true);
      const a = await inbox.next();
      const b = await inbox.next();
      assert.deepEqual([[a.topic, a.payload, a.qos], [b.topic, b.payload, b.qos]], [['jsp/a', 'one', 1], ['jsp/b', 'two', 2]]);
      await again.endAsync();
      const tidy = await connectClient(tb.url, { clientId, clean: true });
      await tidy.endAsync();
    });
  });

  describe('queue limits', () => {
    it('maxQueuedMessages: 3 -> of 5 offline QoS 1 messages the first 3 are delivered and 2 counted as dropped', async () => {
      const t = await startBroker({ limits: { maxQueuedMessages: 3 } });
      try {
        const clientId = uniqueId('qlim');
        const first = await rawSession(t.port, { clientId, clean: false });
        track(first.raw);
        await rawSubscribe(first.raw, 'qlim/#', 1);
        await disconnect(t.broker, first.raw, clientId);
        const dropped = t.broker.stats.publishDropped;
        const pub = await publisher(t);
        for (let i = 1; i <= 5; i++) await pub.publishAsync('qlim/t', `p${i}`, { qos: 1 });

        const again = await rawSession(t.port, { clientId, clean: false });
        track(again.raw);
        assert.equal(again.connack.sessionPresent, true);
        const got: string[] = [];
        for (let i = 0; i < 3; i++) {
          const p = await nextPublish(again.raw);
          got.push(p.payload.toString());
          await ackPublish(again.raw, p);
        }
        assert.deepEqual(got, ['p1', 'p2', 'p3'], 'the newest messages are the ones dropped');
        await expectNextIsSentinel(again.raw, pub, 'qlim/sentinel');
        assert.equal(t.broker.stats.publishDropped - dropped, 2);
      } finally {
        await track.closeNow();
        await t.close();
      }
    });

    it('maxQueuedBytes: 10 -> of 5 offline 4-byte QoS 1 messages the first 2 are delivered and 3 counted as dropped', async () => {
      const t = await startBroker({ limits: { maxQueuedBytes: 10 } });
      try {
        const clientId = uniqueId('qbytes');
        const first = await rawSession(t.port, { clientId, clean: false });
        track(first.raw);
        await rawSubscribe(first.raw, 'qbytes/#', 1);
        await disconnect(t.broker, first.raw, clientId);
        const dropped = t.broker.stats.publishDropped;
        const pub = await publisher(t);
        for (const payload of ['aaaa', 'bbbb', 'cccc', 'dddd', 'eeee']) await pub.publishAsync('qbytes/t', payload, { qos: 1 });

        const again = await rawSession(t.port, { clientId, clean: false });
        track(again.raw);
        const got: string[] = [];
        for (let i = 0; i < 2; i++) {
          const p = await nextPublish(again.raw);
          got.push(p.payload.toString());
          await ackPublish(again.raw, p);
        }
        assert.deepEqual(got, ['aaaa', 'bbbb']);
        await expectNextIsSentinel(again.raw, pub, 'qbytes/sentinel');
        assert.equal(t.broker.stats.publishDropped - dropped, 3);
      } finally {
        await track.closeNow();
        await t.close();
      }
    });
  });

  describe('inflight window', () => {
    it('maxInflightMessages: 2 -> only 2 unacknowledged QoS 1 messages at a time; each PUBACK releases the next, in order', async () => {
      const t = await startBroker({ limits: { maxInflightMessages: 2 } });
      try {
        const { raw } = await rawSession(t.port, { clientId: uniqueId('win') });
        track(raw);
        await rawSubscribe(raw, 'win/#', 1);
        const pub = await publisher(t);
        for (let i = 1; i <= 4; i++) await pub.publishAsync('win/t', `n${i}`, { qos: 1 });

        const a = await nextPublish(raw);
        const b = await nextPublish(raw);
        assert.deepEqual([a.payload.toString(), b.payload.toString()], ['n1', 'n2']);
        await expectSilence(raw, 300, 'no third PUBLISH while two are unacknowledged');
        raw.send({ type: 4, packetId: a.packetId! });
        const c = await nextPublish(raw);
        assert.equal(c.payload.toString(), 'n3');
        await expectSilence(raw, 200, 'window full again');
        raw.send({ type: 4, packetId: b.packetId! });
        const d = await nextPublish(raw);
        assert.equal(d.payload.toString(), 'n4');
        raw.send({ type: 4, packetId: c.packetId! });
        raw.send({ type: 4, packetId: d.packetId! });
        await expectSilence(raw, 100);
        // All four carried distinct packet ids [MQTT-2.3.1-2].
        assert.equal(new Set([a.packetId, b.packetId, c.packetId, d.packetId]).size, 4);
      } finally {
        await track.closeNow();
        await t.close();
      }
    });

    it('maxInflightMessages: 1 -> a QoS 2 message holds the window until PUBCOMP', async () => {
      const t = await startBroker({ limits: { maxInflightMessages: 1 } });
      try {
        const { raw } = await rawSession(t.port, { clientId: uniqueId('win2') });
        track(raw);
        await rawSubscribe(raw, 'win2/#', 2);
        const pub = await publisher(t);
        await pub.publishAsync('win2/t', 'first', { qos: 2 });
        await pub.publishAsync('win2/t', 'second', { qos: 2 });

        const a = await nextPublish(raw);
        assert.equal(a.payload.toString(), 'first');
        raw.send({ type: 5, packetId: a.packetId! });
        const rel = await raw.nextPacket();
        assert.deepEqual([rel.type, (rel as { packetId: number }).packetId], [6, a.packetId]);
        await expectSilence(raw, 200, 'the window stays full until PUBCOMP');
        raw.send({ type: 7, packetId: a.packetId! });
        const b = await nextPublish(raw);
        assert.equal(b.payload.toString(), 'second');
        await ackPublish(raw, b);
      } finally {
        await track.closeNow();
        await t.close();
      }
    });
  });

  describe('redelivery on reconnect', () => {
    it('[MQTT-4.4.0-1] unacknowledged QoS 1 and QoS 2 PUBLISH are resent with DUP=1 and the same packet ids', async () => {
      const clientId = uniqueId('dup');
      const first = await rawSession(tb.port, { clientId, clean: false });
      track(first.raw);
      await rawSubscribe(first.raw, 'dup/#', 2);
      const pub = await publisher();
      await pub.publishAsync('dup/a', 'd1', { qos: 1 });
      await pub.publishAsync('dup/b', 'd2', { qos: 2 });
      await pub.publishAsync('dup/c', 'd3', { qos: 1 });
      const original: PublishPacket[] = [];
      for (let i = 0; i < 3; i++) original.push(await nextPublish(first.raw));
      assert.deepEqual(original.map(summary), [
        ['dup/a', 'd1', 1, false], ['dup/b', 'd2', 2, false], ['dup/c', 'd3', 1, false],
      ]);
      await drop(tb.broker, first.raw, clientId); // no acknowledgements sent

      const again = await rawSession(tb.port, { clientId, clean: false });
      track(again.raw);
      assert.equal(again.connack.sessionPresent, true);
      const resent: PublishPacket[] = [];
      for (let i = 0; i < 3; i++) resent.push(await nextPublish(again.raw));
      assert.deepEqual(resent.map(summary), [
        ['dup/a', 'd1', 1, true], ['dup/b', 'd2', 2, true], ['dup/c', 'd3', 1, true],
      ], 'same messages, in the original order, with DUP set [MQTT-3.3.1-1]');
      assert.deepEqual(resent.map((p) => p.packetId), original.map((p) => p.packetId), 'same packet ids');
      for (const p of resent) await ackPublish(again.raw, p);
      await expectNextIsSentinel(again.raw, pub, 'dup/sentinel');

      // Once acknowledged, nothing is resent on the next reconnect.
      await drop(tb.broker, again.raw, clientId);
      const third = await rawSession(tb.port, { clientId, clean: false });
      track(third.raw);
      assert.equal(third.connack.sessionPresent, true);
      await expectSilence(third.raw, 200, 'nothing left to resend');
      await disconnect(tb.broker, third.raw, clientId);
      track((await rawSession(tb.port, { clientId, clean: true })).raw);
    });

    it('[MQTT-4.4.0-1] a QoS 2 message that was PUBREC\'d gets its PUBREL (not the PUBLISH) resent after reconnect', async () => {
      const clientId = uniqueId('rel');
      const first = await rawSession(tb.port, { clientId, clean: false });
      track(first.raw);
      await rawSubscribe(first.raw, 'rel/#', 2);
      const pub = await publisher();
      await pub.publishAsync('rel/a', 'exactly once', { qos: 2 });
      const p = await nextPublish(first.raw);
      assert.equal(p.qos, 2);
      first.raw.send({ type: 5, packetId: p.packetId! });
      const rel = await first.raw.nextPacket();
      assert.deepEqual([rel.type, (rel as { packetId: number }).packetId], [6, p.packetId]);
      await drop(tb.broker, first.raw, clientId); // no PUBCOMP

      const again = await rawSession(tb.port, { clientId, clean: false });
      track(again.raw);
      assert.equal(again.connack.sessionPresent, true);
      const resent = await again.raw.nextPacket();
      assert.equal(resent.type, 6, `expected PUBREL, got packet type ${resent.type}`);
      assert.equal((resent as { packetId: number }).packetId, p.packetId);
      again.raw.send({ type: 7, packetId: p.packetId! });
      await expectNextIsSentinel(again.raw, pub, 'rel/sentinel');

      await drop(tb.broker, again.raw, clientId);
      const third = await rawSession(tb.port, { clientId, clean: false });
      track(third.raw);
      await expectSilence(third.raw, 200, 'the completed flow is not resent');
      await disconnect(tb.broker, third.raw, clientId);
      track((await rawSession(tb.port, { clientId, clean: true })).raw);
    });

    it('[MQTT-4.4.0-1] inflight messages are resent before queued ones, all in order', async () => {
      const t = await startBroker({ limits: { maxInflightMessages: 2 } });
      try {
        const clientId = uniqueId('order');
        const first = await rawSession(t.port, { clientId, clean: false });
        track(first.raw);
        await rawSubscribe(first.raw, 'order/#', 1);
        const pub = await publisher(t);
        for (let i = 1; i <= 3; i++) await pub.publishAsync('order/t', `o${i}`, { qos: 1 });
        const a = await nextPublish(first.raw);
        const b = await nextPublish(first.raw);
        assert.deepEqual([a.payload.toString(), b.payload.toString()], ['o1', 'o2']);
        await drop(t.broker, first.raw, clientId);
        for (let i = 4; i <= 5; i++) await pub.publishAsync('order/t', `o${i}`, { qos: 1 });

        const again = await rawSession(t.port, { clientId, clean: false });
        track(again.raw);
        const got: Array<[string, boolean]> = [];
        for (let i = 0; i < 5; i++) {
          const p = await nextPublish(again.raw);
          got.push([p.payload.toString(), p.dup]);
          await ackPublish(again.raw, p);
        }
        assert.deepEqual(got, [['o1', true], ['o2', true], ['o3', false], ['o4', false], ['o5', false]]);
      } finally {
        await track.closeNow();
        await t.close();
      }
    });

    it('[MQTT-4.4.0-1] resends on reconnect stop at the outbound limit while the client does not read, and all follow in order once it does', async () => {
      const limit = 64 * 1024;
      const t = await startBroker({ limits: { maxOutboundBuffer: limit } });
      try {
        const clientId = uniqueId('resend-limit');
        const first = await rawSession(t.port, { clientId, clean: false });
        track(first.raw);
        await rawSubscribe(first.raw, 'big/#', 1);
        const pub = await publisher(t);
        const count = 400; // 12.8 MiB unacknowledged: more than the kernel's socket buffers hold
        const payload = Buffer.alloc(32 * 1024, 7);
        for (let i = 0; i < count; i++) {
          payload.writeUInt32BE(i, 0);
          await pub.publishAsync('big/t', payload, { qos: 1 });
        }
        const session = t.broker.sessions.get(clientId)!;
        await waitFor(() => session.inflight.size === count && session.queue.length === 0, 15_000, 'every message sent, none acknowledged');
        await drop(t.broker, first.raw, clientId);

        const again = await rawSession(t.port, { clientId, clean: false });
        track(again.raw);
        again.raw.socket.pause();
        await new Promise((resolve) => setTimeout(resolve, 500));
        const conn = [...t.broker.connections].find((c) => c.client?.id === clientId)!;
        assert.ok(conn.socket.writableLength < limit + 2 * payload.length + 128 * 1024,
          `the broker buffered ${conn.socket.writableLength} bytes for a client that reads nothing`);
        assert.ok(session.resendPending.length > 0, 'the rest wait their turn');

        again.raw.socket.resume();
        const seen: number[] = [];
        for (let i = 0; i < count; i++) {
          const p = await nextPublish(again.raw, 10_000);
          assert.equal(p.dup, true, 'a resend carries DUP [MQTT-3.3.1-1]');
          seen.push(p.payload.readUInt32BE(0));
          await ackPublish(again.raw, p);
        }
        assert.deepEqual(seen, Array.from({ length: count }, (_, i) => i), 'every message once, in the original order');
      } finally {
        await track.closeNow();
        await t.close();
      }
    });
  });

  describe('incoming QoS 2 state', () => {
    it('[MQTT-4.3.3-2] a QoS 2 PUBLISH resent after reconnect (before PUBREL) is acknowledged but not delivered twice', async () => {
      const watcher = track(await connectClient(tb.url, { clientId: uniqueId('q2w') }));
      const inbox = new MessageInbox(watcher);
      await watcher.subscribeAsync('in2/#', { qos: 2 });
      const clientId = uniqueId('in2');
      const first = await rawSession(tb.port, { clientId, clean: false });
      track(first.raw);
      const publish: PublishPacket = {
        type: 3, dup: false, qos: 2, retain: false, topic: 'in2/x', packetId: 42, payload: Buffer.from('exactly once'),
      };
      first.raw.send(publish);
      const rec = await first.raw.nextPacket();
      assert.deepEqual([rec.type, (rec as { packetId: number }).packetId], [5, 42]);
      const m = await inbox.next();
      assert.equal(m.payload, 'exactly once');
      await drop(tb.broker, first.raw, clientId); // before PUBREL

      const again = await rawSession(tb.port, { clientId, clean: false });
      track(again.raw);
      assert.equal(again.connack.sessionPresent, true);
      again.raw.send({ ...publish, dup: true });
      const rec2 = await again.raw.nextPacket();
      assert.deepEqual([rec2.type, (rec2 as { packetId: number }).packetId], [5, 42], 'PUBREC again');
      again.raw.send({ type: 6, packetId: 42 });
      const comp = await again.raw.nextPacket();
      assert.deepEqual([comp.type, (comp as { packetId: number }).packetId], [7, 42]);
      // The first message the watcher sees next is a fresh one: the resent PUBLISH was not routed again.
      await watcher.publishAsync('in2/y', 'sentinel', { qos: 1 });
      assert.equal((await inbox.next()).payload, 'sentinel');
      await disconnect(tb.broker, again.raw, clientId);
      track((await rawSession(tb.port, { clientId, clean: true })).raw);
    });
  });

  describe('recovery through the store', () => {
    it('a new broker on the same MemoryStore restores subscriptions, queued messages and retained messages', async () => {
      const store = new MemoryStore();
      const one = await startBroker({ store });
      let two: TestBroker | undefined;
      const clientId = uniqueId('rec');
      try {
        const first = await rawSession(one.port, { clientId, clean: false });
        track(first.raw);
        await rawSubscribe(first.raw, 'rec/#', 1);
        await rawSubscribe(first.raw, 'rec2/+', 2, 2);
        await disconnect(one.broker, first.raw, clientId);
        const pub = await publisher(one);
        await pub.publishAsync('ret/one', 'kept', { qos: 1, retain: true });
        await pub.publishAsync('rec/a', 'queued 1', { qos: 1 });
        await pub.publishAsync('rec/zero', 'qos 0 is not queued', { qos: 0 });
        await pub.publishAsync('rec2/b', 'queued 2', { qos: 2 });
        await track.closeNow();
        await one.close();

        two = await startBroker({ store });
        const again = await rawSession(two.port, { clientId, clean: false });
        track(again.raw);
        assert.equal(again.connack.sessionPresent, true, 'the session survived the restart [MQTT-3.2.2-2]');
        const got: Array<[string, string, number, boolean]> = [];
        for (let i = 0; i < 2; i++) {
          const p = await nextPublish(again.raw);
          got.push(summary(p));
          await ackPublish(again.raw, p);
        }
        assert.deepEqual(got, [['rec/a', 'queued 1', 1, false], ['rec2/b', 'queued 2', 2, false]]);
        // The subscriptions route live messages again.
        const pub2 = await publisher(two);
        await expectNextIsSentinel(again.raw, pub2, 'rec/sentinel');
        await pub2.publishAsync('rec2/live', 'live', { qos: 2 });
        const live = await nextPublish(again.raw);
        assert.deepEqual(summary(live), ['rec2/live', 'live', 2, false]);
        await ackPublish(again.raw, live);
        // The retained message is back.
        const late = track(await connectClient(two.url, { clientId: uniqueId('late') }));
        const inbox = new MessageInbox(late);
        await late.subscribeAsync('ret/#', { qos: 1 });
        const r = await inbox.next();
        assert.deepEqual([r.topic, r.payload, r.retain, r.qos], ['ret/one', 'kept', true, 1]);
      } finally {
        await track.closeNow();
        await one.close();
        await two?.close();
      }
    });

    it('[MQTT-4.4.0-1] a new broker on the same MemoryStore resends unacknowledged PUBLISH (DUP) and pending PUBREL', async () => {
      const store = new MemoryStore();
      const one = await startBroker({ store });
      let two: TestBroker | undefined;
      const clientId = uniqueId('recinf');
      try {
        const first = await rawSession(one.port, { clientId, clean: false });
        track(first.raw);
        await rawSubscribe(first.raw, 'inf/#', 2);
        const pub = await publisher(one);
        await pub.publishAsync('inf/q2', 'released', { qos: 2 });
        await pub.publishAsync('inf/q1', 'unacked', { qos: 1 });
        const q2 = await nextPublish(first.raw);
        const q1 = await nextPublish(first.raw);
        assert.deepEqual([q2.payload.toString(), q1.payload.toString()], ['released', 'unacked']);
        first.raw.send({ type: 5, packetId: q2.packetId! });
        const rel = await first.raw.nextPacket();
        assert.equal(rel.type, 6);
        await track.closeNow();
        await one.close();

        two = await startBroker({ store });
        const again = await rawSession(two.port, { clientId, clean: false });
        track(again.raw);
        assert.equal(again.connack.sessionPresent, true);
        const packets = [await again.raw.nextPacket(), await again.raw.nextPacket()];
        const pubrel = packets.find((p) => p.type === 6) as { packetId: number } | undefined;
        const publish = packets.find((p) => p.type === 3) as PublishPacket | undefined;
        assert.ok(pubrel, 'PUBREL resent for the PUBREC\'d QoS 2 message');
        assert.equal(pubrel.packetId, q2.packetId);
        assert.ok(publish, 'the unacknowledged QoS 1 PUBLISH is resent');
        assert.deepEqual([...summary(publish), publish.packetId], ['inf/q1', 'unacked', 1, true, q1.packetId]);
        again.raw.send({ type: 7, packetId: q2.packetId! });
        again.raw.send({ type: 4, packetId: q1.packetId! });
        const pub2 = await publisher(two);
        await expectNextIsSentinel(again.raw, pub2, 'inf/sentinel');
      } finally {
        await track.closeNow();
        await one.close();
        await two?.close();
      }
    });
  });
});

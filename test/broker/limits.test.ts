import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { Connection } from '../../src/broker/connection.js';
import { connectClient, RawClient, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import {
  barrier, closeAll, collect, CONNACK, expectPacket, expectPublish, expectSilence, settledMemory, PINGREQ, PINGRESP, PUBACK,
  rawConnected, rawPublish, rawSubscribe, uniqueId, waitCount,
} from '../helpers/integration.js';

/** Asserts that a second, well-behaved client still gets a full round trip through the broker. */
async function assertBrokerWorks(tb: TestBroker, topic = `alive/${uniqueId()}`): Promise<void> {
  const sub = await connectClient(tb.url);
  const got = collect(sub);
  try {
    await sub.subscribeAsync(topic, { qos: 1 });
    await sub.publishAsync(topic, 'still working', { qos: 1 });
    await waitCount(got, 1);
    assert.equal(got[0]!.payload, 'still working');
  } finally {
    await closeAll(sub);
  }
}

function connectionOf(tb: TestBroker, clientId: string): Connection {
  const conn = [...tb.broker.connections].find((c) => c.client?.id === clientId);
  assert.ok(conn, `server-side connection of ${clientId}`);
  return conn;
}

describe('limits: maxPacketSize', () => {
  let tb: TestBroker;
  let bystander: MqttClient;
  before(async () => {
    tb = await startBroker({ limits: { maxPacketSize: 1024 } });
    bystander = await connectClient(tb.url);
  });
  after(async () => {
    await closeAll(bystander);
    await tb.close();
  });

  it('closes the connection of a client whose PUBLISH is larger than maxPacketSize; other clients keep working', async () => {
    const sub = await rawConnected(tb.port);
    const big = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, 'big/#', 0);
      rawPublish(big, 'big/one', Buffer.alloc(2000, 1), 0);
      assert.equal(await big.waitClosed(3000), true, 'oversized packet closes the connection');
      await expectSilence(sub, 100, 'the oversized message is not routed');
      assert.equal(sub.closed, false);
      assert.equal(bystander.connected, true);
      await bystander.publishAsync('big/ok', 'small', { qos: 1 });
      const got = await expectPublish(sub);
      assert.equal(got.topic, 'big/ok');
      await assertBrokerWorks(tb);
    } finally {
      await closeAll(sub, big);
    }
  });

  it('[MQTT-3.1.2-8] the will of a client closed for an oversized packet is published', async () => {
    const watcher = await rawConnected(tb.port);
    const raw = await RawClient.connect(tb.port);
    try {
      await rawSubscribe(watcher, 'will/big', 1);
      raw.send({
        type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: uniqueId('willbig'),
        will: { topic: 'will/big', payload: Buffer.from('gone'), qos: 1, retain: false },
      });
      await expectPacket(raw, CONNACK);
      rawPublish(raw, 'big/will', Buffer.alloc(4000), 0);
      assert.equal(await raw.waitClosed(3000), true);
      const will = await expectPublish(watcher);
      assert.equal(will.topic, 'will/big');
      assert.equal(will.payload.toString(), 'gone');
    } finally {
      await closeAll(watcher, raw);
    }
  });

  it('accepts a packet of exactly maxPacketSize bytes and refuses one byte more', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, 't', 0);
      // PUBLISH QoS 0 to "t": 1 byte type + 2 bytes remaining length + 3 bytes topic + payload.
      rawPublish(pub, 't', Buffer.alloc(1024 - 6, 2), 0);
      const got = await expectPublish(sub);
      assert.equal(got.payload.length, 1018);
      pub.send({ type: PINGREQ });
      await expectPacket(pub, PINGRESP);
      rawPublish(pub, 't', Buffer.alloc(1024 - 5, 3), 0);
      assert.equal(await pub.waitClosed(3000), true);
      await expectSilence(sub, 100);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('closes the connection as soon as a fixed header announces an oversized packet, without waiting for its body', async () => {
    const raw = await rawConnected(tb.port);
    try {
      // PUBLISH QoS 0 announcing 10 MB of remaining length; the body never comes.
      raw.sendBytes([0x30, 0x80, 0xad, 0xe2, 0x04]);
      assert.equal(await raw.waitClosed(2000), true);
    } finally {
      await closeAll(raw);
    }
  });

  it('applies to MQTT.js publishers too: the connection closes, the PUBLISH is not routed', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      await rawSubscribe(sub, 'js/big', 0);
      const closed = new Promise<void>((resolve) => pub.once('close', () => resolve()));
      pub.publish('js/big', Buffer.alloc(5000), { qos: 1 });
      await closed;
      await expectSilence(sub, 100);
    } finally {
      await closeAll(sub, pub);
    }
  });
});

describe('limits: topic length and levels', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { maxTopicLength: 32, maxTopicLevels: 4 } });
  });
  after(() => tb.close());

  it('routes a PUBLISH whose topic is exactly maxTopicLength bytes and maxTopicLevels levels', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await rawConnected(tb.port);
    try {
      const topic = `a/b/c/${'d'.repeat(32 - 6)}`;
      assert.equal(Buffer.byteLength(topic), 32);
      await rawSubscribe(sub, topic, 1);
      rawPublish(pub, topic, 'fits', 1, { packetId: 1 });
      await expectPacket(pub, PUBACK);
      const got = await expectPublish(sub);
      assert.equal(got.topic, topic);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('closes the connection on a PUBLISH whose topic is longer than maxTopicLength', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, '#', 0);
      rawPublish(pub, 'x'.repeat(33), 'too long', 1, { packetId: 1 });
      assert.equal(await pub.waitClosed(2000), true);
      assert.ok(!pub.packets.some((p) => p.type === PUBACK), 'no PUBACK for the refused message');
      await expectSilence(sub, 100);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('measures maxTopicLength in UTF-8 bytes, not characters', async () => {
    const pub = await rawConnected(tb.port);
    try {
      const topic = 'é'.repeat(17); // 17 characters, 34 bytes
      rawPublish(pub, topic, 'x', 0);
      assert.equal(await pub.waitClosed(2000), true);
    } finally {
      await closeAll(pub);
    }
  });

  it('closes the connection on a PUBLISH whose topic has more than maxTopicLevels levels', async () => {
    const pub = await rawConnected(tb.port);
    try {
      rawPublish(pub, 'a/b/c/d/e', 'deep', 1, { packetId: 1 });
      assert.equal(await pub.waitClosed(2000), true);
      assert.ok(!pub.packets.some((p) => p.type === PUBACK));
    } finally {
      await closeAll(pub);
    }
    await assertBrokerWorks(tb, 'ok/levels');
  });

  it('answers 0x80 in SUBACK for a filter over the limits, grants the others, and keeps the connection', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      const suback = await rawSubscribe(sub, [
        ['f'.repeat(33), 1],
        ['ok/+', 1],
        ['a/b/c/d/e', 0],
        ['a/b/c/#', 2],
        ['+/+/+/+/+', 0],
        ['é'.repeat(17), 0],
      ]);
      assert.deepEqual(suback.returnCodes, [0x80, 1, 0x80, 2, 0x80, 0x80]);
      sub.send({ type: PINGREQ });
      await expectPacket(sub, PINGRESP);
      assert.equal(sub.closed, false);
      await pub.publishAsync('ok/1', 'granted', { qos: 1 });
      const got = await expectPublish(sub);
      assert.equal(got.topic, 'ok/1');
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('refuses a will topic over the limits at CONNECT', async () => {
    const raw = await RawClient.connect(tb.port);
    try {
      raw.send({
        type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: uniqueId('will'),
        will: { topic: 'w/'.repeat(10) + 'x', payload: Buffer.from('bye'), qos: 0, retain: false },
      });
      const connack = await expectPacket<{ type: 2; returnCode: number }>(raw, CONNACK);
      assert.notEqual(connack.returnCode, 0);
      assert.equal(await raw.waitClosed(2000), true);
    } finally {
      await closeAll(raw);
    }
  });
});

describe('limits: maxConnections', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { maxConnections: 2 } });
  });
  after(() => tb.close());

  it('refuses the connection beyond maxConnections with CONNACK 3 and closes it; a slot freed is usable again', async () => {
    const a = await rawConnected(tb.port);
    const b = await connectClient(tb.url);
    const extra = await RawClient.connect(tb.port);
    let again: RawClient | undefined;
    try {
      const connack = await extra.handshake({ clientId: uniqueId('extra') });
      assert.equal(connack.type, CONNACK);
      assert.equal((connack as { returnCode: number }).returnCode, 3, 'server unavailable');
      assert.equal((connack as { sessionPresent: boolean }).sessionPresent, false, '[MQTT-3.2.2-4]');
      assert.equal(await extra.waitClosed(2000), true, '[MQTT-3.2.2-5] the refused connection is closed');

      // The connected clients are unaffected.
      await b.publishAsync('mc/x', 'y', { qos: 1 });
      a.send({ type: PINGREQ });
      await expectPacket(a, PINGRESP);

      a.send({ type: 14 }); // DISCONNECT
      await a.waitClosed(2000);
      await waitFor(() => tb.broker.stats.connectedClients === 1);
      again = await rawConnected(tb.port);
    } finally {
      await closeAll(a, b, extra, again);
    }
  });
});

describe('limits: inflight window and queue', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { maxInflightMessages: 5, maxQueuedMessages: 10 } });
  });
  after(() => tb.close());

  it('sends at most maxInflightMessages unacknowledged QoS 1 messages; each PUBACK releases the next', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      await rawSubscribe(sub, 'win/q1', 1);
      for (let i = 0; i < 8; i++) pub.publish('win/q1', String(i), { qos: 1 });
      await barrier(pub);
      const first = [];
      for (let i = 0; i < 5; i++) first.push(await expectPublish(sub));
      await expectSilence(sub, 200, 'nothing beyond the inflight window');
      assert.deepEqual(first.map((p) => p.payload.toString()), ['0', '1', '2', '3', '4']);
      sub.send({ type: PUBACK, packetId: first[0]!.packetId! });
      const next = await expectPublish(sub);
      assert.equal(next.payload.toString(), '5');
      await expectSilence(sub, 100);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('drops new messages once the session queue is full and counts them as dropped', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      await rawSubscribe(sub, 'queue/q1', 1);
      const droppedBefore = tb.broker.stats.publishDropped;
      // 5 in flight + 10 queued fit; 5 more are dropped.
      for (let i = 0; i < 20; i++) pub.publish('queue/q1', String(i), { qos: 1 });
      await barrier(pub);
      assert.equal(tb.broker.stats.publishDropped - droppedBefore, 5);
      const payloads: string[] = [];
      for (let i = 0; i < 15; i++) {
        const p = await expectPublish(sub);
        payloads.push(p.payload.toString());
        sub.send({ type: PUBACK, packetId: p.packetId! });
      }
      assert.deepEqual(payloads, Array.from({ length: 15 }, (_, i) => String(i)));
      await expectSilence(sub, 200);
    } finally {
      await closeAll(sub, pub);
    }
  });
});

describe('limits: inflight bytes', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { maxInflightMessages: 100, maxInflightBytes: 3000 } });
  });
  after(() => tb.close());

  it('holds at most maxInflightBytes of unacknowledged payload; each PUBACK lets the next fit in', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      await rawSubscribe(sub, 'win/bytes', 1);
      for (let i = 0; i < 6; i++) pub.publish('win/bytes', Buffer.alloc(1000, 48 + i), { qos: 1 });
      await barrier(pub);
      const first = [];
      for (let i = 0; i < 3; i++) first.push(await expectPublish(sub));
      await expectSilence(sub, 200, '3 × 1,000 bytes fill the 3,000-byte window');
      assert.deepEqual(first.map((p) => p.payload[0]), [48, 49, 50]);
      sub.send({ type: PUBACK, packetId: first[0]!.packetId! });
      assert.equal((await expectPublish(sub)).payload[0], 51, 'the next one, in order');
      await expectSilence(sub, 100);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('a message larger than maxInflightBytes still goes once nothing else is in flight', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      await rawSubscribe(sub, 'win/big', 1);
      pub.publish('win/big', Buffer.alloc(5000, 1), { qos: 1 });
      pub.publish('win/big', Buffer.alloc(10, 2), { qos: 1 });
      await barrier(pub);
      const big = await expectPublish(sub);
      assert.equal(big.payload.length, 5000);
      await expectSilence(sub, 200, 'the small one waits behind the oversized one');
      sub.send({ type: PUBACK, packetId: big.packetId! });
      assert.equal((await expectPublish(sub)).payload.length, 10);
    } finally {
      await closeAll(sub, pub);
    }
  });
});

describe('limits: queue_overflow drop_oldest', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { maxInflightMessages: 5, maxQueuedMessages: 10, queueOverflow: 'drop_oldest' } });
  });
  after(() => tb.close());

  it('keeps the newest messages: the oldest queued ones make room and are counted as dropped', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      await rawSubscribe(sub, 'oldest/q1', 1);
      const droppedBefore = tb.broker.stats.publishDropped;
      const queueDroppedBefore = tb.broker.stats.queueDropped;
      // 0..4 go in flight; the queue ends with the newest 10 (10..19); 5..9 are dropped.
      for (let i = 0; i < 20; i++) pub.publish('oldest/q1', String(i), { qos: 1 });
      await barrier(pub);
      assert.equal(tb.broker.stats.publishDropped - droppedBefore, 5);
      assert.equal(tb.broker.stats.queueDropped - queueDroppedBefore, 5);
      const payloads: string[] = [];
      for (let i = 0; i < 15; i++) {
        const p = await expectPublish(sub);
        payloads.push(p.payload.toString());
        sub.send({ type: PUBACK, packetId: p.packetId! });
      }
      assert.deepEqual(payloads, ['0', '1', '2', '3', '4', ...Array.from({ length: 10 }, (_, i) => String(10 + i))]);
      await expectSilence(sub, 200);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('with a byte limit, drops as many old messages as the new one needs', async () => {
    const t = await startBroker({ limits: { maxQueuedMessages: 100, maxQueuedBytes: 30, queueOverflow: 'drop_oldest' } });
    const id = uniqueId('bytes');
    try {
      const sub = await rawConnected(t.port, { clientId: id, clean: false });
      await rawSubscribe(sub, 'bytes/q', 1);
      sub.destroy();
      await waitFor(() => t.broker.stats.connectedClients === 0, 3000, 'the subscriber to be offline');
      const pub = await connectClient(t.url);
      // Three 10-byte messages fill the 30 bytes; the 20-byte one needs two of them gone, and only two go.
      for (const payload of ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc', 'dddddddddddddddddddd']) {
        await pub.publishAsync('bytes/q', payload, { qos: 1 });
      }
      await closeAll(pub);
      const back = await rawConnected(t.port, { clientId: id, clean: false });
      const got: string[] = [];
      for (let i = 0; i < 2; i++) {
        const p = await expectPublish(back);
        got.push(p.payload.toString());
        back.send({ type: PUBACK, packetId: p.packetId! });
      }
      await expectSilence(back, 200);
      assert.deepEqual(got, ['cccccccccc', 'dddddddddddddddddddd']);
      assert.equal(t.broker.stats.queueDropped, 2);
      await closeAll(back);
    } finally {
      await t.close();
    }
  });
});

describe('limits: slow consumer', () => {
  let tb: TestBroker;
  const maxOutboundBuffer = 256 * 1024;
  before(async () => {
    tb = await startBroker({ limits: { maxOutboundBuffer } });
  });
  after(() => tb.close());

  it('drops QoS 0 messages for a subscriber that does not read, keeps memory bounded, and serves a good subscriber fully', async () => {
    const slowId = uniqueId('slow');
    const slow = await rawConnected(tb.port, { clientId: slowId });
    await rawSubscribe(slow, 'flood', 0);
    slow.socket.pause();
    const good = await connectClient(tb.url);
    let goodCount = 0;
    let outOfOrder = 0;
    good.on('message', (_topic, payload) => {
      if (payload.readUInt32BE(0) !== goodCount) outOfOrder++;
      goodCount++;
    });
    await good.subscribeAsync('flood', { qos: 0 });
    const pub = await connectClient(tb.url);
    try {
      const baseline = await settledMemory();
      const slowConn = connectionOf(tb, slowId);
      const droppedBefore = tb.broker.stats.publishDropped;
      const chunk = 64 * 1024;
      const total = (20 * 1024 * 1024) / chunk; // 20 MiB in 320 messages
      let maxSlowBacklog = 0;
      for (let i = 0; i < total; i++) {
        const payload = Buffer.alloc(chunk, i & 0xff);
        payload.writeUInt32BE(i, 0);
        pub.publish('flood', payload, { qos: 0 });
        // A well-behaved consumer: keep at most two messages outstanding toward it.
        if (i - goodCount >= 2) await waitFor(() => i - goodCount < 2, 5000, `good subscriber to catch up at ${i}`);
        maxSlowBacklog = Math.max(maxSlowBacklog, slowConn.socket.writableLength);
      }
      await waitFor(() => goodCount === total, 5000, `all ${total} messages at the good subscriber (have ${goodCount})`);
      maxSlowBacklog = Math.max(maxSlowBacklog, slowConn.socket.writableLength);

      assert.equal(outOfOrder, 0, 'the good subscriber received every message, in order');
      assert.ok(tb.broker.stats.publishDropped - droppedBefore > 0, 'messages to the slow subscriber were dropped');
      // The slow subscriber's server-side buffer stays near maxOutboundBuffer (plus at most one message).
      assert.ok(maxSlowBacklog <= maxOutboundBuffer + 2 * (chunk + 16), `slow subscriber backlog reached ${maxSlowBacklog} bytes`);
      assert.ok(slowConn.decoder.buffered < 1024);

      const now = await settledMemory();
      const grown = (now.arrayBuffers - baseline.arrayBuffers) + (now.heapUsed - baseline.heapUsed);
      assert.ok(grown < 8 * 1024 * 1024, `memory grew by ${(grown / 1048576).toFixed(1)} MiB while 20 MiB were published`);

      // The slow subscriber is still connected and gets messages again once it reads.
      assert.equal(slowConn.isConnected, true);
      slow.socket.resume();
      await waitFor(() => slowConn.socket.writableLength === 0, 5000, 'slow subscriber to drain');
      await pub.publishAsync('flood', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x21]), { qos: 0 });
      await waitFor(() => slow.packets.some((p) => p.type === 3 && p.payload.length === 5), 5000, 'a new message at the recovered subscriber');
    } finally {
      slow.socket.resume();
      await closeAll(slow, good, pub);
    }
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { QoS } from '../../src/protocol/index.js';
import { connectClient, startBroker, type TestBroker } from '../helpers/broker.js';
import {
  barrier, closeAll, collect, describePacket, expectPublish, expectSilence, PINGREQ, PINGRESP, expectPacket, rawAck, rawConnected,
  rawPublish, rawSubscribe, UNSUBACK, UNSUBSCRIBE, waitCount,
} from '../helpers/integration.js';

describe('retained messages (integration)', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  it('[MQTT-3.3.1-5][MQTT-3.3.1-6][MQTT-3.3.1-8] a retained message is stored and sent with RETAIN=1 to a later subscriber', async () => {
    const pub = await connectClient(tb.url);
    await pub.publishAsync('ret/basic', 'kept', { qos: 1, retain: true });
    await pub.endAsync();
    const sub = await rawConnected(tb.port);
    try {
      const suback = await rawSubscribe(sub, 'ret/basic', 1);
      assert.deepEqual(suback.returnCodes, [1]);
      const got = await expectPublish(sub);
      assert.equal(got.topic, 'ret/basic');
      assert.equal(got.payload.toString(), 'kept');
      assert.equal(got.retain, true, 'RETAIN=1 on a message sent because of a new subscription [MQTT-3.3.1-8]');
      assert.equal(got.qos, 1);
      await rawAck(sub, got);
      await expectSilence(sub, 200);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('[MQTT-3.3.1-6] a retained message is sent after the SUBACK', async () => {
    const pub = await connectClient(tb.url);
    await pub.publishAsync('ret/order', 'kept', { qos: 0, retain: true });
    await barrier(pub);
    const sub = await rawConnected(tb.port);
    try {
      // rawSubscribe asserts that the very next packet is the SUBACK.
      await rawSubscribe(sub, 'ret/order', 0);
      const got = await expectPublish(sub);
      assert.equal(got.payload.toString(), 'kept');
      assert.equal(got.retain, true);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('[MQTT-3.3.1-5] a newer retained message replaces the previous one on the same topic', async () => {
    const pub = await connectClient(tb.url);
    await pub.publishAsync('ret/replace', 'old', { qos: 1, retain: true });
    await pub.publishAsync('ret/replace', 'new', { qos: 1, retain: true });
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, 'ret/replace', 0);
      const got = await expectPublish(sub);
      assert.equal(got.payload.toString(), 'new');
      await expectSilence(sub, 200, 'only the newest retained message');
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('[MQTT-3.3.1-7] a retained QoS 0 message replaces a retained QoS 1 message', async () => {
    const pub = await connectClient(tb.url);
    await pub.publishAsync('ret/q0replace', 'qos1', { qos: 1, retain: true });
    await pub.publishAsync('ret/q0replace', 'qos0', { qos: 0, retain: true });
    await barrier(pub);
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, 'ret/q0replace', 2);
      const got = await expectPublish(sub);
      assert.equal(got.payload.toString(), 'qos0');
      assert.equal(got.qos, 0);
      await expectSilence(sub, 200);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('[MQTT-3.3.1-10][MQTT-3.3.1-11] a retained zero-length payload clears the retained message and is not stored itself', async () => {
    const live = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    let sub: Awaited<ReturnType<typeof rawConnected>> | undefined;
    try {
      await pub.publishAsync('ret/clear', 'soon gone', { qos: 1, retain: true });
      await rawSubscribe(live, 'ret/clear', 1);
      const first = await expectPublish(live);
      assert.equal(first.retain, true);
      await rawAck(live, first);

      await pub.publishAsync('ret/clear', Buffer.alloc(0), { qos: 1, retain: true });
      // Processed as normal: current subscribers receive the empty message [MQTT-3.3.1-10].
      const empty = await expectPublish(live);
      assert.equal(empty.payload.length, 0);
      assert.equal(empty.retain, false, '[MQTT-3.3.1-9]');
      await rawAck(live, empty);

      sub = await rawConnected(tb.port);
      await rawSubscribe(sub, 'ret/clear', 1);
      await expectSilence(sub, 300, 'no retained message after clearing');
    } finally {
      await closeAll(sub, live, pub);
    }
  });

  it('[MQTT-3.3.1-11] a retained zero-length payload on a topic without a retained message stores nothing', async () => {
    const pub = await connectClient(tb.url);
    const sub = await rawConnected(tb.port);
    try {
      await pub.publishAsync('ret/never', Buffer.alloc(0), { qos: 0, retain: true });
      await barrier(pub);
      await rawSubscribe(sub, 'ret/never', 0);
      await expectSilence(sub, 300);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('[MQTT-3.3.1-12] a non-retained publish neither stores nor replaces nor removes the retained message', async () => {
    const pub = await connectClient(tb.url);
    const sub = await rawConnected(tb.port);
    try {
      await pub.publishAsync('ret/keep', 'retained', { qos: 1, retain: true });
      await pub.publishAsync('ret/keep', 'plain', { qos: 1, retain: false });
      await pub.publishAsync('ret/keep', Buffer.alloc(0), { qos: 1, retain: false });
      await pub.publishAsync('ret/plain-only', 'plain', { qos: 1, retain: false });
      await rawSubscribe(sub, [['ret/keep', 0], ['ret/plain-only', 0]]);
      const got = await expectPublish(sub);
      assert.equal(got.topic, 'ret/keep');
      assert.equal(got.payload.toString(), 'retained');
      await expectSilence(sub, 200);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('[MQTT-3.3.1-9] messages forwarded to established subscriptions have RETAIN=0, even when published retained', async () => {
    const sub = await rawConnected(tb.port);
    const js = await connectClient(tb.url);
    const jsGot = collect(js);
    const pub = await connectClient(tb.url);
    try {
      await rawSubscribe(sub, 'ret/live/#', 2);
      await js.subscribeAsync('ret/live/#', { qos: 2 });
      for (const qos of [0, 1, 2] as QoS[]) {
        await pub.publishAsync(`ret/live/${qos}`, `q${qos}`, { qos, retain: true });
        const got = await expectPublish(sub);
        assert.equal(got.topic, `ret/live/${qos}`);
        assert.equal(got.retain, false, `live QoS ${qos} message must have RETAIN=0`);
        assert.equal(got.qos, qos);
        await rawAck(sub, got);
      }
      await waitCount(jsGot, 3);
      assert.deepEqual(jsGot.map((m) => m.retain), [false, false, false]);
      // ...and they were nevertheless stored.
      const late = await rawConnected(tb.port);
      try {
        await rawSubscribe(late, 'ret/live/#', 0);
        const stored = [await expectPublish(late), await expectPublish(late), await expectPublish(late)];
        assert.deepEqual(stored.map((p) => p.topic).sort(), ['ret/live/0', 'ret/live/1', 'ret/live/2']);
        assert.ok(stored.every((p) => p.retain));
      } finally {
        await closeAll(late);
      }
    } finally {
      await closeAll(sub, js, pub);
    }
  });

  describe('retained QoS is min(stored QoS, granted QoS) [MQTT-3.3.1-5][MQTT-3.8.4-6]', () => {
    const cases: Array<{ stored: QoS; granted: QoS; expected: QoS }> = [
      { stored: 2, granted: 1, expected: 1 },
      { stored: 2, granted: 0, expected: 0 },
      { stored: 1, granted: 2, expected: 1 },
      { stored: 0, granted: 2, expected: 0 },
      { stored: 2, granted: 2, expected: 2 },
    ];
    for (const c of cases) {
      it(`retained at QoS ${c.stored}, subscription granted QoS ${c.granted}: delivered at QoS ${c.expected}`, async () => {
        const topic = `ret/qos/${c.stored}/${c.granted}`;
        const pub = await connectClient(tb.url);
        const sub = await rawConnected(tb.port);
        try {
          await pub.publishAsync(topic, 'q', { qos: c.stored, retain: true });
          await barrier(pub);
          const suback = await rawSubscribe(sub, topic, c.granted);
          assert.deepEqual(suback.returnCodes, [c.granted]);
          const got = await expectPublish(sub);
          assert.equal(got.qos, c.expected);
          assert.equal(got.retain, true);
          if (c.expected > 0) assert.ok(got.packetId! > 0);
          await rawAck(sub, got);
        } finally {
          await closeAll(sub, pub);
        }
      });
    }
  });

  it('[MQTT-3.3.1-6] a wildcard subscription receives every matching retained message and no others', async () => {
    const pub = await connectClient(tb.url);
    const sub = await rawConnected(tb.port);
    try {
      for (const t of ['ret/w/a', 'ret/w/b', 'ret/w/a/deep', 'ret/wx/a']) await pub.publishAsync(t, t, { qos: 1, retain: true });
      await rawSubscribe(sub, 'ret/w/+', 0);
      const got = [await expectPublish(sub), await expectPublish(sub)];
      assert.deepEqual(got.map((p) => p.topic).sort(), ['ret/w/a', 'ret/w/b']);
      assert.ok(got.every((p) => p.retain && p.payload.toString() === p.topic));
      await expectSilence(sub, 200);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('[MQTT-3.8.4-3] re-subscribing to the same filter re-sends retained messages and replaces the subscription', async () => {
    const pub = await connectClient(tb.url);
    const sub = await rawConnected(tb.port);
    try {
      await pub.publishAsync('ret/resub', 'r', { qos: 1, retain: true });
      await rawSubscribe(sub, 'ret/resub', 1);
      const first = await expectPublish(sub);
      assert.equal(first.retain, true);
      assert.equal(first.qos, 1);
      await rawAck(sub, first);

      const suback = await rawSubscribe(sub, 'ret/resub', 0);
      assert.deepEqual(suback.returnCodes, [0]);
      const again = await expectPublish(sub);
      assert.equal(again.payload.toString(), 'r');
      assert.equal(again.retain, true);
      assert.equal(again.qos, 0, 'the new subscription QoS applies');
      await expectSilence(sub, 150);

      // One subscription, not two: a live message arrives once, at the new QoS.
      await pub.publishAsync('ret/resub', 'live', { qos: 1 });
      const live = await expectPublish(sub);
      assert.equal(live.payload.toString(), 'live');
      assert.equal(live.qos, 0);
      assert.equal(live.retain, false);
      await expectSilence(sub, 200, 'a single copy of the live message');
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('[MQTT-3.3.1-6] a retained message outlives its publisher and is sent to every new subscription', async () => {
    const pub = await connectClient(tb.url);
    await pub.publishAsync('ret/outlive', 'still here', { qos: 0, retain: true });
    await barrier(pub);
    await pub.endAsync();
    for (let i = 0; i < 2; i++) {
      const sub = await rawConnected(tb.port);
      try {
        await rawSubscribe(sub, 'ret/outlive', 0);
        const got = await expectPublish(sub);
        assert.equal(got.payload.toString(), 'still here');
      } finally {
        await closeAll(sub);
      }
    }
  });

  it('unsubscribing stops live messages, and a fresh subscription gets the retained message again', async () => {
    const pub = await connectClient(tb.url);
    const sub = await rawConnected(tb.port);
    try {
      await pub.publishAsync('ret/unsub', 'r', { qos: 0, retain: true });
      await barrier(pub);
      await rawSubscribe(sub, 'ret/unsub', 0);
      await expectPublish(sub);
      sub.send({ type: UNSUBSCRIBE, packetId: 77, filters: ['ret/unsub'] });
      const unsuback = await expectPacket<{ type: 11; packetId: number }>(sub, UNSUBACK);
      assert.equal(unsuback.packetId, 77);
      await pub.publishAsync('ret/unsub', 'r2', { qos: 0, retain: true });
      await barrier(pub);
      sub.send({ type: PINGREQ });
      await expectPacket(sub, PINGRESP);
      await expectSilence(sub, 100, 'no live message after UNSUBSCRIBE');
      await rawSubscribe(sub, 'ret/unsub', 0);
      const got = await expectPublish(sub);
      assert.equal(got.payload.toString(), 'r2');
      assert.equal(got.retain, true);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('a retained message published by a raw client with QoS 2 is stored once the PUBLISH is processed', async () => {
    const pub = await rawConnected(tb.port);
    const sub = await rawConnected(tb.port);
    try {
      rawPublish(pub, 'ret/raw2', 'exactly', 2, { packetId: 3, retain: true });
      await expectPacket(pub, 5 /* PUBREC */);
      pub.send({ type: 6, packetId: 3 });
      await expectPacket(pub, 7 /* PUBCOMP */);
      await rawSubscribe(sub, 'ret/raw2', 2);
      const got = await expectPublish(sub);
      assert.equal(got.payload.toString(), 'exactly');
      assert.equal(got.qos, 2);
      assert.equal(got.retain, true);
      await rawAck(sub, got);
      await expectSilence(sub, 150);
    } finally {
      await closeAll(pub, sub);
    }
  });

  describe('wildcards and $ topics [MQTT-4.7.2-1]', () => {
    let tb2: TestBroker;
    before(async () => {
      tb2 = await startBroker({ sysInterval: 1 });
      tb2.broker.publish({ topic: '$SYS/x', payload: 'system', retain: true });
      tb2.broker.publish({ topic: '$internal/y', payload: 'dollar', retain: true });
      tb2.broker.publish({ topic: 'foo/x', payload: 'foo', retain: true, qos: 1 });
      tb2.broker.publish({ topic: 'bar/x', payload: 'bar', retain: true });
      tb2.broker.publish({ topic: 'bar/x/deeper', payload: 'deeper', retain: true });
    });
    after(() => tb2.close());

    it("[MQTT-4.7.2-1] '#' receives every retained message except those on '$' topics", async () => {
      const sub = await rawConnected(tb2.port);
      try {
        await rawSubscribe(sub, '#', 0);
        const got = [await expectPublish(sub), await expectPublish(sub), await expectPublish(sub)];
        await expectSilence(sub, 300, "no further retained messages (none on '$' topics)");
        assert.deepEqual(got.map((p) => p.topic).sort(), ['bar/x', 'bar/x/deeper', 'foo/x']);
        assert.ok(got.every((p) => p.retain));
      } finally {
        await closeAll(sub);
      }
    });

    it("[MQTT-4.7.2-1] '+/x' receives matching retained messages but not '$SYS/x'", async () => {
      const sub = await rawConnected(tb2.port);
      try {
        await rawSubscribe(sub, '+/x', 0);
        const got = [await expectPublish(sub), await expectPublish(sub)];
        await expectSilence(sub, 300);
        assert.deepEqual(got.map((p) => p.topic).sort(), ['bar/x', 'foo/x']);
      } finally {
        await closeAll(sub);
      }
    });

    it("[MQTT-4.7.2-1] '+/#' and '+/broker/#' get no $SYS retained messages", async () => {
      const sub = await rawConnected(tb2.port);
      try {
        await rawSubscribe(sub, [['+/broker/#', 0], ['+/+/+', 0]]);
        const got = await expectPublish(sub);
        assert.equal(got.topic, 'bar/x/deeper');
        await expectSilence(sub, 300, 'nothing from $SYS');
      } finally {
        await closeAll(sub);
      }
    });

    it("an explicit '$SYS/#' or '$internal/y' subscription does receive the retained '$' messages", async () => {
      const sub = await rawConnected(tb2.port);
      try {
        await rawSubscribe(sub, [['$SYS/x', 0], ['$internal/+', 0]]);
        const got = [await expectPublish(sub), await expectPublish(sub)];
        assert.deepEqual(got.map((p) => `${p.topic}=${p.payload.toString()}`).sort(), ['$SYS/x=system', '$internal/y=dollar']);
        assert.ok(got.every((p) => p.retain));
        await rawSubscribe(sub, '$SYS/broker/#', 0);
        const sys = await expectPublish(sub);
        assert.ok(sys.topic.startsWith('$SYS/broker/'), JSON.stringify(describePacket(sys)));
      } finally {
        await closeAll(sub);
      }
    });
  });
});

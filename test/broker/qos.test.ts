import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PublishPacket, QoS } from '../../src/protocol/index.js';
import { connectClient, delay, startBroker, type TestBroker } from '../helpers/broker.js';
import {
  collect, closeAll, describePacket, expectPacket, expectPublish, expectSilence, PINGREQ, PINGRESP, PUBACK, PUBCOMP,
  PUBREC, PUBREL, PUBLISH, rawAck, rawConnected, rawPublish, rawSubscribe, waitCount,
} from '../helpers/integration.js';

describe('QoS flows (integration)', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  describe('client to broker', () => {
    it('[MQTT-4.3.1-1] a QoS 0 PUBLISH is routed and not acknowledged', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await rawConnected(tb.port);
      try {
        await rawSubscribe(sub, 'q0/in', 2);
        rawPublish(pub, 'q0/in', 'zero', 0);
        const got = await expectPublish(sub);
        assert.equal(got.qos, 0);
        assert.equal(got.dup, false, '[MQTT-3.3.1-2] DUP is 0 for QoS 0');
        assert.equal(got.packetId, undefined, '[MQTT-2.3.1-5] no packet id at QoS 0');
        assert.equal(got.payload.toString(), 'zero');
        // Nothing comes back to the publisher; a PINGRESP proves the broker has processed everything before it.
        pub.send({ type: PINGREQ });
        await expectPacket(pub, PINGRESP);
        assert.deepEqual(pub.packets, []);
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-3.3.1-3] the DUP flag of an incoming QoS 1 PUBLISH is not propagated to subscribers', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await rawConnected(tb.port);
      try {
        await rawSubscribe(sub, 'dup/q1', 1);
        rawPublish(pub, 'dup/q1', 'resent', 1, { packetId: 3, dup: true });
        assert.equal((await expectPacket<{ type: 4; packetId: number }>(pub, PUBACK)).packetId, 3);
        const got = await expectPublish(sub);
        assert.equal(got.payload.toString(), 'resent');
        assert.equal(got.dup, false);
        assert.equal(got.qos, 1);
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.3.2-2] answers a QoS 1 PUBLISH with a PUBACK carrying its packet id [MQTT-2.3.1-6]', async () => {
      const sub = await connectClient(tb.url);
      const got = collect(sub);
      await sub.subscribeAsync('q1/in', { qos: 1 });
      const pub = await rawConnected(tb.port);
      try {
        for (const packetId of [1, 42, 65535]) {
          rawPublish(pub, 'q1/in', `id-${packetId}`, 1, { packetId });
          const ack = await expectPacket<{ type: 4; packetId: number }>(pub, PUBACK);
          assert.equal(ack.packetId, packetId);
        }
        await waitCount(got, 3);
        assert.deepEqual(got.map((m) => [m.payload, m.qos]), [['id-1', 1], ['id-42', 1], ['id-65535', 1]]);
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.3.3-2] answers a QoS 2 PUBLISH with PUBREC, and PUBREL with PUBCOMP, echoing the packet id', async () => {
      const sub = await connectClient(tb.url);
      const got = collect(sub);
      await sub.subscribeAsync('q2/in', { qos: 2 });
      const pub = await rawConnected(tb.port);
      try {
        rawPublish(pub, 'q2/in', 'two', 2, { packetId: 777 });
        const rec = await expectPacket<{ type: 5; packetId: number }>(pub, PUBREC);
        assert.equal(rec.packetId, 777);
        pub.send({ type: PUBREL, packetId: 777 });
        const comp = await expectPacket<{ type: 7; packetId: number }>(pub, PUBCOMP);
        assert.equal(comp.packetId, 777);
        await waitCount(got, 1);
        await delay(100);
        assert.deepEqual(got.map((m) => [m.topic, m.payload, m.qos]), [['q2/in', 'two', 2]]);
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.6.0-2][MQTT-4.6.0-3] acknowledges a burst of PUBLISH packets in the order received', async () => {
      const pub = await rawConnected(tb.port);
      try {
        const ids = Array.from({ length: 30 }, (_, i) => 100 + ((i * 37) % 30));
        for (const [i, id] of ids.entries()) rawPublish(pub, 'order/acks', String(i), i % 2 === 0 ? 1 : 2, { packetId: id });
        for (const [i, id] of ids.entries()) {
          const ack = await expectPacket<{ type: number; packetId: number }>(pub, i % 2 === 0 ? PUBACK : PUBREC);
          assert.equal(ack.packetId, id, `ack #${i}`);
        }
        for (const [i, id] of ids.entries()) if (i % 2 === 1) pub.send({ type: PUBREL, packetId: id });
        for (const [i, id] of ids.entries()) {
          if (i % 2 === 0) continue;
          const comp = await expectPacket<{ type: 7; packetId: number }>(pub, PUBCOMP);
          assert.equal(comp.packetId, id);
        }
      } finally {
        await closeAll(pub);
      }
    });
  });

  describe('broker to client', () => {
    it('[MQTT-4.3.2-1][MQTT-2.3.1-1] QoS 1: PUBLISH with a non-zero packet id and DUP 0; PUBACK completes it', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await connectClient(tb.url);
      try {
        const suback = await rawSubscribe(sub, 'b2c/q1', 1);
        assert.deepEqual(suback.returnCodes, [1]);
        await pub.publishAsync('b2c/q1', 'one', { qos: 1 });
        const got = await expectPublish(sub);
        assert.equal(got.qos, 1);
        assert.equal(got.dup, false);
        assert.equal(got.retain, false);
        assert.ok(got.packetId !== undefined && got.packetId > 0 && got.packetId <= 65535, `packet id ${got.packetId}`);
        sub.send({ type: PUBACK, packetId: got.packetId });
        // The broker considers the flow finished: it neither re-sends nor objects.
        sub.send({ type: PINGREQ });
        await expectPacket(sub, PINGRESP);
        await expectSilence(sub, 200);
        assert.equal(sub.closed, false);
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.3.3-1] QoS 2: PUBLISH, PUBREC from the client, PUBREL with the same id, PUBCOMP from the client', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await connectClient(tb.url);
      try {
        const suback = await rawSubscribe(sub, 'b2c/q2', 2);
        assert.deepEqual(suback.returnCodes, [2]);
        await pub.publishAsync('b2c/q2', 'two', { qos: 2 });
        const got = await expectPublish(sub);
        assert.equal(got.qos, 2);
        assert.equal(got.dup, false);
        assert.ok(got.packetId !== undefined && got.packetId > 0, 'non-zero packet id [MQTT-2.3.1-1]');
        sub.send({ type: PUBREC, packetId: got.packetId });
        const rel = await expectPacket<{ type: 6; packetId: number }>(sub, PUBREL);
        assert.equal(rel.packetId, got.packetId, '[MQTT-2.3.1-6] PUBREL carries the PUBLISH packet id');
        sub.send({ type: PUBCOMP, packetId: got.packetId });
        sub.send({ type: PINGREQ });
        await expectPacket(sub, PINGRESP);
        await expectSilence(sub, 200, 'nothing re-sent after PUBCOMP');
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.3.2-1][MQTT-4.3.3-1] the broker uses only fresh packet ids after completed flows', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await connectClient(tb.url);
      try {
        await rawSubscribe(sub, 'b2c/seq', 2);
        const seen: number[] = [];
        for (let i = 0; i < 6; i++) {
          await pub.publishAsync('b2c/seq', String(i), { qos: (i % 2 === 0 ? 1 : 2) as QoS });
          const got = await expectPublish(sub);
          assert.equal(got.payload.toString(), String(i));
          assert.equal(got.qos, i % 2 === 0 ? 1 : 2);
          seen.push(got.packetId!);
          await rawAck(sub, got);
        }
        assert.ok(seen.every((id) => id > 0));
      } finally {
        await closeAll(sub, pub);
      }
    });
  });

  describe('exactly once', () => {
    it('[MQTT-4.3.3-2] a QoS 2 PUBLISH re-sent with DUP=1 before PUBREL is delivered once, and re-acknowledged with PUBREC', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await rawConnected(tb.port);
      try {
        await rawSubscribe(sub, 'once/q2', 2);
        rawPublish(pub, 'once/q2', 'first', 2, { packetId: 9 });
        assert.equal((await expectPacket<{ type: 5; packetId: number }>(pub, PUBREC)).packetId, 9);
        rawPublish(pub, 'once/q2', 'first', 2, { packetId: 9, dup: true });
        assert.equal((await expectPacket<{ type: 5; packetId: number }>(pub, PUBREC)).packetId, 9);
        rawPublish(pub, 'once/q2', 'first', 2, { packetId: 9, dup: true });
        assert.equal((await expectPacket<{ type: 5; packetId: number }>(pub, PUBREC)).packetId, 9);

        const got = await expectPublish(sub);
        assert.equal(got.payload.toString(), 'first');
        assert.equal(got.dup, false, '[MQTT-3.3.1-3] the incoming DUP flag is not propagated');
        await rawAck(sub, got);
        await expectSilence(sub, 300, 'the re-sent QoS 2 PUBLISH is not delivered again');

        pub.send({ type: PUBREL, packetId: 9 });
        assert.equal((await expectPacket<{ type: 7; packetId: number }>(pub, PUBCOMP)).packetId, 9);

        // After PUBCOMP the id is free: the same id is a new publication.
        rawPublish(pub, 'once/q2', 'second', 2, { packetId: 9 });
        assert.equal((await expectPacket<{ type: 5; packetId: number }>(pub, PUBREC)).packetId, 9);
        const again = await expectPublish(sub);
        assert.equal(again.payload.toString(), 'second');
        await rawAck(sub, again);
        pub.send({ type: PUBREL, packetId: 9 });
        await expectPacket(pub, PUBCOMP);
        await expectSilence(sub, 200);
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.3.3-2] a PUBREL for an already released id is still answered with PUBCOMP', async () => {
      const pub = await rawConnected(tb.port);
      try {
        rawPublish(pub, 'once/rel', 'x', 2, { packetId: 5 });
        await expectPacket(pub, PUBREC);
        pub.send({ type: PUBREL, packetId: 5 });
        assert.equal((await expectPacket<{ type: 7; packetId: number }>(pub, PUBCOMP)).packetId, 5);
        pub.send({ type: PUBREL, packetId: 5 });
        assert.equal((await expectPacket<{ type: 7; packetId: number }>(pub, PUBCOMP)).packetId, 5);
        assert.equal(pub.closed, false);
      } finally {
        await closeAll(pub);
      }
    });

    it('[MQTT-4.3.3-2] distinct QoS 2 packet ids in flight at once are distinct messages', async () => {
      const sub = await connectClient(tb.url);
      const got = collect(sub);
      await sub.subscribeAsync('once/many', { qos: 2 });
      const pub = await rawConnected(tb.port);
      try {
        for (const id of [1, 2, 3]) rawPublish(pub, 'once/many', `m${id}`, 2, { packetId: id });
        for (const id of [1, 2, 3]) assert.equal((await expectPacket<{ type: 5; packetId: number }>(pub, PUBREC)).packetId, id);
        for (const id of [1, 2, 3]) pub.send({ type: PUBREL, packetId: id });
        for (const id of [1, 2, 3]) assert.equal((await expectPacket<{ type: 7; packetId: number }>(pub, PUBCOMP)).packetId, id);
        await waitCount(got, 3);
        await delay(100);
        assert.deepEqual(got.map((m) => m.payload), ['m1', 'm2', 'm3']);
      } finally {
        await closeAll(sub, pub);
      }
    });
  });

  describe('QoS downgrade [MQTT-3.8.4-6]', () => {
    const cases: Array<{ published: QoS; granted: QoS; expected: QoS }> = [
      { published: 2, granted: 1, expected: 1 },
      { published: 2, granted: 0, expected: 0 },
      { published: 1, granted: 0, expected: 0 },
      { published: 0, granted: 2, expected: 0 },
      { published: 1, granted: 2, expected: 1 },
      { published: 2, granted: 2, expected: 2 },
    ];
    for (const c of cases) {
      it(`[MQTT-3.8.4-6] published at QoS ${c.published} to a subscription granted QoS ${c.granted} arrives at QoS ${c.expected}`, async () => {
        const sub = await rawConnected(tb.port);
        const pub = await connectClient(tb.url);
        const topic = `down/${c.published}/${c.granted}`;
        try {
          const suback = await rawSubscribe(sub, topic, c.granted);
          assert.deepEqual(suback.returnCodes, [c.granted]);
          await pub.publishAsync(topic, 'payload', { qos: c.published });
          const got = await expectPublish(sub);
          assert.equal(got.qos, c.expected);
          assert.equal(got.payload.toString(), 'payload');
          if (c.expected === 0) assert.equal(got.packetId, undefined, '[MQTT-2.3.1-5]');
          else assert.ok(got.packetId! > 0);
          await rawAck(sub, got);
          await expectSilence(sub, 100);
        } finally {
          await closeAll(sub, pub);
        }
      });
    }
  });

  describe('overlapping subscriptions', () => {
    it('[MQTT-3.3.5-1] a message matching several filters of one client is delivered once, at the highest granted QoS', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await connectClient(tb.url);
      try {
        const suback = await rawSubscribe(sub, [['a/#', 0], ['a/+', 2]]);
        assert.deepEqual(suback.returnCodes, [0, 2]);
        await pub.publishAsync('a/b', 'overlap', { qos: 2 });
        const got = await expectPublish(sub);
        assert.equal(got.qos, 2);
        assert.equal(got.topic, 'a/b');
        await rawAck(sub, got);
        await expectSilence(sub, 300, 'exactly one copy');
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-3.3.5-1] separately subscribed overlapping filters ("x/+/z" QoS 1 then "x/#" QoS 0) deliver once at QoS 1', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await connectClient(tb.url);
      try {
        await rawSubscribe(sub, 'x/+/z', 1);
        await rawSubscribe(sub, 'x/#', 0);
        await rawSubscribe(sub, 'x/y/z', 0);
        await pub.publishAsync('x/y/z', 'three filters', { qos: 2 });
        const got = await expectPublish(sub);
        assert.equal(got.qos, 1);
        await rawAck(sub, got);
        await expectSilence(sub, 300, 'exactly one copy');
        // A topic matching only the QoS 0 filter arrives at QoS 0.
        await pub.publishAsync('x/other', 'one filter', { qos: 2 });
        const other = await expectPublish(sub);
        assert.equal(other.topic, 'x/other');
        assert.equal(other.qos, 0);
      } finally {
        await closeAll(sub, pub);
      }
    });
  });

  describe('packet identifiers and ordering', () => {
    it('[MQTT-2.3.1-2][MQTT-2.3.1-4] packet ids used toward one client are distinct while in flight', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await connectClient(tb.url);
      try {
        await rawSubscribe(sub, [['ids/q1', 1], ['ids/q2', 2]]);
        const total = 60;
        const sends: Array<Promise<unknown>> = [];
        for (let i = 0; i < total; i++) sends.push(pub.publishAsync(i % 3 === 0 ? 'ids/q2' : 'ids/q1', String(i), { qos: i % 3 === 0 ? 2 : 1 }));
        await Promise.all(sends);
        // id -> state: 'publish' (not yet acknowledged) or 'pubrec' (PUBREC sent, waiting for PUBREL).
        const inFlight = new Map<number, { state: 'publish' | 'pubrec'; qos: QoS }>();
        const received: string[] = [];
        let round = 0;
        while (received.length < total || inFlight.size > 0) {
          const p = await sub.nextPacket(3000);
          if (p.type === PUBREL) {
            const entry = inFlight.get(p.packetId);
            assert.equal(entry?.state, 'pubrec', `PUBREL ${p.packetId} for a message not in PUBREC state`);
            sub.send({ type: PUBCOMP, packetId: p.packetId });
            inFlight.delete(p.packetId); // free only once PUBCOMP is sent [MQTT-2.3.1-3]
          } else {
            assert.equal(p.type, PUBLISH, `unexpected ${JSON.stringify(describePacket(p))}`);
            const got = p as PublishPacket;
            assert.ok(got.packetId! > 0);
            assert.ok(!inFlight.has(got.packetId!), `packet id ${got.packetId} reused while in flight: ${JSON.stringify(describePacket(got))}`);
            inFlight.set(got.packetId!, { state: 'publish', qos: got.qos });
            received.push(got.payload.toString());
          }
          if (sub.packets.length === 0) {
            // Acknowledge every other unacknowledged message, newest first, keeping the rest in flight a while longer.
            round++;
            const pending = [...inFlight.entries()].filter(([, e]) => e.state === 'publish');
            const chosen = pending.filter((_, i) => (i + round) % 2 === 0 || received.length === total).reverse();
            for (const [id, e] of chosen.length > 0 ? chosen : pending) {
              if (e.qos === 1) {
                sub.send({ type: PUBACK, packetId: id });
                inFlight.delete(id);
              } else {
                sub.send({ type: PUBREC, packetId: id });
                e.state = 'pubrec';
              }
            }
          }
        }
        assert.deepEqual([...received].sort((a, b) => Number(a) - Number(b)), Array.from({ length: total }, (_, i) => String(i)));
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.6.0-6] 500 QoS 1 messages arrive complete and in order', async () => {
      const sub = await connectClient(tb.url);
      const got = collect(sub);
      await sub.subscribeAsync('order/q1', { qos: 1 });
      const pub = await connectClient(tb.url);
      try {
        const total = 500;
        await Promise.all(Array.from({ length: total }, (_, i) => pub.publishAsync('order/q1', String(i), { qos: 1 })));
        await waitCount(got, total, 8000);
        await delay(100);
        assert.equal(got.length, total);
        assert.deepEqual(got.map((m) => m.payload), Array.from({ length: total }, (_, i) => String(i)));
        assert.ok(got.every((m) => m.qos === 1));
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.6.0-6] 200 QoS 2 messages arrive exactly once and in order', async () => {
      const sub = await connectClient(tb.url);
      const got = collect(sub);
      await sub.subscribeAsync('order/q2', { qos: 2 });
      const pub = await connectClient(tb.url);
      try {
        const total = 200;
        await Promise.all(Array.from({ length: total }, (_, i) => pub.publishAsync('order/q2', String(i), { qos: 2 })));
        await waitCount(got, total, 8000);
        await delay(100);
        assert.deepEqual(got.map((m) => m.payload), Array.from({ length: total }, (_, i) => String(i)));
        assert.ok(got.every((m) => m.qos === 2));
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.6.0-6] 1000 QoS 0 messages from one client arrive in order', async () => {
      const sub = await connectClient(tb.url);
      const got = collect(sub);
      await sub.subscribeAsync('order/q0', { qos: 0 });
      const pub = await connectClient(tb.url);
      try {
        const total = 1000;
        await Promise.all(Array.from({ length: total }, (_, i) => pub.publishAsync('order/q0', String(i), { qos: 0 })));
        await waitCount(got, total, 8000);
        assert.deepEqual(got.map((m) => m.payload), Array.from({ length: total }, (_, i) => String(i)));
      } finally {
        await closeAll(sub, pub);
      }
    });

    it('[MQTT-4.6.0-6] a raw subscriber that acknowledges slowly still receives QoS 1 messages in publish order', async () => {
      const sub = await rawConnected(tb.port);
      const pub = await connectClient(tb.url);
      try {
        await rawSubscribe(sub, 'order/slow', 1);
        const total = 80; // several times the default inflight window
        await Promise.all(Array.from({ length: total }, (_, i) => pub.publishAsync('order/slow', String(i), { qos: 1 })));
        const payloads: string[] = [];
        while (payloads.length < total) {
          const got = await expectPublish(sub);
          payloads.push(got.payload.toString());
          if (payloads.length % 5 === 0) await delay(5);
          sub.send({ type: PUBACK, packetId: got.packetId! });
        }
        assert.deepEqual(payloads, Array.from({ length: total }, (_, i) => String(i)));
      } finally {
        await closeAll(sub, pub);
      }
    });
  });
});

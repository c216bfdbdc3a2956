import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AckPacket, Properties, PublishPacket } from '../../../src/protocol/index.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import {
  ackPublish, barrier, DISCONNECT, expectDisconnect, expectNoPublish, Inbox, mqtt5, PUBACK, PUBCOMP, PUBLISH, publishAcked,
  PUBREC, PUBREL, RC, rawClient, rawConnect, sendPublish, subscribe, takeAck, takePublish, trackClients, uid,
} from '../../helpers/v5-flow.js';

/** Every forwardable PUBLISH property, with a repeated user property key and an order that sorting would change. */
const FULL_PROPERTIES: Properties = {
  payloadFormatIndicator: 1,
  contentType: 'application/json; charset=utf-8',
  responseTopic: 'props/reply/ü',
  correlationData: Buffer.from([0x00, 0xff, 0x10, 0x80, 0x00]),
  userProperties: [['k', 'first'], ['other', 'x'], ['k', 'second'], ['k', 'first'], ['', ''], ['ключ', 'значение']],
};

describe('MQTT 5 PUBLISH flow (integration)', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());
  const track = trackClients();

  describe('properties', () => {
    it('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] forwards Payload Format Indicator, Content Type, Response Topic, Correlation Data and User Properties (repeated keys, order) unaltered at every QoS', async () => {
      const sub = track(await rawClient(tb.port));
      assert.deepEqual(await subscribe(sub, 'props/#', { qos: 2 }), [2]);
      const pub = track(await rawClient(tb.port));
      for (const qos of [0, 1, 2] as const) {
        const payload = `{"qos":${qos}}`;
        if (qos === 0) sendPublish(pub, { topic: 'props/q0', payload, qos, properties: FULL_PROPERTIES });
        else assert.equal((await publishAcked(pub, { topic: `props/q${qos}`, payload, qos, properties: FULL_PROPERTIES })).reasonCode ?? 0, 0);
        const got = await takePublish(sub);
        assert.equal(got.topic, `props/q${qos}`);
        assert.equal(got.qos, qos);
        assert.equal(got.payload.toString(), payload);
        assert.deepEqual(got.properties, FULL_PROPERTIES, `properties forwarded unaltered at QoS ${qos}`);
        await ackPublish(sub, got);
      }
    });

    it('[MQTT-3.3.2-17] [MQTT-3.3.2-18] an MQTT.js subscriber sees the same properties', async () => {
      const client = track(await mqtt5(tb.url));
      const inbox = new Inbox(client);
      await client.subscribeAsync('propsjs/#', { qos: 1 });
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'propsjs/t', payload: 'x', qos: 1, properties: FULL_PROPERTIES });
      const [got] = await inbox.waitCount(1);
      const props = got!.properties!;
      assert.equal(Number(props.payloadFormatIndicator), 1);
      assert.equal(props.contentType, FULL_PROPERTIES.contentType);
      assert.equal(props.responseTopic, FULL_PROPERTIES.responseTopic);
      assert.deepEqual(Buffer.from(props.correlationData!), FULL_PROPERTIES.correlationData);
      assert.deepEqual({ ...props.userProperties }, { k: ['first', 'second', 'first'], other: 'x', '': '', 'ключ': 'значение' });
    });

    it('[MQTT-3.3.2-6] forwards the Message Expiry Interval (counted down) and adds none when the publisher sent none', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'mei/#', { qos: 1 });
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'mei/with', payload: 'a', qos: 1, properties: { messageExpiryInterval: 120 } });
      await publishAcked(pub, { topic: 'mei/without', payload: 'b', qos: 1 });
      const withExpiry = await takePublish(sub);
      const interval = withExpiry.properties?.messageExpiryInterval;
      assert.ok(interval !== undefined && interval <= 120 && interval >= 118, `Message Expiry Interval forwarded, got ${interval}`);
      const withoutExpiry = await takePublish(sub);
      assert.equal(withoutExpiry.properties?.messageExpiryInterval, undefined);
    });

    it('request/response (section 4.10): the responder answers on the Response Topic echoing the Correlation Data [MQTT-3.3.2-15] [MQTT-3.3.2-16]', async () => {
      const responder = track(await mqtt5(tb.url));
      await responder.subscribeAsync('rr/service', { qos: 1 });
      responder.on('message', (_topic, payload, packet) => {
        const props = packet.properties;
        if (!props?.responseTopic) return;
        responder.publish(props.responseTopic, `re:${payload.toString()}`, { qos: 1, properties: { correlationData: props.correlationData! } });
      });
      const requester = track(await mqtt5(tb.url));
      const inbox = new Inbox(requester);
      const replyTopic = `rr/reply/${uid('req')}`;
      await requester.subscribeAsync(replyTopic, { qos: 1 });
      for (let i = 0; i < 3; i++) {
        await requester.publishAsync('rr/service', `ask${i}`, {
          qos: 1, properties: { responseTopic: replyTopic, correlationData: Buffer.from([0xc0, i]) },
        });
      }
      const replies = await inbox.waitCount(3);
      const byCorrelation = new Map(replies.map((m) => [Buffer.from(m.properties!.correlationData!).toString('hex'), m.payload.toString()]));
      for (let i = 0; i < 3; i++) assert.equal(byCorrelation.get(Buffer.from([0xc0, i]).toString('hex')), `re:ask${i}`);
      for (const m of replies) assert.equal(m.topic, replyTopic);
    });
  });

  describe('Payload Format Indicator', () => {
    it('(3.3.2.3.2) a payload marked UTF-8 that is not is refused with PUBACK/PUBREC 0x99 and not delivered', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'pfi/#', { qos: 2 });
      const pub = track(await rawClient(tb.port));
      const invalid = Buffer.from([0x61, 0xc3, 0x28, 0xff]);
      const puback = await publishAcked(pub, { topic: 'pfi/bad', payload: invalid, qos: 1, properties: { payloadFormatIndicator: 1 } });
      assert.equal(puback.reasonCode, RC.PayloadFormatInvalid);
      const pubrec = await publishAcked(pub, { topic: 'pfi/bad', payload: invalid, qos: 2, packetId: 500, properties: { payloadFormatIndicator: 1 } });
      assert.equal(pubrec.reasonCode, RC.PayloadFormatInvalid);
      sendPublish(pub, { topic: 'pfi/bad', payload: invalid, qos: 0, properties: { payloadFormatIndicator: 1 } });
      await expectNoPublish(sub, 'a payload that is not UTF-8 is not delivered');
      // After a PUBREC of 0x80 or more, the same packet id starts a new publication [MQTT-4.3.3-9].
      const again = await publishAcked(pub, { topic: 'pfi/good', payload: 'héllo', qos: 2, packetId: 500, properties: { payloadFormatIndicator: 1 } });
      assert.equal(again.reasonCode ?? 0, 0);
      const got = await takePublish(sub);
      assert.equal(got.payload.toString(), 'héllo');
      assert.equal(got.properties?.payloadFormatIndicator, 1);
    });
  });

  describe('topic aliases from the client', () => {
    it('[MQTT-3.3.2-12] routes an empty topic with an alias set earlier on the connection to that topic; the alias is not forwarded [MQTT-3.3.2-7]', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'alias/#', { qos: 1 });
      const { raw: pub, connack } = await rawConnect(tb.port);
      track(pub);
      assert.equal(connack.properties?.topicAliasMaximum, 64, 'CONNACK advertises Topic Alias Maximum 64');
      const steps: Array<[string, number, string]> = [
        ['alias/one', 1, 'set 1'], ['', 1, 'use 1'], ['alias/two', 64, 'set 64'], ['', 64, 'use 64'],
        ['alias/three', 1, 'remap 1'], ['', 1, 'use remapped 1'], ['', 64, 'use 64 again'],
      ];
      for (const [topic, alias, payload] of steps) {
        const ack = await publishAcked(pub, { topic, payload, qos: 1, properties: { topicAlias: alias, contentType: 'text/plain' } });
        assert.equal(ack.reasonCode ?? 0, 0, `PUBACK for "${payload}"`);
      }
      const expected = ['alias/one', 'alias/one', 'alias/two', 'alias/two', 'alias/three', 'alias/three', 'alias/two'];
      for (let i = 0; i < expected.length; i++) {
        const got = await takePublish(sub);
        assert.equal(got.topic, expected[i], `message "${steps[i]![2]}"`);
        assert.equal(got.payload.toString(), steps[i]![2]);
        assert.deepEqual(got.properties, { contentType: 'text/plain' }, 'Topic Alias not carried forward, other properties kept');
        await ackPublish(sub, got);
      }
    });

    it('[MQTT-3.3.2-9] [MQTT-3.2.2-17] a Topic Alias above the Topic Alias Maximum (64) gets DISCONNECT 0x94', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'alias65/#', { qos: 1 });
      const pub = track(await rawClient(tb.port));
      sendPublish(pub, { topic: 'alias65/t', payload: 'x', qos: 1, properties: { topicAlias: 65 } });
      await expectDisconnect(pub, RC.TopicAliasInvalid, 'Topic Alias 65');
      await expectNoPublish(sub, 'the PUBLISH with an invalid alias is not routed');
    });

    it('(3.3.2.3.4) an empty topic with an alias never set, or with no alias at all, is a Protocol Error: DISCONNECT 0x82', async () => {
      const unknown = track(await rawClient(tb.port));
      sendPublish(unknown, { topic: '', payload: 'x', qos: 1, properties: { topicAlias: 7 } });
      await expectDisconnect(unknown, RC.ProtocolError, 'unknown Topic Alias');
      const none = track(await rawClient(tb.port));
      sendPublish(none, { topic: '', payload: 'x', qos: 0 });
      await expectDisconnect(none, RC.ProtocolError, 'empty topic without Topic Alias');
    });

    it('[MQTT-3.3.2-7] aliases belong to one connection: another connection, or the same session reconnected, cannot use them', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'aliasconn/#', { qos: 1 });
      const clientId = uid('alias');
      const first = track(await rawClient(tb.port, { clientId, properties: { sessionExpiryInterval: 60 } }));
      assert.equal((await publishAcked(first, { topic: 'aliasconn/t', payload: 'set', qos: 1, properties: { topicAlias: 3 } })).reasonCode ?? 0, 0);
      assert.equal((await publishAcked(first, { topic: '', payload: 'used', qos: 1, properties: { topicAlias: 3 } })).reasonCode ?? 0, 0);

      const other = track(await rawClient(tb.port));
      sendPublish(other, { topic: '', payload: 'other', qos: 1, properties: { topicAlias: 3 } });
      await expectDisconnect(other, RC.ProtocolError, 'alias of another connection');

      first.send({ type: DISCONNECT, reasonCode: 0 }, 5);
      assert.equal(await first.waitClosed(), true);
      const { raw: again, connack } = await rawConnect(tb.port, { clientId, clean: false, properties: { sessionExpiryInterval: 0 } });
      track(again);
      assert.equal(connack.sessionPresent, true, 'the session itself is resumed');
      sendPublish(again, { topic: '', payload: 'reconnected', qos: 1, properties: { topicAlias: 3 } });
      await expectDisconnect(again, RC.ProtocolError, 'alias of the previous connection of the session');

      assert.deepEqual([(await takePublish(sub)).payload.toString(), (await takePublish(sub)).payload.toString()], ['set', 'used']);
      await expectNoPublish(sub, 'no PUBLISH routed through a foreign alias');
    });
  });

  describe('topic aliases from the broker (capabilities.outgoingTopicAliases: 5)', () => {
    let ab: TestBroker;
    before(async () => {
      ab = await startBroker({ capabilities: { outgoingTopicAliases: 5 } });
    });
    after(() => ab.close());

    it('[MQTT-3.3.2-11] [MQTT-3.1.2-26] sends a topic once with an alias, then an empty topic with the same alias', async () => {
      const sub = track(await rawClient(ab.port, { properties: { topicAliasMaximum: 5 } }));
      await subscribe(sub, 'oa/#', { qos: 1 });
      const pub = track(await rawClient(ab.port));
      for (let i = 0; i < 3; i++) await publishAcked(pub, { topic: 'oa/a', payload: `m${i}`, qos: 1, properties: { contentType: 'c' } });
      const got: PublishPacket[] = [];
      for (let i = 0; i < 3; i++) got.push(await takePublish(sub));
      const alias = got[0]!.properties?.topicAlias;
      assert.ok(alias !== undefined && alias >= 1 && alias <= 5, `first PUBLISH sets an alias in 1..5, got ${alias}`);
      assert.equal(got[0]!.topic, 'oa/a');
      for (const p of got.slice(1)) {
        assert.equal(p.topic, '', 'later PUBLISH packets use the alias instead of the topic');
        assert.equal(p.properties?.topicAlias, alias);
      }
      for (let i = 0; i < 3; i++) {
        assert.equal(got[i]!.payload.toString(), `m${i}`);
        assert.equal(got[i]!.properties?.contentType, 'c', 'other properties still forwarded');
      }
    });

    it('[MQTT-3.1.2-26] [MQTT-3.3.2-11] never uses an alias above the client\'s Topic Alias Maximum, and every PUBLISH resolves to the right topic', async () => {
      for (const clientMaximum of [5, 2]) {
        const sub = track(await rawClient(ab.port, { properties: { topicAliasMaximum: clientMaximum } }));
        await subscribe(sub, `oam${clientMaximum}/#`, { qos: 0 });
        const pub = track(await rawClient(ab.port));
        const sent: string[] = [];
        for (let round = 0; round < 2; round++) {
          for (let t = 0; t < 7; t++) {
            const topic = `oam${clientMaximum}/t${t}`;
            sent.push(topic);
            await publishAcked(pub, { topic, payload: `${round}:${t}`, qos: 1 });
          }
        }
        const map = new Map<number, string>();
        for (const topic of sent) {
          const p = await takePublish(sub);
          const alias = p.properties?.topicAlias;
          if (alias !== undefined) {
            assert.ok(alias >= 1 && alias <= clientMaximum, `alias ${alias} within 1..${clientMaximum}`);
            if (p.topic !== '') map.set(alias, p.topic);
          }
          const resolved = p.topic !== '' ? p.topic : map.get(alias!);
          assert.equal(resolved, topic, 'the PUBLISH resolves to the published topic');
        }
      }
    });

    it('[MQTT-3.1.2-27] sends no Topic Alias to a client whose Topic Alias Maximum is 0 or absent', async () => {
      for (const properties of [{ topicAliasMaximum: 0 }, undefined]) {
        const sub = track(await rawClient(ab.port, properties ? { properties } : {}));
        const filter = `oa0/${properties ? 'zero' : 'absent'}`;
        await subscribe(sub, filter, { qos: 1 });
        const pub = track(await rawClient(ab.port));
        for (let i = 0; i < 3; i++) await publishAcked(pub, { topic: filter, payload: `n${i}`, qos: 1 });
        for (let i = 0; i < 3; i++) {
          const p = await takePublish(sub);
          assert.equal(p.topic, filter);
          assert.equal(p.properties?.topicAlias, undefined, `no alias (${filter})`);
        }
      }
    });

    it('(3.3.2.3.4) [MQTT-3.1.2-25] a QoS 0 message too large for the client sets up no alias: the next message on its topic still resolves', async () => {
      const sub = track(await rawClient(ab.port, { properties: { topicAliasMaximum: 5, maximumPacketSize: 100 } }));
      await subscribe(sub, 'oamps/#', { qos: 0 });
      const pub = track(await rawClient(ab.port));
      await publishAcked(pub, { topic: 'oamps/t', payload: Buffer.alloc(200), qos: 1 });
      await publishAcked(pub, { topic: 'oamps/t', payload: 'small', qos: 1 });
      const got = await takePublish(sub);
      assert.equal(got.payload.toString(), 'small');
      assert.equal(got.topic, 'oamps/t', 'the first PUBLISH the client sees for a topic names it (no alias it never learned)');
    });

    it('[MQTT-3.1.2-24] [MQTT-3.3.4-9] a QoS 1 message that the topic alias would push over the client\'s Maximum Packet Size does not block the window', async () => {
      const sub = track(await rawClient(ab.port, { properties: { topicAliasMaximum: 5, maximumPacketSize: 100, receiveMaximum: 1 } }));
      await subscribe(sub, 'oamq/#', { qos: 1 });
      const pub = track(await rawClient(ab.port));
      // QoS 1 to "oamq/t": 1 + 1 + (2 + 6 + 2 + 1 + 87) = 100 bytes without a Topic Alias, 103 with one.
      await publishAcked(pub, { topic: 'oamq/t', payload: Buffer.alloc(87, 0x61), qos: 1 });
      await publishAcked(pub, { topic: 'oamq/t', payload: 'small', qos: 1 });
      const aliases = new Map<number, string>();
      const received: string[] = [];
      while (!received.includes('small')) {
        let p: PublishPacket;
        try {
          p = await takePublish(sub, 1500);
        } catch {
          assert.fail(`the second message never arrived (received: ${JSON.stringify(received.map((r) => r.length > 10 ? `<${r.length} bytes>` : r))})`);
        }
        const alias = p.properties?.topicAlias;
        if (alias !== undefined && p.topic !== '') aliases.set(alias, p.topic);
        assert.equal(p.topic !== '' ? p.topic : aliases.get(alias!), 'oamq/t', 'every PUBLISH resolves to its topic');
        received.push(p.payload.toString());
        sub.send({ type: PUBACK, packetId: p.packetId! }, 5);
      }
    });

    it('[MQTT-3.3.2-10] an MQTT.js client with topicAliasMaximum 5 resolves the broker\'s aliases to the right topics', async () => {
      const client = track(await mqtt5(ab.url, { properties: { topicAliasMaximum: 5 } }));
      const inbox = new Inbox(client);
      await client.subscribeAsync('oajs/#', { qos: 1 });
      const pub = track(await rawClient(ab.port));
      const topics = ['oajs/a', 'oajs/b', 'oajs/a', 'oajs/b', 'oajs/a'];
      for (let i = 0; i < topics.length; i++) await publishAcked(pub, { topic: topics[i]!, payload: `${i}`, qos: 1 });
      const got = await inbox.waitCount(topics.length);
      assert.deepEqual(got.map((m) => [m.topic, m.payload.toString()]), topics.map((t, i) => [t, `${i}`]));
    });
  });

  describe('acknowledgement reason codes', () => {
    it('(3.4.2.1, 3.5.2.1) PUBACK/PUBREC 0x10 when nobody is subscribed, 0x00 once someone is', async () => {
      const pub = track(await rawClient(tb.port));
      assert.equal((await publishAcked(pub, { topic: 'nobody/here', payload: 'x', qos: 1 })).reasonCode, RC.NoMatchingSubscribers);
      const packetId = sendPublish(pub, { topic: 'nobody/here', payload: 'x', qos: 2 })!;
      assert.equal((await takeAck(pub, PUBREC, packetId)).reasonCode, RC.NoMatchingSubscribers);
      // 0x10 is a success code: the QoS 2 flow goes on [MQTT-4.3.3-11].
      pub.send({ type: PUBREL, packetId }, 5);
      assert.equal((await takeAck(pub, PUBCOMP, packetId)).reasonCode ?? 0, 0);

      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'nobody/here', { qos: 1 });
      assert.equal((await publishAcked(pub, { topic: 'nobody/here', payload: 'y', qos: 1 })).reasonCode ?? 0, 0);
      assert.equal((await takePublish(sub)).payload.toString(), 'y');
    });

    it('(3.4.2.1) PUBACK/PUBREC 0x87 for a PUBLISH to a $ topic, which is not delivered [MQTT-4.7.2-1]', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, [{ filter: '$SYS/#', qos: 1 }, { filter: '#', qos: 1 }]);
      const pub = track(await rawClient(tb.port));
      assert.equal((await publishAcked(pub, { topic: '$SYS/x', payload: 'x', qos: 1 })).reasonCode, RC.NotAuthorized);
      assert.equal((await publishAcked(pub, { topic: '$SYS/x', payload: 'x', qos: 2 })).reasonCode, RC.NotAuthorized);
      await expectNoPublish(sub, 'a client\'s $SYS publish is not delivered');
    });

    it('[MQTT-3.3.4-6] a Subscription Identifier in a client\'s PUBLISH is a Protocol Error: DISCONNECT 0x82, not routed', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'subid/#', { qos: 1 });
      const pub = track(await rawClient(tb.port));
      sendPublish(pub, { topic: 'subid/t', payload: 'x', qos: 1, properties: { subscriptionIdentifiers: [5] } });
      await expectDisconnect(pub, RC.ProtocolError, 'Subscription Identifier from a client');
      await expectNoPublish(sub, 'not routed');
    });

    it('(3.7.2.1) PUBREL for an unknown packet id gets PUBCOMP 0x92; for a known one 0x00 [MQTT-4.3.3-11]', async () => {
      const pub = track(await rawClient(tb.port));
      pub.send({ type: PUBREL, packetId: 777 }, 5);
      assert.equal((await takeAck(pub, PUBCOMP, 777)).reasonCode, RC.PacketIdentifierNotFound);
      const packetId = sendPublish(pub, { topic: 'pubrel/t', payload: 'x', qos: 2 })!;
      await takeAck(pub, PUBREC, packetId);
      pub.send({ type: PUBREL, packetId }, 5);
      assert.equal((await takeAck(pub, PUBCOMP, packetId)).reasonCode ?? 0, 0);
      // Released once: a second PUBREL finds nothing.
      pub.send({ type: PUBREL, packetId }, 5);
      assert.equal((await takeAck(pub, PUBCOMP, packetId)).reasonCode, RC.PacketIdentifierNotFound);
      await barrier(pub);
      assert.equal(pub.closed, false);
    });
  });

  describe('authorizePublish refusal', () => {
    let hb: TestBroker;
    before(async () => {
      hb = await startBroker({ hooks: { authorizePublish: (_client, message) => !message.topic.startsWith('deny/') } });
    });
    after(() => hb.close());

    it('(3.4.2.1) PUBACK/PUBREC 0x87 when authorizePublish refuses, and the message is not delivered', async () => {
      const sub = track(await rawClient(hb.port));
      await subscribe(sub, '#', { qos: 1 });
      const pub = track(await rawClient(hb.port));
      assert.equal((await publishAcked(pub, { topic: 'deny/x', payload: 'x', qos: 1 })).reasonCode, RC.NotAuthorized);
      assert.equal((await publishAcked(pub, { topic: 'deny/x', payload: 'x', qos: 2 })).reasonCode, RC.NotAuthorized);
      await expectNoPublish(sub, 'a refused publish is not delivered');
      assert.equal((await publishAcked(pub, { topic: 'allow/x', payload: 'ok', qos: 1 })).reasonCode ?? 0, 0);
      assert.equal((await takePublish(sub)).payload.toString(), 'ok');
    });
  });

  describe('flow control: the broker\'s Receive Maximum (capabilities.receiveMaximum: 5)', () => {
    let rb: TestBroker;
    before(async () => {
      rb = await startBroker({ capabilities: { receiveMaximum: 5 } });
    });
    after(() => rb.close());

    it('[MQTT-3.3.4-7] more unreleased QoS 2 PUBLISH packets than the Receive Maximum get DISCONNECT 0x93', async () => {
      const { raw: pub, connack } = await rawConnect(rb.port);
      track(pub);
      assert.equal(connack.properties?.receiveMaximum, 5, 'CONNACK advertises Receive Maximum 5');
      for (let id = 1; id <= 5; id++) {
        sendPublish(pub, { topic: 'rmax/t', payload: `${id}`, qos: 2, packetId: id });
        assert.ok(((await takeAck(pub, PUBREC, id)).reasonCode ?? 0) < 0x80, `PUBREC ${id} accepts`);
      }
      await barrier(pub);
      assert.equal(pub.closed, false, 'five unreleased messages are within the limit');
      sendPublish(pub, { topic: 'rmax/t', payload: '6', qos: 2, packetId: 6 });
      await expectDisconnect(pub, RC.ReceiveMaximumExceeded, 'sixth unreleased QoS 2 PUBLISH');
    });

    it('[MQTT-3.3.4-7] PUBREL frees a slot, and a resent QoS 2 PUBLISH with an unreleased id is not a new one [MQTT-4.3.3-10]', async () => {
      const pub = track(await rawClient(rb.port));
      for (let id = 1; id <= 5; id++) {
        sendPublish(pub, { topic: 'rmax2/t', payload: `${id}`, qos: 2, packetId: id });
        await takeAck(pub, PUBREC, id);
      }
      sendPublish(pub, { topic: 'rmax2/t', payload: '3', qos: 2, packetId: 3, dup: true });
      await takeAck(pub, PUBREC, 3);
      pub.send({ type: PUBREL, packetId: 1 }, 5);
      await takeAck(pub, PUBCOMP, 1);
      sendPublish(pub, { topic: 'rmax2/t', payload: '6', qos: 2, packetId: 6 });
      await takeAck(pub, PUBREC, 6);
      await barrier(pub);
      assert.equal(pub.closed, false);
      assert.deepEqual(pub.packets.filter((p) => p.type === DISCONNECT), []);
    });
  });

  describe('flow control: the client\'s Receive Maximum', () => {
    it('[MQTT-3.3.4-9] sends at most Receive Maximum unacknowledged QoS 1 PUBLISH packets; other packets still flow [MQTT-3.3.4-10]', async () => {
      const sub = track(await rawClient(tb.port, { properties: { receiveMaximum: 2 } }));
      await subscribe(sub, 'crm/#', { qos: 1 });
      const pub = track(await rawClient(tb.port));
      for (let i = 0; i < 5; i++) await publishAcked(pub, { topic: 'crm/t', payload: `m${i}`, qos: 1 });
      const m0 = await takePublish(sub);
      const m1 = await takePublish(sub);
      await expectNoPublish(sub, 'no third PUBLISH while two are unacknowledged');
      assert.deepEqual(await subscribe(sub, 'crm-other/#', { qos: 1 }), [1], 'SUBACK is not held back by the full window');
      sub.send({ type: PUBACK, packetId: m0.packetId! }, 5);
      const m2 = await takePublish(sub);
      await expectNoPublish(sub, 'again two unacknowledged');
      sub.send({ type: PUBACK, packetId: m1.packetId! }, 5);
      sub.send({ type: PUBACK, packetId: m2.packetId! }, 5);
      const m3 = await takePublish(sub);
      const m4 = await takePublish(sub);
      assert.deepEqual([m0, m1, m2, m3, m4].map((p) => p.payload.toString()), ['m0', 'm1', 'm2', 'm3', 'm4']);
    });

    it('[MQTT-3.3.4-9] (4.9) on reconnect the new Receive Maximum applies: no more unacknowledged PUBLISH packets than it, resends included [MQTT-4.4.0-1]', async () => {
      const clientId = uid('rmre');
      const first = track(await rawClient(tb.port, { clientId, properties: { sessionExpiryInterval: 60 } }));
      await subscribe(first, 'crmre/#', { qos: 1 });
      const pub = track(await rawClient(tb.port));
      for (let i = 0; i < 6; i++) await publishAcked(pub, { topic: 'crmre/t', payload: `m${i}`, qos: 1 });
      for (let i = 0; i < 6; i++) await takePublish(first);
      first.destroy();
      await first.waitClosed();
      const { raw: again, connack } = await rawConnect(tb.port, { clientId, clean: false, properties: { sessionExpiryInterval: 0, receiveMaximum: 2 } });
      track(again);
      assert.equal(connack.sessionPresent, true);
      await barrier(again);
      const publishes = again.packets.filter((p): p is PublishPacket => p.type === PUBLISH);
      assert.ok(publishes.length <= 2, `at most 2 unacknowledged PUBLISH packets, got ${publishes.length}`);
      // Acknowledging them lets the rest through, in order.
      const seen: string[] = [];
      while (seen.length < 6) {
        const p = await takePublish(again);
        seen.push(p.payload.toString());
        again.send({ type: PUBACK, packetId: p.packetId! }, 5);
      }
      assert.deepEqual(seen, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    });

    it('[MQTT-3.3.4-9] QoS 2: a slot frees on PUBCOMP, not on PUBREC; a PUBREC of 0x80 or more frees it too [MQTT-4.4.0-2]', async () => {
      const sub = track(await rawClient(tb.port, { properties: { receiveMaximum: 1 } }));
      await subscribe(sub, 'crm2/#', { qos: 2 });
      const pub = track(await rawClient(tb.port));
      for (let i = 0; i < 3; i++) await publishAcked(pub, { topic: 'crm2/t', payload: `q${i}`, qos: 2 });
      const q0 = await takePublish(sub);
      assert.equal(q0.payload.toString(), 'q0');
      sub.send({ type: PUBREC, packetId: q0.packetId! }, 5);
      await takeAck(sub, PUBREL, q0.packetId!);
      await expectNoPublish(sub, 'PUBREC alone does not free the slot');
      sub.send({ type: PUBCOMP, packetId: q0.packetId! }, 5);
      const q1 = await takePublish(sub);
      assert.equal(q1.payload.toString(), 'q1');
      sub.send({ type: PUBREC, packetId: q1.packetId!, reasonCode: RC.UnspecifiedError }, 5);
      const q2 = await takePublish(sub);
      assert.equal(q2.payload.toString(), 'q2');
      await barrier(sub);
      assert.deepEqual(
        sub.packets.filter((p) => p.type === PUBREL && (p as AckPacket<number>).packetId === q1.packetId),
        [], 'no PUBREL after a failed PUBREC',
      );
    });
  });

  describe('the client\'s Maximum Packet Size', () => {
    it('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a message larger than the client\'s Maximum Packet Size is not sent to it; a small one is; another client gets both', async () => {
      const small = track(await rawClient(tb.port, { properties: { maximumPacketSize: 100 } }));
      await subscribe(small, 'mps/#', { qos: 1 });
      const other = track(await rawClient(tb.port));
      await subscribe(other, 'mps/#', { qos: 1 });
      const pub = track(await rawClient(tb.port));
      const big = Buffer.alloc(200, 0x42);
      await publishAcked(pub, { topic: 'mps/t', payload: big, qos: 1 });
      await publishAcked(pub, { topic: 'mps/t', payload: 'small', qos: 1 });
      const first = await takePublish(small);
      assert.equal(first.payload.toString(), 'small', 'the small message is the first to arrive');
      await expectNoPublish(small, 'nothing else');
      const o1 = await takePublish(other);
      const o2 = await takePublish(other);
      assert.deepEqual(o1.payload, big);
      assert.equal(o2.payload.toString(), 'small');
    });

    it('[MQTT-3.1.2-24] the limit is on the whole packet: exactly Maximum Packet Size bytes is sent, one byte more is not', async () => {
      const sub = track(await rawClient(tb.port, { properties: { maximumPacketSize: 100 } }));
      await subscribe(sub, 'mpsx/t', { qos: 0 });
      const pub = track(await rawClient(tb.port));
      // Delivered at QoS 0 to "mpsx/t" (6 bytes) without properties: 1 + 1 + (2 + 6 + 1 + payload) bytes,
      // so a 89-byte payload makes 100 bytes and a 90-byte one 101.
      await publishAcked(pub, { topic: 'mpsx/t', payload: Buffer.alloc(90, 0x61), qos: 1 });
      await publishAcked(pub, { topic: 'mpsx/t', payload: Buffer.alloc(89, 0x62), qos: 1 });
      await publishAcked(pub, { topic: 'mpsx/t', payload: 'end', qos: 1 });
      const sizes: number[] = [];
      for (;;) {
        const p = await takePublish(sub);
        if (p.payload.toString() === 'end') break;
        sizes.push(p.payload.length);
      }
      assert.deepEqual(sizes, [89], 'the 100-byte packet is sent, the 101-byte one is not');
    });

    it('[MQTT-3.1.2-25] a QoS 1 message too large for the client is dropped as if delivered: it holds no Receive Maximum slot', async () => {
      const sub = track(await rawClient(tb.port, { properties: { maximumPacketSize: 100, receiveMaximum: 1 } }));
      await subscribe(sub, 'mpsq/#', { qos: 1 });
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'mpsq/t', payload: Buffer.alloc(300), qos: 1 });
      await publishAcked(pub, { topic: 'mpsq/t', payload: 'fits', qos: 1 });
      assert.equal((await takePublish(sub)).payload.toString(), 'fits');
    });
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PublishPacket } from '../../../src/protocol/index.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import {
  ackPublish, DISCONNECT, expectNoPublish, Inbox, mqtt5, publishAcked, RC, rawClient, rawConnect, subscribe, takePublish,
  trackClients, uid, unsubscribe,
} from '../../helpers/v5-flow.js';

function ids(p: PublishPacket): number[] | undefined {
  const list = p.properties?.subscriptionIdentifiers;
  return list && [...list].sort((a, b) => a - b);
}

describe('MQTT 5 SUBSCRIBE options and identifiers (integration)', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());
  const track = trackClients();

  describe('No Local', () => {
    it('[MQTT-3.8.3-3] a client subscribed with No Local does not get its own messages; other clients do, and it gets theirs', async () => {
      const self = track(await rawClient(tb.port));
      assert.deepEqual(await subscribe(self, { filter: 'nl/t', qos: 1, noLocal: true }), [1]);
      const peer = track(await rawClient(tb.port));
      await subscribe(peer, 'nl/t', { qos: 1 });
      assert.equal((await publishAcked(self, { topic: 'nl/t', payload: 'from-self', qos: 1 })).reasonCode ?? 0, 0);
      assert.equal((await publishAcked(peer, { topic: 'nl/t', payload: 'from-peer', qos: 1 })).reasonCode ?? 0, 0);
      const got = await takePublish(self);
      assert.equal(got.payload.toString(), 'from-peer');
      await ackPublish(self, got);
      await expectNoPublish(self, 'own message not forwarded to a No Local subscription');
      const peerGot = [await takePublish(peer), await takePublish(peer)].map((p) => p.payload.toString());
      assert.deepEqual(peerGot, ['from-self', 'from-peer'], 'a subscriber without No Local gets everything, its own included');
    });

    it('[MQTT-3.8.3-3] No Local is per subscription: an overlapping subscription without it delivers the own message once, at its QoS', async () => {
      const self = track(await rawClient(tb.port));
      await subscribe(self, { filter: 'nl2/#', qos: 2, noLocal: true });
      await subscribe(self, { filter: 'nl2/x', qos: 0 });
      await publishAcked(self, { topic: 'nl2/x', payload: 'own', qos: 2 });
      const got = await takePublish(self);
      assert.equal(got.payload.toString(), 'own');
      assert.equal(got.qos, 0, 'delivered through the subscription without No Local only');
      await expectNoPublish(self, 'one copy');
    });

    it('[MQTT-3.8.3-3] No Local with MQTT.js (nl: true)', async () => {
      const self = track(await mqtt5(tb.url));
      const selfInbox = new Inbox(self);
      await self.subscribeAsync('nljs/t', { qos: 1, nl: true });
      const peer = track(await mqtt5(tb.url));
      const peerInbox = new Inbox(peer);
      await peer.subscribeAsync('nljs/t', { qos: 1 });
      await self.publishAsync('nljs/t', 'a', { qos: 1 });
      await peer.publishAsync('nljs/t', 'b', { qos: 1 });
      await peerInbox.waitCount(2);
      await selfInbox.waitCount(1);
      assert.deepEqual(selfInbox.payloads(), ['b']);
      assert.deepEqual(peerInbox.payloads().sort(), ['a', 'b']);
    });
  });

  describe('Retain As Published', () => {
    it('[MQTT-3.3.1-13] a live retained publication arrives with RETAIN 1 on a Retain As Published subscription, [MQTT-3.3.1-12] with RETAIN 0 on others', async () => {
      const rap = track(await rawClient(tb.port));
      await subscribe(rap, { filter: 'rap/#', qos: 1, retainAsPublished: true });
      const plain = track(await rawClient(tb.port));
      await subscribe(plain, { filter: 'rap/#', qos: 1 });
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'rap/t', payload: 'retained', qos: 1, retain: true });
      await publishAcked(pub, { topic: 'rap/t', payload: 'plain', qos: 1, retain: false });
      const r1 = await takePublish(rap);
      const r2 = await takePublish(rap);
      assert.deepEqual([r1.payload.toString(), r1.retain, r2.payload.toString(), r2.retain], ['retained', true, 'plain', false]);
      const p1 = await takePublish(plain);
      const p2 = await takePublish(plain);
      assert.deepEqual([p1.payload.toString(), p1.retain, p2.payload.toString(), p2.retain], ['retained', false, 'plain', false]);
      await publishAcked(pub, { topic: 'rap/t', payload: '', qos: 1, retain: true }); // clear
    });

    it('[MQTT-3.3.1-13] MQTT.js subscribers with rap: true / false', async () => {
      const rap = track(await mqtt5(tb.url));
      const rapInbox = new Inbox(rap);
      await rap.subscribeAsync('rapjs/#', { qos: 1, rap: true });
      const plain = track(await mqtt5(tb.url));
      const plainInbox = new Inbox(plain);
      await plain.subscribeAsync('rapjs/#', { qos: 1, rap: false });
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'rapjs/t', payload: 'r', qos: 1, retain: true });
      const [a] = await rapInbox.waitCount(1);
      const [b] = await plainInbox.waitCount(1);
      assert.equal(a!.retain, true);
      assert.equal(b!.retain, false);
      await publishAcked(pub, { topic: 'rapjs/t', payload: '', qos: 1, retain: true }); // clear
    });
  });

  describe('Retain Handling', () => {
    before(() => {
      for (const topic of ['rh0/t', 'rh1/t', 'rh1s/t', 'rh2/t']) tb.broker.publish({ topic, payload: `kept:${topic}`, qos: 1, retain: true });
    });

    it('[MQTT-3.3.1-9] Retain Handling 0 sends retained messages on every SUBSCRIBE, also when the subscription exists [MQTT-3.8.4-4]', async () => {
      const sub = track(await rawClient(tb.port));
      for (let round = 0; round < 2; round++) {
        await subscribe(sub, { filter: 'rh0/#', qos: 1, retainHandling: 0 });
        const got = await takePublish(sub);
        assert.equal(got.payload.toString(), 'kept:rh0/t', `round ${round}`);
        assert.equal(got.retain, true);
        await ackPublish(sub, got);
        await expectNoPublish(sub, 'one retained message per SUBSCRIBE');
      }
    });

    it('[MQTT-3.3.1-10] Retain Handling 1 sends retained messages only when the subscription is new', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, { filter: 'rh1/#', qos: 1, retainHandling: 1 });
      const got = await takePublish(sub);
      assert.equal(got.payload.toString(), 'kept:rh1/t');
      assert.equal(got.retain, true);
      await ackPublish(sub, got);
      await subscribe(sub, { filter: 'rh1/#', qos: 1, retainHandling: 1 });
      await expectNoPublish(sub, 'the subscription already existed');
      assert.deepEqual(await unsubscribe(sub, 'rh1/#'), [RC.Success]);
      await subscribe(sub, { filter: 'rh1/#', qos: 1, retainHandling: 1 });
      assert.equal((await takePublish(sub)).payload.toString(), 'kept:rh1/t', 'new again after UNSUBSCRIBE');
    });

    it('[MQTT-3.3.1-10] Retain Handling 1: a subscription kept in a resumed session already exists', async () => {
      const clientId = uid('rh1s');
      const first = track(await rawClient(tb.port, { clientId, properties: { sessionExpiryInterval: 60 } }));
      await subscribe(first, { filter: 'rh1s/#', qos: 1, retainHandling: 1 });
      await ackPublish(first, await takePublish(first));
      first.send({ type: DISCONNECT, reasonCode: 0 }, 5);
      await first.waitClosed();
      const { raw: again, connack } = await rawConnect(tb.port, { clientId, clean: false, properties: { sessionExpiryInterval: 0 } });
      track(again);
      assert.equal(connack.sessionPresent, true);
      await subscribe(again, { filter: 'rh1s/#', qos: 1, retainHandling: 1 });
      await expectNoPublish(again, 'no retained message for a subscription of the resumed session');
    });

    it('[MQTT-3.3.1-11] Retain Handling 2 never sends retained messages at subscribe; live messages still arrive', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, { filter: 'rh2/#', qos: 1, retainHandling: 2 });
      await expectNoPublish(sub, 'no retained message with Retain Handling 2');
      await subscribe(sub, { filter: 'rh2/#', qos: 1, retainHandling: 2 });
      await expectNoPublish(sub, 'not on a repeated SUBSCRIBE either');
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'rh2/t', payload: 'live', qos: 1 });
      const got = await takePublish(sub);
      assert.equal(got.payload.toString(), 'live');
      assert.equal(got.retain, false);
    });

    it('[MQTT-3.3.1-10] [MQTT-3.3.1-11] MQTT.js rh: 1 and rh: 2', async () => {
      tb.broker.publish({ topic: 'rhjs/t', payload: 'kept', qos: 1, retain: true });
      const one = track(await mqtt5(tb.url));
      const oneInbox = new Inbox(one);
      await one.subscribeAsync('rhjs/#', { qos: 1, rh: 1 });
      await oneInbox.waitCount(1);
      await one.subscribeAsync('rhjs/#', { qos: 1, rh: 1 });
      const two = track(await mqtt5(tb.url));
      const twoInbox = new Inbox(two);
      await two.subscribeAsync('rhjs/#', { qos: 1, rh: 2 });
      // A live message on the topic shows that both subscriptions are in place and anything sent before it has arrived.
      await (track(await mqtt5(tb.url))).publishAsync('rhjs/t', 'live', { qos: 1 });
      await oneInbox.waitCount(2);
      await twoInbox.waitCount(1);
      assert.deepEqual(oneInbox.payloads(), ['kept', 'live']);
      assert.deepEqual(twoInbox.payloads(), ['live']);
    });
  });

  describe('Subscription Identifiers', () => {
    it('[MQTT-3.3.4-3] a message through a subscription with an identifier carries it; through one without, none', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'sid/a', { qos: 1, subscriptionIdentifier: 7 });
      await subscribe(sub, 'sid/b', { qos: 1 });
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'sid/a', payload: 'a', qos: 1 });
      await publishAcked(pub, { topic: 'sid/b', payload: 'b', qos: 1 });
      const a = await takePublish(sub);
      const b = await takePublish(sub);
      assert.deepEqual(ids(a), [7]);
      assert.equal(b.properties?.subscriptionIdentifiers, undefined);
    });

    it('[MQTT-3.3.4-2] [MQTT-3.3.4-4] overlapping subscriptions with identifiers 1 and 2: one message at the highest granted QoS carrying both', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'ov/#', { qos: 0, subscriptionIdentifier: 1 });
      await subscribe(sub, 'ov/+/x', { qos: 1, subscriptionIdentifier: 2 });
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'ov/a/x', payload: 'both', qos: 2 });
      await publishAcked(pub, { topic: 'ov/a/y', payload: 'one', qos: 2 });
      const both = await takePublish(sub);
      assert.equal(both.payload.toString(), 'both');
      assert.equal(both.qos, 1, 'maximum QoS of the matching subscriptions');
      assert.deepEqual(ids(both), [1, 2]);
      await ackPublish(sub, both);
      const one = await takePublish(sub);
      assert.equal(one.payload.toString(), 'one');
      assert.equal(one.qos, 0);
      assert.deepEqual(ids(one), [1]);
      await expectNoPublish(sub, 'one copy per message');
    });

    it('[MQTT-3.3.4-3] a retained message sent on SUBSCRIBE carries that subscription\'s identifier; a new SUBSCRIBE replaces it [MQTT-3.8.4-3]', async () => {
      tb.broker.publish({ topic: 'sidr/t', payload: 'kept', qos: 1, retain: true });
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, 'sidr/#', { qos: 1, subscriptionIdentifier: 9 });
      const first = await takePublish(sub);
      assert.equal(first.retain, true);
      assert.deepEqual(ids(first), [9]);
      await ackPublish(sub, first);
      await subscribe(sub, 'sidr/#', { qos: 1, subscriptionIdentifier: 10 });
      const second = await takePublish(sub);
      assert.deepEqual(ids(second), [10]);
      await ackPublish(sub, second);
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'sidr/t', payload: 'live', qos: 1 });
      const live = await takePublish(sub);
      assert.deepEqual(ids(live), [10], 'the replaced subscription carries the new identifier only');
      await ackPublish(sub, live);
      // (3.8.2.1.2) A SUBSCRIBE without an identifier stores its absence.
      await subscribe(sub, { filter: 'sidr/#', qos: 1, retainHandling: 2 });
      await publishAcked(pub, { topic: 'sidr/t', payload: 'bare', qos: 1 });
      assert.equal((await takePublish(sub)).properties?.subscriptionIdentifiers, undefined);
    });

    it('[MQTT-3.3.4-3] MQTT.js sees the subscription identifier', async () => {
      const client = track(await mqtt5(tb.url));
      const inbox = new Inbox(client);
      await client.subscribeAsync('sidjs/t', { qos: 1, properties: { subscriptionIdentifier: 42 } });
      const pub = track(await rawClient(tb.port));
      await publishAcked(pub, { topic: 'sidjs/t', payload: 'x', qos: 1 });
      const [got] = await inbox.waitCount(1);
      const sid = got!.properties?.subscriptionIdentifier;
      assert.deepEqual(Array.isArray(sid) ? sid : [sid], [42]);
    });
  });

  describe('UNSUBACK', () => {
    it('[MQTT-3.11.3-1] [MQTT-3.11.3-2] one reason code per filter, in order: 0x00 removed, 0x11 no subscription existed [MQTT-3.10.4-6]', async () => {
      const sub = track(await rawClient(tb.port));
      await subscribe(sub, [{ filter: 'u/a', qos: 1 }, { filter: 'u/b', qos: 1 }, { filter: '$share/ug/u/s', qos: 1 }]);
      const codes = await unsubscribe(sub, ['u/a', 'u/none', 'u/b', 'u/a', 'u/#', '$share/ug/u/s']);
      assert.deepEqual(codes, [RC.Success, RC.NoSubscriptionExisted, RC.Success, RC.NoSubscriptionExisted, RC.NoSubscriptionExisted, RC.Success]);
      const pub = track(await rawClient(tb.port));
      for (const topic of ['u/a', 'u/b', 'u/s']) {
        assert.equal((await publishAcked(pub, { topic, payload: 'x', qos: 1 })).reasonCode, RC.NoMatchingSubscribers, topic);
      }
      await expectNoPublish(sub, 'no delivery after UNSUBSCRIBE [MQTT-3.10.4-2]');
    });
  });

  describe('authorizeSubscribe refusal', () => {
    let hb: TestBroker;
    before(async () => {
      hb = await startBroker({
        hooks: {
          authorizeSubscribe: (_client, s) => (s.filter.startsWith('secret/') ? false : s.filter.startsWith('capped/') ? 0 : true),
        },
      });
    });
    after(() => hb.close());

    it('[MQTT-3.9.3-1] [MQTT-3.9.3-2] [MQTT-3.8.4-6] SUBACK 0x87 for a refused filter, the granted QoS for the others, in order', async () => {
      const sub = track(await rawClient(hb.port));
      const codes = await subscribe(sub, [
        { filter: 'ok/a', qos: 1 }, { filter: 'secret/x', qos: 2 }, { filter: 'ok/b', qos: 2 }, { filter: 'capped/c', qos: 2 },
      ]);
      assert.deepEqual(codes, [1, RC.NotAuthorized, 2, 0]);
      const pub = track(await rawClient(hb.port));
      assert.equal((await publishAcked(pub, { topic: 'secret/x', payload: 's', qos: 1 })).reasonCode, RC.NoMatchingSubscribers);
      await publishAcked(pub, { topic: 'ok/b', payload: 'b', qos: 2 });
      await publishAcked(pub, { topic: 'capped/c', payload: 'c', qos: 2 });
      const b = await takePublish(sub);
      assert.deepEqual([b.payload.toString(), b.qos], ['b', 2]);
      await ackPublish(sub, b);
      const c = await takePublish(sub);
      assert.deepEqual([c.payload.toString(), c.qos], ['c', 0], '[MQTT-3.8.4-8] at most the granted QoS');
      await expectNoPublish(sub, 'nothing through the refused filter');
    });

    it('[MQTT-3.9.3-2] MQTT.js sees 0x87 (135) for the refused filter', async () => {
      const client = track(await mqtt5(hb.url));
      await assert.rejects(client.subscribeAsync('secret/y', { qos: 1 }), (err: Error & { packet?: { granted?: number[] } }) => {
        assert.deepEqual(err.packet?.granted, [RC.NotAuthorized]);
        return true;
      });
      const granted = await client.subscribeAsync('ok/y', { qos: 1 });
      assert.deepEqual(granted.map((g) => g.qos), [1]);
    });
  });
});

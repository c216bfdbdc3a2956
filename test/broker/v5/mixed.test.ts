import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Properties, PublishPacket } from '../../../src/protocol/index.js';
import type { RawClient } from '../../helpers/broker.js';
import { connectClient, startBroker, type TestBroker } from '../../helpers/broker.js';
import {
  ackPublish, Inbox, mqtt5, publishAcked, rawClient, sendPublish, subscribe, takePublish, trackClients, uid,
} from '../../helpers/v5-flow.js';

const PROPERTIES: Properties = {
  payloadFormatIndicator: 0,
  contentType: 'application/octet-stream',
  responseTopic: 'mixed/reply',
  correlationData: Buffer.from([1, 2, 3]),
  userProperties: [['a', '1'], ['b', '2'], ['a', '3']],
};

/** A payload whose first bytes would be mistaken for a property block if one leaked into a 3.1/3.1.1 PUBLISH. */
const BINARY = Buffer.from([0x00, 0x03, 0x01, 0x02, 0x7f, 0x80, 0xff, 0x26, 0x00, 0x01]);

function assertNoProperties(p: PublishPacket, what: string): void {
  assert.ok(p.properties === undefined || Object.keys(p.properties).length === 0, `${what}: no properties, got ${JSON.stringify(p.properties)}`);
}

describe('MQTT 5 and MQTT 3.1/3.1.1 clients on one broker (integration)', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());
  const track = trackClients();

  it('[MQTT-3.8.4-8] a 3.1.1 publisher → MQTT 5 subscribers: no properties, QoS the minimum of published and granted, RETAIN 0 live [MQTT-3.3.1-12]', async () => {
    const sub2 = track(await rawClient(tb.port));
    await subscribe(sub2, 'mx1/#', { qos: 2 });
    const sub1 = track(await rawClient(tb.port));
    await subscribe(sub1, 'mx1/#', { qos: 1 });
    const pub = track(await connectClient(tb.url, { protocolVersion: 4, clientId: uid('v4pub') }));
    await pub.publishAsync('mx1/q2', BINARY, { qos: 2 });
    await pub.publishAsync('mx1/q1', 'one', { qos: 1, retain: true });
    await pub.publishAsync('mx1/q0', 'zero', { qos: 0 });
    const expected: Array<[string, string | Buffer, number, number]> = [['mx1/q2', BINARY, 2, 1], ['mx1/q1', 'one', 1, 1], ['mx1/q0', 'zero', 0, 0]];
    for (const [topic, payload, qos2, qos1] of expected) {
      for (const [sub, qos] of [[sub2, qos2], [sub1, qos1]] as Array<[RawClient, number]>) {
        const got = await takePublish(sub);
        assert.equal(got.topic, topic);
        assert.deepEqual(got.payload, Buffer.isBuffer(payload) ? payload : Buffer.from(payload));
        assert.equal(got.qos, qos, `${topic} at QoS ${qos}`);
        assert.equal(got.retain, false, 'live messages have RETAIN 0');
        assertNoProperties(got, topic);
        await ackPublish(sub, got);
      }
    }
    // The retained one, to a later MQTT 5 subscriber.
    const later = track(await rawClient(tb.port));
    await subscribe(later, 'mx1/q1', { qos: 1 });
    const retained = await takePublish(later);
    assert.deepEqual([retained.payload.toString(), retained.retain, retained.qos], ['one', true, 1]);
    assertNoProperties(retained, 'retained from 3.1.1');
    await pub.publishAsync('mx1/q1', '', { qos: 1, retain: true });
  });

  it('a 3.1 publisher → MQTT 5 subscriber with a Subscription Identifier: the message carries only that identifier [MQTT-3.3.4-3]', async () => {
    const sub = track(await rawClient(tb.port));
    await subscribe(sub, 'mx31/#', { qos: 1, subscriptionIdentifier: 4 });
    const pub = track(await rawClient(tb.port, { version: 3 }));
    await publishAcked(pub, { topic: 'mx31/t', payload: 'from 3.1', qos: 1 }, { version: 3 });
    const got = await takePublish(sub);
    assert.equal(got.payload.toString(), 'from 3.1');
    assert.deepEqual(got.properties, { subscriptionIdentifiers: [4] });
  });

  it('an MQTT 5 publisher with properties → 3.1.1 and 3.1 subscribers: payload and QoS right, no properties', async () => {
    const v4 = track(await rawClient(tb.port, { version: 4 }));
    await subscribe(v4, 'mx2/#', { qos: 2, version: 4 });
    const v3 = track(await rawClient(tb.port, { version: 3 }));
    await subscribe(v3, 'mx2/#', { qos: 2, version: 3 });
    const js = track(await connectClient(tb.url, { protocolVersion: 4, clientId: uid('v4js') }));
    const jsInbox = new Inbox(js);
    await js.subscribeAsync('mx2/#', { qos: 2 });
    const pub = track(await rawClient(tb.port));
    for (const qos of [0, 1, 2] as const) {
      const properties = { ...PROPERTIES, messageExpiryInterval: 60 };
      if (qos === 0) sendPublish(pub, { topic: 'mx2/q0', payload: BINARY, qos, properties });
      else await publishAcked(pub, { topic: `mx2/q${qos}`, payload: BINARY, qos, properties });
      for (const [sub, version] of [[v4, 4], [v3, 3]] as Array<[RawClient, 3 | 4]>) {
        const got = await takePublish(sub);
        assert.equal(got.topic, `mx2/q${qos}`, `3.${version === 4 ? '1.1' : '1'} subscriber`);
        assert.equal(got.qos, qos);
        assert.deepEqual(got.payload, BINARY, `the payload is intact at 3.${version === 4 ? '1.1' : '1'} (no property block in front of it)`);
        assertNoProperties(got, `level ${version}`);
        await ackPublish(sub, got, version);
      }
    }
    const jsGot = await jsInbox.waitCount(3);
    assert.deepEqual(jsGot.map((m) => [m.topic, m.qos]), [['mx2/q0', 0], ['mx2/q1', 1], ['mx2/q2', 2]]);
    for (const m of jsGot) assert.deepEqual(m.payload, BINARY);
  });

  for (const order of ['3.1.1 first', 'MQTT 5 first'] as const) {
    it(`MQTT 5 → MQTT 5 and 3.1.1 subscribers at the same time (${order}): the MQTT 5 one gets the properties, the 3.1.1 one the bare message [MQTT-3.3.2-17]`, async () => {
      const topic = `mx3/${order === '3.1.1 first' ? 'a' : 'b'}`;
      let v4: RawClient;
      let v5: RawClient;
      if (order === '3.1.1 first') {
        v4 = track(await rawClient(tb.port, { version: 4 }));
        await subscribe(v4, topic, { qos: 1, version: 4 });
        v5 = track(await rawClient(tb.port));
        await subscribe(v5, topic, { qos: 1 });
      } else {
        v5 = track(await rawClient(tb.port));
        await subscribe(v5, topic, { qos: 1 });
        v4 = track(await rawClient(tb.port, { version: 4 }));
        await subscribe(v4, topic, { qos: 1, version: 4 });
      }
      const pub = track(await rawClient(tb.port));
      for (const qos of [0, 1] as const) {
        const payload = Buffer.concat([BINARY, Buffer.from(`#${qos}`)]);
        if (qos === 0) sendPublish(pub, { topic, payload, qos, properties: PROPERTIES });
        else await publishAcked(pub, { topic, payload, qos, properties: PROPERTIES });
        const at5 = await takePublish(v5);
        assert.deepEqual(at5.payload, payload);
        assert.deepEqual(at5.properties, PROPERTIES, `MQTT 5 subscriber, QoS ${qos}`);
        await ackPublish(v5, at5);
        const at4 = await takePublish(v4);
        assert.deepEqual(at4.payload, payload, `3.1.1 subscriber, QoS ${qos}`);
        assert.equal(at4.qos, qos);
        assertNoProperties(at4, '3.1.1 subscriber');
        await ackPublish(v4, at4, 4);
      }
    });
  }

  it('[MQTT-3.3.2-4] [MQTT-3.3.2-17] a retained message published by MQTT 5 with properties: a later 3.1.1 subscriber gets RETAIN 1 and no properties, a later MQTT 5 subscriber the properties', async () => {
    const pub = track(await rawClient(tb.port));
    const properties = { ...PROPERTIES, messageExpiryInterval: 300 };
    await publishAcked(pub, { topic: 'mx4/t', payload: BINARY, qos: 1, retain: true, properties });

    const v4 = track(await rawClient(tb.port, { version: 4 }));
    await subscribe(v4, 'mx4/#', { qos: 1, version: 4 });
    const at4 = await takePublish(v4);
    assert.deepEqual([at4.topic, at4.retain, at4.qos], ['mx4/t', true, 1]);
    assert.deepEqual(at4.payload, BINARY);
    assertNoProperties(at4, '3.1.1');

    const v3 = track(await rawClient(tb.port, { version: 3 }));
    await subscribe(v3, 'mx4/#', { qos: 0, version: 3 });
    const at3 = await takePublish(v3);
    assert.deepEqual([at3.retain, at3.qos], [true, 0]);
    assert.deepEqual(at3.payload, BINARY);

    const v5 = track(await rawClient(tb.port));
    await subscribe(v5, 'mx4/#', { qos: 1 });
    const at5 = await takePublish(v5);
    assert.deepEqual([at5.retain, at5.qos], [true, 1]);
    assert.deepEqual(at5.payload, BINARY);
    const { messageExpiryInterval, ...rest } = at5.properties ?? {};
    assert.deepEqual(rest, PROPERTIES, 'the properties are kept with the retained message');
    assert.ok(messageExpiryInterval !== undefined && messageExpiryInterval <= 300 && messageExpiryInterval >= 298,
      `[MQTT-3.3.2-6] the expiry interval counts down, got ${messageExpiryInterval}`);

    const js = track(await mqtt5(tb.url));
    const inbox = new Inbox(js);
    await js.subscribeAsync('mx4/#', { qos: 1 });
    const [jsGot] = await inbox.waitCount(1);
    assert.equal(jsGot!.retain, true);
    assert.equal(jsGot!.properties?.contentType, PROPERTIES.contentType);
    await publishAcked(pub, { topic: 'mx4/t', payload: '', qos: 1, retain: true });
  });
});

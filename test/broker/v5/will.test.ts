/**
 * MQTT 5 wills over real TCP: will properties forwarded, Will Delay Interval
 * against Session Expiry Interval and reconnection, DISCONNECT with reason
 * 0x04 (with will) and 0x00 (without).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { delay, RawClient, startBroker, type TestBroker } from '../../helpers/broker.js';
import type { Properties, QoS } from '../../../src/protocol/index.js';
import {
  connectedV5, disconnect, expectNothing, expectPublish, publishAcked, show, subscribe, trackRaw, uid,
} from '../../helpers/v5.js';

const track = trackRaw();

describe('MQTT 5 will messages', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  /** A v5 subscriber on `filter` (QoS 1). */
  async function watcher(filter: string): Promise<RawClient> {
    const { raw } = await connectedV5(tb.port, { clientId: uid('watch') });
    track(raw);
    await subscribe(raw, filter, 1);
    return raw;
  }

  /** A v5 client with a will on `topic`; `expiry` is its Session Expiry Interval, `willProps` the will properties. */
  async function willClient(
    topic: string, payload: string, o: { id?: string; expiry?: number; willProps?: Properties; qos?: QoS } = {},
  ): Promise<RawClient> {
    const { raw } = await connectedV5(tb.port, {
      clientId: o.id ?? uid('will'),
      clean: true,
      ...(o.expiry !== undefined ? { properties: { sessionExpiryInterval: o.expiry } } : {}),
      will: { topic, payload: Buffer.from(payload), qos: o.qos ?? 1, retain: false, ...(o.willProps ? { properties: o.willProps } : {}) },
    });
    return track(raw);
  }

  /** Asserts that no will reached `sub`: a sentinel published now is the first message it sees. */
  async function assertNoWill(sub: RawClient, topic: string): Promise<void> {
    const { raw: pub } = await connectedV5(tb.port, { clientId: uid('sentinel') });
    track(pub);
    await publishAcked(pub, topic, 'sentinel');
    const first = await expectPublish(sub);
    assert.equal(first.payload.toString(), 'sentinel', `expected no will, got ${show(first)}`);
  }

  it('[MQTT-3.1.3-10] [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-20] will properties are forwarded with the will', async () => {
    const topic = `w5/props/${uid('t')}`;
    const sub = await watcher(topic);
    const correlation = Buffer.from([0x00, 0x01, 0xfe, 0xff]);
    const userProperties: Array<[string, string]> = [['k', '1'], ['a', 'b'], ['k', '2'], ['ünï', 'cødé']];
    const client = await willClient(topic, 'héllo', {
      willProps: {
        payloadFormatIndicator: 1,
        contentType: 'text/plain; charset=utf-8',
        responseTopic: `reply/${topic}`,
        correlationData: correlation,
        userProperties,
        messageExpiryInterval: 120,
      },
    });
    client.destroy();
    const will = await expectPublish(sub);
    assert.equal(will.topic, topic);
    assert.equal(will.payload.toString(), 'héllo');
    assert.equal(will.qos, 1);
    assert.equal(will.retain, false);
    const p = will.properties ?? {};
    assert.equal(p.payloadFormatIndicator, 1, 'Payload Format Indicator unaltered [MQTT-3.3.2-4]');
    assert.equal(p.contentType, 'text/plain; charset=utf-8', 'Content Type unaltered [MQTT-3.3.2-20]');
    assert.equal(p.responseTopic, `reply/${topic}`, 'Response Topic unaltered [MQTT-3.3.2-15]');
    assert.deepEqual(p.correlationData, correlation, 'Correlation Data unaltered [MQTT-3.3.2-16]');
    assert.deepEqual(p.userProperties, userProperties, 'User Properties unaltered and in order [MQTT-3.1.3-10]');
    assert.ok(p.messageExpiryInterval === 120 || p.messageExpiryInterval === 119,
      `Message Expiry Interval forwarded (120), got ${p.messageExpiryInterval}`);
    assert.equal(p.topicAlias, undefined);
  });

  it('[MQTT-3.1.2-8] without a Will Delay Interval the will is published at once on an abrupt close', async () => {
    const topic = `w5/now/${uid('t')}`;
    const sub = await watcher(topic);
    const client = await willClient(topic, 'now', { expiry: 10 });
    const start = Date.now();
    client.destroy();
    const will = await expectPublish(sub, 2000);
    assert.equal(will.payload.toString(), 'now');
    assert.ok(Date.now() - start < 1000, 'promptly');
  });

  it('[MQTT-3.1.2-8] [MQTT-3.1.3-9] Will Delay Interval 2 with Session Expiry 10: the will arrives after ~2 s, not before', async () => {
    const topic = `w5/delay/${uid('t')}`;
    const sub = await watcher(topic);
    const client = await willClient(topic, 'delayed', { expiry: 10, willProps: { willDelayInterval: 2 } });
    const start = Date.now();
    client.destroy();
    await expectNothing(sub, 1500, 'no will before the Will Delay Interval');
    const will = await expectPublish(sub, 3000);
    const elapsed = Date.now() - start;
    assert.equal(will.payload.toString(), 'delayed');
    assert.ok(elapsed >= 1900 && elapsed <= 3500, `will after ${elapsed} ms, expected about 2000 ms`);
    assert.equal(will.properties?.willDelayInterval, undefined, 'Will Delay Interval is not a PUBLISH property');
  });

  it('[MQTT-3.1.3-9] reconnecting (Clean Start 0) within the Will Delay Interval: no will', async () => {
    const topic = `w5/back/${uid('t')}`;
    const sub = await watcher(topic);
    const id = uid('back');
    const client = await willClient(topic, 'should-not-arrive', { id, expiry: 10, willProps: { willDelayInterval: 2 } });
    client.destroy();
    await delay(500);
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 10 } });
    track(raw);
    assert.equal(connack.sessionPresent, true);
    await delay(2500); // past the original Will Delay Interval
    await assertNoWill(sub, topic);
  });

  it('[MQTT-3.1.2-8] Session Expiry 1 with Will Delay 5: the will is published when the session ends (~1 s)', async () => {
    const topic = `w5/sessend/${uid('t')}`;
    const sub = await watcher(topic);
    const client = await willClient(topic, 'session-ended', { expiry: 1, willProps: { willDelayInterval: 5 } });
    const start = Date.now();
    client.destroy();
    await expectNothing(sub, 700, 'not before the session ends');
    const will = await expectPublish(sub, 2500);
    const elapsed = Date.now() - start;
    assert.equal(will.payload.toString(), 'session-ended');
    assert.ok(elapsed >= 900 && elapsed <= 2500, `will after ${elapsed} ms, expected about 1000 ms (session end), not 5000 ms`);
  });

  it('[MQTT-3.1.2-8] Session Expiry 0 with Will Delay 5: the session ends with the connection and the will is published at once', async () => {
    const topic = `w5/sess0/${uid('t')}`;
    const sub = await watcher(topic);
    const client = await willClient(topic, 'immediate', { expiry: 0, willProps: { willDelayInterval: 5 } });
    const start = Date.now();
    client.destroy();
    const will = await expectPublish(sub, 2000);
    assert.equal(will.payload.toString(), 'immediate');
    assert.ok(Date.now() - start < 1000, 'promptly');
  });

  it('[MQTT-3.1.2-8] DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the will', async () => {
    const topic = `w5/rc4/${uid('t')}`;
    const sub = await watcher(topic);
    const client = await willClient(topic, 'asked-for');
    await disconnect(client, 0x04);
    const will = await expectPublish(sub, 2000);
    assert.equal(will.payload.toString(), 'asked-for');
  });

  it('[MQTT-3.1.2-8] DISCONNECT 0x04 still honours the Will Delay Interval (2 s, Session Expiry 10)', async () => {
    const topic = `w5/rc4d/${uid('t')}`;
    const sub = await watcher(topic);
    const client = await willClient(topic, 'asked-for-later', { expiry: 10, willProps: { willDelayInterval: 2, messageExpiryInterval: 1 } });
    const start = Date.now();
    await disconnect(client, 0x04);
    await expectNothing(sub, 1500, 'not before the Will Delay Interval');
    const will = await expectPublish(sub, 3000);
    assert.equal(will.payload.toString(), 'asked-for-later');
    assert.ok(Date.now() - start >= 1900, 'after the delay');
    // The will's Message Expiry Interval is its lifetime from publication (section 3.1.3.2.4), not from CONNECT.
    assert.equal(will.properties?.messageExpiryInterval, 1, 'Message Expiry Interval counted from the will\'s publication');
  });

  it('[MQTT-3.1.4-3] [MQTT-3.1.2-8] a session takeover publishes the old connection\'s will (no Will Delay Interval)', async () => {
    const topic = `w5/takenover/${uid('t')}`;
    const sub = await watcher(topic);
    const id = uid('tknow');
    const old = await willClient(topic, 'taken-over', { id, expiry: 10 });
    const { raw } = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 10 } });
    track(raw);
    assert.equal(await old.waitClosed(2000), true, 'the old connection is closed');
    const will = await expectPublish(sub, 2000);
    assert.equal(will.payload.toString(), 'taken-over');
  });

  it('[MQTT-3.1.2-22] [MQTT-3.1.2-8] a keep-alive timeout publishes the will', async () => {
    const topic = `w5/keepalive/${uid('t')}`;
    const sub = await watcher(topic);
    const { raw } = await connectedV5(tb.port, {
      clientId: uid('ka'), keepalive: 1, will: { topic, payload: Buffer.from('timed-out'), qos: 1, retain: false },
    });
    track(raw);
    const will = await expectPublish(sub, 4000);
    assert.equal(will.payload.toString(), 'timed-out');
    assert.equal(await raw.waitClosed(2000), true, 'the silent client is disconnected');
  });

  it('[MQTT-3.1.3-9] [MQTT-3.1.4-3] a session takeover (Clean Start 0) within the Will Delay Interval: no will', async () => {
    const topic = `w5/takeover/${uid('t')}`;
    const sub = await watcher(topic);
    const id = uid('tkover');
    const old = await willClient(topic, 'not-on-takeover', { id, expiry: 10, willProps: { willDelayInterval: 2 } });
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 10 } });
    track(raw);
    assert.equal(connack.sessionPresent, true);
    assert.equal(await old.waitClosed(2000), true, 'the old connection is closed');
    await delay(2500);
    await assertNoWill(sub, topic);
  });

  it('[MQTT-3.14.4-3] [MQTT-3.1.2-10] a normal DISCONNECT (0x00) discards the will', async () => {
    const topic = `w5/normal/${uid('t')}`;
    const sub = await watcher(topic);
    const client = await willClient(topic, 'discarded');
    await disconnect(client, 0x00);
    await delay(200);
    await assertNoWill(sub, topic);
  });

  it('[MQTT-3.1.2-10] a normal DISCONNECT discards a delayed will too (Will Delay 1, Session Expiry 10)', async () => {
    const topic = `w5/normald/${uid('t')}`;
    const sub = await watcher(topic);
    const client = await willClient(topic, 'discarded-delayed', { expiry: 10, willProps: { willDelayInterval: 1 } });
    await disconnect(client, 0x00);
    await delay(1800);
    await assertNoWill(sub, topic);
  });

  it('[MQTT-3.1.2-8] a v3.1.1 subscriber gets the will of a v5 client without properties', async () => {
    const topic = `w5/v4sub/${uid('t')}`;
    const v4 = track(await RawClient.connect(tb.port, 4));
    const ack = await v4.handshake({ clientId: uid('v4'), version: 4 });
    assert.equal((ack as { returnCode: number }).returnCode, 0);
    v4.send({ type: 8, packetId: 1, subscriptions: [{ filter: topic, qos: 1 }] }, 4);
    assert.equal((await v4.nextPacket()).type, 9);
    const client = await willClient(topic, 'to-v4', { willProps: { contentType: 'x', userProperties: [['a', 'b']] } });
    client.destroy();
    const will = await v4.nextPacket();
    assert.equal(will.type, 3, `PUBLISH expected, got ${show(will)}`);
    assert.equal((will as { payload: Buffer }).payload.toString(), 'to-v4');
  });
});

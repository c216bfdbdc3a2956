/**
 * MQTT 5 sessions over real TCP: Session Expiry Interval (from CONNECT and
 * changed on DISCONNECT), Clean Start, and Message Expiry Interval of queued
 * and retained messages.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { delay, startBroker, type TestBroker } from '../../helpers/broker.js';
import {
  connectedV5, disconnect, expectDisconnect, expectNothing, expectPublish, ping, publishAcked, show, subscribe, T,
  trackRaw, uid,
} from '../../helpers/v5.js';

const track = trackRaw();

describe('MQTT 5 session expiry', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  /** Connects `id`, subscribes to `topic` at QoS 1 and disconnects normally, leaving the session with `expiry`. */
  async function leaveSession(id: string, topic: string, expiry: number | undefined): Promise<void> {
    const props = expiry === undefined ? undefined : { sessionExpiryInterval: expiry };
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: true, ...(props ? { properties: props } : {}) });
    track(raw);
    assert.equal(connack.sessionPresent, false);
    await subscribe(raw, topic, 1);
    await disconnect(raw);
  }

  async function publisher() {
    const { raw } = await connectedV5(tb.port, { clientId: uid('pub') });
    return track(raw);
  }

  it('[MQTT-3.2.2-3] Session Expiry Interval 0: the session ends with the connection (Session Present 0, nothing queued)', async () => {
    const id = uid('exp0');
    await leaveSession(id, `s0/${id}`, 0);
    const pub = await publisher();
    const ack = await publishAcked(pub, `s0/${id}`, 'lost');
    assert.equal(ack.reasonCode, 0x10, 'no subscription remains: PUBACK 0x10 (No matching subscribers)');
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: false });
    track(raw);
    assert.equal(connack.sessionPresent, false, 'Session Present 0');
    await expectNothing(raw, 300, 'no queued message');
  });

  it('[MQTT-3.2.2-3] an absent Session Expiry Interval means 0', async () => {
    const id = uid('expnone');
    await leaveSession(id, `sn/${id}`, undefined);
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: false });
    track(raw);
    assert.equal(connack.sessionPresent, false);
  });

  it('[MQTT-3.1.2-23] [MQTT-3.1.2-5] [MQTT-3.2.2-3] Session Expiry Interval 2: back within 2 s, Session Present 1 and the queued QoS 1 messages arrive', async () => {
    const id = uid('exp2');
    const topic = `s2/${id}`;
    await leaveSession(id, topic, 2);
    const pub = await publisher();
    const a1 = await publishAcked(pub, topic, 'm1');
    const a2 = await publishAcked(pub, topic, 'm2');
    assert.ok((a1.reasonCode ?? 0) < 0x80 && (a2.reasonCode ?? 0) < 0x80);
    await delay(500);
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 2 } });
    track(raw);
    assert.equal(connack.sessionPresent, true, 'Session Present 1');
    const m1 = await expectPublish(raw);
    const m2 = await expectPublish(raw);
    assert.deepEqual([m1.topic, m1.payload.toString(), m1.qos], [topic, 'm1', 1]);
    assert.deepEqual([m2.topic, m2.payload.toString(), m2.qos], [topic, 'm2', 1]);
  });

  it('[MQTT-4.1.0-2] Session Expiry Interval 2: after ~3 s the session is gone (Session Present 0, subscription gone)', async () => {
    const id = uid('exp2g');
    const topic = `s2g/${id}`;
    await leaveSession(id, topic, 2);
    const pub = await publisher();
    await publishAcked(pub, topic, 'queued-then-discarded');
    await delay(3000);
    const ack = await publishAcked(pub, topic, 'after');
    assert.equal(ack.reasonCode, 0x10, 'the subscription ended with the session: PUBACK 0x10');
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: false });
    track(raw);
    assert.equal(connack.sessionPresent, false, 'Session Present 0');
    await expectNothing(raw, 300, 'the queued message went with the session');
  });

  it('[MQTT-4.1.0-1] a session does not expire while its connection is open (Session Expiry Interval 1, connected 2 s)', async () => {
    const id = uid('open');
    const topic = `sopen/${id}`;
    const { raw } = await connectedV5(tb.port, { clientId: id, properties: { sessionExpiryInterval: 1 } });
    track(raw);
    await subscribe(raw, topic, 1);
    await delay(2000);
    const pub = await publisher();
    await publishAcked(pub, topic, 'still-subscribed');
    assert.equal((await expectPublish(raw)).payload.toString(), 'still-subscribed');
    await disconnect(raw);
    const again = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } });
    track(again.raw);
    assert.equal(again.connack.sessionPresent, true, 'the interval runs from the disconnection, not from CONNECT');
  });

  it('[MQTT-3.1.2-23] Session Expiry Interval 0xFFFFFFFF: the session does not expire', async () => {
    const id = uid('never');
    const topic = `snever/${id}`;
    await leaveSession(id, topic, 0xffff_ffff);
    await delay(1600); // several housekeeping sweeps
    const pub = await publisher();
    await publishAcked(pub, topic, 'kept');
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0xffff_ffff } });
    track(raw);
    assert.equal(connack.sessionPresent, true);
    assert.equal((await expectPublish(raw)).payload.toString(), 'kept');
  });

  it('a DISCONNECT can lower the interval: 60 at CONNECT, 0 on DISCONNECT ends the session at once', async () => {
    const id = uid('lower');
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, properties: { sessionExpiryInterval: 60 } });
    track(raw);
    assert.equal(connack.sessionPresent, false);
    await subscribe(raw, `slow/${id}`, 1);
    await disconnect(raw, 0x00, { sessionExpiryInterval: 0 });
    const again = await connectedV5(tb.port, { clientId: id, clean: false });
    track(again.raw);
    assert.equal(again.connack.sessionPresent, false, 'the session ended with the connection');
  });

  it('[MQTT-3.1.2-23] a DISCONNECT can raise the interval: 1 at CONNECT, 60 on DISCONNECT keeps the session past 1 s', async () => {
    const id = uid('raise');
    const topic = `sraise/${id}`;
    const { raw } = await connectedV5(tb.port, { clientId: id, properties: { sessionExpiryInterval: 1 } });
    track(raw);
    await subscribe(raw, topic, 1);
    await disconnect(raw, 0x00, { sessionExpiryInterval: 60 });
    await delay(2000);
    const pub = await publisher();
    await publishAcked(pub, topic, 'still-here');
    const again = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } });
    track(again.raw);
    assert.equal(again.connack.sessionPresent, true, 'the session outlived the first interval');
    assert.equal((await expectPublish(again.raw)).payload.toString(), 'still-here');
  });

  it('[MQTT-4.13.1-1] [MQTT-3.14.2-2] 0 at CONNECT then non-zero on DISCONNECT (section 3.14.2.2.2): DISCONNECT 0x82, the session still ends and the will is published', async () => {
    const id = uid('zero2x');
    const { raw: watcher } = await connectedV5(tb.port, { clientId: uid('watch') });
    track(watcher);
    await subscribe(watcher, `szw/${id}`, 1);
    const { raw } = await connectedV5(tb.port, {
      clientId: id,
      properties: { sessionExpiryInterval: 0 },
      will: { topic: `szw/${id}`, payload: Buffer.from('invalid-disconnect'), qos: 1, retain: false },
    });
    track(raw);
    await subscribe(raw, `sz/${id}`, 1);
    raw.send({ type: T.DISCONNECT, reasonCode: 0x00, properties: { sessionExpiryInterval: 30 } }, 5);
    await expectDisconnect(raw, 0x82);
    const again = await connectedV5(tb.port, { clientId: id, clean: false });
    track(again.raw);
    assert.equal(again.connack.sessionPresent, false, 'the invalid DISCONNECT did not keep the session');
    const will = await expectPublish(watcher);
    assert.equal(will.payload.toString(), 'invalid-disconnect', 'not a valid DISCONNECT: the will is not discarded [MQTT-3.1.2-8]');
  });

  it('[MQTT-3.1.2-4] [MQTT-3.2.2-2] Clean Start 1 discards an existing session: Session Present 0, no queued messages, no subscriptions', async () => {
    const id = uid('clean');
    const topic = `sclean/${id}`;
    await leaveSession(id, topic, 60);
    const pub = await publisher();
    await publishAcked(pub, topic, 'queued');
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: true, properties: { sessionExpiryInterval: 60 } });
    track(raw);
    assert.equal(connack.sessionPresent, false, 'Session Present 0 with Clean Start 1');
    await expectNothing(raw, 300, 'the queued message was discarded with the session');
    const ack = await publishAcked(pub, topic, 'after');
    assert.equal(ack.reasonCode, 0x10, 'the subscription was discarded: PUBACK 0x10');
    await expectNothing(raw, 200, 'no delivery through a discarded subscription');
  });

  it('[MQTT-3.1.2-5] Clean Start 0 resumes the session of a connected client (takeover) with Session Present 1', async () => {
    const id = uid('resume');
    const { raw: first } = await connectedV5(tb.port, { clientId: id, properties: { sessionExpiryInterval: 60 } });
    track(first);
    await subscribe(first, `sresume/${id}`, 1);
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    track(raw);
    assert.equal(connack.sessionPresent, true);
    await expectDisconnect(first, 0x8e);
    const pub = await publisher();
    await publishAcked(pub, `sresume/${id}`, 'through-resumed');
    assert.equal((await expectPublish(raw)).payload.toString(), 'through-resumed');
  });
});

describe('MQTT 5 message expiry', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  async function offlineSubscriber(topic: string): Promise<string> {
    const id = uid('msgexp');
    const { raw } = await connectedV5(tb.port, { clientId: id, properties: { sessionExpiryInterval: 60 } });
    track(raw);
    await subscribe(raw, topic, 1);
    await disconnect(raw);
    return id;
  }

  it('[MQTT-3.3.2-5] a queued QoS 1 message with Message Expiry Interval 1 is not delivered after 2 s', async () => {
    const topic = `mexp/short/${uid('t')}`;
    const id = await offlineSubscriber(topic);
    const { raw: pub } = await connectedV5(tb.port);
    track(pub);
    await publishAcked(pub, topic, 'short-lived', { properties: { messageExpiryInterval: 1 } });
    await publishAcked(pub, topic, 'no-expiry');
    await delay(2000);
    const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    track(raw);
    assert.equal(connack.sessionPresent, true);
    const first = await expectPublish(raw);
    assert.equal(first.payload.toString(), 'no-expiry', `the expired message must not be delivered, got ${show(first)}`);
    await expectNothing(raw, 300, 'nothing else');
  });

  it('[MQTT-3.3.2-6] a queued message with Message Expiry Interval 10 is delivered with the remaining interval', async () => {
    const topic = `mexp/long/${uid('t')}`;
    const id = await offlineSubscriber(topic);
    const { raw: pub } = await connectedV5(tb.port);
    track(pub);
    await publishAcked(pub, topic, 'long-lived', { properties: { messageExpiryInterval: 10 } });
    const published = Date.now();
    await delay(2000);
    const { raw } = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
    track(raw);
    const msg = await expectPublish(raw);
    const waited = (Date.now() - published) / 1000;
    assert.equal(msg.payload.toString(), 'long-lived');
    const remaining = msg.properties?.messageExpiryInterval;
    assert.equal(typeof remaining, 'number', `Message Expiry Interval present: ${show(msg)}`);
    assert.ok(remaining! < 10, `remaining interval ${remaining} must be less than the 10 s published`);
    assert.ok(remaining! >= Math.floor(10 - waited) && remaining! <= Math.ceil(10 - waited + 0.5),
      `remaining interval ${remaining} should be about ${(10 - waited).toFixed(1)} s`);
  });

  it('[MQTT-3.3.2-6] a message forwarded at once keeps its Message Expiry Interval', async () => {
    const topic = `mexp/live/${uid('t')}`;
    const { raw: sub } = await connectedV5(tb.port);
    track(sub);
    await subscribe(sub, topic, 1);
    const { raw: pub } = await connectedV5(tb.port);
    track(pub);
    await publishAcked(pub, topic, 'live', { properties: { messageExpiryInterval: 30 } });
    const msg = await expectPublish(sub);
    const remaining = msg.properties?.messageExpiryInterval;
    assert.ok(remaining === 30 || remaining === 29, `remaining interval ${remaining}, expected 30 (or 29)`);
  });

  it('[MQTT-3.3.2-5] a retained message with Message Expiry Interval 1 is not sent to a new subscriber after 2 s', async () => {
    const base = `mexp/ret/${uid('t')}`;
    const { raw: pub } = await connectedV5(tb.port);
    track(pub);
    await publishAcked(pub, `${base}/short`, 'gone', { retain: true, properties: { messageExpiryInterval: 1 } });
    await publishAcked(pub, `${base}/long`, 'kept', { retain: true, properties: { messageExpiryInterval: 30 } });
    await delay(2000);
    const { raw: sub } = await connectedV5(tb.port);
    track(sub);
    await subscribe(sub, `${base}/short`, 1);
    await expectNothing(sub, 300, 'the expired retained message is not sent');
    await subscribe(sub, `${base}/long`, 1);
    const kept = await expectPublish(sub);
    assert.deepEqual([kept.topic, kept.payload.toString(), kept.retain], [`${base}/long`, 'kept', true]);
    const remaining = kept.properties?.messageExpiryInterval;
    assert.ok(typeof remaining === 'number' && remaining <= 28 && remaining >= 26,
      `retained message carries the remaining interval (about 28 s), got ${remaining} [MQTT-3.3.2-6]`);
    await ping(sub);
  });
});

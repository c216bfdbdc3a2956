/**
 * MQTT 5 connection level over real TCP: CONNACK properties, capabilities that
 * are turned off (advertised and enforced), refusal reason codes, server
 * DISCONNECTs with their reason codes, and Request Problem Information.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodePacket, type AckPacket, type SubackPacket, type UnsubackPacket } from '../../../src/protocol/index.js';
import { delay, RawClient, startBroker, type TestBroker } from '../../helpers/broker.js';
import {
  connectedV5, connectV5, disconnect, expectDisconnect, expectNothing, expectPublish, expectRefusal, expectType, packetId,
  ping, publish, publishAcked, sendConnect, show, subscribe, T, trackRaw, uid,
} from '../../helpers/v5.js';

const track = trackRaw();

describe('MQTT 5 CONNACK properties', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { maxPacketSize: 4096 } });
  });
  after(() => tb.close());

  it('advertises Maximum Packet Size (limits.maxPacketSize), Topic Alias Maximum 64 and Receive Maximum 1024', async () => {
    const { raw, connack } = await connectedV5(tb.port, { clientId: uid('props') });
    track(raw);
    const p = connack.properties ?? {};
    assert.equal(p.maximumPacketSize, 4096, 'Maximum Packet Size');
    assert.equal(p.topicAliasMaximum, 64, 'Topic Alias Maximum');
    assert.equal(p.receiveMaximum, 1024, 'Receive Maximum');
  });

  it('[MQTT-3.2.2-9] [MQTT-3.2.2-22] [MQTT-4.12.0-6] advertises nothing more with all capabilities on and no enhanced auth', async () => {
    const { raw, connack } = await connectedV5(tb.port, { clientId: uid('props'), keepalive: 30 });
    track(raw);
    const p = connack.properties ?? {};
    // Absent means "supported" (QoS 2, retain, wildcards, subscription ids, shared subscriptions).
    assert.equal(p.maximumQoS, undefined, 'no Maximum QoS when QoS 2 is supported');
    assert.equal(p.retainAvailable, undefined, 'Retain Available absent');
    assert.equal(p.wildcardSubscriptionAvailable, undefined, 'Wildcard Subscription Available absent');
    assert.equal(p.subscriptionIdentifiersAvailable, undefined, 'Subscription Identifiers Available absent');
    assert.equal(p.sharedSubscriptionAvailable, undefined, 'Shared Subscription Available absent');
    assert.equal(p.serverKeepAlive, undefined, 'no Server Keep Alive: the client\'s Keep Alive is used [MQTT-3.2.2-22]');
    assert.equal(p.sessionExpiryInterval, undefined, 'no Session Expiry Interval when the requested one is granted');
    assert.equal(p.assignedClientIdentifier, undefined, 'no Assigned Client Identifier for a non-empty client id');
    assert.equal(p.authenticationMethod, undefined, 'no Authentication Method without enhanced auth [MQTT-4.12.0-6]');
    assert.equal(p.authenticationData, undefined, 'no Authentication Data without enhanced auth');
  });

  it('[MQTT-3.1.2-28] Request Response Information 0: no Response Information in CONNACK', async () => {
    const { raw, connack } = await connectedV5(tb.port, { properties: { requestResponseInformation: 0 } });
    track(raw);
    assert.equal(connack.properties?.responseInformation, undefined);
  });

  it('[MQTT-3.2.2-16] [MQTT-3.1.3-6] assigns a new client identifier to an empty one with Clean Start 1', async () => {
    const a = await connectedV5(tb.port, { clientId: '', clean: true });
    track(a.raw);
    const b = await connectedV5(tb.port, { clientId: '', clean: true });
    track(b.raw);
    const idA = a.connack.properties?.assignedClientIdentifier;
    const idB = b.connack.properties?.assignedClientIdentifier;
    assert.equal(typeof idA, 'string', `Assigned Client Identifier in ${show(a.connack)}`);
    assert.equal(typeof idB, 'string', `Assigned Client Identifier in ${show(b.connack)}`);
    assert.ok(idA!.length > 0 && idB!.length > 0, 'non-empty identifiers');
    assert.notEqual(idA, idB, 'not used by any other session');
    assert.equal(a.connack.sessionPresent, false);
    // Both connections stay up (neither took the other over).
    await ping(a.raw);
    await ping(b.raw);
  });

  it('[MQTT-3.2.2-16] [MQTT-3.1.3-7] assigns an identifier with Clean Start 0, and the session lives under it', async () => {
    const first = await connectedV5(tb.port, { clientId: '', clean: false, properties: { sessionExpiryInterval: 60 } });
    track(first.raw);
    const assigned = first.connack.properties?.assignedClientIdentifier;
    assert.equal(typeof assigned, 'string', `Assigned Client Identifier in ${show(first.connack)}`);
    assert.ok(assigned!.length > 0);
    assert.equal(first.connack.sessionPresent, false, 'a new session');
    await subscribe(first.raw, `assigned/${assigned}`, 1);
    await disconnect(first.raw);

    const again = await connectedV5(tb.port, { clientId: assigned!, clean: false, properties: { sessionExpiryInterval: 0 } });
    track(again.raw);
    assert.equal(again.connack.sessionPresent, true, 'the session was stored under the assigned identifier [MQTT-3.2.2-3]');
    assert.equal(again.connack.properties?.assignedClientIdentifier, undefined, 'nothing assigned for a non-empty id');
  });

  it('[MQTT-3.2.2-16] an assigned identifier is not one of a session already in the server', async () => {
    const before = new Set(tb.broker.sessions.keys());
    const { raw, connack } = await connectedV5(tb.port, { clientId: '' });
    track(raw);
    const id = connack.properties?.assignedClientIdentifier;
    assert.ok(id, 'assigned');
    assert.equal(before.has(id), false, 'identifier of no existing session');
    assert.ok(tb.broker.sessions.has(id), 'the session is known by the assigned identifier');
  });
});

describe('MQTT 5 capabilities turned off are advertised and enforced', () => {
  describe('maximumQoS 1', () => {
    let tb: TestBroker;
    before(async () => {
      tb = await startBroker({ capabilities: { maximumQoS: 1 } });
    });
    after(() => tb.close());

    it('[MQTT-3.2.2-9] CONNACK carries Maximum QoS 1', async () => {
      const { raw, connack } = await connectedV5(tb.port);
      track(raw);
      assert.equal(connack.properties?.maximumQoS, 1);
    });

    it('[MQTT-3.2.2-11] a QoS 2 PUBLISH gets DISCONNECT 0x9B (QoS not supported)', async () => {
      const { raw } = await connectedV5(tb.port);
      track(raw);
      publish(raw, 'maxqos/x', 'q2', 2);
      await expectDisconnect(raw, 0x9b);
    });

    it('a QoS 1 PUBLISH is accepted', async () => {
      const { raw } = await connectedV5(tb.port);
      track(raw);
      const ack = await publishAcked(raw, 'maxqos/ok', 'q1');
      assert.ok((ack.reasonCode ?? 0) < 0x80, `PUBACK ${show(ack as never)}`);
    });

    it('[MQTT-3.2.2-10] [MQTT-3.8.4-7] a SUBSCRIBE at QoS 2 is accepted and granted QoS 1', async () => {
      const { raw } = await connectedV5(tb.port);
      track(raw);
      const suback = await subscribe(raw, [{ filter: 'maxqos/a', qos: 2 }, { filter: 'maxqos/b', qos: 1 }, { filter: 'maxqos/c', qos: 0 }]);
      assert.deepEqual(suback.returnCodes, [1, 1, 0]);
    });

    it('[MQTT-3.2.2-12] a will at QoS 2 gets CONNACK 0x9B and the connection is closed', async () => {
      const { raw, connack } = await connectV5(tb.port, { will: { topic: 'maxqos/will', payload: Buffer.from('w'), qos: 2, retain: false } });
      track(raw);
      await expectRefusal(raw, connack, 0x9b);
    });
  });

  describe('retainAvailable false', () => {
    let tb: TestBroker;
    before(async () => {
      tb = await startBroker({ capabilities: { retainAvailable: false } });
    });
    after(() => tb.close());

    it('CONNACK carries Retain Available 0', async () => {
      const { raw, connack } = await connectedV5(tb.port);
      track(raw);
      assert.equal(connack.properties?.retainAvailable, 0);
    });

    it('[MQTT-3.2.2-14] a retained PUBLISH gets DISCONNECT 0x9A (Retain not supported)', async () => {
      const { raw } = await connectedV5(tb.port);
      track(raw);
      publish(raw, 'noretain/x', 'r', 1, { retain: true });
      await expectDisconnect(raw, 0x9a);
    });

    it('a non-retained PUBLISH is accepted', async () => {
      const { raw } = await connectedV5(tb.port);
      track(raw);
      const ack = await publishAcked(raw, 'noretain/ok', 'x');
      assert.ok((ack.reasonCode ?? 0) < 0x80);
    });

    it('[MQTT-3.2.2-13] a will with Will Retain 1 gets CONNACK 0x9A and the connection is closed', async () => {
      const { raw, connack } = await connectV5(tb.port, { will: { topic: 'noretain/will', payload: Buffer.from('w'), qos: 0, retain: true } });
      track(raw);
      await expectRefusal(raw, connack, 0x9a);
    });
  });

  describe('wildcardSubscriptionAvailable false', () => {
    let tb: TestBroker;
    before(async () => {
      tb = await startBroker({ capabilities: { wildcardSubscriptionAvailable: false } });
    });
    after(() => tb.close());

    it('CONNACK carries Wildcard Subscription Available 0', async () => {
      const { raw, connack } = await connectedV5(tb.port);
      track(raw);
      assert.equal(connack.properties?.wildcardSubscriptionAvailable, 0);
    });

    it('[MQTT-3.8.4-6] wildcard filters get SUBACK 0xA2, plain filters are granted', async () => {
      const { raw } = await connectedV5(tb.port);
      track(raw);
      const suback = await subscribe(raw, [
        { filter: 'wild/+', qos: 1 },
        { filter: 'wild/plain', qos: 1 },
        { filter: 'wild/#', qos: 0 },
        { filter: '$share/g/wild/+/x', qos: 1 },
      ]);
      assert.deepEqual(suback.returnCodes, [0xa2, 1, 0xa2, 0xa2]);
      await ping(raw); // the connection is still usable
    });
  });

  describe('sharedSubscriptionAvailable false', () => {
    let tb: TestBroker;
    before(async () => {
      tb = await startBroker({ capabilities: { sharedSubscriptionAvailable: false } });
    });
    after(() => tb.close());

    it('CONNACK carries Shared Subscription Available 0', async () => {
      const { raw, connack } = await connectedV5(tb.port);
      track(raw);
      assert.equal(connack.properties?.sharedSubscriptionAvailable, 0);
    });

    it('a shared subscription gets SUBACK 0x9E, a plain one is granted', async () => {
      const { raw } = await connectedV5(tb.port);
      track(raw);
      const suback = await subscribe(raw, [{ filter: '$share/grp/shared/t', qos: 1 }, { filter: 'shared/t', qos: 1 }]);
      assert.deepEqual(suback.returnCodes, [0x9e, 1]);
    });
  });

  describe('subscriptionIdentifiersAvailable false', () => {
    let tb: TestBroker;
    before(async () => {
      tb = await startBroker({ capabilities: { subscriptionIdentifiersAvailable: false } });
    });
    after(() => tb.close());

    it('CONNACK carries Subscription Identifiers Available 0', async () => {
      const { raw, connack } = await connectedV5(tb.port);
      track(raw);
      assert.equal(connack.properties?.subscriptionIdentifiersAvailable, 0);
    });

    it('a SUBSCRIBE with a Subscription Identifier gets DISCONNECT 0xA1', async () => {
      const { raw } = await connectedV5(tb.port);
      track(raw);
      raw.send({ type: T.SUBSCRIBE, packetId: packetId(), subscriptions: [{ filter: 'subid/x', qos: 1 }], properties: { subscriptionIdentifiers: [7] } }, 5);
      await expectDisconnect(raw, 0xa1);
    });

    it('a SUBSCRIBE without one is granted', async () => {
      const { raw } = await connectedV5(tb.port);
      track(raw);
      const suback = await subscribe(raw, 'subid/y', 1);
      assert.deepEqual(suback.returnCodes, [1]);
    });
  });

  describe('serverKeepAlive 2', () => {
    let tb: TestBroker;
    before(async () => {
      tb = await startBroker({ capabilities: { serverKeepAlive: 2 } });
    });
    after(() => tb.close());

    it('[MQTT-3.2.2-21] [MQTT-3.1.2-22] CONNACK carries Server Keep Alive 2 and a silent client (Keep Alive 60) gets DISCONNECT 0x8D after ~3 s', async () => {
      const { raw, connack } = await connectedV5(tb.port, { keepalive: 60 });
      track(raw);
      assert.equal(connack.properties?.serverKeepAlive, 2, 'Server Keep Alive');
      const start = Date.now();
      await expectNothing(raw, 2400, 'nothing before 1.5 x 2 s');
      assert.equal(raw.closed, false, 'still open at 2.4 s');
      await expectDisconnect(raw, 0x8d, 3000);
      const elapsed = Date.now() - start;
      assert.ok(elapsed >= 2900 && elapsed <= 5000, `closed after ${elapsed} ms, expected about 3 s (1.5 x Server Keep Alive)`);
    });

    it('[MQTT-3.2.2-21] a client that pings within the Server Keep Alive stays connected past 3 s', async () => {
      const { raw } = await connectedV5(tb.port, { keepalive: 60 });
      track(raw);
      for (let i = 0; i < 4; i++) {
        await delay(1000);
        await ping(raw);
      }
      assert.equal(raw.closed, false);
    });
  });

  describe('maximumSessionExpiryInterval 1', () => {
    let tb: TestBroker;
    before(async () => {
      tb = await startBroker({ capabilities: { maximumSessionExpiryInterval: 1 } });
    });
    after(() => tb.close());

    it('[MQTT-4.1.0-2] a larger requested Session Expiry Interval is answered with the granted one in CONNACK, and that one applies', async () => {
      const id = uid('cap');
      const { raw, connack } = await connectedV5(tb.port, { clientId: id, clean: true, properties: { sessionExpiryInterval: 3600 } });
      track(raw);
      assert.equal(connack.properties?.sessionExpiryInterval, 1, `Session Expiry Interval in ${show(connack)}`);
      await disconnect(raw);
      await delay(2000);
      const again = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 } });
      track(again.raw);
      assert.equal(again.connack.sessionPresent, false, 'the session ended after the granted 1 s');
    });
  });
});

describe('MQTT 5 refusal reason codes', () => {
  it('[MQTT-3.2.2-8] [MQTT-3.1.4-2] authenticate hook answering false: CONNACK 0x86 (Bad User Name or Password)', async () => {
    const tb = await startBroker({ hooks: { authenticate: () => false } });
    try {
      const { raw, connack } = await connectV5(tb.port, { username: 'u', password: Buffer.from('bad') });
      track(raw);
      await expectRefusal(raw, connack, 0x86);
    } finally {
      await tb.close();
    }
  });

  it('[MQTT-3.2.2-8] [MQTT-3.1.4-2] authenticate hook answering notAuthorized: CONNACK 0x87 (Not authorized)', async () => {
    const tb = await startBroker({ hooks: { authenticate: () => ({ ok: false, reason: 'notAuthorized' }) } });
    try {
      const { raw, connack } = await connectV5(tb.port, { username: 'u' });
      track(raw);
      await expectRefusal(raw, connack, 0x87);
    } finally {
      await tb.close();
    }
  });

  it('[MQTT-3.2.2-8] maxConnections reached: CONNACK 0x88 (Server unavailable)', async () => {
    const tb = await startBroker({ limits: { maxConnections: 1 } });
    try {
      const first = await connectedV5(tb.port);
      track(first.raw);
      const { raw, connack } = await connectV5(tb.port);
      track(raw);
      await expectRefusal(raw, connack, 0x88);
      await ping(first.raw); // the first client is unaffected
    } finally {
      await tb.close();
    }
  });

  it('[MQTT-4.12.0-1] an unknown Authentication Method: CONNACK 0x8C (Bad authentication method)', async () => {
    const tb = await startBroker();
    try {
      const { raw, connack } = await connectV5(tb.port, { properties: { authenticationMethod: 'NO-SUCH-METHOD' } });
      track(raw);
      await expectRefusal(raw, connack, 0x8c);
    } finally {
      await tb.close();
    }
  });

  it('[MQTT-3.1.2-19] a Password without a User Name is accepted in MQTT 5 and reaches the authenticate hook', async () => {
    const seen: Array<{ username: string | undefined; password: string | undefined }> = [];
    const tb = await startBroker({
      hooks: { authenticate: (r) => { seen.push({ username: r.username, password: r.password?.toString() }); return r.password?.toString() === 'pw'; } },
    });
    try {
      const { raw, connack } = await connectV5(tb.port, { password: Buffer.from('pw') });
      track(raw);
      assert.equal(connack.returnCode, 0x00, show(connack));
      assert.deepEqual(seen, [{ username: undefined, password: 'pw' }]);
    } finally {
      await tb.close();
    }
  });

  it('[MQTT-3.2.2-6] [MQTT-3.2.2-7] a refused client with a stored session gets Session Present 0', async () => {
    let refuse = false;
    const tb = await startBroker({ hooks: { authenticate: () => !refuse } });
    try {
      const id = uid('refsess');
      const first = await connectedV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
      track(first.raw);
      await subscribe(first.raw, 'refused/t', 1);
      await disconnect(first.raw);
      refuse = true;
      const { raw, connack } = await connectV5(tb.port, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
      track(raw);
      await expectRefusal(raw, connack, 0x86);
    } finally {
      await tb.close();
    }
  });
});

describe('MQTT 5 server DISCONNECT reason codes', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { maxPacketSize: 1024 } });
  });
  after(() => tb.close());

  it('[MQTT-3.1.4-3] session takeover: the old MQTT 5 connection gets DISCONNECT 0x8E (Session taken over) and is closed', async () => {
    const id = uid('takeover');
    const old = await connectedV5(tb.port, { clientId: id });
    track(old.raw);
    const fresh = await connectedV5(tb.port, { clientId: id });
    track(fresh.raw);
    await expectDisconnect(old.raw, 0x8e);
    await ping(fresh.raw);
  });

  it('[MQTT-3.1.2-22] keep-alive expiry: DISCONNECT 0x8D (Keep Alive timeout) after 1.5 x Keep Alive', async () => {
    const { raw } = await connectedV5(tb.port, { keepalive: 1 });
    track(raw);
    const start = Date.now();
    await expectDisconnect(raw, 0x8d, 4000);
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 1400 && elapsed <= 3000, `closed after ${elapsed} ms, expected about 1.5 s`);
  });

  it('[MQTT-4.13.1-1] a property identifier that does not exist: DISCONNECT 0x81 (Malformed Packet)', async () => {
    const { raw } = await connectedV5(tb.port);
    track(raw);
    // PUBLISH QoS 0, topic "t/x", property length 1 holding the undefined identifier 0x7F.
    raw.sendBytes([0x30, 7, 0x00, 0x03, 0x74, 0x2f, 0x78, 0x01, 0x7f]);
    await expectDisconnect(raw, 0x81);
  });

  it('[MQTT-4.13.1-1] a property not valid in its packet (Session Expiry Interval in PUBLISH): DISCONNECT 0x81', async () => {
    const { raw } = await connectedV5(tb.port);
    track(raw);
    raw.sendBytes([0x30, 11, 0x00, 0x03, 0x74, 0x2f, 0x78, 0x05, 0x11, 0x00, 0x00, 0x00, 0x05]);
    await expectDisconnect(raw, 0x81);
  });

  it('[MQTT-3.1.0-2] [MQTT-4.13.1-1] a second CONNECT: DISCONNECT 0x82 (Protocol Error)', async () => {
    const { raw } = await connectedV5(tb.port);
    track(raw);
    sendConnect(raw, { clientId: uid('second') });
    await expectDisconnect(raw, 0x82);
  });

  it('[MQTT-3.2.2-15] [MQTT-4.13.1-1] a packet larger than limits.maxPacketSize: DISCONNECT 0x95 (Packet too large)', async () => {
    const { raw, connack } = await connectedV5(tb.port);
    track(raw);
    assert.equal(connack.properties?.maximumPacketSize, 1024, 'the limit is advertised');
    publish(raw, 'big/x', Buffer.alloc(2000, 0x61), 1);
    await expectDisconnect(raw, 0x95);
  });

  it('[MQTT-3.14.2-3] [MQTT-3.1.2-24] a server DISCONNECT fits the client\'s Maximum Packet Size (no Reason String that would not fit)', async () => {
    const { raw } = await connectedV5(tb.port, { properties: { maximumPacketSize: 24 } });
    track(raw);
    sendConnect(raw, { clientId: uid('second') }); // a protocol error the broker explains with a reason string
    const d = await expectDisconnect(raw, 0x82);
    const size = encodePacket(d, 5).length;
    assert.ok(size <= 24, `DISCONNECT of ${size} bytes sent to a client whose Maximum Packet Size is 24: ${show(d)}`);
  });

  it('a packet of exactly Maximum Packet Size is accepted', async () => {
    const { raw } = await connectedV5(tb.port);
    track(raw);
    // QoS 1 PUBLISH: 1 + 2 (remaining length) + 2 + 5 (topic "big/y") + 2 (id) + 1 (properties) + payload = 1024.
    const payload = Buffer.alloc(1024 - 13, 0x62);
    const ack = await publishAcked(raw, 'big/y', payload);
    assert.ok((ack.reasonCode ?? 0) < 0x80, 'PUBACK with a success code');
  });

  it('[MQTT-3.14.2-1] broker.close(): DISCONNECT 0x8B (Server shutting down)', async () => {
    const own = await startBroker();
    let closing: Promise<void> | undefined;
    try {
      const { raw } = await connectedV5(own.port);
      track(raw);
      closing = own.close();
      await expectDisconnect(raw, 0x8b);
    } finally {
      await (closing ?? own.close());
    }
  });

  it('[MQTT-3.14.0-1] [MQTT-3.1.4-1] a malformed MQTT 5 CONNECT (duplicate Session Expiry Interval) is closed without DISCONNECT', async () => {
    const raw = track(await RawClient.connect(tb.port, 5));
    raw.sendBytes([
      0x10, 24, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x00,
      10, 0x11, 0x00, 0x00, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x06,
      0x00, 0x01, 0x61,
    ]);
    assert.equal(await raw.waitClosed(3000), true, 'closed');
    for (const p of raw.packets) {
      assert.notEqual(p.type, T.DISCONNECT, `no DISCONNECT before a successful CONNACK: ${show(p)}`);
      if (p.type === T.CONNACK) assert.ok(p.returnCode >= 0x80, `only a refusal CONNACK: ${show(p)}`);
    }
  });
});

describe('MQTT 5 Request Problem Information 0', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ hooks: { authorizeSubscribe: (_c, s) => !s.filter.startsWith('deny/') } });
  });
  after(() => tb.close());

  function assertNoProblemInfo(p: { properties?: { reasonString?: string; userProperties?: unknown } }, what: string): void {
    assert.equal(p.properties?.reasonString, undefined, `no Reason String on ${what} [MQTT-3.1.2-29]`);
    assert.equal(p.properties?.userProperties, undefined, `no User Properties on ${what} [MQTT-3.1.2-29]`);
  }

  it('[MQTT-3.1.2-29] no Reason String or User Properties on PUBACK, PUBREC, PUBCOMP, SUBACK or UNSUBACK, even with failure codes', async () => {
    const { raw } = await connectedV5(tb.port, { properties: { requestProblemInformation: 0 } });
    track(raw);

    const noSubscribers = await publishAcked(raw, 'rpi/nobody', 'x');
    assert.equal(noSubscribers.reasonCode, 0x10, 'PUBACK 0x10 (No matching subscribers)');
    assertNoProblemInfo(noSubscribers, 'PUBACK 0x10');

    const dollar = await publishAcked(raw, '$rpi/x', 'x');
    assert.equal(dollar.reasonCode, 0x87, 'PUBACK 0x87 for a $ topic');
    assertNoProblemInfo(dollar, 'PUBACK 0x87');

    const id = publish(raw, 'rpi/nobody2', 'x', 2)!;
    const rec = await expectType<AckPacket<5>>(raw, T.PUBREC);
    assert.equal(rec.packetId, id);
    assertNoProblemInfo(rec, 'PUBREC');
    raw.send({ type: T.PUBREL, packetId: id }, 5);
    assertNoProblemInfo(await expectType<AckPacket<7>>(raw, T.PUBCOMP), 'PUBCOMP');

    raw.send({ type: T.PUBREL, packetId: 4242 }, 5);
    const unknown = await expectType<AckPacket<7>>(raw, T.PUBCOMP);
    assert.equal(unknown.reasonCode, 0x92, 'PUBCOMP 0x92 (Packet Identifier not found)');
    assertNoProblemInfo(unknown, 'PUBCOMP 0x92');

    const suback: SubackPacket = await subscribe(raw, [{ filter: 'deny/x', qos: 1 }, { filter: 'rpi/ok', qos: 1 }]);
    assert.deepEqual(suback.returnCodes, [0x87, 1]);
    assertNoProblemInfo(suback, 'SUBACK');

    raw.send({ type: T.UNSUBSCRIBE, packetId: 77, filters: ['rpi/never'] }, 5);
    const unsuback = await expectType<UnsubackPacket>(raw, T.UNSUBACK);
    assert.deepEqual(unsuback.reasonCodes, [0x11]);
    assertNoProblemInfo(unsuback, 'UNSUBACK');
  });

  it('[MQTT-3.1.2-29] PUBLISH to the client still carries the publisher\'s User Properties', async () => {
    const { raw: sub } = await connectedV5(tb.port, { properties: { requestProblemInformation: 0 } });
    track(sub);
    await subscribe(sub, 'rpi/up', 1);
    const { raw: pub } = await connectedV5(tb.port);
    track(pub);
    await publishAcked(pub, 'rpi/up', 'x', { properties: { userProperties: [['k', 'v']] } });
    const msg = await expectPublish(sub);
    assert.deepEqual(msg.properties?.userProperties, [['k', 'v']]);
  });
});

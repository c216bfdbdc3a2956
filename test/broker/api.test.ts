import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { createBroker, ProtocolError, type Broker, type BrokerHooks, type ClientInfo, type PublishRequest } from '../../src/index.js';
import type { QoS } from '../../src/protocol/index.js';
import { connectClient, delay, RawClient, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import {
  barrier, closeAll, collect, CONNACK, expectPacket, expectPublish, expectSilence, PINGREQ, PINGRESP, PUBACK, PUBCOMP,
  PUBREC, PUBREL, rawConnected, rawPublish, rawSubscribe, uniqueId, waitCount,
} from '../helpers/integration.js';

/** CONNECT with credentials on a raw client; returns the CONNACK return code. */
async function connackCode(port: number, options: { username?: string; password?: string; clientId?: string } = {}): Promise<{ code: number; raw: RawClient }> {
  const raw = await RawClient.connect(port);
  raw.send({
    type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: options.clientId ?? uniqueId('auth'),
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: Buffer.from(options.password) } : {}),
  });
  const connack = await expectPacket<{ type: 2; returnCode: number }>(raw, CONNACK);
  return { code: connack.returnCode, raw };
}

describe('library API: events', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ listeners: [{ host: '127.0.0.1', port: 0, name: 'local' }] });
  });
  after(() => tb.close());

  it('emits clientConnected with the client information', async () => {
    const seen: ClientInfo[] = [];
    const onConnected = (c: ClientInfo): void => void seen.push(c);
    tb.broker.on('clientConnected', onConnected);
    const clientId = uniqueId('ev');
    const client = await connectClient(tb.url, { clientId, username: 'user-1', keepalive: 33, clean: true });
    try {
      await waitFor(() => seen.some((c) => c.id === clientId));
      const info = seen.find((c) => c.id === clientId)!;
      assert.equal(info.username, 'user-1');
      assert.equal(info.protocolVersion, 4);
      assert.equal(info.clean, true);
      assert.equal(info.keepalive, 33);
      assert.equal(info.listener, 'local');
      assert.match(info.remoteAddress, /127\.0\.0\.1/);
      assert.equal(info.remotePort, (client.stream as net.Socket).localPort);
      assert.equal(seen.filter((c) => c.id === clientId).length, 1);
    } finally {
      tb.broker.off('clientConnected', onConnected);
      await closeAll(client);
    }
  });

  it('emits clientDisconnected once per connection, with a reason that tells a DISCONNECT from a dropped socket', async () => {
    const events: Array<[string, string]> = [];
    const onDisconnected = (c: ClientInfo, reason: string): void => void events.push([c.id, reason]);
    tb.broker.on('clientDisconnected', onDisconnected);
    try {
      const politeId = uniqueId('polite');
      const polite = await rawConnected(tb.port, { clientId: politeId });
      polite.send({ type: 14 });
      await polite.waitClosed();
      const rudeId = uniqueId('rude');
      const rude = await rawConnected(tb.port, { clientId: rudeId });
      rude.destroy();
      await waitFor(() => events.some(([id]) => id === politeId) && events.some(([id]) => id === rudeId));
      await delay(50);
      const politeEvents = events.filter(([id]) => id === politeId);
      const rudeEvents = events.filter(([id]) => id === rudeId);
      assert.equal(politeEvents.length, 1);
      assert.equal(rudeEvents.length, 1);
      const politeReason = politeEvents[0]![1];
      const rudeReason = rudeEvents[0]![1];
      assert.equal(typeof politeReason, 'string');
      assert.ok(politeReason.length > 0 && rudeReason.length > 0);
      assert.notEqual(politeReason, rudeReason);
    } finally {
      tb.broker.off('clientDisconnected', onDisconnected);
    }
  });

  it('emits clientError with a ProtocolError for a protocol violation (client undefined before CONNECT), then clientDisconnected', async () => {
    const errors: Array<[ClientInfo | undefined, Error]> = [];
    const disconnected: string[] = [];
    const onError = (c: ClientInfo | undefined, e: Error): void => void errors.push([c, e]);
    const onDisconnected = (c: ClientInfo): void => void disconnected.push(c.id);
    tb.broker.on('clientError', onError);
    tb.broker.on('clientDisconnected', onDisconnected);
    try {
      const clientId = uniqueId('violator');
      const raw = await rawConnected(tb.port, { clientId });
      raw.sendBytes([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]); // PUBLISH with both QoS bits set [MQTT-3.3.1-4]
      assert.equal(await raw.waitClosed(2000), true);
      await waitFor(() => errors.length === 1 && disconnected.includes(clientId));
      assert.equal(errors[0]![0]?.id, clientId);
      assert.ok(errors[0]![1] instanceof ProtocolError, String(errors[0]![1]));

      const early = await RawClient.connect(tb.port);
      early.sendBytes([0xc0, 0x00]); // PINGREQ before CONNECT [MQTT-3.1.0-1]
      assert.equal(await early.waitClosed(2000), true);
      await waitFor(() => errors.length === 2);
      assert.equal(errors[1]![0], undefined);
      assert.ok(errors[1]![1] instanceof ProtocolError);
    } finally {
      tb.broker.off('clientError', onError);
      tb.broker.off('clientDisconnected', onDisconnected);
    }
  });

  it('does not emit clientConnected or clientDisconnected for a refused connection', async () => {
    const local = await startBroker({ hooks: { authenticate: () => false } });
    let connected = 0;
    let disconnected = 0;
    local.broker.on('clientConnected', () => connected++);
    local.broker.on('clientDisconnected', () => disconnected++);
    try {
      const { code, raw } = await connackCode(local.port);
      assert.equal(code, 4);
      await raw.waitClosed();
      await delay(50);
      assert.equal(connected, 0);
      assert.equal(disconnected, 0);
    } finally {
      await local.close();
    }
  });

  it('emits subscribe with the granted subscriptions and unsubscribe with the filters', async () => {
    const subs: Array<[string, Array<{ filter: string; qos: QoS }>]> = [];
    const unsubs: Array<[string, string[]]> = [];
    const onSub = (c: ClientInfo, s: Array<{ filter: string; qos: QoS }>): void => void subs.push([c.id, s]);
    const onUnsub = (c: ClientInfo, f: string[]): void => void unsubs.push([c.id, f]);
    tb.broker.on('subscribe', onSub);
    tb.broker.on('unsubscribe', onUnsub);
    const clientId = uniqueId('subev');
    const client = await connectClient(tb.url, { clientId });
    try {
      await client.subscribeAsync({ 'ev/a': { qos: 0 }, 'ev/+/b': { qos: 2 } });
      await client.unsubscribeAsync(['ev/a', 'ev/never']);
      await waitFor(() => unsubs.some(([id]) => id === clientId));
      assert.deepEqual(subs.filter(([id]) => id === clientId).map(([, s]) => s), [[{ filter: 'ev/a', qos: 0 }, { filter: 'ev/+/b', qos: 2 }]]);
      assert.deepEqual(unsubs.filter(([id]) => id === clientId).map(([, f]) => f), [['ev/a', 'ev/never']]);
    } finally {
      tb.broker.off('subscribe', onSub);
      tb.broker.off('unsubscribe', onUnsub);
      await closeAll(client);
    }
  });

  it('leaves the broker\'s own $SYS updates out of publish events and emits them as sys events', async () => {
    const broker = createBroker({ sysInterval: 1, listeners: [{ host: '127.0.0.1', port: 0 }] });
    const published: string[] = [];
    const sys: string[] = [];
    broker.on('publish', (m) => void published.push(m.topic));
    broker.on('sys', (m) => void sys.push(m.topic));
    const [address] = await broker.listen();
    const client = await connectClient(`mqtt://127.0.0.1:${address!.port}`);
    try {
      const seen = new Promise<void>((resolve) => client.on('message', (topic) => topic === '$SYS/broker/uptime' && resolve()));
      await client.subscribeAsync('$SYS/broker/uptime');
      await client.publishAsync('app/hello', 'world');
      await seen; // a $SYS update has gone out to subscribers
      await waitFor(() => published.includes('app/hello'));
      assert.deepEqual(published, ['app/hello'], 'publish: only what clients and broker.publish() sent');
      assert.ok(sys.includes('$SYS/broker/uptime') && sys.every((t) => t.startsWith('$SYS/')), `sys: ${sys.join(', ')}`);
    } finally {
      await closeAll(client);
      await broker.close();
    }
  });

  it('emits publish for every routed message, with the publishing client or undefined for broker.publish', async () => {
    const events: Array<[PublishRequest, ClientInfo | undefined]> = [];
    const onPublish = (m: PublishRequest, c: ClientInfo | undefined): void => void events.push([m, c]);
    tb.broker.on('publish', onPublish);
    const clientId = uniqueId('pubev');
    const client = await connectClient(tb.url, { clientId });
    try {
      await client.publishAsync('ev/pub', 'from client', { qos: 1, retain: true });
      tb.broker.publish({ topic: 'ev/internal', payload: 'from broker', qos: 2 });
      await waitFor(() => events.length >= 2);
      const fromClient = events.find(([m]) => m.topic === 'ev/pub')!;
      assert.ok(fromClient);
      assert.equal(fromClient[0].payload.toString(), 'from client');
      assert.ok(Buffer.isBuffer(fromClient[0].payload));
      assert.equal(fromClient[0].qos, 1);
      assert.equal(fromClient[0].retain, true);
      assert.equal(fromClient[1]?.id, clientId);
      const fromBroker = events.find(([m]) => m.topic === 'ev/internal')!;
      assert.ok(fromBroker);
      assert.equal(fromBroker[0].payload.toString(), 'from broker');
      assert.equal(fromBroker[0].qos, 2);
      assert.equal(fromBroker[0].retain, false);
      assert.equal(fromBroker[1], undefined);
    } finally {
      tb.broker.off('publish', onPublish);
      await closeAll(client);
    }
  });
});

describe('library API: broker.publish()', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  it('reaches subscribers at min(QoS, granted QoS), with string or Buffer payloads', async () => {
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, [['api/pub/#', 2]]);
      tb.broker.publish({ topic: 'api/pub/str', payload: 'text', qos: 1 });
      const first = await expectPublish(sub);
      assert.deepEqual([first.topic, first.payload.toString(), first.qos, first.retain], ['api/pub/str', 'text', 1, false]);
      assert.ok(first.packetId! > 0);
      sub.send({ type: PUBACK, packetId: first.packetId! });
      tb.broker.publish({ topic: 'api/pub/buf', payload: Buffer.from([0, 1, 2, 255]) });
      const second = await expectPublish(sub);
      assert.deepEqual([...second.payload], [0, 1, 2, 255]);
      assert.equal(second.qos, 0, 'QoS defaults to 0');
      assert.equal(second.retain, false);
    } finally {
      await closeAll(sub);
    }
  });

  it('[MQTT-4.7.3-2][MQTT-1.5.3-2] throws a TypeError for a topic containing U+0000, and routes nothing', async () => {
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, [['#', 0], ['a/#', 0]]);
      assert.throws(() => tb.broker.publish({ topic: 'a/\u0000b', payload: 'x' }), TypeError);
      await expectSilence(sub, 150);
      assert.equal(sub.decodeError, undefined, 'subscribers never receive a malformed PUBLISH');
    } finally {
      await closeAll(sub);
    }
  });

  it('[MQTT-4.7.3-3] throws a TypeError for a topic longer than 65535 bytes, and routes nothing', async () => {
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, [['#', 0], ['a/#', 0]]);
      const topic = `a/${'x'.repeat(65534)}`; // 65536 bytes
      assert.throws(() => tb.broker.publish({ topic, payload: 'x' }), TypeError);
      await expectSilence(sub, 150);
      assert.equal(sub.decodeError, undefined, 'subscribers never receive a malformed PUBLISH');
    } finally {
      await closeAll(sub);
    }
  });

  it('throws a TypeError for a topic that is not well-formed Unicode (a lone surrogate cannot be sent as UTF-8 [MQTT-1.5.3-1]), and routes nothing', async () => {
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, '#', 0);
      assert.throws(() => tb.broker.publish({ topic: 'a/\ud800', payload: 'x' }), TypeError);
      await expectSilence(sub, 150);
    } finally {
      await closeAll(sub);
    }
  });

  it('throws a TypeError for a QoS other than 0, 1 or 2, and routes nothing', async () => {
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, 'api/qos', 2);
      for (const qos of [3, -1, 1.5]) {
        assert.throws(() => tb.broker.publish({ topic: 'api/qos', payload: 'x', qos: qos as QoS }), TypeError, `qos ${qos}`);
      }
      await expectSilence(sub, 150);
      assert.equal(sub.closed, false);
      assert.equal(sub.decodeError, undefined);
    } finally {
      await closeAll(sub);
    }
  });

  it('stores a retained message when retain is true', async () => {
    tb.broker.publish({ topic: 'api/pub/retained', payload: 'kept', qos: 1, retain: true });
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, 'api/pub/retained', 2);
      const got = await expectPublish(sub);
      assert.equal(got.payload.toString(), 'kept');
      assert.equal(got.retain, true);
      assert.equal(got.qos, 1);
    } finally {
      await closeAll(sub);
    }
  });

  it('throws a TypeError for invalid topic names and routes nothing', async () => {
    tb.broker.publish({ topic: 'api/pub/retained', payload: '', retain: true }); // clears the earlier test's retained message
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, '#', 0);
      await expectSilence(sub, 100, 'no retained messages left');
      for (const topic of ['', 'a/+', 'a/#', '#', '+', 'a/b+']) {
        assert.throws(() => tb.broker.publish({ topic, payload: 'x' }), TypeError, `topic ${JSON.stringify(topic)}`);
      }
      await expectSilence(sub, 150);
    } finally {
      await closeAll(sub);
    }
  });
});

describe('library API: authorizePublish', () => {
  let tb: TestBroker;
  const calls: Array<[string, PublishRequest]> = [];
  before(async () => {
    const hooks: BrokerHooks = {
      authorizePublish(client, message) {
        calls.push([client.id, { ...message }]);
        if (message.topic.startsWith('deny/')) return false;
        if (message.topic.startsWith('slow/')) return delay(150).then(() => true);
        if (message.topic.startsWith('slowdeny/')) return delay(50).then(() => false);
        return true;
      },
    };
    tb = await startBroker({ hooks });
  });
  after(() => tb.close());

  it('[MQTT-3.3.5-2] an unauthorized QoS 1 PUBLISH is not routed but is acknowledged with PUBACK', async () => {
    const sub = await rawConnected(tb.port);
    const clientId = uniqueId('denied');
    const pub = await rawConnected(tb.port, { clientId });
    try {
      await rawSubscribe(sub, '#', 2);
      rawPublish(pub, 'deny/x', 'nope', 1, { packetId: 21 });
      assert.equal((await expectPacket<{ type: 4; packetId: number }>(pub, PUBACK)).packetId, 21);
      const call = calls.find(([id, m]) => id === clientId && m.topic === 'deny/x');
      assert.ok(call, 'the hook saw the client and the message');
      assert.equal(call[1].payload.toString(), 'nope');
      assert.equal(call[1].qos, 1);
      await expectSilence(sub, 200);
      pub.send({ type: PINGREQ });
      await expectPacket(pub, PINGRESP);
      assert.equal(pub.closed, false);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('[MQTT-3.3.5-2] an unauthorized QoS 2 PUBLISH completes PUBREC/PUBREL/PUBCOMP and is not routed or retained', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, 'deny/#', 2);
      rawPublish(pub, 'deny/q2', 'nope', 2, { packetId: 22, retain: true });
      assert.equal((await expectPacket<{ type: 5; packetId: number }>(pub, PUBREC)).packetId, 22);
      pub.send({ type: PUBREL, packetId: 22 });
      assert.equal((await expectPacket<{ type: 7; packetId: number }>(pub, PUBCOMP)).packetId, 22);
      await expectSilence(sub, 150);
      await rawSubscribe(sub, 'deny/q2', 0);
      await expectSilence(sub, 150, 'nothing retained');
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('a Promise verdict works and keeps the order of the packets that follow', async () => {
    const sub = await connectClient(tb.url);
    const got = collect(sub);
    await sub.subscribeAsync({ 'slow/#': { qos: 1 }, 'fast/#': { qos: 1 }, 'slowdeny/#': { qos: 1 } });
    const pub = await rawConnected(tb.port);
    try {
      rawPublish(pub, 'slow/1', 'first', 1, { packetId: 1 });
      rawPublish(pub, 'fast/2', 'second', 1, { packetId: 2 });
      rawPublish(pub, 'slowdeny/3', 'third', 1, { packetId: 3 });
      rawPublish(pub, 'fast/4', 'fourth', 0);
      pub.send({ type: PINGREQ });
      const order: string[] = [];
      for (let i = 0; i < 4; i++) {
        const p = await pub.nextPacket(3000);
        order.push(p.type === PUBACK ? `PUBACK ${p.packetId}` : p.type === PINGRESP ? 'PINGRESP' : `type ${p.type}`);
      }
      assert.deepEqual(order, ['PUBACK 1', 'PUBACK 2', 'PUBACK 3', 'PINGRESP']);
      await waitCount(got, 3);
      await delay(100);
      assert.deepEqual(got.map((m) => m.payload), ['first', 'second', 'fourth']);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('does not emit the publish event for a message it refused', async () => {
    const topics: string[] = [];
    const on = (m: PublishRequest): void => void topics.push(m.topic);
    tb.broker.on('publish', on);
    const pub = await connectClient(tb.url);
    try {
      await pub.publishAsync('deny/event', 'a', { qos: 1 });
      await pub.publishAsync('slowdeny/event', 'b', { qos: 1 });
      await pub.publishAsync('ok/event', 'c', { qos: 1 });
      assert.deepEqual(topics, ['ok/event']);
    } finally {
      tb.broker.off('publish', on);
      await closeAll(pub);
    }
  });

  it('applies to messages published with MQTT.js too', async () => {
    const sub = await connectClient(tb.url);
    const got = collect(sub);
    await sub.subscribeAsync('#', { qos: 1 });
    const pub = await connectClient(tb.url);
    try {
      await pub.publishAsync('deny/js', 'a', { qos: 1 });
      await pub.publishAsync('deny/js', 'b', { qos: 2 });
      await pub.publishAsync('allowed/js', 'c', { qos: 1 });
      await waitCount(got, 1);
      await delay(100);
      assert.deepEqual(got.map((m) => m.topic), ['allowed/js']);
      assert.equal(pub.connected, true);
    } finally {
      await closeAll(sub, pub);
    }
  });
});

describe('library API: authorizeSubscribe', () => {
  let tb: TestBroker;
  const seen: Array<{ filter: string; qos: QoS }> = [];
  before(async () => {
    tb = await startBroker({
      hooks: {
        authorizeSubscribe(_client, sub) {
          seen.push({ ...sub });
          if (sub.filter.startsWith('deny/')) return false;
          if (sub.filter.startsWith('zero/')) return 0;
          if (sub.filter.startsWith('two/')) return 2;
          if (sub.filter.startsWith('async/')) return delay(50).then(() => 1 as QoS);
          if (sub.filter.startsWith('asyncdeny/')) return delay(50).then(() => false);
          return true;
        },
      },
    });
  });
  after(() => tb.close());

  it('false gives 0x80 in SUBACK and no subscription; true grants the requested QoS', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      const suback = await rawSubscribe(sub, [['deny/a', 1], ['ok/a', 2]]);
      assert.deepEqual(suback.returnCodes, [0x80, 2]);
      assert.ok(seen.some((s) => s.filter === 'deny/a' && s.qos === 1), 'the hook sees filter and requested QoS');
      await pub.publishAsync('deny/a', 'x', { qos: 1 });
      await pub.publishAsync('ok/a', 'y', { qos: 1 });
      const got = await expectPublish(sub);
      assert.equal(got.topic, 'ok/a');
      sub.send({ type: PUBACK, packetId: got.packetId! });
      await expectSilence(sub, 150);
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('returning 0 downgrades the grant to QoS 0; a returned QoS above the request does not raise it', async () => {
    const sub = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      const suback = await rawSubscribe(sub, [['zero/a', 2], ['two/a', 1]]);
      assert.deepEqual(suback.returnCodes, [0, 1]);
      await pub.publishAsync('zero/a', 'z', { qos: 2 });
      const z = await expectPublish(sub);
      assert.equal(z.qos, 0);
      await pub.publishAsync('two/a', 't', { qos: 2 });
      const t = await expectPublish(sub);
      assert.equal(t.qos, 1);
      sub.send({ type: PUBACK, packetId: t.packetId! });
    } finally {
      await closeAll(sub, pub);
    }
  });

  it('Promise verdicts work, in SUBACK order [MQTT-3.9.3-1], and later packets wait for them', async () => {
    const sub = await rawConnected(tb.port);
    try {
      sub.send({ type: 8, packetId: 5, subscriptions: [{ filter: 'async/a', qos: 2 }, { filter: 'asyncdeny/a', qos: 0 }, { filter: 'ok/b', qos: 1 }] });
      sub.send({ type: PINGREQ });
      const suback = await expectPacket<{ type: 9; packetId: number; returnCodes: number[] }>(sub, 9);
      assert.equal(suback.packetId, 5);
      assert.deepEqual(suback.returnCodes, [1, 0x80, 1]);
      await expectPacket(sub, PINGRESP);
    } finally {
      await closeAll(sub);
    }
  });

  it('a PUBLISH sent right after a SUBSCRIBE whose verdict is pending is processed after the subscription exists', async () => {
    const raw = await rawConnected(tb.port);
    try {
      raw.send({ type: 8, packetId: 6, subscriptions: [{ filter: 'async/self', qos: 1 }] });
      rawPublish(raw, 'async/self', 'to myself', 0);
      const suback = await expectPacket<{ type: 9; packetId: number; returnCodes: number[] }>(raw, 9);
      assert.deepEqual(suback.returnCodes, [1]);
      const got = await expectPublish(raw);
      assert.equal(got.payload.toString(), 'to myself');
    } finally {
      await closeAll(raw);
    }
  });

  it('the subscribe event reports granted QoS and leaves refused filters out', async () => {
    const events: Array<Array<{ filter: string; qos: QoS }>> = [];
    const on = (_c: ClientInfo, s: Array<{ filter: string; qos: QoS }>): void => void events.push(s);
    tb.broker.on('subscribe', on);
    const sub = await rawConnected(tb.port);
    try {
      await rawSubscribe(sub, [['deny/e', 1], ['zero/e', 2], ['ok/e', 1]]);
      await waitFor(() => events.length > 0);
      assert.deepEqual(events, [[{ filter: 'zero/e', qos: 0 }, { filter: 'ok/e', qos: 1 }]]);
    } finally {
      tb.broker.off('subscribe', on);
      await closeAll(sub);
    }
  });
});

describe('library API: authorizeDelivery', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({
      hooks: {
        authorizeDelivery: (client, message) => !(client.id.startsWith('blocked') && message.topic.startsWith('secret/')),
      },
    });
  });
  after(() => tb.close());

  it('false for one subscriber: that subscriber gets nothing, another gets the message', async () => {
    const blocked = await rawConnected(tb.port, { clientId: uniqueId('blocked') });
    const allowed = await rawConnected(tb.port, { clientId: uniqueId('allowed') });
    const pub = await connectClient(tb.url);
    try {
      await rawSubscribe(blocked, 'secret/#', 1);
      await rawSubscribe(allowed, 'secret/#', 1);
      await rawSubscribe(blocked, 'public/#', 1);
      await pub.publishAsync('secret/x', 's', { qos: 1 });
      const got = await expectPublish(allowed);
      assert.equal(got.topic, 'secret/x');
      await pub.publishAsync('public/x', 'p', { qos: 0 });
      const pubGot = await expectPublish(blocked);
      assert.equal(pubGot.topic, 'public/x', 'the blocked client got only the public message');
      await expectSilence(blocked, 100);
    } finally {
      await closeAll(blocked, allowed, pub);
    }
  });

  it('also filters retained messages sent on SUBSCRIBE', async () => {
    tb.broker.publish({ topic: 'secret/retained', payload: 'r', retain: true, qos: 1 });
    const blocked = await rawConnected(tb.port, { clientId: uniqueId('blocked') });
    const allowed = await rawConnected(tb.port, { clientId: uniqueId('allowed') });
    try {
      await rawSubscribe(allowed, 'secret/+', 1);
      const got = await expectPublish(allowed);
      assert.equal(got.retain, true);
      await rawSubscribe(blocked, 'secret/+', 1);
      await expectSilence(blocked, 200);
    } finally {
      await closeAll(blocked, allowed);
    }
  });
});

describe('library API: hooks given as an array compose', () => {
  it('authenticate: the first definite answer wins; all undefined falls back to the listener policy', async () => {
    const tb = await startBroker({
      hooks: [
        { authenticate: () => undefined },
        { authenticate: async (r) => (r.username === 'alice' ? true : r.username === 'bob' ? false : r.username === 'eve' ? { ok: false, reason: 'notAuthorized' } : undefined) },
        { authenticate: () => true },
      ],
    });
    const strict = await startBroker({
      listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: false }],
      hooks: [{ authenticate: () => undefined }, { authenticate: async () => undefined }],
    });
    const raws: RawClient[] = [];
    try {
      const codes: Record<string, number> = {};
      for (const username of ['alice', 'bob', 'eve', 'carol']) {
        const { code, raw } = await connackCode(tb.port, { username, password: 'pw' });
        raws.push(raw);
        codes[username] = code;
      }
      assert.deepEqual(codes, { alice: 0, bob: 4, eve: 5, carol: 0 });
      const { code, raw } = await connackCode(strict.port, { username: 'nobody' });
      raws.push(raw);
      assert.equal(code, 5, 'no hook decided and the listener does not allow anonymous clients');
    } finally {
      await closeAll(...raws);
      await tb.close();
      await strict.close();
    }
  });

  it('authorizePublish, authorizeSubscribe and authorizeDelivery: every hook must allow; the lowest QoS is granted', async () => {
    const tb = await startBroker({
      hooks: [
        {
          authorizePublish: (_c, m) => m.topic !== 'c/x',
          authorizeSubscribe: (_c, s) => (s.filter === 'c/deny1' ? false : s.filter.startsWith('c/one') ? 1 : true),
          authorizeDelivery: (c, m) => !(c.id.startsWith('nd1') && m.topic === 'c/z'),
        },
        {
          authorizePublish: async (_c, m) => m.topic !== 'c/y',
          authorizeSubscribe: async (_c, s) => (s.filter === 'c/deny2' ? false : s.filter.startsWith('c/one') ? 2 : s.filter === 'c/zero' ? 0 : true),
          authorizeDelivery: (c, m) => !(c.id.startsWith('nd2') && m.topic === 'c/z'),
        },
      ],
    });
    const sub = await rawConnected(tb.port);
    const nd1 = await rawConnected(tb.port, { clientId: uniqueId('nd1') });
    const nd2 = await rawConnected(tb.port, { clientId: uniqueId('nd2') });
    const pub = await connectClient(tb.url);
    try {
      const suback = await rawSubscribe(sub, [['c/deny1', 1], ['c/deny2', 1], ['c/one', 2], ['c/zero', 2], ['c/+', 2]]);
      assert.deepEqual(suback.returnCodes, [0x80, 0x80, 1, 0, 2]);
      await rawSubscribe(nd1, 'c/z', 0);
      await rawSubscribe(nd2, 'c/z', 0);
      await pub.publishAsync('c/x', 'x', { qos: 1 });
      await pub.publishAsync('c/y', 'y', { qos: 1 });
      await pub.publishAsync('c/z', 'z', { qos: 0 });
      await barrier(pub);
      const got = await expectPublish(sub);
      assert.equal(got.topic, 'c/z', 'c/x and c/y were each refused by one hook');
      await expectSilence(sub, 150);
      await expectSilence(nd1, 0);
      await expectSilence(nd2, 0, 'each delivery hook refused one of them');
    } finally {
      await closeAll(sub, nd1, nd2, pub);
      await tb.close();
    }
  });
});

describe('library API: listener policy', () => {
  it("listen() rejects for host '0.0.0.0' with no authenticate hook and allowAnonymous unset, and listens nowhere", async () => {
    const broker = createBroker({ sysInterval: 0, listeners: [{ host: '0.0.0.0', port: 0 }] });
    try {
      await assert.rejects(broker.listen(), Error);
      assert.deepEqual(broker.addresses, []);
    } finally {
      await broker.close();
    }
  });

  it('a refused non-loopback listener stops the loopback listeners of the same broker too', async () => {
    const broker = createBroker({ sysInterval: 0, listeners: [{ host: '127.0.0.1', port: 0 }, { host: '0.0.0.0', port: 0 }] });
    try {
      await assert.rejects(broker.listen());
      assert.deepEqual(broker.addresses, []);
    } finally {
      await broker.close();
    }
  });

  it("listen() succeeds for '0.0.0.0' with allowAnonymous: true, and anonymous clients are accepted", async () => {
    const broker = createBroker({ sysInterval: 0, listeners: [{ host: '0.0.0.0', port: 0, allowAnonymous: true }] });
    let raw: RawClient | undefined;
    try {
      const [address] = await broker.listen();
      assert.ok(address && address.port > 0);
      const result = await connackCode(address.port);
      raw = result.raw;
      assert.equal(result.code, 0);
    } finally {
      await closeAll(raw);
      await broker.close();
    }
  });

  it("listen() succeeds for '0.0.0.0' with an authenticate hook, which then decides (no anonymous fallback)", async () => {
    const broker = createBroker({
      sysInterval: 0,
      listeners: [{ host: '0.0.0.0', port: 0 }],
      hooks: { authenticate: (r) => (r.username === 'ok' ? true : undefined) },
    });
    const raws: RawClient[] = [];
    try {
      const [address] = await broker.listen();
      const good = await connackCode(address!.port, { username: 'ok', password: 'x' });
      raws.push(good.raw);
      assert.equal(good.code, 0);
      const anon = await connackCode(address!.port);
      raws.push(anon.raw);
      assert.equal(anon.code, 5, 'undefined from the hook on a non-anonymous listener: not authorized');
    } finally {
      await closeAll(...raws);
      await broker.close();
    }
  });

  it('a loopback listener with allowAnonymous: false refuses clients when no hook vouches for them', async () => {
    const tb = await startBroker({ listeners: [{ host: '127.0.0.1', port: 0, allowAnonymous: false }] });
    try {
      const { code, raw } = await connackCode(tb.port);
      assert.equal(code, 5);
      assert.equal(await raw.waitClosed(), true);
    } finally {
      await tb.close();
    }
  });
});

describe('library API: close() with a stalled client', () => {
  it('resolves promptly even when a client has stopped reading and has a full outbound buffer', async () => {
    const tb = await startBroker({ limits: { maxOutboundBuffer: 64 * 1024 } });
    const slow = await rawConnected(tb.port);
    const pub = await connectClient(tb.url);
    try {
      await rawSubscribe(slow, 'stall', 0);
      slow.socket.pause();
      const chunk = Buffer.alloc(32 * 1024);
      for (let i = 0; i < 128; i++) pub.publish('stall', chunk, { qos: 0 });
      await barrier(pub);
      const started = Date.now();
      await tb.close();
      assert.ok(Date.now() - started < 3000, `close() took ${Date.now() - started} ms`);
      assert.equal(tb.broker.connections.size, 0);
    } finally {
      slow.socket.resume();
      await closeAll(slow, pub);
    }
  });
});

describe('library API: close()', () => {
  let broker: Broker;
  let port: number;
  before(async () => {
    broker = createBroker({ sysInterval: 0, listeners: [{ host: '127.0.0.1', port: 0 }] });
    const [address] = await broker.listen();
    port = address!.port;
  });

  it('disconnects every client, including ones that never sent CONNECT, and resolves', async () => {
    const disconnected: string[] = [];
    broker.on('clientDisconnected', (c) => void disconnected.push(c.id));
    const js: MqttClient = await connectClient(`mqtt://127.0.0.1:${port}`, { clientId: uniqueId('jsclose') });
    const jsClosed = new Promise<void>((resolve) => js.once('close', () => resolve()));
    const raw = await rawConnected(port, { clientId: uniqueId('rawclose') });
    const silent = await RawClient.connect(port);
    await waitFor(() => broker.connections.size === 3);
    await broker.close();
    await jsClosed;
    assert.equal(await raw.waitClosed(2000), true);
    assert.equal(await silent.waitClosed(2000), true);
    assert.equal(disconnected.length, 2);
    assert.equal(broker.connections.size, 0);
    await closeAll(js, raw, silent);
  });

  it('no longer accepts connections after close(), and a second close() resolves', async () => {
    const socket = net.connect(port, '127.0.0.1');
    const [err] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
    await broker.close();
  });
});

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { QoS } from '../../src/protocol/index.js';
import { connectClient, delay, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { MessageInbox, rawConnect, rawSession, uniqueId, trackClients } from '../helpers/connection.js';

describe('will messages', () => {
  let tb: TestBroker;
  const track = trackClients();
  let disconnects: Array<{ id: string; reason: string }> = [];
  const onGone = (c: { id: string }, reason: string): void => {
    disconnects.push({ id: c.id, reason });
  };

  before(async () => {
    tb = await startBroker();
    tb.broker.on('clientDisconnected', onGone);
  });
  afterEach(() => {
    disconnects = [];
  });
  after(() => tb.close());

  /** A subscriber on `filter` at `qos`, with an inbox. */
  async function watch(filter: string, qos: QoS = 2): Promise<{ client: MqttClient; inbox: MessageInbox }> {
    const client = track(await connectClient(tb.url, { clientId: uniqueId('watch') }));
    const inbox = new MessageInbox(client); // before SUBSCRIBE: retained messages follow the SUBACK at once
    await client.subscribeAsync(filter, { qos });
    return { client, inbox };
  }

  /**
   * Asserts that no will reaches `inbox`: a sentinel published on `topic` after the
   * disconnect must be the first message the subscriber sees.
   */
  async function assertNoWill(inbox: MessageInbox, topic: string): Promise<void> {
    await delay(100);
    const pub = track(await connectClient(tb.url, { clientId: uniqueId('sentinel') }));
    await pub.publishAsync(topic, 'sentinel', { qos: 1 });
    const first = await inbox.next();
    assert.equal(first.payload, 'sentinel', `expected no will, got "${first.payload}" on ${first.topic}`);
  }

  it('[MQTT-3.1.2-8] is published when the socket closes without DISCONNECT', async () => {
    const { inbox } = await watch('will/abrupt/#');
    const { raw } = await rawSession(tb.port, { clientId: uniqueId('abrupt'), will: { topic: 'will/abrupt/x', payload: 'bye', qos: 1 } });
    track(raw);
    raw.destroy();
    const m = await inbox.next();
    assert.deepEqual([m.topic, m.payload, m.qos, m.retain], ['will/abrupt/x', 'bye', 1, false]);
  });

  it('[MQTT-3.1.2-8] is published when the socket is half-closed (FIN) without DISCONNECT', async () => {
    const { inbox } = await watch('will/fin/#');
    const { raw } = await rawSession(tb.port, { clientId: uniqueId('fin'), will: { topic: 'will/fin/x', payload: 'fin', qos: 0 } });
    track(raw);
    raw.end();
    const m = await inbox.next();
    assert.deepEqual([m.topic, m.payload], ['will/fin/x', 'fin']);
  });

  it('[MQTT-3.1.2-8] is published when the keep-alive expires (3.1.2.5: the server fails to receive within keep alive)', async () => {
    const { inbox } = await watch('will/ka/#');
    const { raw } = await rawSession(tb.port, {
      clientId: uniqueId('ka'), keepalive: 1, will: { topic: 'will/ka/x', payload: 'timed out', qos: 1 },
    });
    track(raw);
    const m = await inbox.next(3500);
    assert.deepEqual([m.topic, m.payload], ['will/ka/x', 'timed out']);
    assert.equal(await raw.waitClosed(500), true);
  });

  it('[MQTT-4.8.0-1] is published when the server closes the connection for a protocol error (malformed packet)', async () => {
    const { inbox } = await watch('will/proto/#');
    const { raw } = await rawSession(tb.port, { clientId: uniqueId('proto'), will: { topic: 'will/proto/x', payload: 'malformed', qos: 1 } });
    track(raw);
    // PUBLISH with QoS 3 [MQTT-3.3.1-4]: a malformed packet.
    raw.sendBytes([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]);
    assert.equal(await raw.waitClosed(3000), true, 'the connection must be closed');
    const m = await inbox.next();
    assert.deepEqual([m.topic, m.payload], ['will/proto/x', 'malformed']);
  });

  it('[MQTT-4.8.0-1] is published when the server closes the connection for a reserved packet type', async () => {
    const { inbox } = await watch('will/reserved/#');
    const { raw } = await rawSession(tb.port, { clientId: uniqueId('rsv'), will: { topic: 'will/reserved/x', payload: 'type 0' } });
    track(raw);
    raw.sendBytes([0x00, 0x00]);
    assert.equal(await raw.waitClosed(3000), true, 'the connection must be closed');
    const m = await inbox.next();
    assert.deepEqual([m.topic, m.payload], ['will/reserved/x', 'type 0']);
  });

  it('[MQTT-3.1.2-8] is published on a network error (connection reset)', async () => {
    const { inbox } = await watch('will/reset/#');
    const clientId = uniqueId('reset');
    const { raw } = await rawSession(tb.port, { clientId, will: { topic: 'will/reset/x', payload: 'reset', qos: 2 } });
    track(raw);
    raw.socket.resetAndDestroy(); // TCP RST: the broker's socket sees ECONNRESET
    const m = await inbox.next();
    assert.deepEqual([m.topic, m.payload, m.qos], ['will/reset/x', 'reset', 2]);
    await waitFor(() => disconnects.some((d) => d.id === clientId), 2000, 'clientDisconnected');
    // The broker saw the reset as a network error, not as an orderly close.
    assert.match(disconnects.find((d) => d.id === clientId)!.reason, /ECONNRESET|reset|network/i);
  });

  it('[MQTT-3.14.4-3] is NOT published after DISCONNECT (raw client)', async () => {
    const { inbox } = await watch('will/clean/#');
    const clientId = uniqueId('discon');
    const { raw } = await rawSession(tb.port, { clientId, will: { topic: 'will/clean/x', payload: 'must not appear', qos: 1 } });
    track(raw);
    raw.send({ type: 14 });
    assert.equal(await raw.waitClosed(3000), true, 'the server closes after DISCONNECT [MQTT-3.14.4-1]');
    await waitFor(() => disconnects.some((d) => d.id === clientId), 2000, 'clientDisconnected');
    await assertNoWill(inbox, 'will/clean/x');
  });

  it('[MQTT-3.14.4-3] is NOT published after DISCONNECT, even when the socket is then destroyed', async () => {
    const { inbox } = await watch('will/clean2/#');
    const clientId = uniqueId('discon2');
    const { raw } = await rawSession(tb.port, { clientId, will: { topic: 'will/clean2/x', payload: 'must not appear' } });
    track(raw);
    raw.send({ type: 14 });
    raw.destroy();
    await waitFor(() => disconnects.some((d) => d.id === clientId), 2000, 'clientDisconnected');
    await assertNoWill(inbox, 'will/clean2/x');
  });

  it('[MQTT-3.14.4-3] is NOT published after an MQTT.js client ends normally', async () => {
    const { inbox } = await watch('will/js/#');
    const clientId = uniqueId('jsend');
    const c = await connectClient(tb.url, { clientId, will: { topic: 'will/js/x', payload: Buffer.from('must not appear'), qos: 1, retain: false } });
    await c.endAsync();
    await waitFor(() => disconnects.some((d) => d.id === clientId), 2000, 'clientDisconnected');
    await assertNoWill(inbox, 'will/js/x');
  });

  it('[MQTT-3.1.2-17] a will with the retain flag is stored as a retained message', async () => {
    const clientId = uniqueId('wret');
    const { raw } = await rawSession(tb.port, {
      clientId, will: { topic: 'will/retained/x', payload: 'last words', qos: 1, retain: true },
    });
    track(raw);
    raw.destroy();
    await waitFor(() => disconnects.some((d) => d.id === clientId), 2000, 'clientDisconnected');
    // A subscriber arriving later gets it as a retained message.
    const { inbox } = await watch('will/retained/#', 1);
    const m = await inbox.next();
    assert.deepEqual([m.topic, m.payload, m.retain, m.qos], ['will/retained/x', 'last words', true, 1]);
    // Clean up the retained message for later tests.
    const cleaner = track(await connectClient(tb.url, { clientId: uniqueId('clr') }));
    await cleaner.publishAsync('will/retained/x', '', { qos: 1, retain: true });
  });

  it('[MQTT-3.1.2-16] a will without the retain flag is not retained', async () => {
    const clientId = uniqueId('wnoret');
    const { raw } = await rawSession(tb.port, {
      clientId, will: { topic: 'will/noretain/x', payload: 'fleeting', qos: 1, retain: false },
    });
    track(raw);
    raw.destroy();
    await waitFor(() => disconnects.some((d) => d.id === clientId), 2000, 'clientDisconnected');
    const { inbox } = await watch('will/noretain/#', 1);
    await assertNoWill(inbox, 'will/noretain/x');
  });

  const qosCases: Array<{ will: QoS; sub: QoS; expected: QoS }> = [
    { will: 0, sub: 2, expected: 0 },
    { will: 1, sub: 2, expected: 1 },
    { will: 2, sub: 2, expected: 2 },
    { will: 2, sub: 1, expected: 1 },
    { will: 2, sub: 0, expected: 0 },
    { will: 1, sub: 0, expected: 0 },
  ];
  for (const { will, sub, expected } of qosCases) {
    it(`[MQTT-3.8.4-6] a will of QoS ${will} reaches a QoS ${sub} subscriber at QoS ${expected}`, async () => {
      const topic = `will/qos/${will}${sub}`;
      const { inbox } = await watch(topic, sub);
      const { raw } = await rawSession(tb.port, { clientId: uniqueId('wq'), will: { topic, payload: `q${will}`, qos: will } });
      track(raw);
      raw.destroy();
      const m = await inbox.next();
      assert.deepEqual([m.topic, m.payload, m.qos], [topic, `q${will}`, expected]);
    });
  }

  it('is published for the old connection when a new connection takes the session over', async () => {
    const { inbox } = await watch('will/takeover/#');
    const clientId = uniqueId('tko');
    const { raw: old } = await rawSession(tb.port, { clientId, will: { topic: 'will/takeover/old', payload: 'replaced', qos: 1 } });
    track(old);
    const { raw: fresh } = await rawSession(tb.port, { clientId, will: { topic: 'will/takeover/new', payload: 'not yet' } });
    track(fresh);
    assert.equal(await old.waitClosed(3000), true, 'the old connection is closed [MQTT-3.1.4-2]');
    const m = await inbox.next();
    assert.deepEqual([m.topic, m.payload], ['will/takeover/old', 'replaced']);
    // The new connection's will is not published: it is still connected.
    fresh.send({ type: 12 });
    assert.equal((await fresh.nextPacket()).type, 13);
    await assertNoWill(inbox, 'will/takeover/new');
  });

  it('is not published by a connection refused at CONNECT', async () => {
    const { inbox } = await watch('will/refused/#');
    // CleanSession 0 with an empty client id: CONNACK 2, the will is never stored [MQTT-3.1.2-8].
    const refused = await rawConnect(tb.port, { clientId: '', clean: false, will: { topic: 'will/refused/x', payload: 'nope' } });
    track(refused.raw);
    assert.equal(refused.connack.returnCode, 2);
    assert.equal(await refused.raw.waitClosed(3000), true);
    await assertNoWill(inbox, 'will/refused/x');
  });
});

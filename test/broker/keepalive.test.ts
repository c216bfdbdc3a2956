import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, delay, startBroker, type TestBroker } from '../helpers/broker.js';
import { MessageInbox, rawSession, rawSubscribe, uniqueId, trackClients } from '../helpers/connection.js';

describe('keep-alive', () => {
  let tb: TestBroker;
  const track = trackClients();

  before(async () => {
    tb = await startBroker();
  });
  after(() => tb.close());

  it('[MQTT-3.1.2-24] disconnects a client silent for 1.5 x keepalive and publishes its will', async () => {
    const watcher = track(await connectClient(tb.url, { clientId: uniqueId('kaw') }));
    await watcher.subscribeAsync('ka/will/#', { qos: 1 });
    const inbox = new MessageInbox(watcher);
    const reasons: string[] = [];
    const clientId = uniqueId('silent');
    const onGone = (c: { id: string }, reason: string): void => {
      if (c.id === clientId) reasons.push(reason);
    };
    tb.broker.on('clientDisconnected', onGone);
    try {
      const { raw } = await rawSession(tb.port, {
        clientId, keepalive: 1, will: { topic: 'ka/will/silent', payload: 'gone quiet', qos: 1 },
      });
      track(raw);
      const started = Date.now();
      assert.equal(await raw.waitClosed(3500), true, 'a silent client must be disconnected');
      const elapsed = Date.now() - started;
      // 1.5 s grace; the broker checks every 500 ms, so it may take up to about 2 s.
      assert.ok(elapsed >= 1400, `disconnected after ${elapsed} ms, before 1.5 x keepalive`);
      assert.ok(elapsed <= 3000, `disconnected after ${elapsed} ms`);
      assert.deepEqual(raw.packets.map((p) => p.type), [], 'no packet is sent to a timed-out client');
      const will = await inbox.next(2000);
      assert.deepEqual([will.topic, will.payload, will.qos], ['ka/will/silent', 'gone quiet', 1]);
      assert.equal(reasons.length, 1);
    } finally {
      tb.broker.off('clientDisconnected', onGone);
    }
  });

  it('[MQTT-3.12.4-1] answers PINGREQ with PINGRESP and keeps a pinging client connected past 1.5 x keepalive', async () => {
    const { raw } = await rawSession(tb.port, { clientId: uniqueId('pinger'), keepalive: 1 });
    track(raw);
    const started = Date.now();
    let pings = 0;
    while (Date.now() - started < 2600) {
      raw.send({ type: 12 });
      pings++;
      const resp = await raw.nextPacket(1000);
      assert.equal(resp.type, 13, 'PINGREQ must be answered with PINGRESP');
      await delay(500);
    }
    assert.ok(pings >= 4);
    assert.equal(raw.closed, false, 'a client that keeps pinging must stay connected');
  });

  it('[MQTT-3.1.2-24] any control packet, not only PINGREQ, counts as activity (3.1.2.10)', async () => {
    const { raw } = await rawSession(tb.port, { clientId: uniqueId('busy'), keepalive: 1 });
    track(raw);
    await rawSubscribe(raw, 'ka/busy', 1);
    const started = Date.now();
    let id = 1;
    while (Date.now() - started < 2600) {
      raw.send({ type: 3, dup: false, qos: 1, retain: false, topic: 'ka/other', packetId: id, payload: Buffer.from('x') });
      const ack = await raw.nextPacket(1000);
      assert.equal(ack.type, 4);
      assert.equal((ack as { packetId: number }).packetId, id);
      id++;
      await delay(500);
    }
    assert.equal(raw.closed, false, 'a client sending PUBLISH packets must stay connected');
  });

  it('keepalive 0 turns the timeout off (3.1.2.10)', async () => {
    const watcher = track(await connectClient(tb.url, { clientId: uniqueId('ka0w') }));
    await watcher.subscribeAsync('ka/zero/#', { qos: 0 });
    const inbox = new MessageInbox(watcher);
    const { raw } = await rawSession(tb.port, {
      clientId: uniqueId('ka0'), keepalive: 0, will: { topic: 'ka/zero/will', payload: 'should not happen' },
    });
    track(raw);
    await delay(2600);
    assert.equal(raw.closed, false, 'a client with keepalive 0 must not be disconnected for being silent');
    assert.deepEqual(inbox.messages, [], 'no will while the client is connected');
    raw.send({ type: 12 });
    assert.equal((await raw.nextPacket()).type, 13);
  });
});

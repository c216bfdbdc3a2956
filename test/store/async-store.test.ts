import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryStore } from '../../src/index.js';
import { RawClient, startBroker, type TestBroker } from '../helpers/broker.js';

/** A store that becomes durable only when the test says so, like a disk store waiting for fsync. */
class ManualDurabilityStore extends MemoryStore {
  private waiting: Array<() => void> = [];
  /** The change count at the last makeDurable(): everything after it is "not yet on disk". */
  private durableChanges = 0;

  override whenDurable(done: () => void): void {
    this.waiting.push(done);
  }

  override durableNow(): boolean {
    return this.changes === this.durableChanges && this.waiting.length === 0;
  }

  get pending(): number {
    return this.waiting.length;
  }

  /** Waits until the broker waits on the store, then makes everything durable. */
  async release(): Promise<void> {
    const deadline = Date.now() + 2000;
    while (this.waiting.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    this.makeDurable();
  }

  makeDurable(): void {
    this.durableChanges = this.changes;
    const waiting = this.waiting;
    this.waiting = [];
    for (const done of waiting) done();
  }
}

describe('store seam: acknowledgements wait for durability', () => {
  let tb: TestBroker;
  const store = new ManualDurabilityStore();
  before(async () => {
    tb = await startBroker({ store });
  });
  after(() => tb.close());

  it('[MQTT-4.3.2-2] PUBACK for a QoS 1 PUBLISH is sent only once the store reports the message durable', async () => {
    const raw = await RawClient.connect(tb.port);
    await raw.handshake({ clientId: 'durable-q1' });
    raw.send({ type: 3, dup: false, qos: 1, retain: true, topic: 'durable/q1', packetId: 7, payload: Buffer.from('x') });
    await assert.rejects(raw.nextPacket(300), /timed out/, 'PUBACK must not precede durability');
    assert.equal(store.pending, 1);
    store.makeDurable();
    const ack = await raw.nextPacket();
    assert.deepEqual({ type: ack.type, packetId: (ack as { packetId: number }).packetId }, { type: 4, packetId: 7 });
    raw.destroy();
  });

  it('[MQTT-4.3.3-2] PUBREC and PUBCOMP for a QoS 2 PUBLISH wait for durability too', async () => {
    const raw = await RawClient.connect(tb.port);
    raw.send({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: false, keepalive: 0, clientId: 'durable-q2' });
    await store.release();
    assert.equal((await raw.nextPacket()).type, 2);
    raw.send({ type: 3, dup: false, qos: 2, retain: false, topic: 'durable/q2', packetId: 9, payload: Buffer.from('y') });
    await assert.rejects(raw.nextPacket(300), /timed out/);
    store.makeDurable();
    assert.equal((await raw.nextPacket()).type, 5);
    raw.send({ type: 6, packetId: 9 });
    await assert.rejects(raw.nextPacket(300), /timed out/);
    store.makeDurable();
    assert.equal((await raw.nextPacket()).type, 7);
    raw.destroy();
  });

  it('later packets of a persistent session are processed while an acknowledgement waits; replies keep their order', async () => {
    const raw = await RawClient.connect(tb.port);
    raw.send({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: false, keepalive: 0, clientId: 'durable-ping' });
    await store.release();
    assert.equal((await raw.nextPacket()).type, 2);
    raw.send({ type: 3, dup: false, qos: 1, retain: true, topic: 'durable/q1', packetId: 1, payload: Buffer.from('z') });
    raw.send({ type: 8, packetId: 2, subscriptions: [{ filter: 'durable/after', qos: 0 }] });
    raw.send({ type: 12 });
    const session = () => tb.broker.sessions.get('durable-ping');
    const deadline = Date.now() + 2000;
    while (!session()?.subscriptions.has('durable/after') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(session()?.subscriptions.has('durable/after'), 'the SUBSCRIBE was handled while the PUBACK waits');
    await assert.rejects(raw.nextPacket(200), /timed out/, 'nothing is sent ahead of the waiting PUBACK');
    store.makeDurable();
    assert.deepEqual([(await raw.nextPacket()).type, (await raw.nextPacket()).type, (await raw.nextPacket()).type], [4, 9, 13]);
    raw.destroy();
  });

  it('a clean session whose packets store nothing is not held behind changes that are not yet durable', async () => {
    // Another client's change is pending (a retained message), as during a slow or full disk.
    const other = await RawClient.connect(tb.port);
    await other.handshake({ clientId: 'durable-other' });
    other.send({ type: 3, dup: false, qos: 1, retain: true, topic: 'durable/pending', packetId: 3, payload: Buffer.from('p') });
    const deadline = Date.now() + 2000;
    while (store.durableNow() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(store.durableNow(), false, 'a change is pending');

    const sub = await RawClient.connect(tb.port);
    await sub.handshake({ clientId: 'durable-clean-sub' });
    sub.send({ type: 8, packetId: 1, subscriptions: [{ filter: 'durable/clean', qos: 1 }] });
    assert.equal((await sub.nextPacket()).type, 9, 'SUBACK of a clean session goes at once');
    const raw = await RawClient.connect(tb.port);
    await raw.handshake({ clientId: 'durable-clean' });
    raw.send({ type: 3, dup: false, qos: 1, retain: false, topic: 'durable/clean', packetId: 4, payload: Buffer.from('c') });
    raw.send({ type: 12 });
    const ack = await raw.nextPacket();
    assert.deepEqual({ type: ack.type, packetId: (ack as { packetId: number }).packetId }, { type: 4, packetId: 4 }, 'PUBACK at once: nothing was stored');
    assert.equal((await raw.nextPacket()).type, 13, 'PINGRESP at once');
    assert.equal((await sub.nextPacket()).type, 3, 'the clean subscriber gets the message at once');
    await assert.rejects(other.nextPacket(200), /timed out/, 'the client whose message was stored still waits');
    store.makeDurable();
    assert.equal((await other.nextPacket()).type, 4);
    for (const c of [other, sub, raw]) c.destroy();
  });

  it('a message routed to a persistent session is sent only once the store has it durably', async () => {
    const sub = await RawClient.connect(tb.port);
    sub.send({ type: 1, protocolName: 'MQTT', protocolVersion: 4, clean: false, keepalive: 0, clientId: 'durable-sub' });
    await store.release();
    assert.equal((await sub.nextPacket()).type, 2, 'CONNACK once the new session is durable');
    sub.send({ type: 8, packetId: 1, subscriptions: [{ filter: 'durable/routed', qos: 1 }] });
    await store.release();
    assert.equal((await sub.nextPacket()).type, 9, 'SUBACK once the subscription is durable');
    const pub = await RawClient.connect(tb.port);
    await pub.handshake({ clientId: 'durable-pub' });
    pub.send({ type: 3, dup: false, qos: 1, retain: false, topic: 'durable/routed', packetId: 5, payload: Buffer.from('d') });
    await assert.rejects(sub.nextPacket(300), /timed out/, 'the subscriber gets nothing before durability');
    store.makeDurable();
    assert.equal((await sub.nextPacket()).type, 3);
    assert.equal((await pub.nextPacket()).type, 4);
    sub.destroy();
    pub.destroy();
  });
});

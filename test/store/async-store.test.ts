import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryStore } from '../../src/index.js';
import { RawClient, startBroker, type TestBroker } from '../helpers/broker.js';

/** A store that becomes durable only when the test says so, like a disk store waiting for fsync. */
class ManualDurabilityStore extends MemoryStore {
  private waiting: Array<() => void> = [];

  override whenDurable(done: () => void): void {
    this.waiting.push(done);
  }

  get pending(): number {
    return this.waiting.length;
  }

  makeDurable(): void {
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
    await raw.handshake({ clientId: 'durable-q2', clean: false });
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

  it('later packets of the same client are still processed while an acknowledgement waits', async () => {
    const raw = await RawClient.connect(tb.port);
    await raw.handshake({ clientId: 'durable-ping' });
    raw.send({ type: 3, dup: false, qos: 1, retain: false, topic: 'durable/q1', packetId: 1, payload: Buffer.from('z') });
    raw.send({ type: 12 });
    assert.equal((await raw.nextPacket()).type, 13, 'PINGRESP arrives while the PUBACK waits for the store');
    store.makeDurable();
    assert.equal((await raw.nextPacket()).type, 4);
    raw.destroy();
  });
});

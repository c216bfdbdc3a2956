import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { COALESCE_CHUNK, COALESCE_LIMIT, coalesce } from '../../src/broker/coalesce.js';
import { startBroker, type BrokerProcess } from '../../bench/lib/brokers.js';
import { connectPacket, FrameReader, PublishTemplate, subscribePacket } from '../../bench/lib/frames.js';

describe('coalesce (write batching)', () => {
  it('joins small packets into one buffer with their bytes in order', () => {
    const chunks = [Buffer.from('ab'), Buffer.from('c'), Buffer.from('defg')];
    const out = coalesce(chunks);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.toString(), 'abcdefg');
  });

  it('keeps large packets as they are (shared payloads are not copied) and joins the small ones around them', () => {
    const big = Buffer.alloc(COALESCE_CHUNK, 0x42);
    const out = coalesce([Buffer.from('h1'), Buffer.from('h2'), big, Buffer.from('t')]);
    assert.deepEqual(out.map((b) => b.length), [4, COALESCE_CHUNK, 1]);
    assert.equal(out[1], big, 'the very same buffer');
    assert.equal(Buffer.concat(out).toString('latin1'), `h1h2${'B'.repeat(COALESCE_CHUNK)}t`);
  });

  it('starts a new buffer before one would pass the limit', () => {
    const piece = Buffer.alloc(1000, 1);
    const count = Math.ceil((COALESCE_LIMIT * 2.5) / piece.length);
    const out = coalesce(Array.from({ length: count }, () => piece));
    assert.ok(out.every((b) => b.length <= COALESCE_LIMIT), 'no buffer over the limit');
    assert.equal(out.reduce((a, b) => a + b.length, 0), count * piece.length, 'every byte kept');
    assert.equal(out.length, 3);
  });
});

/**
 * A flood of small QoS 0 messages from several publishers to one subscriber that
 * keeps up: every message arrives, in order per publisher. Before writes were
 * batched into few buffers, the subscriber's socket took ~1,000 packets per event-loop
 * turn while a turn read far more, so it counted as congested and QoS 0 was dropped.
 */
describe('a QoS 0 flood to a subscriber that keeps up', () => {
  let broker: BrokerProcess | undefined;
  after(async () => broker?.stop());

  const connect = (port: number, clientId: string): Promise<net.Socket> => new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('error', reject);
    socket.once('connect', () => socket.write(connectPacket(clientId, true)));
    socket.once('data', (chunk) => (chunk[0] === 0x20 && chunk[3] === 0 ? resolve(socket) : reject(new Error('refused'))));
  });

  it('8 publishers × 5,000 messages written at once reach one subscriber of flood/+ without a loss', async () => {
    broker = await startBroker('moat', { yaml: 'store:\n  type: memory\n' });
    const publishers = 8;
    const perPublisher = 5000;
    const subscriber = await connect(broker.port, 'flood-sub');
    const next: number[] = new Array(publishers).fill(0);
    let received = 0;
    let outOfOrder = 0;
    let subscribed!: () => void;
    const suback = new Promise<void>((resolve) => (subscribed = resolve));
    const reader = new FrameReader((first, buf, start, end) => {
      if (first === 0x90) return subscribed();
      if (first >> 4 !== 3) return;
      const at = start + 2 + buf.readUInt16BE(start);
      if (end - at < 16) return;
      const stream = buf.readUInt32BE(at);
      const seq = buf.readUInt32BE(at + 4);
      if (seq !== next[stream]) outOfOrder++;
      next[stream] = seq + 1;
      received++;
    });
    subscriber.on('data', (chunk: Buffer) => reader.push(chunk));
    subscriber.write(subscribePacket(1, 'flood/+', 0));
    await suback;

    const sockets = await Promise.all(Array.from({ length: publishers }, (_, i) => connect(broker!.port, `flood-pub-${i}`)));
    const bursts = sockets.map((_, i) => {
      const template = new PublishTemplate(`flood/${i}`, 0, 16);
      const burst = Buffer.allocUnsafe(template.length * perPublisher);
      for (let seq = 0; seq < perPublisher; seq++) template.write(burst, seq * template.length, 0, i, seq, 0n);
      return burst;
    });
    sockets.forEach((socket, i) => socket.write(bursts[i]!));

    const total = publishers * perPublisher;
    const deadline = Date.now() + 15_000;
    for (let before = -1; received < total && Date.now() < deadline;) {
      before = received;
      await new Promise((resolve) => setTimeout(resolve, 250));
      if (received === before && received > 0 && Date.now() > deadline - 14_000) break; // nothing more is coming
    }
    for (const socket of [...sockets, subscriber]) socket.destroy();
    assert.equal(outOfOrder, 0, 'in order per publisher');
    assert.equal(received, total, `all ${total} delivered (received ${received})`);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodePacket, PacketType, type Properties } from '../../src/protocol/index.js';
import { affineClientIdAssigner, workerFor } from '../../src/multicore/affinity.js';
import { peekClientId } from '../../src/multicore/connect-peek.js';
import { FrameReader, FrameType, FrameWriter, type Frame, type PublishFrame } from '../../src/multicore/frames.js';

/** Pure parts of multi-core mode: worker affinity, reading the Client Identifier, the frames between workers. */

function connect(version: 3 | 4 | 5, clientId: string, extra: { properties?: Properties; username?: string } = {}): Buffer {
  return encodePacket({
    type: PacketType.CONNECT, protocolName: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version, clean: true,
    keepAlive: 30, clientId, ...(extra.username !== undefined && { username: extra.username }),
    ...(extra.properties && { properties: extra.properties }),
  } as never, version);
}

describe('multi-core: worker affinity', () => {
  it('maps a client identifier to the same worker every time, and spreads identifiers over all workers', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const id = `client-${i}`;
      const w = workerFor(id, 3);
      assert.equal(workerFor(id, 3), w);
      assert.ok(w >= 0 && w < 3);
      seen.add(w);
    }
    assert.deepStrictEqual([...seen].sort(), [0, 1, 2]);
  });

  it('[MQTT-3.1.3-6] assigns identifiers that map back to the assigning worker', () => {
    for (const index of [0, 1, 2, 3]) {
      const assign = affineClientIdAssigner(index, 4);
      const ids = new Set<string>();
      for (let i = 0; i < 50; i++) {
        const id = assign();
        assert.equal(workerFor(id, 4), index);
        assert.match(id, /^moat-[A-Za-z0-9_-]{12}$/);
        ids.add(id);
      }
      assert.equal(ids.size, 50);
    }
  });
});

describe('multi-core: reading the Client Identifier of CONNECT [MQTT-3.1.3-3]', () => {
  it('finds it in MQTT 3.1, 3.1.1 and 5.0 CONNECT packets, MQTT 5 properties skipped', () => {
    assert.deepStrictEqual(peekClientId(connect(3, 'old-client')), { clientId: 'old-client' });
    assert.deepStrictEqual(peekClientId(connect(4, 'sensor/1 ü', { username: 'u' })), { clientId: 'sensor/1 ü' });
    const v5 = connect(5, 'v5-client', { properties: { sessionExpiryInterval: 60, userProperties: [['k', 'v'.repeat(300)]] } });
    assert.deepStrictEqual(peekClientId(v5), { clientId: 'v5-client' });
    assert.deepStrictEqual(peekClientId(connect(4, '')), { clientId: '' });
  });

  it('asks for more bytes for every strict prefix that stops before the identifier ends', () => {
    const packet = connect(5, 'abcdef', { properties: { receiveMaximum: 10 } });
    const idEnd = packet.indexOf(Buffer.from('abcdef')) + 6;
    for (let n = 0; n < idEnd; n++) assert.equal(peekClientId(packet.subarray(0, n)), 'more', `prefix of ${n} bytes`);
    assert.deepStrictEqual(peekClientId(packet.subarray(0, idEnd)), { clientId: 'abcdef' });
  });

  it('reports anything that is not the start of a CONNECT as unknown (the worker then answers it)', () => {
    assert.equal(peekClientId(Buffer.from([0x30, 0x02, 0x00, 0x00])), 'unknown'); // PUBLISH first
    assert.equal(peekClientId(Buffer.from([0x11, 0x00])), 'unknown'); // reserved flags
    assert.equal(peekClientId(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])), 'unknown'); // remaining length too long
    assert.equal(peekClientId(Buffer.from([0x10, 0x02, 0x00, 0x40])), 'unknown'); // protocol name of 64 bytes
    const truncated = connect(4, 'abc');
    truncated[1] = 10; // remaining length ends inside the client identifier
    assert.equal(peekClientId(truncated), 'unknown');
  });

  it('never throws on arbitrary bytes (property)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const result = peekClientId(Buffer.concat([Buffer.from([0x10]), Buffer.from(bytes)]));
      assert.ok(result === 'more' || result === 'unknown' || typeof result.clientId === 'string');
    }));
  });
});

const publishFrame: fc.Arbitrary<PublishFrame> = fc.record({
  topic: fc.string({ minLength: 1, maxLength: 30 }),
  payload: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
  retain: fc.boolean(),
  deliver: fc.boolean(),
  retainStamp: fc.double({ min: 0, max: 2 ** 52, noNaN: true }),
  origin: fc.integer({ min: 0, max: 30 }),
  expiresAt: fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: undefined }),
  properties: fc.option(fc.record({
    contentType: fc.string({ maxLength: 10 }),
    userProperties: fc.array(fc.tuple(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 })), { minLength: 1, maxLength: 3 }),
  }), { nil: undefined }),
  groups: fc.array(fc.string({ minLength: 1, maxLength: 12 }).map((g) => `$share/${g}/t`), { maxLength: 3 }),
  // Cluster mode numbers its messages; multi-core mode does not.
  id: fc.option(fc.integer({ min: 0, max: 2 ** 52 }), { nil: undefined }),
  target: fc.option(fc.record({ clientId: fc.string({ maxLength: 23 }), origin: fc.string({ minLength: 1, maxLength: 8 }) }), { nil: undefined }),
});

function expected(f: PublishFrame): Frame {
  // Spread: fast-check's records have no prototype, decoded properties are plain objects.
  const properties = f.properties && { ...f.properties };
  const target = f.target && { ...f.target };
  return { type: FrameType.Publish, ...f, properties, target, retainStamp: f.retain ? f.retainStamp : 0, origin: f.retain ? f.origin : 0 };
}

describe('multi-core: frames between workers', () => {
  it('every frame written comes out of the reader equal, however the stream is split (property)', () => {
    fc.assert(fc.property(
      fc.array(fc.oneof(
        publishFrame.map((f) => ({ kind: 'publish' as const, f })),
        fc.record({ kind: fc.constant('interest' as const), seq: fc.integer({ min: 0, max: 2 ** 32 - 1 }), filter: fc.string({ minLength: 1 }) }),
        fc.record({ kind: fc.constant('uninterest' as const), filter: fc.string({ minLength: 1 }) }),
        fc.record({ kind: fc.constant('ack' as const), seq: fc.integer({ min: 0, max: 2 ** 32 - 1 }) }),
      ), { minLength: 1, maxLength: 12 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
      (ops, cuts) => {
        const writer = new FrameWriter();
        const want: Frame[] = [];
        for (const op of ops) {
          if (op.kind === 'publish') {
            writer.publish(op.f);
            want.push(expected(op.f));
          } else if (op.kind === 'interest') {
            writer.interest(op.seq, op.filter);
            want.push({ type: FrameType.Interest, seq: op.seq, filter: op.filter });
          } else if (op.kind === 'uninterest') {
            writer.uninterest(op.filter);
            want.push({ type: FrameType.Uninterest, filter: op.filter });
          } else {
            writer.ack(op.seq);
            want.push({ type: FrameType.Ack, seq: op.seq });
          }
        }
        const bytes = writer.take()!;
        assert.equal(writer.take(), undefined);
        const reader = new FrameReader();
        const got: Frame[] = [];
        let pos = 0;
        for (let i = 0; pos < bytes.length; i++) {
          const n = cuts[i % cuts.length]!;
          reader.push(bytes.subarray(pos, pos + n), (f) => got.push(f.type === FrameType.Publish ? { ...f, payload: Buffer.from(f.payload) } : f));
          pos += n;
        }
        assert.deepStrictEqual(got, want);
      },
    ), { numRuns: 200 });
  });

  it('a writer grows past its first buffer for a large payload', () => {
    const writer = new FrameWriter();
    const payload = Buffer.alloc(200_000, 7);
    writer.publish({ topic: 't', payload, qos: 1, retain: false, deliver: true, retainStamp: 0, origin: 0, expiresAt: undefined, properties: undefined, groups: [] });
    const got: Frame[] = [];
    new FrameReader().push(writer.take()!, (f) => got.push(f));
    assert.equal(got.length, 1);
    assert.ok(got[0]!.type === FrameType.Publish && got[0]!.payload.equals(payload));
  });
});

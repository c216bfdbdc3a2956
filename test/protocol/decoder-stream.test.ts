import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodePacket, PacketDecoder, PacketType, ProtocolError, type Packet, type ProtocolVersion, type PublishPacket,
} from '../../src/protocol/index.js';
import { decodeBytes, decodeChunks, packetStreamArb, splitAt } from '../helpers/codec.js';

function encodeAll(packets: readonly Packet[], version: ProtocolVersion): { bytes: Buffer; lengths: number[] } {
  const parts = packets.map((p) => encodePacket(p, version));
  return { bytes: Buffer.concat(parts), lengths: parts.map((b) => b.length) };
}

function assertDecodesTo(chunks: Buffer[], version: ProtocolVersion, packets: readonly Packet[], lengths: number[]): void {
  const res = decodeChunks(chunks, { version });
  assert.equal(res.error, undefined, `unexpected error: ${res.error?.message}`);
  assert.deepStrictEqual(res.packets, packets);
  assert.deepStrictEqual(res.lengths, lengths);
  assert.equal(res.decoder.buffered, 0, 'nothing left buffered');
}

const cutsArb = fc.array(fc.nat(), { maxLength: 40 });

describe('PacketDecoder streaming', () => {
  it('property: a concatenation of packets split at arbitrary points decodes to the same packets', () => {
    fc.assert(
      fc.property(packetStreamArb, cutsArb, ({ version, packets }, cuts) => {
        const { bytes, lengths } = encodeAll(packets, version);
        assertDecodesTo(splitAt(bytes, cuts), version, packets, lengths);
      }),
      { numRuns: 300 },
    );
  });

  it('property: several packets per chunk (the whole stream in one chunk)', () => {
    fc.assert(
      fc.property(packetStreamArb, ({ version, packets }) => {
        const { bytes, lengths } = encodeAll(packets, version);
        assertDecodesTo([bytes], version, packets, lengths);
      }),
      { numRuns: 200 },
    );
  });

  it('property: one byte at a time', () => {
    const small = packetStreamArb.filter(({ version, packets }) => encodeAll(packets, version).bytes.length <= 4096);
    fc.assert(
      fc.property(small, ({ version, packets }) => {
        const { bytes, lengths } = encodeAll(packets, version);
        const chunks = [...bytes].map((b) => Buffer.from([b]));
        assertDecodesTo(chunks, version, packets, lengths);
      }),
      { numRuns: 60 },
    );
  });

  it('one byte at a time across every remaining-length size (1-3 length bytes)', () => {
    const packets: Packet[] = [127, 200, 20_000].map((n, i) => ({
      type: PacketType.PUBLISH, dup: false, qos: 1, retain: false, topic: `t/${i}`, packetId: i + 1, payload: Buffer.alloc(n, i),
    }));
    packets.push({ type: PacketType.PINGREQ });
    const { bytes, lengths } = encodeAll(packets, 4);
    assertDecodesTo([...bytes].map((b) => Buffer.from([b])), 4, packets, lengths);
  });

  it('empty chunks anywhere in the stream are harmless', () => {
    const packets: Packet[] = [
      { type: PacketType.PINGREQ },
      { type: PacketType.PUBACK, packetId: 9 },
      { type: PacketType.PUBLISH, dup: false, qos: 0, retain: false, topic: 'x', payload: Buffer.from('y') },
    ];
    const { bytes, lengths } = encodeAll(packets, 4);
    const empty = Buffer.alloc(0);
    assertDecodesTo([empty, bytes.subarray(0, 1), empty, empty, bytes.subarray(1, 5), empty, bytes.subarray(5), empty], 4, packets, lengths);
  });

  it('a packet is not reported until its last byte arrives', () => {
    const bytes = encodePacket({ type: PacketType.PUBLISH, dup: false, qos: 0, retain: false, topic: 'a', payload: Buffer.from('abc') }, 4);
    const decoder = new PacketDecoder();
    const seen: Packet[] = [];
    const handler = (p: Packet) => (seen.push(p), true);
    for (let i = 0; i < bytes.length - 1; i++) {
      assert.equal(decoder.push(bytes.subarray(i, i + 1), handler), undefined);
      assert.equal(seen.length, 0, `reported after ${i + 1} of ${bytes.length} bytes`);
    }
    assert.equal(decoder.push(bytes.subarray(bytes.length - 1), handler), undefined);
    assert.equal(seen.length, 1);
  });

  it('a CONNECT sets the protocol level used for the packets after it', () => {
    // SUBACK failure code 0x80 exists in 3.1.1 only [MQTT-3.9.3-2]; CONNACK session present is a 3.1.1 bit.
    const suback = Buffer.from([0x90, 0x03, 0x00, 0x01, 0x80]);
    const v3 = encodePacket({ type: PacketType.CONNECT, protocolName: 'MQIsdp', protocolVersion: 3, clean: true, keepalive: 0, clientId: 'a' }, 3);
    const v4 = encodePacket({ type: PacketType.CONNECT, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'a' }, 4);
    const after3 = decodeBytes(Buffer.concat([v3, suback]), { version: 4 });
    assert.equal(after3.decoder.version, 3);
    assert.ok(after3.error instanceof ProtocolError, 'SUBACK 0x80 rejected after an MQTT 3.1 CONNECT');
    const after4 = decodeBytes(Buffer.concat([v4, suback]), { version: 3 });
    assert.equal(after4.decoder.version, 4);
    assert.equal(after4.error, undefined);
    assert.deepStrictEqual(after4.packets[1], { type: PacketType.SUBACK, packetId: 1, returnCodes: [0x80] });
  });

  it('a handler returning false pauses decoding; resume continues with the buffered bytes', () => {
    const packets: Packet[] = [{ type: PacketType.PUBACK, packetId: 1 }, { type: PacketType.PUBACK, packetId: 2 }, { type: PacketType.PUBACK, packetId: 3 }];
    const { bytes } = encodeAll(packets, 4);
    const decoder = new PacketDecoder();
    const seen: Packet[] = [];
    assert.equal(decoder.push(bytes.subarray(0, 5), (p) => (seen.push(p), false)), undefined);
    assert.deepStrictEqual(seen, [packets[0]]);
    // While paused, pushes only buffer.
    assert.equal(decoder.push(bytes.subarray(5), (p) => (seen.push(p), true)), undefined);
    assert.deepStrictEqual(seen, [packets[0]]);
    assert.equal(decoder.resume((p) => (seen.push(p), true)), undefined);
    assert.deepStrictEqual(seen, packets);
    assert.equal(decoder.buffered, 0);
  });
});

// ---------------------------------------------------------------- robustness

/**
 * Feeds the chunks and checks the decoder's contract: push never throws, returns
 * undefined or a ProtocolError, reports only well-formed packets (which re-encode
 * and decode to themselves), and once it has failed it keeps failing with that
 * error and reports nothing more.
 */
function checkRobust(chunks: readonly Buffer[], options: { version: ProtocolVersion; maxPacketSize?: number }): void {
  const decoder = options.maxPacketSize === undefined ? new PacketDecoder() : new PacketDecoder(options.maxPacketSize);
  decoder.version = options.version;
  let error: ProtocolError | undefined;
  const handler = (packet: Packet, byteLength: number): boolean => {
    assert.equal(error, undefined, 'packet reported after the decoder failed');
    assert.equal(typeof packet, 'object');
    assert.ok(Number.isInteger(packet.type) && packet.type >= 1 && packet.type <= 14, `packet type ${packet.type}`);
    assert.ok(byteLength >= 2);
    if (options.maxPacketSize !== undefined) assert.ok(byteLength <= options.maxPacketSize);
    // A decoded packet is a valid packet: it survives encode -> decode unchanged.
    const version = decoder.version;
    const again = decodeBytes(Buffer.from(encodePacket(packet, version)), { version });
    assert.equal(again.error, undefined, `re-decoding a decoded ${packet.type} failed: ${again.error?.message}`);
    assert.deepStrictEqual(again.packets, [packet]);
    return true;
  };
  const push = (chunk: Buffer): ProtocolError | undefined => {
    try {
      return decoder.push(chunk, handler);
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      assert.fail(`push threw ${String(err)}`);
    }
  };
  for (const chunk of chunks) {
    const ret = push(chunk);
    if (ret === undefined) {
      assert.equal(error, undefined, 'push returned undefined after an error');
      continue;
    }
    assert.ok(ret instanceof ProtocolError, `push returned ${String(ret)}`);
    if (error) assert.equal(ret, error, 'a failed decoder keeps returning the same error');
    error = ret;
  }
  if (error) {
    assert.equal(push(Buffer.from([0xc0, 0x00])), error, 'still failing after more (valid) bytes');
    assert.equal(decoder.resume(handler), error, 'resume reports the error');
  }
}

const mutationArb = fc.record({
  kind: fc.constantFrom('flip', 'insert', 'delete', 'set'),
  pos: fc.nat(),
  bit: fc.integer({ min: 0, max: 7 }),
  value: fc.integer({ min: 0, max: 255 }),
});
type Mutation = { kind: 'flip' | 'insert' | 'delete' | 'set'; pos: number; bit: number; value: number };

function mutate(bytes: Buffer, mutations: readonly Mutation[]): Buffer {
  const out = [...bytes];
  for (const m of mutations) {
    const i = out.length === 0 ? 0 : m.pos % (out.length + (m.kind === 'insert' ? 1 : 0));
    if (m.kind === 'insert') out.splice(i, 0, m.value);
    else if (out.length === 0) continue;
    else if (m.kind === 'delete') out.splice(i, 1);
    else if (m.kind === 'flip') out[i] = out[i]! ^ (1 << m.bit);
    else out[i] = m.value;
  }
  return Buffer.from(out);
}

const versionArb = fc.constantFrom<ProtocolVersion>(3, 4);
const maxSizeArb = fc.option(fc.integer({ min: 2, max: 300 }), { nil: undefined });

describe('PacketDecoder robustness', () => {
  it('property: random byte streams never make push throw; only packets and/or a ProtocolError come out', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, versionArb, maxSizeArb, (bytes, cuts, version, maxPacketSize) => {
        checkRobust(splitAt(Buffer.from(bytes), cuts), { version, maxPacketSize });
      }),
      { numRuns: 2000 },
    );
  });

  it('property: random streams that look like packets (plausible first bytes, short lengths)', () => {
    const packetish = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 }))
      .map(([first, body]) => [first, body.length, ...body]);
    fc.assert(
      fc.property(fc.array(packetish, { maxLength: 8 }), cutsArb, versionArb, (parts, cuts, version) => {
        checkRobust(splitAt(Buffer.from(parts.flat()), cuts), { version });
      }),
      { numRuns: 2000 },
    );
  });

  it('property: mutated valid encodings (flip/insert/delete/overwrite bytes) never throw', () => {
    fc.assert(
      fc.property(
        packetStreamArb, fc.array(mutationArb, { minLength: 1, maxLength: 6 }), cutsArb, maxSizeArb,
        ({ version, packets }, mutations, cuts, maxPacketSize) => {
          const small = packets.filter((p) => p.type !== PacketType.PUBLISH || (p as PublishPacket).payload.length < 2000);
          const mutated = mutate(encodeAll(small, version).bytes, mutations as Mutation[]);
          checkRobust(splitAt(mutated, cuts), { version, maxPacketSize });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('property: mutated valid encodings fed one byte at a time never throw', () => {
    fc.assert(
      fc.property(packetStreamArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), ({ version, packets }, mutations) => {
        const small = packets.filter((p) => p.type !== PacketType.PUBLISH || (p as PublishPacket).payload.length < 500);
        const mutated = mutate(encodeAll(small, version).bytes, mutations as Mutation[]);
        checkRobust([...mutated].map((b) => Buffer.from([b])), { version });
      }),
      { numRuns: 200 },
    );
  });

  it('after an error the decoder keeps returning that error and decodes nothing more', () => {
    const decoder = new PacketDecoder();
    let calls = 0;
    const handler = () => (calls++, true);
    const err = decoder.push(Buffer.from([0xc0, 0x00, 0x00, 0x00, 0xc0, 0x00]), handler);
    assert.ok(err instanceof ProtocolError);
    assert.equal(calls, 1, 'the PINGREQ before the bad packet was reported, nothing after it');
    assert.equal(decoder.push(Buffer.from([0xc0, 0x00]), handler), err);
    assert.equal(decoder.push(Buffer.alloc(0), handler), err);
    assert.equal(decoder.resume(handler), err);
    assert.equal(calls, 1);
  });

  it('the valid packets before a corrupt one are all reported, in order', () => {
    const good: Packet[] = [{ type: PacketType.PUBACK, packetId: 1 }, { type: PacketType.PINGREQ }];
    const bytes = Buffer.concat([encodeAll(good, 4).bytes, Buffer.from([0x40, 0x02, 0x00, 0x00])]);
    for (const chunks of [[bytes], [...bytes].map((b) => Buffer.from([b]))]) {
      const res = decodeChunks(chunks);
      assert.deepStrictEqual(res.packets, good);
      assert.ok(res.error instanceof ProtocolError);
    }
  });
});

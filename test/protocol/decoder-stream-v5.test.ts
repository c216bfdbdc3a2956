import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodePacket, PacketDecoder, PacketType, ProtocolError, type Packet, type ProtocolVersion, type PublishPacket,
} from '../../src/protocol/index.js';
import { decodeBytes, decodeChunks, splitAt } from '../helpers/codec.js';
import { normalizeV5, packetStreamV5Arb } from '../helpers/codec-v5.js';

function encodeAll(packets: readonly Packet[]): { bytes: Buffer; lengths: number[] } {
  const parts = packets.map((p) => encodePacket(p, 5));
  return { bytes: Buffer.concat(parts), lengths: parts.map((b) => b.length) };
}

/**
 * A stream that starts with a v5 CONNECT is decoded by a decoder left at its
 * default level (the CONNECT switches it to 5); other streams by a level-5 decoder.
 */
function startLevel(packets: readonly Packet[]): ProtocolVersion {
  return packets[0]?.type === PacketType.CONNECT ? 4 : 5;
}

function assertDecodesTo(chunks: Buffer[], packets: readonly Packet[], lengths: number[]): void {
  const res = decodeChunks(chunks, { version: startLevel(packets) });
  assert.equal(res.error, undefined, `unexpected error: ${res.error?.message}`);
  assert.deepStrictEqual(res.packets, packets.map(normalizeV5));
  assert.deepStrictEqual(res.lengths, lengths);
  assert.equal(res.decoder.buffered, 0, 'nothing left buffered');
  assert.equal(res.decoder.version, 5);
}

const cutsArb = fc.array(fc.nat(), { maxLength: 40 });
const small = (packets: Packet[], limit: number) =>
  packets.filter((p) => p.type !== PacketType.PUBLISH || (p as PublishPacket).payload.length < limit);

describe('PacketDecoder streaming, MQTT 5', () => {
  it('property: a concatenation of v5 packets (properties, AUTH, reason codes) split at arbitrary points decodes to the same packets', () => {
    fc.assert(
      fc.property(packetStreamV5Arb, cutsArb, (packets, cuts) => {
        const { bytes, lengths } = encodeAll(packets);
        assertDecodesTo(splitAt(bytes, cuts), packets, lengths);
      }),
      { numRuns: 300 },
    );
  });

  it('property: the whole v5 stream in one chunk', () => {
    fc.assert(
      fc.property(packetStreamV5Arb, (packets) => {
        const { bytes, lengths } = encodeAll(packets);
        assertDecodesTo([bytes], packets, lengths);
      }),
      { numRuns: 150 },
    );
  });

  it('property: a v5 stream fed one byte at a time', () => {
    fc.assert(
      fc.property(packetStreamV5Arb, (all) => {
        const packets = small(all, 300);
        const { bytes, lengths } = encodeAll(packets);
        fc.pre(bytes.length <= 6000);
        assertDecodesTo([...bytes].map((b) => Buffer.from([b])), packets, lengths);
      }),
      { numRuns: 60 },
    );
  });

  it('a property block split between chunks at every byte decodes the same', () => {
    const packet: Packet = {
      type: PacketType.PUBLISH, qos: 2, dup: true, retain: true, topic: 'x/y', packetId: 77, payload: Buffer.from('data'),
      properties: {
        payloadFormatIndicator: 1, messageExpiryInterval: 3600, contentType: 'text/plain', responseTopic: 'r/t',
        correlationData: Buffer.from([1, 2, 3]), subscriptionIdentifiers: [1, 16_384, 268_435_455],
        userProperties: [['k', 'v'], ['k', 'w']],
      },
    };
    const bytes = encodePacket(packet, 5);
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (let cut2 = cut; cut2 <= bytes.length; cut2 += 7) {
        assertDecodesTo(splitAt(bytes, [cut, cut2]), [packet], [bytes.length]);
      }
    }
  });
});

// ---------------------------------------------------------------- robustness

/** Feeds chunks; push must never throw and must only report valid packets, then (at most) one ProtocolError. */
function checkRobust(chunks: readonly Buffer[], version: ProtocolVersion, maxPacketSize?: number): void {
  const decoder = maxPacketSize === undefined ? new PacketDecoder() : new PacketDecoder(maxPacketSize);
  decoder.version = version;
  let error: ProtocolError | undefined;
  const handler = (packet: Packet, byteLength: number): boolean => {
    assert.equal(error, undefined, 'packet reported after the decoder failed');
    assert.ok(Number.isInteger(packet.type) && packet.type >= 1 && packet.type <= 15, `packet type ${packet.type}`);
    if (packet.type === PacketType.AUTH) assert.equal(decoder.version, 5, 'AUTH only at level 5');
    assert.ok(byteLength >= 2);
    if (maxPacketSize !== undefined) assert.ok(byteLength <= maxPacketSize);
    // A decoded packet is valid: it survives encode -> decode (up to the optional-reason-code normal form).
    const level = decoder.version;
    const again = decodeBytes(Buffer.from(encodePacket(packet, level)), { version: level });
    assert.equal(again.error, undefined, `re-decoding a decoded packet of type ${packet.type} failed: ${again.error?.message}`);
    assert.equal(again.packets.length, 1);
    if (level === 5) assert.deepStrictEqual(normalizeV5(again.packets[0]!), normalizeV5(packet));
    else assert.deepStrictEqual(again.packets[0], packet);
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
    assert.ok(ret.reasonCode >= 0x80 && ret.reasonCode <= 0xff, `error reason code 0x${ret.reasonCode.toString(16)} is a failure code`);
    if (error) assert.equal(ret, error, 'a failed decoder keeps returning the same error');
    error = ret;
  }
  if (error) {
    assert.equal(push(Buffer.from([0xc0, 0x00])), error, 'still failing after more (valid) bytes');
    assert.equal(decoder.resume(handler), error, 'resume reports the error');
  }
}

type Mutation = { kind: 'flip' | 'insert' | 'delete' | 'set'; pos: number; bit: number; value: number };
const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom<Mutation['kind']>('flip', 'insert', 'delete', 'set'),
  pos: fc.nat(),
  bit: fc.integer({ min: 0, max: 7 }),
  value: fc.integer({ min: 0, max: 255 }),
}).map((m) => ({ ...m }));

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

const maxSizeArb = fc.option(fc.integer({ min: 2, max: 400 }), { nil: undefined });

describe('PacketDecoder robustness, MQTT 5', () => {
  it('property: mutated v5 encodings (flip/insert/delete/overwrite bytes) never throw; only packets and/or a ProtocolError come out', () => {
    fc.assert(
      fc.property(packetStreamV5Arb, fc.array(mutationArb, { minLength: 1, maxLength: 6 }), cutsArb, maxSizeArb,
        (packets, mutations, cuts, maxPacketSize) => {
          const mutated = mutate(encodeAll(small(packets, 2000)).bytes, mutations);
          checkRobust(splitAt(mutated, cuts), startLevel(packets), maxPacketSize);
        }),
      { numRuns: 1000 },
    );
  });

  it('property: mutations confined to the property blocks and reason codes (single bit flips) never throw', () => {
    fc.assert(
      fc.property(packetStreamV5Arb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 3 }),
        (packets, flips) => {
          const parts = small(packets, 500).map((p) => Buffer.from(encodePacket(p, 5)));
          // Flip bits past each fixed header: variable headers carry the properties and reason codes.
          for (const part of parts) {
            let header = 1;
            while (header < part.length && part[header]! & 0x80) header++;
            header++;
            for (const [pos, bitNo] of flips) {
              if (part.length > header) part[header + (pos % (part.length - header))]! ^= 1 << bitNo;
            }
          }
          checkRobust([Buffer.concat(parts)], startLevel(packets));
        }),
      { numRuns: 800 },
    );
  });

  it('property: mutated v5 encodings fed one byte at a time never throw', () => {
    fc.assert(
      fc.property(packetStreamV5Arb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (packets, mutations) => {
        const mutated = mutate(encodeAll(small(packets, 300)).bytes, mutations);
        fc.pre(mutated.length <= 4000);
        checkRobust([...mutated].map((b) => Buffer.from([b])), startLevel(packets));
      }),
      { numRuns: 150 },
    );
  });

  it('property: random bytes at level 5 never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cutsArb, maxSizeArb, (bytes, cuts, maxPacketSize) => {
        checkRobust(splitAt(Buffer.from(bytes), cuts), 5, maxPacketSize);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: random packet-shaped bytes at level 5 (every first byte, short bodies that start like property blocks) never throw', () => {
    const packetish = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 30 }), fc.uint8Array({ maxLength: 40 }))
      .map(([first, propLen, body]) => {
        const b = [propLen, ...body];
        return [first, b.length, ...b];
      });
    fc.assert(
      fc.property(fc.array(packetish, { maxLength: 8 }), cutsArb, (parts, cuts) => {
        checkRobust(splitAt(Buffer.from(parts.flat()), cuts), 5);
      }),
      { numRuns: 2000 },
    );
  });

  it('the valid v5 packets before a corrupt one are all reported, in order, then the error', () => {
    const good: Packet[] = [
      { type: PacketType.AUTH, reasonCode: 0x18, properties: { authenticationMethod: 'm' } },
      { type: PacketType.PUBLISH, qos: 1, dup: false, retain: false, topic: 't', packetId: 1, payload: Buffer.from('x'), properties: { topicAlias: 3 } },
      { type: PacketType.DISCONNECT, reasonCode: 0x04 },
    ];
    // Corrupt: PUBLISH with Topic Alias 0 (protocol error 0x82).
    const bad = Buffer.from([0x30, 0x07, 0x00, 0x01, 0x61, 0x03, 0x23, 0x00, 0x00]);
    const res = decodeChunks([Buffer.concat([...good.map((p) => encodePacket(p, 5)), bad, encodePacket({ type: PacketType.PINGREQ }, 5)])], { version: 5 });
    assert.deepStrictEqual(res.packets, good);
    assert.ok(res.error instanceof ProtocolError);
    assert.equal(res.error.reasonCode, 0x82);
  });
});

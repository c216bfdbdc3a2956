import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodePacket, PacketType, type Packet, type ProtocolVersion, type PublishPacket } from '../../src/protocol/index.js';
import {
  connectArb, decodeBytes, decodeChunks, packetArbs, qos as qosArb, topicName, payload as payloadArb,
} from '../helpers/codec.js';

/** Encodes, decodes with a fresh decoder at `version`, and checks the packet comes back unchanged. */
function roundTrip(packet: Packet, version: ProtocolVersion): void {
  const encoded = encodePacket(packet, version);
  const res = decodeBytes(Buffer.from(encoded), { version });
  assert.equal(res.error, undefined, `decode error: ${res.error?.message}`);
  assert.equal(res.packets.length, 1);
  assert.equal(res.lengths[0], encoded.length, 'reported byte length');
  assert.deepStrictEqual(res.packets[0], packet);
  // The encoding is canonical: re-encoding the decoded packet gives the same bytes.
  assert.deepStrictEqual(encodePacket(res.packets[0]!, version), encoded);
}

function property<T extends Packet>(arb: fc.Arbitrary<T>, version: ProtocolVersion, runs = 100): void {
  fc.assert(fc.property(arb, (p) => roundTrip(p, version)), { numRuns: runs });
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

for (const version of [3, 4] as const) {
  const label = version === 3 ? 'MQTT 3.1 (MQIsdp, level 3)' : 'MQTT 3.1.1 (level 4)';
  const arbs = packetArbs(version);
  const publishWith = (q: 0 | 1 | 2) =>
    (arbs[PacketType.PUBLISH] as fc.Arbitrary<PublishPacket>).filter((p) => p.qos === q);

  describe(`codec round trip, ${label}`, () => {
    it('CONNECT without will, user name or password', () => {
      property(connectArb(version, { will: false, username: false, password: false }), version);
    });
    it('CONNECT with will only', () => {
      property(connectArb(version, { will: true, username: false, password: false }), version);
    });
    it('CONNECT with user name only', () => {
      property(connectArb(version, { will: false, username: true, password: false }), version);
    });
    it('CONNECT with user name and password', () => {
      property(connectArb(version, { will: false, username: true, password: true }), version);
    });
    it('CONNECT with will, user name and password', () => {
      property(connectArb(version, { will: true, username: true, password: true }), version);
    });
    it('CONNECT with any combination of optional fields', () => {
      property(connectArb(version), version, 200);
    });
    it('CONNACK', () => {
      property(arbs[PacketType.CONNACK]!, version);
    });
    it('PUBLISH QoS 0 (retain on/off, no packet id)', () => {
      property(publishWith(0), version);
    });
    it('PUBLISH QoS 1 (dup and retain on/off)', () => {
      property(publishWith(1), version);
    });
    it('PUBLISH QoS 2 (dup and retain on/off)', () => {
      property(publishWith(2), version);
    });
    it('PUBLISH every dup/retain combination on QoS 1 and 2', () => {
      for (const q of [1, 2] as const) {
        for (const dup of [false, true]) {
          for (const retain of [false, true]) {
            roundTrip({ type: PacketType.PUBLISH, qos: q, dup, retain, topic: 't/é', packetId: 65535, payload: Buffer.from('x') }, version);
          }
        }
      }
      roundTrip({ type: PacketType.PUBLISH, qos: 0, dup: false, retain: true, topic: 't', payload: Buffer.alloc(0) }, version);
    });
    for (const [name, type] of [
      ['PUBACK', PacketType.PUBACK], ['PUBREC', PacketType.PUBREC], ['PUBREL', PacketType.PUBREL],
      ['PUBCOMP', PacketType.PUBCOMP], ['SUBSCRIBE', PacketType.SUBSCRIBE], ['SUBACK', PacketType.SUBACK],
      ['UNSUBSCRIBE', PacketType.UNSUBSCRIBE], ['UNSUBACK', PacketType.UNSUBACK], ['PINGREQ', PacketType.PINGREQ],
      ['PINGRESP', PacketType.PINGRESP], ['DISCONNECT', PacketType.DISCONNECT],
    ] as const) {
      it(name, () => {
        property(arbs[type]!, version, type >= PacketType.PINGREQ ? 1 : 100);
      });
    }
    it('packet identifiers 1 and 65535 on every packet that carries one', () => {
      for (const id of [1, 255, 256, 65535]) {
        for (const type of [PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL, PacketType.PUBCOMP, PacketType.UNSUBACK] as const) {
          roundTrip({ type, packetId: id }, version);
        }
        roundTrip({ type: PacketType.SUBSCRIBE, packetId: id, subscriptions: [{ filter: '#', qos: 2 }] }, version);
        roundTrip({ type: PacketType.UNSUBSCRIBE, packetId: id, filters: ['+'] }, version);
        roundTrip({ type: PacketType.SUBACK, packetId: id, returnCodes: [2] }, version);
      }
    });
  });
}

describe('codec wire format (golden bytes)', () => {
  it('[MQTT-3.1.2-1] CONNECT 3.1.1 carries protocol name "MQTT" and level 4', () => {
    const bytes = encodePacket(
      { type: PacketType.CONNECT, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'abc' }, 4);
    assert.deepStrictEqual(bytes, hex('10 0f 0004 4d515454 04 02 003c 0003 616263'));
  });

  it('CONNECT 3.1 carries protocol name "MQIsdp" and level 3', () => {
    const bytes = encodePacket(
      { type: PacketType.CONNECT, protocolName: 'MQIsdp', protocolVersion: 3, clean: true, keepalive: 60, clientId: 'abc' }, 3);
    assert.deepStrictEqual(bytes, hex('10 11 0006 4d5149736470 03 02 003c 0003 616263'));
  });

  it('CONNECT flags and payload order: client id, will topic, will message, user name, password [MQTT-3.1.3-1]', () => {
    const bytes = encodePacket({
      type: PacketType.CONNECT, protocolName: 'MQTT', protocolVersion: 4, clean: false, keepalive: 0, clientId: 'c',
      will: { topic: 'w', payload: Buffer.from([9]), qos: 1, retain: true }, username: 'u', password: Buffer.from([7, 8]),
    }, 4);
    // flags: user 0x80 | password 0x40 | will retain 0x20 | will QoS 1 0x08 | will 0x04 = 0xec
    assert.deepStrictEqual(bytes, hex('10 1a 0004 4d515454 04 ec 0000 0001 63 0001 77 0001 09 0001 75 0002 0708'));
  });

  it('PUBLISH fixed header carries DUP, QoS and RETAIN; packet id follows the topic', () => {
    const bytes = encodePacket({
      type: PacketType.PUBLISH, dup: true, qos: 1, retain: true, topic: 'a/b', packetId: 10, payload: Buffer.from('hi'),
    }, 4);
    assert.deepStrictEqual(bytes, hex('3b 09 0003 612f62 000a 6869'));
    const q0 = encodePacket({ type: PacketType.PUBLISH, dup: false, qos: 0, retain: false, topic: 'a', payload: Buffer.alloc(0) }, 4);
    assert.deepStrictEqual(q0, hex('30 03 0001 61'));
    const q2 = encodePacket({ type: PacketType.PUBLISH, dup: false, qos: 2, retain: false, topic: 'a', packetId: 0x1234, payload: Buffer.alloc(0) }, 4);
    assert.deepStrictEqual(q2, hex('34 05 0001 61 1234'));
  });

  it('[MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] PUBREL, SUBSCRIBE and UNSUBSCRIBE carry flags 0010; other acks 0000', () => {
    for (const version of [3, 4] as const) {
      assert.deepStrictEqual(encodePacket({ type: PacketType.PUBACK, packetId: 1 }, version), hex('40 02 0001'));
      assert.deepStrictEqual(encodePacket({ type: PacketType.PUBREC, packetId: 1 }, version), hex('50 02 0001'));
      assert.deepStrictEqual(encodePacket({ type: PacketType.PUBREL, packetId: 1 }, version), hex('62 02 0001'));
      assert.deepStrictEqual(encodePacket({ type: PacketType.PUBCOMP, packetId: 1 }, version), hex('70 02 0001'));
      assert.deepStrictEqual(encodePacket({ type: PacketType.UNSUBACK, packetId: 1 }, version), hex('b0 02 0001'));
      assert.deepStrictEqual(
        encodePacket({ type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ filter: 'a/+', qos: 1 }] }, version),
        hex('82 08 0001 0003 612f2b 01'));
      assert.deepStrictEqual(encodePacket({ type: PacketType.UNSUBSCRIBE, packetId: 1, filters: ['a/+'] }, version), hex('a2 07 0001 0003 612f2b'));
      assert.deepStrictEqual(encodePacket({ type: PacketType.SUBACK, packetId: 1, returnCodes: [1, 0] }, version), hex('90 04 0001 01 00'));
      assert.deepStrictEqual(encodePacket({ type: PacketType.PINGREQ }, version), hex('c0 00'));
      assert.deepStrictEqual(encodePacket({ type: PacketType.PINGRESP }, version), hex('d0 00'));
      assert.deepStrictEqual(encodePacket({ type: PacketType.DISCONNECT }, version), hex('e0 00'));
    }
  });

  it('CONNACK carries session present in bit 0 of byte 1 at level 4 (3.2.2.2); MQTT 3.1 has no such bit', () => {
    assert.deepStrictEqual(encodePacket({ type: PacketType.CONNACK, sessionPresent: true, returnCode: 0 }, 4), hex('20 02 01 00'));
    assert.deepStrictEqual(encodePacket({ type: PacketType.CONNACK, sessionPresent: false, returnCode: 5 }, 4), hex('20 02 00 05'));
    assert.deepStrictEqual(encodePacket({ type: PacketType.CONNACK, sessionPresent: true, returnCode: 0 }, 3), hex('20 02 00 00'));
  });

  it('remaining length uses 1 to 4 bytes at the boundaries of section 2.2.3', () => {
    const cases: Array<[number, string]> = [
      [3, '03'], [127, '7f'], [128, '8001'], [16_383, 'ff7f'], [16_384, '808001'], [2_097_151, 'ffff7f'], [2_097_152, '80808001'],
    ];
    for (const [remaining, lengthHex] of cases) {
      const packet: PublishPacket = {
        type: PacketType.PUBLISH, dup: false, qos: 0, retain: false, topic: 'a', payload: Buffer.alloc(remaining - 3, 0x41),
      };
      const bytes = encodePacket(packet, 4);
      const lengthBytes = hex(lengthHex);
      assert.deepStrictEqual(bytes.subarray(1, 1 + lengthBytes.length), lengthBytes, `remaining length ${remaining}`);
      assert.equal(bytes.length, 1 + lengthBytes.length + remaining);
      roundTrip(packet, 4);
    }
  });

  it('[MQTT-1.5.3-3] a UTF-8 BOM (EF BB BF) is kept as U+FEFF, not stripped, in topics and client ids', () => {
    const publish = decodeBytes(hex('30 06 0004 efbbbf61'));
    assert.equal(publish.error, undefined);
    assert.equal((publish.packets[0] as PublishPacket).topic, '\uFEFFa');
    roundTrip({ type: PacketType.PUBLISH, dup: false, qos: 0, retain: false, topic: '\uFEFF', payload: Buffer.alloc(0) }, 4);
    roundTrip({ type: PacketType.CONNECT, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 1, clientId: '\uFEFFid' }, 4);
  });

  it('strings outside the Basic Multilingual Plane (4-byte UTF-8) round-trip', () => {
    roundTrip({ type: PacketType.PUBLISH, dup: false, qos: 1, retain: false, topic: '\u{1F600}/\u{10FFFF}', packetId: 3, payload: Buffer.alloc(0) }, 4);
    roundTrip({ type: PacketType.SUBSCRIBE, packetId: 3, subscriptions: [{ filter: '\u{1F600}/+', qos: 0 }] }, 4);
  });
});

describe('decoded payloads are views, not copies', () => {
  /** A chunk with its own ArrayBuffer (not from Buffer's shared pool), so sharing is unambiguous. */
  function ownChunk(...parts: Buffer[]): Buffer {
    const total = Buffer.concat(parts);
    const chunk = Buffer.alloc(total.length);
    total.copy(chunk);
    return chunk;
  }
  const publish = (payload: string, q: 0 | 1 = 0): PublishPacket => ({
    type: PacketType.PUBLISH, dup: false, qos: q, retain: false, topic: 'v/t', payload: Buffer.from(payload),
    ...(q > 0 ? { packetId: 7 } : {}),
  });

  it('the PUBLISH payload of a packet inside one chunk shares that chunk\'s memory', () => {
    const encoded = encodePacket(publish('hello world'), 4);
    const chunk = ownChunk(encoded);
    const res = decodeChunks([chunk]);
    assert.equal(res.error, undefined);
    const p = res.packets[0] as PublishPacket;
    assert.equal(p.payload.buffer, chunk.buffer, 'payload shares the chunk ArrayBuffer');
    assert.equal(p.payload.byteOffset, chunk.byteOffset + chunk.length - 11);
    chunk[chunk.length - 1] = 0x21; // '!'
    assert.equal(p.payload.toString(), 'hello worl!', 'a write to the chunk is visible through the payload');
  });

  it('payloads of several packets in one chunk, including will message and password, view the chunk', () => {
    const connect = encodePacket({
      type: PacketType.CONNECT, protocolName: 'MQTT', protocolVersion: 4, clean: true, keepalive: 10, clientId: 'c',
      will: { topic: 'w', payload: Buffer.from('will'), qos: 0, retain: false }, username: 'u', password: Buffer.from('pw'),
    }, 4);
    const chunk = ownChunk(connect, encodePacket(publish('one', 1), 4), encodePacket(publish('two'), 4));
    const res = decodeChunks([chunk]);
    assert.equal(res.error, undefined);
    assert.equal(res.packets.length, 3);
    const c = res.packets[0]!;
    assert.ok(c.type === PacketType.CONNECT && c.will && c.password);
    assert.equal(c.will.payload.buffer, chunk.buffer);
    assert.equal(c.password.buffer, chunk.buffer);
    for (const p of res.packets.slice(1) as PublishPacket[]) assert.equal(p.payload.buffer, chunk.buffer);
  });

  it('a packet wholly inside a later chunk is a view of that chunk when the previous chunk ended on a packet boundary', () => {
    const first = ownChunk(encodePacket(publish('first'), 4));
    const second = ownChunk(encodePacket(publish('second'), 4));
    const res = decodeChunks([first, second]);
    assert.equal(res.error, undefined);
    assert.equal((res.packets[0] as PublishPacket).payload.buffer, first.buffer);
    assert.equal((res.packets[1] as PublishPacket).payload.buffer, second.buffer);
  });

  it('a packet wholly inside a later chunk is a view of that chunk even when an earlier packet spanned the chunk boundary', () => {
    // chunk 1 = P1 + half of P2, chunk 2 = rest of P2 + P3. Only P2 spans chunks; P3 lies inside chunk 2.
    const p1 = encodePacket(publish('p1'), 4);
    const p2 = encodePacket(publish('p2-spans-chunks'), 4);
    const p3 = encodePacket(publish('p3-inside-chunk-2'), 4);
    const cut = Math.floor(p2.length / 2);
    const chunk1 = ownChunk(p1, p2.subarray(0, cut));
    const chunk2 = ownChunk(p2.subarray(cut), p3);
    const res = decodeChunks([chunk1, chunk2]);
    assert.equal(res.error, undefined);
    assert.deepStrictEqual(res.packets.map((p) => (p as PublishPacket).payload.toString()), ['p1', 'p2-spans-chunks', 'p3-inside-chunk-2']);
    assert.equal((res.packets[0] as PublishPacket).payload.buffer, chunk1.buffer);
    assert.equal((res.packets[2] as PublishPacket).payload.buffer, chunk2.buffer, 'P3 payload is a view of chunk 2, not a copy');
  });

  it('property: every PUBLISH alone in a chunk decodes to a payload view of that chunk', () => {
    fc.assert(
      fc.property(topicName, qosArb, payloadArb, (topic, q, payload) => {
        const packet: PublishPacket = { type: PacketType.PUBLISH, dup: false, qos: q, retain: false, topic, payload };
        if (q > 0) packet.packetId = 1;
        const chunk = ownChunk(encodePacket(packet, 4));
        const res = decodeChunks([chunk]);
        assert.equal(res.error, undefined);
        const p = res.packets[0] as PublishPacket;
        assert.equal(p.payload.buffer, chunk.buffer);
        assert.equal(p.payload.byteOffset, chunk.byteOffset + chunk.length - payload.length);
      }),
      { numRuns: 50 },
    );
  });
});

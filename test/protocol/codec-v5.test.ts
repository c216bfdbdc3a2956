import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodePacket, encodePublishHeader, PacketType, propertiesLength, publishPacketSize, type ConnectPacket, type Packet, type Properties, type PublishPacket, type SubscribePacket,
} from '../../src/protocol/index.js';
import { decodeBytes, packetId, payload, qos as qosArb, topicName } from '../helpers/codec.js';
import {
  connectV5Arb, CONTEXTS, normalizeV5, packetArbsV5, PROPERTY_TABLE, propertiesArb, propertyValueArb, REASON_CODES, subscriptionIdentifier,
  subscriptionV5, userProperties, WILL,
} from '../helpers/codec-v5.js';

const P = PacketType;
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Encodes at level 5, decodes with a fresh level-5 decoder, and checks the packet comes back (in its decoded form). */
function roundTrip(packet: Packet): Buffer {
  const encoded = encodePacket(packet, 5);
  const res = decodeBytes(Buffer.from(encoded), { version: 5 });
  assert.equal(res.error, undefined, `decode error: ${res.error?.message}`);
  assert.equal(res.packets.length, 1);
  assert.equal(res.lengths[0], encoded.length, 'reported byte length');
  assert.deepStrictEqual(res.packets[0], normalizeV5(packet));
  // Canonical: the decoded packet encodes to the same bytes.
  assert.deepStrictEqual(encodePacket(res.packets[0]!, 5), encoded);
  return encoded;
}

function property(arb: fc.Arbitrary<Packet>, runs = 150): void {
  fc.assert(fc.property(arb, (p) => void roundTrip(p)), { numRuns: runs });
}

/** Decodes golden bytes at level 5 to exactly `packet`, and encodes `packet` to exactly those bytes. */
function golden(bytes: Buffer, packet: Packet): void {
  const res = decodeBytes(bytes, { version: 5 });
  assert.equal(res.error, undefined, `decode error: ${res.error?.message}`);
  assert.deepStrictEqual(res.packets, [normalizeV5(packet)]);
  assert.deepStrictEqual(encodePacket(packet, 5), bytes, 'encoding');
}

const arbs = packetArbsV5();

/** A minimal valid packet of `context` (a packet type, or WILL for a CONNECT's will) carrying `props`. */
function carrier(context: number, props: Properties | undefined): Packet {
  switch (context) {
    case P.CONNECT: return { type: P.CONNECT, protocolName: 'MQTT', protocolVersion: 5, clean: true, keepalive: 1, clientId: 'c', properties: props };
    case WILL: return {
      type: P.CONNECT, protocolName: 'MQTT', protocolVersion: 5, clean: true, keepalive: 1, clientId: 'c',
      will: { topic: 'w', payload: Buffer.from('p'), qos: 0, retain: false, properties: props },
    };
    case P.CONNACK: return { type: P.CONNACK, sessionPresent: false, returnCode: 0, properties: props };
    case P.PUBLISH: return { type: P.PUBLISH, qos: 1, dup: false, retain: false, topic: 't', packetId: 1, payload: Buffer.from('x'), properties: props };
    case P.SUBSCRIBE: return {
      type: P.SUBSCRIBE, packetId: 1, properties: props,
      subscriptions: [{ filter: 'a', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    };
    case P.SUBACK: return { type: P.SUBACK, packetId: 1, returnCodes: [0], properties: props };
    case P.UNSUBSCRIBE: return { type: P.UNSUBSCRIBE, packetId: 1, filters: ['a'], properties: props };
    case P.UNSUBACK: return { type: P.UNSUBACK, packetId: 1, reasonCodes: [0], properties: props };
    case P.DISCONNECT: return { type: P.DISCONNECT, reasonCode: 0, properties: props };
    case P.AUTH: return { type: P.AUTH, reasonCode: 0, properties: props };
    default: return { type: context as 4 | 5 | 6 | 7, packetId: 1, reasonCode: 0, properties: props };
  }
}

describe('codec round trip, MQTT 5.0 (level 5)', () => {
  it('CONNECT with CONNECT properties, will properties, any user name/password combination', () => {
    property(connectV5Arb(), 300);
  });
  it('CONNECT with a will carrying will properties', () => {
    property(connectV5Arb({ will: true }));
  });
  it('CONNECT with a password and no user name (allowed in MQTT 5, 3.1.2.9)', () => {
    property(connectV5Arb({ username: false, password: true }), 50);
  });
  it('CONNECT with every CONNECT property and every will property present', () => {
    const all = (context: number) => fc.record(Object.fromEntries(
      PROPERTY_TABLE.filter((s) => s.contexts.includes(context)).map((s) => [s.name, propertyValueArb(s, context)]),
    )).map((r) => ({ ...r }) as Properties);
    fc.assert(fc.property(connectV5Arb({ will: true }), all(P.CONNECT), all(WILL), (c, props, willProps) => {
      const p: ConnectPacket = { ...c, properties: props, will: { ...c.will!, properties: willProps } };
      roundTrip(p);
    }), { numRuns: 50 });
  });
  it('CONNACK with CONNACK properties and every v5 CONNACK reason code', () => {
    property(arbs[P.CONNACK]!);
    for (const code of REASON_CODES.CONNACK!) roundTrip({ type: P.CONNACK, sessionPresent: false, returnCode: code });
  });
  it('PUBLISH QoS 0, 1, 2 with PUBLISH properties', () => {
    property(arbs[P.PUBLISH]!, 300);
  });
  it('PUBLISH with several Subscription Identifiers and repeated User Properties (order kept)', () => {
    fc.assert(fc.property(
      qosArb, topicName, packetId, payload,
      fc.array(subscriptionIdentifier, { minLength: 2, maxLength: 6 }), userProperties, fc.constantFrom('k', 'dup'),
      (q, topic, id, body, subIds, users, name) => {
        const p: PublishPacket = {
          type: P.PUBLISH, qos: q, dup: false, retain: false, topic, payload: body,
          properties: { subscriptionIdentifiers: subIds, userProperties: [[name, 'a'], ...users, [name, 'b']] },
        };
        if (q > 0) p.packetId = id;
        roundTrip(p);
      },
    ), { numRuns: 100 });
  });
  it('PUBLISH with an empty topic name and a Topic Alias (3.3.2.3.4)', () => {
    roundTrip({ type: P.PUBLISH, qos: 1, dup: false, retain: false, topic: '', packetId: 9, payload: Buffer.from('x'), properties: { topicAlias: 1 } });
    roundTrip({ type: P.PUBLISH, qos: 0, dup: false, retain: true, topic: '', payload: Buffer.alloc(0), properties: { topicAlias: 65535 } });
  });
  for (const [name, type] of [['PUBACK', P.PUBACK], ['PUBREC', P.PUBREC], ['PUBREL', P.PUBREL], ['PUBCOMP', P.PUBCOMP]] as const) {
    it(`${name} with every ${name} reason code, with and without properties`, () => {
      property(arbs[type]!);
      for (const code of REASON_CODES[name]!) {
        roundTrip({ type, packetId: 7, reasonCode: code });
        roundTrip({ type, packetId: 7, reasonCode: code, properties: { reasonString: 'why', userProperties: [['a', 'b'], ['a', 'c']] } });
      }
    });
  }
  it('SUBSCRIBE with subscription options (No Local, Retain As Published, Retain Handling 0-2), shared filters and a Subscription Identifier', () => {
    property(arbs[P.SUBSCRIBE]!, 300);
  });
  it('SUBSCRIBE: every valid subscription options combination', () => {
    for (const q of [0, 1, 2] as const) {
      for (const noLocal of [false, true]) {
        for (const retainAsPublished of [false, true]) {
          for (const retainHandling of [0, 1, 2] as const) {
            roundTrip({
              type: P.SUBSCRIBE, packetId: 1, subscriptions: [{ filter: 'a/+', qos: q, noLocal, retainAsPublished, retainHandling }],
            });
          }
        }
      }
    }
  });
  it('SUBACK with v5 reason codes and SUBACK properties', () => {
    property(arbs[P.SUBACK]!);
    roundTrip({ type: P.SUBACK, packetId: 3, returnCodes: [...REASON_CODES.SUBACK!] });
  });
  it('UNSUBSCRIBE with UNSUBSCRIBE properties', () => {
    property(arbs[P.UNSUBSCRIBE]!);
  });
  it('UNSUBACK with v5 reason codes and UNSUBACK properties', () => {
    property(arbs[P.UNSUBACK]!);
    roundTrip({ type: P.UNSUBACK, packetId: 3, reasonCodes: [...REASON_CODES.UNSUBACK!] });
  });
  it('PINGREQ and PINGRESP', () => {
    assert.deepStrictEqual(roundTrip({ type: P.PINGREQ }), hex('c0 00'));
    assert.deepStrictEqual(roundTrip({ type: P.PINGRESP }), hex('d0 00'));
  });
  it('DISCONNECT with every DISCONNECT reason code and DISCONNECT properties', () => {
    property(arbs[P.DISCONNECT]!);
    for (const code of REASON_CODES.DISCONNECT!) {
      roundTrip({ type: P.DISCONNECT, reasonCode: code });
      roundTrip({ type: P.DISCONNECT, reasonCode: code, properties: { sessionExpiryInterval: 0xffffffff, serverReference: 'other' } });
    }
  });
  it('AUTH with every AUTH reason code and AUTH properties', () => {
    property(arbs[P.AUTH]!);
    for (const code of REASON_CODES.AUTH!) {
      roundTrip({ type: P.AUTH, reasonCode: code });
      roundTrip({ type: P.AUTH, reasonCode: code, properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from([0, 255]) } });
    }
  });
  for (const [name, context] of CONTEXTS) {
    it(`${name}: every property of table 2-4 valid there round-trips, alone and all together`, () => {
      const specs = PROPERTY_TABLE.filter((s) => s.contexts.includes(context));
      const all = fc.record(Object.fromEntries(specs.map((s) => [s.name, propertyValueArb(s, context)])))
        .map((r) => ({ ...r }) as Properties);
      const single = fc.constantFrom(...specs).chain((s) => propertyValueArb(s, context).map((v) => ({ [s.name]: v }) as Properties));
      fc.assert(fc.property(fc.oneof(all, single, propertiesArb(context)), (props) => void roundTrip(carrier(context, props))), { numRuns: 60 });
    });
  }
});

describe('MQTT 5 short forms (reason code 0 and no properties)', () => {
  it('[3.4.2.1] PUBACK/PUBREC/PUBREL/PUBCOMP with reason 0 and no properties use remaining length 2', () => {
    assert.deepStrictEqual(encodePacket({ type: P.PUBACK, packetId: 1 }, 5), hex('40 02 0001'));
    assert.deepStrictEqual(encodePacket({ type: P.PUBACK, packetId: 1, reasonCode: 0 }, 5), hex('40 02 0001'));
    assert.deepStrictEqual(encodePacket({ type: P.PUBREC, packetId: 2, reasonCode: 0 }, 5), hex('50 02 0002'));
    assert.deepStrictEqual(encodePacket({ type: P.PUBREL, packetId: 3, reasonCode: 0 }, 5), hex('62 02 0003'));
    assert.deepStrictEqual(encodePacket({ type: P.PUBCOMP, packetId: 4, reasonCode: 0 }, 5), hex('70 02 0004'));
  });
  it('[3.4.2.2.1] a non-zero reason code without properties leaves the property length out (remaining length 3)', () => {
    assert.deepStrictEqual(encodePacket({ type: P.PUBACK, packetId: 1, reasonCode: 0x10 }, 5), hex('40 03 0001 10'));
    assert.deepStrictEqual(encodePacket({ type: P.PUBREC, packetId: 1, reasonCode: 0x97 }, 5), hex('50 03 0001 97'));
    assert.deepStrictEqual(encodePacket({ type: P.PUBREL, packetId: 1, reasonCode: 0x92 }, 5), hex('62 03 0001 92'));
    assert.deepStrictEqual(encodePacket({ type: P.PUBCOMP, packetId: 1, reasonCode: 0x92 }, 5), hex('70 03 0001 92'));
  });
  it('reason 0 with properties uses the long form', () => {
    golden(hex('40 0a 0001 00 06 1f 0003 787878'), { type: P.PUBACK, packetId: 1, reasonCode: 0, properties: { reasonString: 'xxx' } });
    golden(hex('40 0a 0001 97 06 1f 0003 787878'), { type: P.PUBACK, packetId: 1, reasonCode: 0x97, properties: { reasonString: 'xxx' } });
  });
  it('[3.4.2.1] the decoder accepts all three PUBACK forms: 2 bytes (Success), 3 bytes (reason only), 4+ bytes (reason + properties)', () => {
    assert.deepStrictEqual(decodeBytes(hex('40 02 0001'), { version: 5 }).packets, [{ type: P.PUBACK, packetId: 1 }]);
    assert.deepStrictEqual(decodeBytes(hex('40 03 0001 10'), { version: 5 }).packets, [{ type: P.PUBACK, packetId: 1, reasonCode: 0x10 }]);
    assert.deepStrictEqual(decodeBytes(hex('40 04 0001 10 00'), { version: 5 }).packets, [{ type: P.PUBACK, packetId: 1, reasonCode: 0x10 }]);
  });
  it('[3.14.2.1] DISCONNECT with reason 0 and no properties has remaining length 0; the decoder reports reason 0', () => {
    assert.deepStrictEqual(encodePacket({ type: P.DISCONNECT }, 5), hex('e0 00'));
    assert.deepStrictEqual(encodePacket({ type: P.DISCONNECT, reasonCode: 0 }, 5), hex('e0 00'));
    assert.deepStrictEqual(decodeBytes(hex('e0 00'), { version: 5 }).packets, [{ type: P.DISCONNECT, reasonCode: 0 }]);
    assert.deepStrictEqual(decodeBytes(hex('e0 01 00'), { version: 5 }).packets, [{ type: P.DISCONNECT, reasonCode: 0 }]);
  });
  it('[3.15.2.1] AUTH with reason 0 and no properties has remaining length 0', () => {
    assert.deepStrictEqual(encodePacket({ type: P.AUTH, reasonCode: 0 }, 5), hex('f0 00'));
    assert.deepStrictEqual(decodeBytes(hex('f0 00'), { version: 5 }).packets, [{ type: P.AUTH, reasonCode: 0 }]);
  });
  it('[MQTT-2.2.2-1] CONNACK, SUBACK, UNSUBACK, PUBLISH, SUBSCRIBE, UNSUBSCRIBE without properties carry a property length of 0', () => {
    assert.deepStrictEqual(encodePacket({ type: P.CONNACK, sessionPresent: true, returnCode: 0 }, 5), hex('20 03 01 00 00'));
    assert.deepStrictEqual(encodePacket({ type: P.SUBACK, packetId: 1, returnCodes: [1, 0x91] }, 5), hex('90 05 0001 00 01 91'));
    assert.deepStrictEqual(encodePacket({ type: P.UNSUBACK, packetId: 1, reasonCodes: [0x11] }, 5), hex('b0 04 0001 00 11'));
    assert.deepStrictEqual(
      encodePacket({ type: P.PUBLISH, qos: 0, dup: false, retain: false, topic: 'a', payload: Buffer.from('z') }, 5), hex('30 05 0001 61 00 7a'));
    assert.deepStrictEqual(
      encodePacket({ type: P.UNSUBSCRIBE, packetId: 1, filters: ['a'] }, 5), hex('a2 06 0001 00 0001 61'));
    assert.deepStrictEqual(encodePacket({
      type: P.SUBSCRIBE, packetId: 1, subscriptions: [{ filter: 'a', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    }, 5), hex('82 07 0001 00 0001 61 01'));
  });
  it('levels 3/4 encode no reason codes or properties even when the packet object carries them', () => {
    for (const version of [3, 4] as const) {
      assert.deepStrictEqual(encodePacket({ type: P.PUBACK, packetId: 1, reasonCode: 0x10, properties: { reasonString: 'x' } }, version), hex('40 02 0001'));
      assert.deepStrictEqual(encodePacket({ type: P.DISCONNECT, reasonCode: 0x04, properties: { reasonString: 'x' } }, version), hex('e0 00'));
      assert.deepStrictEqual(encodePacket({ type: P.UNSUBACK, packetId: 1, reasonCodes: [0x11] }, version), hex('b0 02 0001'));
    }
  });
  it('AUTH cannot be encoded below level 5', () => {
    assert.throws(() => encodePacket({ type: P.AUTH, reasonCode: 0 }, 4), RangeError);
    assert.throws(() => encodePacket({ type: P.AUTH, reasonCode: 0 }, 3), RangeError);
  });
});

describe('MQTT 5 wire format (golden bytes, hand-assembled from the spec layouts)', () => {
  it('[3.1.2] CONNECT: protocol name, level 5, flags, keep alive, CONNECT properties, client id', () => {
    // 0x11 Session Expiry Interval = 120 (four byte), 0x21 Receive Maximum = 20 (two byte): property length 8.
    golden(hex('10 18 0004 4d515454 05 02 003c 08 11 00000078 21 0014 0003 616263'), {
      type: P.CONNECT, protocolName: 'MQTT', protocolVersion: 5, clean: true, keepalive: 60, clientId: 'abc',
      properties: { sessionExpiryInterval: 120, receiveMaximum: 20 },
    });
  });

  it('[3.1.3] CONNECT payload: client id, will properties, will topic, will payload, password (no user name)', () => {
    // flags 0x4e: password 0x40 | will QoS 1 0x08 | will 0x04 | clean start 0x02.
    // Will properties (length 12): 0x18 Will Delay Interval = 5, 0x26 User Property ("k", "v").
    golden(hex('10 25 0004 4d515454 05 4e 0000 00 0001 63 0c 18 00000005 26 0001 6b 0001 76 0001 77 0001 09 0002 0708'), {
      type: P.CONNECT, protocolName: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'c',
      will: { topic: 'w', payload: Buffer.from([9]), qos: 1, retain: false, properties: { willDelayInterval: 5, userProperties: [['k', 'v']] } },
      password: Buffer.from([7, 8]),
    });
  });

  it('[3.2.2] CONNACK: flags, reason code, CONNACK properties', () => {
    // 0x21 Receive Maximum = 10, 0x24 Maximum QoS = 1, 0x12 Assigned Client Identifier = "id".
    golden(hex('20 0d 00 00 0a 21 000a 24 01 12 0002 6964'), {
      type: P.CONNACK, sessionPresent: false, returnCode: 0,
      properties: { receiveMaximum: 10, maximumQoS: 1, assignedClientIdentifier: 'id' },
    });
    golden(hex('20 03 00 87 00'), { type: P.CONNACK, sessionPresent: false, returnCode: 0x87 });
  });

  it('[3.3.2] PUBLISH: topic, packet id, properties (several Subscription Identifiers), payload', () => {
    // 0x01 Payload Format Indicator = 1, 0x23 Topic Alias = 3, 0x0B Subscription Identifier = 1 and = 200 (2-byte VBI c8 01).
    golden(hex('32 14 0003 612f62 000a 0a 01 01 23 0003 0b 01 0b c801 6869'), {
      type: P.PUBLISH, dup: false, qos: 1, retain: false, topic: 'a/b', packetId: 10, payload: Buffer.from('hi'),
      properties: { payloadFormatIndicator: 1, topicAlias: 3, subscriptionIdentifiers: [1, 200] },
    });
  });

  it('[3.3.2.3.4] PUBLISH with a zero-length topic name and a Topic Alias', () => {
    golden(hex('30 07 0000 03 23 0001 78'), {
      type: P.PUBLISH, dup: false, qos: 0, retain: false, topic: '', payload: Buffer.from('x'), properties: { topicAlias: 1 },
    });
  });

  it('[3.3.2.3] PUBLISH properties of every type: four byte, UTF-8 string, binary data, string pair', () => {
    // 0x02 Message Expiry Interval = 0x01020304, 0x03 Content Type "t", 0x08 Response Topic "r", 0x09 Correlation Data 0xff,
    // 0x26 User Property ("a","b") twice: 5 + 4 + 4 + 4 + 7 + 7 = 31 = 0x1f.
    golden(hex('30 24 0001 74 1f 02 01020304 03 0001 74 08 0001 72 09 0001 ff 26 0001 61 0001 62 26 0001 61 0001 62 00'), {
      type: P.PUBLISH, dup: false, qos: 0, retain: false, topic: 't', payload: Buffer.from([0]),
      properties: {
        messageExpiryInterval: 0x01020304, contentType: 't', responseTopic: 'r', correlationData: Buffer.from([0xff]),
        userProperties: [['a', 'b'], ['a', 'b']],
      },
    });
  });

  it('[3.8.3.1] SUBSCRIBE: properties, then filters each followed by its subscription options byte', () => {
    // Options: 'a/+' QoS 1 | No Local 0x04 | Retain As Published 0x08 | Retain Handling 2 << 4 = 0x2d;
    //          '$share/g/b' QoS 2 | Retain Handling 1 << 4 = 0x12. Property 0x0B Subscription Identifier = 5.
    golden(hex('82 18 0001 02 0b 05 0003 612f2b 2d 000a 2473686172652f672f62 12'), {
      type: P.SUBSCRIBE, packetId: 1, properties: { subscriptionIdentifiers: [5] },
      subscriptions: [
        { filter: 'a/+', qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
        { filter: '$share/g/b', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 1 },
      ],
    });
  });

  it('[3.9] SUBACK and [3.11] UNSUBACK: properties then one reason code per filter', () => {
    golden(hex('90 0b 0001 06 1f 0003 6e6f70 02 a2'), {
      type: P.SUBACK, packetId: 1, returnCodes: [2, 0xa2], properties: { reasonString: 'nop' },
    });
    golden(hex('b0 06 0002 00 00 11 87'), { type: P.UNSUBACK, packetId: 2, reasonCodes: [0, 0x11, 0x87] });
  });

  it('[3.10.2] UNSUBSCRIBE: properties (User Property) then filters', () => {
    golden(hex('a2 0f 0002 07 26 0001 61 0001 62 0003 782f23'), {
      type: P.UNSUBSCRIBE, packetId: 2, filters: ['x/#'], properties: { userProperties: [['a', 'b']] },
    });
  });

  it('[3.14.2] DISCONNECT with a reason code, with and without properties', () => {
    golden(hex('e0 01 04'), { type: P.DISCONNECT, reasonCode: 0x04 });
    golden(hex('e0 01 8b'), { type: P.DISCONNECT, reasonCode: 0x8b });
    // 0x11 Session Expiry Interval = 0, 0x1F Reason String "bye": property length 11.
    golden(hex('e0 0d 04 0b 11 00000000 1f 0003 627965'), {
      type: P.DISCONNECT, reasonCode: 0x04, properties: { sessionExpiryInterval: 0, reasonString: 'bye' },
    });
  });

  it('[3.15.2] AUTH: reason code 0x18 Continue authentication, Authentication Method and Data', () => {
    golden(hex('f0 10 18 0e 15 0005 534352414d 16 0003 010203'), {
      type: P.AUTH, reasonCode: 0x18, properties: { authenticationMethod: 'SCRAM', authenticationData: Buffer.from([1, 2, 3]) },
    });
    golden(hex('f0 01 19'), { type: P.AUTH, reasonCode: 0x19 });
  });

  it('[1.5.5] Subscription Identifier values use 1 to 4 byte Variable Byte Integers at the size boundaries', () => {
    const cases: Array<[number, string]> = [
      [1, '01'], [127, '7f'], [128, '8001'], [16_383, 'ff7f'], [16_384, '808001'], [2_097_151, 'ffff7f'],
      [2_097_152, '80808001'], [268_435_455, 'ffffff7f'],
    ];
    for (const [value, vbi] of cases) {
      const packet: SubscribePacket = {
        type: P.SUBSCRIBE, packetId: 1, properties: { subscriptionIdentifiers: [value] },
        subscriptions: [{ filter: 'a', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
      };
      const propLen = 1 + vbi.length / 2;
      const body = `0001 ${propLen.toString(16).padStart(2, '0')} 0b ${vbi} 0001 61 00`;
      const bodyLen = hex(body).length;
      golden(hex(`82 ${bodyLen.toString(16).padStart(2, '0')} ${body}`), packet);
    }
  });

  it('subscription options survive alongside every QoS in one SUBSCRIBE (fast-check)', () => {
    fc.assert(fc.property(fc.array(subscriptionV5, { minLength: 1, maxLength: 8 }), (subs) => {
      const bytes = roundTrip({ type: P.SUBSCRIBE, packetId: 1, subscriptions: subs });
      // Check each options byte directly against the layout of figure 3-21.
      let pos = 1;
      while (bytes[pos]! & 0x80) pos++; // remaining length
      pos += 1 + 2 + 1; // last length byte, packet id, property length 0
      for (const s of subs) {
        const len = bytes.readUInt16BE(pos);
        pos += 2 + len;
        const options = bytes[pos++]!;
        assert.equal(options & 0x03, s.qos);
        assert.equal((options >> 2) & 1, s.noLocal ? 1 : 0);
        assert.equal((options >> 3) & 1, s.retainAsPublished ? 1 : 0);
        assert.equal((options >> 4) & 3, s.retainHandling);
        assert.equal(options & 0xc0, 0, 'reserved bits 6-7 are 0');
      }
    }), { numRuns: 100 });
  });
});

describe('zero-copy PUBLISH encoding helpers at level 5', () => {
  it('property: encodePublishHeader + payload equals encodePacket at level 5 (with properties) and level 4 (properties ignored); publishPacketSize matches', () => {
    fc.assert(fc.property(arbs[P.PUBLISH]!, (packet) => {
      const p = packet as PublishPacket;
      const topicLen = Buffer.byteLength(p.topic);
      const v5 = Buffer.concat([encodePublishHeader(p.topic, topicLen, p.qos, p.retain, p.dup, p.packetId ?? 0, p.payload.length, 5, p.properties), p.payload]);
      assert.deepStrictEqual(v5, encodePacket(p, 5));
      assert.equal(publishPacketSize(topicLen, p.qos, p.payload.length, 5, p.properties), v5.length);
      if (p.topic !== '') {
        const v4 = Buffer.concat([encodePublishHeader(p.topic, topicLen, p.qos, p.retain, p.dup, p.packetId ?? 0, p.payload.length, 4), p.payload]);
        assert.deepStrictEqual(v4, encodePacket(p, 4));
        assert.equal(publishPacketSize(topicLen, p.qos, p.payload.length, 4, p.properties), v4.length);
      }
    }), { numRuns: 200 });
  });

  it('propertiesLength is the byte length of the property block including its length prefix', () => {
    assert.equal(propertiesLength(undefined), 1);
    assert.equal(propertiesLength({}), 1);
    assert.equal(propertiesLength({ topicAlias: 3 }), 4);
    assert.equal(propertiesLength({ subscriptionIdentifiers: [1, 200] }), 6);
    assert.equal(propertiesLength({ userProperties: [['a', 'b'], ['é', '']] }), 1 + 7 + 7);
    // 128 bytes of properties need a two-byte length prefix.
    assert.equal(propertiesLength({ contentType: 'x'.repeat(125) }), 2 + 128);
  });
});

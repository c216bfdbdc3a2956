import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  encodePacket, PacketType, parseSharedFilter, ProtocolError, ReasonCode, topicFilterError,
  type ConnectPacket, type Packet, type PublishPacket, type SubscribePacket, type UnsubscribePacket,
} from '../../src/protocol/index.js';
import { decodeBytes, lp, rawConnect, rawPacket, rawPublish, u16, varint, type DecodeOptions } from '../helpers/codec.js';
import {
  block, BOOLEAN_PROPERTIES, CONTEXTS, NO_PROPS, packetWithProps, pBin, pByte, PROPERTY_TABLE, propsOf, pPair, pStr, pU16,
  pU32, pVarint, REASON_CODES, rawConnectV5, rawPublishV5, rawSubscribeV5, rawUnsubscribeV5, sampleProperty,
} from '../helpers/codec-v5.js';

const P = PacketType;
const V5: DecodeOptions = { version: 5 };
const MALFORMED = ReasonCode.MalformedPacket; // 0x81
const PROTOCOL_ERROR = ReasonCode.ProtocolError; // 0x82
const hexOf = (b: Buffer) => b.toString('hex');

/** Decodes to exactly one packet without error. */
function accepted(bytes: Buffer, options: DecodeOptions = V5): Packet {
  const res = decodeBytes(bytes, options);
  assert.equal(res.error, undefined, `expected acceptance of ${hexOf(bytes)}, got: ${res.error?.message}`);
  assert.equal(res.packets.length, 1);
  return res.packets[0]!;
}

/** Rejected with a ProtocolError carrying `reasonCode`; no packet reported. */
function rejected(bytes: Buffer, reasonCode: number, options: DecodeOptions = V5): ProtocolError {
  const res = decodeBytes(bytes, options);
  assert.ok(res.error instanceof ProtocolError, `expected a ProtocolError for ${hexOf(bytes)}, got packets ${JSON.stringify(res.packets)}`);
  assert.deepStrictEqual(res.packets, [], 'no packet reported');
  assert.equal(
    res.error.reasonCode, reasonCode,
    `reason code for ${hexOf(bytes)}: got 0x${res.error.reasonCode.toString(16)} (${res.error.message}), want 0x${reasonCode.toString(16)}`,
  );
  return res.error;
}

describe('MQTT 5 properties: identifiers valid per packet type (2.2.2.2, table 2-4)', () => {
  it('[2.2.2.2] every property is accepted, with its value, in every packet type (and the will) it belongs to', () => {
    for (const [name, context] of CONTEXTS) {
      for (const spec of PROPERTY_TABLE.filter((s) => s.contexts.includes(context))) {
        const packet = accepted(packetWithProps(context, block(sampleProperty(spec))));
        const props = propsOf(packet, context);
        assert.ok(props && props[spec.name] !== undefined, `${spec.name} reported in ${name}`);
      }
    }
  });

  it('[2.2.2.2] a property identifier not valid for the packet type is a Malformed Packet (0x81): every property x every packet', () => {
    let checked = 0;
    for (const [, context] of CONTEXTS) {
      for (const spec of PROPERTY_TABLE.filter((s) => !s.contexts.includes(context))) {
        rejected(packetWithProps(context, block(sampleProperty(spec))), MALFORMED);
        checked++;
      }
    }
    assert.equal(checked, 27 * 14 - 64, "27 properties x 14 contexts, minus the 64 valid pairs of table 2-4");
  });

  it('[2.2.2.2] Topic Alias (0x23) in CONNECT is a Malformed Packet (0x81)', () => {
    rejected(rawConnectV5({ props: block(pU16(0x23, 1)) }), MALFORMED);
  });

  it('[2.2.2.2] Session Expiry Interval (0x11) in PUBLISH is a Malformed Packet (0x81)', () => {
    rejected(rawPublishV5({ props: block(pU32(0x11, 10)) }), MALFORMED);
  });

  it('[3.1.2.11] [3.1.3.2] Will Delay Interval belongs to the will properties only; Session Expiry Interval to the CONNECT properties only', () => {
    rejected(rawConnectV5({ props: block(pU32(0x18, 5)) }), MALFORMED);
    rejected(rawConnectV5({ will: { props: block(pU32(0x11, 5)) } }), MALFORMED);
    const ok = accepted(rawConnectV5({ props: block(pU32(0x11, 5)), will: { props: block(pU32(0x18, 6)) } })) as ConnectPacket;
    assert.equal(ok.properties?.sessionExpiryInterval, 5);
    assert.equal(ok.will?.properties?.willDelayInterval, 6);
  });

  it('[2.2.2.2] unknown property identifiers (0x00, 0x04, 0x0a, 0x2b, 0x7f, 0x80 as a two-byte VBI) are a Malformed Packet (0x81) in every packet', () => {
    for (const [, context] of CONTEXTS) {
      for (const id of [0x00, 0x04, 0x05, 0x0a, 0x10, 0x14, 0x1b, 0x1e, 0x20, 0x2b, 0x7f, 0x80]) {
        rejected(packetWithProps(context, block([...varint(id), 0, 1, 0x61])), MALFORMED);
      }
      // A two-byte identifier (16383): no such property.
      rejected(packetWithProps(context, block([0xff, 0x7f, 0])), MALFORMED);
    }
  });
});

describe('MQTT 5 properties: repetition (2.2.2.2)', () => {
  it('a property other than User Property / Subscription Identifier appearing twice is a Protocol Error (0x82): every packet', () => {
    let checked = 0;
    for (const [name, context] of CONTEXTS) {
      for (const spec of PROPERTY_TABLE.filter((s) => s.contexts.includes(context))) {
        if (spec.name === 'userProperties' || (spec.name === 'subscriptionIdentifiers' && context === P.PUBLISH)) continue;
        const one = sampleProperty(spec);
        const err = rejected(packetWithProps(context, block(one, one)), PROTOCOL_ERROR);
        assert.ok(err.message.length > 0, `${spec.name} twice in ${name}`);
        checked++;
      }
    }
    assert.equal(checked, 49, "non-repeatable properties summed over the packets of table 2-4");
  });

  it('Content Type (0x03) twice in PUBLISH is a Protocol Error (0x82), even with different values', () => {
    rejected(rawPublishV5({ props: block(pStr(0x03, 'text/plain'), pStr(0x03, 'application/json')) }), PROTOCOL_ERROR);
  });

  it('a duplicate separated by other properties is still a Protocol Error (0x82)', () => {
    rejected(rawPublishV5({ props: block(pStr(0x03, 'a'), pPair('k', 'v'), pU16(0x23, 1), pStr(0x03, 'a')) }), PROTOCOL_ERROR);
    rejected(rawConnectV5({ will: { props: block(pU32(0x18, 1), pPair('k', 'v'), pU32(0x18, 1)) } }), PROTOCOL_ERROR);
  });

  it('[3.1.2.11.8] User Property may appear several times, with the same name, in every packet that has properties; order is kept', () => {
    for (const [name, context] of CONTEXTS) {
      const packet = accepted(packetWithProps(context, block(pPair('k', '1'), pPair('x', '2'), pPair('k', '3'), pPair('k', '1'))));
      assert.deepStrictEqual(propsOf(packet, context)?.userProperties, [['k', '1'], ['x', '2'], ['k', '3'], ['k', '1']], name);
    }
  });

  it('[3.3.2.3.8] several Subscription Identifiers in a PUBLISH are accepted, in order', () => {
    const p = accepted(rawPublishV5({ props: block(pVarint(0x0b, 7), pPair('a', 'b'), pVarint(0x0b, 268_435_455), pVarint(0x0b, 7)) }));
    assert.deepStrictEqual((p as PublishPacket).properties?.subscriptionIdentifiers, [7, 268_435_455, 7]);
  });

  it('[3.8.2.1.2] a Subscription Identifier twice in SUBSCRIBE is a Protocol Error (0x82)', () => {
    rejected(rawSubscribeV5([['a', 0]], block(pVarint(0x0b, 1), pVarint(0x0b, 2))), PROTOCOL_ERROR);
  });
});

describe('MQTT 5 properties: values', () => {
  const booleans: Array<[string, number, (v: number) => Buffer]> = [
    ['Payload Format Indicator in PUBLISH (3.3.2.3.2)', 0x01, (v) => rawPublishV5({ props: block(pByte(0x01, v)) })],
    ['Payload Format Indicator in the will properties (3.1.3.2.3)', 0x01, (v) => rawConnectV5({ will: { props: block(pByte(0x01, v)) } })],
    ['Request Problem Information (3.1.2.11.7)', 0x17, (v) => rawConnectV5({ props: block(pByte(0x17, v)) })],
    ['Request Response Information (3.1.2.11.6)', 0x19, (v) => rawConnectV5({ props: block(pByte(0x19, v)) })],
    ['Maximum QoS (3.2.2.3.4)', 0x24, (v) => packetWithProps(P.CONNACK, block(pByte(0x24, v)))],
    ['Retain Available (3.2.2.3.5)', 0x25, (v) => packetWithProps(P.CONNACK, block(pByte(0x25, v)))],
    ['Wildcard Subscription Available (3.2.2.3.11)', 0x28, (v) => packetWithProps(P.CONNACK, block(pByte(0x28, v)))],
    ['Subscription Identifiers Available (3.2.2.3.12)', 0x29, (v) => packetWithProps(P.CONNACK, block(pByte(0x29, v)))],
    ['Shared Subscription Available (3.2.2.3.13)', 0x2a, (v) => packetWithProps(P.CONNACK, block(pByte(0x2a, v)))],
  ];
  for (const [what, id, build] of booleans) {
    it(`${what}: 0 and 1 are accepted, any other value is a Protocol Error (0x82)`, () => {
      const spec = PROPERTY_TABLE.find((s) => s.id === id)!;
      assert.ok(BOOLEAN_PROPERTIES.has(spec.name));
      for (const v of [0, 1]) accepted(build(v));
      for (const v of [2, 3, 0x80, 0xff]) rejected(build(v), PROTOCOL_ERROR);
    });
  }

  it('payloadFormatIndicator=2 in PUBLISH and requestProblemInformation=2 in CONNECT are Protocol Errors (0x82)', () => {
    rejected(rawPublishV5({ props: block(pByte(0x01, 2)) }), PROTOCOL_ERROR);
    rejected(rawConnectV5({ props: block(pByte(0x17, 2)) }), PROTOCOL_ERROR);
  });

  it('[3.1.2.11.3] [3.2.2.3.3] Receive Maximum 0 is a Protocol Error (0x82) in CONNECT and CONNACK; 1 and 65535 are accepted', () => {
    rejected(rawConnectV5({ props: block(pU16(0x21, 0)) }), PROTOCOL_ERROR);
    rejected(packetWithProps(P.CONNACK, block(pU16(0x21, 0))), PROTOCOL_ERROR);
    for (const v of [1, 65535]) {
      assert.equal((accepted(rawConnectV5({ props: block(pU16(0x21, v)) })) as ConnectPacket).properties?.receiveMaximum, v);
    }
  });

  it('[3.1.2.11.4] [3.2.2.3.6] Maximum Packet Size 0 is a Protocol Error (0x82) in CONNECT and CONNACK; 1 and 2^32-1 are accepted', () => {
    rejected(rawConnectV5({ props: block(pU32(0x27, 0)) }), PROTOCOL_ERROR);
    rejected(packetWithProps(P.CONNACK, block(pU32(0x27, 0))), PROTOCOL_ERROR);
    for (const v of [1, 0xffff_ffff]) {
      assert.equal((accepted(rawConnectV5({ props: block(pU32(0x27, v)) })) as ConnectPacket).properties?.maximumPacketSize, v);
    }
  });

  it('[MQTT-3.3.2-8] Topic Alias 0 is a Protocol Error (0x82); 1 and 65535 are accepted', () => {
    rejected(rawPublishV5({ props: block(pU16(0x23, 0)) }), PROTOCOL_ERROR);
    for (const v of [1, 65535]) assert.equal((accepted(rawPublishV5({ props: block(pU16(0x23, v)) })) as PublishPacket).properties?.topicAlias, v);
  });

  it('[3.3.2.3.8] [3.8.2.1.2] Subscription Identifier 0 is a Protocol Error (0x82) in PUBLISH and SUBSCRIBE', () => {
    rejected(rawPublishV5({ props: block(pVarint(0x0b, 0)) }), PROTOCOL_ERROR);
    rejected(rawPublishV5({ props: block(pVarint(0x0b, 3), pVarint(0x0b, 0)) }), PROTOCOL_ERROR);
    rejected(rawSubscribeV5([['a', 0]], block(pVarint(0x0b, 0))), PROTOCOL_ERROR);
    assert.deepStrictEqual((accepted(rawSubscribeV5([['a', 0]], block(pVarint(0x0b, 268_435_455)))) as SubscribePacket).properties,
      { subscriptionIdentifiers: [268_435_455] });
  });

  it('Topic Alias Maximum 0 and Session Expiry Interval 0 are valid values (not non-zero properties)', () => {
    const c = accepted(rawConnectV5({ props: block(pU16(0x22, 0), pU32(0x11, 0)) })) as ConnectPacket;
    assert.deepStrictEqual(c.properties, { topicAliasMaximum: 0, sessionExpiryInterval: 0 });
  });
});

describe('MQTT 5 properties: lengths and encodings', () => {
  it('[2.2.2.1] a Property Length longer than the rest of the packet is a Malformed Packet (0x81)', () => {
    // Declared length 10, only a 3-byte property follows and the packet ends.
    rejected(rawPacket(0x40, [...u16(1), 0x10, 10, ...pU16(0x1f, 0)]), MALFORMED);
    rejected(rawPacket(0xe0, [0x04, 0x7f]), MALFORMED);
    rejected(rawPacket(0xf0, [0x18, 0x05, 0x15, 0x00]), MALFORMED);
    // PUBLISH: the property length claims more than the property block plus the payload.
    rejected(rawPublishV5({ props: [50, ...pU16(0x23, 1)], payload: [1, 2, 3] }), MALFORMED);
    rejected(rawConnectV5({ props: [0x40] }), MALFORMED);
  });

  it('[2.2.2.1] a Property Length of more than 4 bytes is a Malformed Packet (0x81)', () => {
    rejected(rawPacket(0xe0, [0x00, 0x80, 0x80, 0x80, 0x80, 0x00]), MALFORMED);
  });

  it('a truncated property value is a Malformed Packet (0x81): the packet ends inside the value', () => {
    rejected(rawPacket(0xe0, [0x00, 3, 0x11, 0x00, 0x00]), MALFORMED); // four byte integer with 2 bytes
    rejected(rawPacket(0xf0, [0x18, 3, 0x15, 0x00, 0x05]), MALFORMED); // string of 5 bytes, none present
    rejected(rawPacket(0xf0, [0x18, 2, 0x16, 0x00]), MALFORMED); // binary data length cut in half
    rejected(rawPacket(0x40, [...u16(1), 0x10, 4, 0x26, 0x00, 0x01, 0x61]), MALFORMED); // user property without its value
    rejected(rawPublishV5({ props: [2, 0x0b, 0x80], payload: [] }), MALFORMED); // VBI continuation byte at the end
  });

  it('a property value running past the end of the property block (into the payload) is a Malformed Packet (0x81)', () => {
    // Block length 3 holds 0x02 and 2 of the 4 bytes of Message Expiry Interval; the payload supplies the rest.
    rejected(rawPublishV5({ props: [3, 0x02, 0x00, 0x00], payload: [0x00, 0x10, 0x41] }), MALFORMED);
    // Block length 4 with a Content Type declaring 5 bytes.
    rejected(rawPublishV5({ props: [4, 0x03, 0x00, 0x05, 0x61], payload: [0x62, 0x63, 0x64, 0x65] }), MALFORMED);
  });

  it('[1.5.5] a Subscription Identifier longer than 4 bytes is a Malformed Packet (0x81)', () => {
    rejected(rawPublishV5({ props: [6, 0x0b, 0x80, 0x80, 0x80, 0x80, 0x01] }), MALFORMED);
  });

  it('[MQTT-1.5.4-1] [MQTT-1.5.7-1] ill-formed UTF-8 in a User Property name or value is a Malformed Packet (0x81)', () => {
    for (const bad of [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x61, 0x80]]) {
      rejected(rawPublishV5({ props: block(pPair(bad, 'v')) }), MALFORMED);
      rejected(rawPublishV5({ props: block(pPair('k', bad)) }), MALFORMED);
      rejected(packetWithProps(P.DISCONNECT, block(pPair('k', bad))), MALFORMED);
      rejected(rawConnectV5({ will: { props: block(pPair(bad, 'v')) } }), MALFORMED);
    }
  });

  it('[MQTT-1.5.4-2] U+0000 in a User Property, Content Type or Reason String is a Malformed Packet (0x81)', () => {
    rejected(rawPublishV5({ props: block(pPair([0x61, 0x00], 'v')) }), MALFORMED);
    rejected(rawPublishV5({ props: block(pStr(0x03, [0x00])) }), MALFORMED);
    rejected(packetWithProps(P.PUBACK, block(pStr(0x1f, [0x61, 0x00, 0x62]))), MALFORMED);
  });

  it('[MQTT-1.5.4-3] a BOM in a User Property is kept as U+FEFF; binary properties accept any bytes', () => {
    const p = accepted(rawPublishV5({ props: block(pPair([0xef, 0xbb, 0xbf], 'v'), pBin(0x09, [0x00, 0xff, 0xed, 0xa0, 0x80])) })) as PublishPacket;
    assert.deepStrictEqual(p.properties?.userProperties, [['\uFEFF', 'v']]);
    assert.deepStrictEqual(p.properties?.correlationData, Buffer.from([0x00, 0xff, 0xed, 0xa0, 0x80]));
  });

  it('[MQTT-2.2.2-1] a level-5 PUBLISH without its property length is a Malformed Packet (0x81)', () => {
    rejected(rawPublish({ qos: 1, topic: 'a', packetId: 1, payload: [] }), MALFORMED, V5);
  });
});

describe('MQTT 5 SUBSCRIBE subscription options (3.8.3.1)', () => {
  it('every valid options byte (QoS 0-2, No Local, Retain As Published, Retain Handling 0-2) decodes to its fields', () => {
    for (let options = 0; options < 0x30 + 0x10; options++) {
      if ((options & 3) === 3 || (options >> 4) === 3) continue;
      const s = (accepted(rawSubscribeV5([['a/b', options]])) as SubscribePacket).subscriptions[0]!;
      assert.deepStrictEqual(s, {
        filter: 'a/b', qos: options & 3, noLocal: (options & 4) !== 0, retainAsPublished: (options & 8) !== 0,
        retainHandling: options >> 4,
      });
    }
  });

  it('[MQTT-3.8.3-5] reserved bits 6 and 7 of the subscription options set: Malformed Packet (0x81)', () => {
    for (const reserved of [0x40, 0x80, 0xc0]) {
      for (const valid of [0x00, 0x01, 0x2e]) rejected(rawSubscribeV5([['a', reserved | valid]]), MALFORMED);
      rejected(rawSubscribeV5([['a', 0], ['b', reserved]]), MALFORMED);
    }
  });

  it('[3.8.3.1] Retain Handling 3 is a Protocol Error (0x82)', () => {
    rejected(rawSubscribeV5([['a', 0x30]]), PROTOCOL_ERROR);
    rejected(rawSubscribeV5([['a', 0x01], ['b', 0x3d]]), PROTOCOL_ERROR);
  });

  it('[3.8.3.1] Maximum QoS 3 in the subscription options is a Protocol Error (0x82)', () => {
    // "It is a Protocol Error if the Maximum QoS field has the value 3."
    rejected(rawSubscribeV5([['a', 0x03]]), PROTOCOL_ERROR);
    rejected(rawSubscribeV5([['a', 0x0f]]), PROTOCOL_ERROR);
  });

  it('[MQTT-3.8.3-4] No Local on a shared subscription ($share/...) is a Protocol Error (0x82)', () => {
    rejected(rawSubscribeV5([['$share/g/a', 0x04]]), PROTOCOL_ERROR);
    rejected(rawSubscribeV5([['a', 0x04], ['$share/g/#', 0x05]]), PROTOCOL_ERROR);
    // No Local on a normal filter, and a shared filter without No Local, are fine.
    const s = (accepted(rawSubscribeV5([['a', 0x04], ['$share/g/#', 0x2a]])) as SubscribePacket).subscriptions;
    assert.deepStrictEqual(s.map((x) => [x.filter, x.noLocal]), [['a', true], ['$share/g/#', false]]);
  });

  it('[MQTT-3.8.3-2] a SUBSCRIBE without a Topic Filter / Subscription Options pair is a Protocol Error (0x82)', () => {
    // MQTT 5.0 3.8.3: "A SUBSCRIBE packet with no Payload is a Protocol Error."
    rejected(rawPacket(0x82, [...u16(1), ...NO_PROPS]), PROTOCOL_ERROR);
    rejected(rawPacket(0x82, [...u16(1), ...block(pVarint(0x0b, 4))]), PROTOCOL_ERROR);
  });

  it('[MQTT-3.10.3-2] an UNSUBSCRIBE without a Topic Filter is a Protocol Error (0x82)', () => {
    // MQTT 5.0 3.10.3: "An UNSUBSCRIBE packet with no Payload is a Protocol Error."
    rejected(rawPacket(0xa2, [...u16(1), ...NO_PROPS]), PROTOCOL_ERROR);
  });

  it('[MQTT-3.8.3-1] a topic filter cut short, or a filter without its options byte, is a Malformed Packet (0x81)', () => {
    rejected(rawPacket(0x82, [...u16(1), 0, ...lp('abc')]), MALFORMED);
    rejected(rawPacket(0x82, [...u16(1), 0, 0x00, 0x05, 0x61]), MALFORMED);
  });
});

describe('MQTT 5 shared subscription filters (4.8.2)', () => {
  const valid = ['$share/g/a/#', '$share/g/#', '$share/g/+', '$share/group/a/b/c', '$share/g/+/x/#', '$share/é€/a', '$share/g//'];
  for (const filter of valid) {
    it(`[MQTT-4.8.2-1] [MQTT-4.8.2-2] ${JSON.stringify(filter)} is a valid shared filter in SUBSCRIBE and UNSUBSCRIBE`, () => {
      assert.equal(topicFilterError(filter), undefined);
      assert.ok(parseSharedFilter(filter));
      assert.equal((accepted(rawSubscribeV5([[filter, 1]])) as SubscribePacket).subscriptions[0]!.filter, filter);
      assert.deepStrictEqual((accepted(rawUnsubscribeV5([filter])) as UnsubscribePacket).filters, [filter]);
    });
  }

  it('parseSharedFilter splits ShareName and filter', () => {
    assert.deepStrictEqual(parseSharedFilter('$share/g/a/#'), { group: 'g', filter: 'a/#' });
    assert.deepStrictEqual(parseSharedFilter('$share/consumers/x//y'), { group: 'consumers', filter: 'x//y' });
    assert.equal(parseSharedFilter('$sharex/g/a'), undefined);
    assert.equal(parseSharedFilter('a/$share/g/b'), undefined);
  });

  const invalid: Array<[string, string]> = [
    ['$share//a', 'MQTT-4.8.2-1'], // empty ShareName
    ['$share/', 'MQTT-4.8.2-1'],
    ['$share/g', 'MQTT-4.8.2-2'], // ShareName not followed by "/"
    ['$share/g/', 'MQTT-4.8.2-2'], // "/" not followed by a Topic Filter
    ['$share/g+/a', 'MQTT-4.8.2-2'], // "+" in ShareName
    ['$share/g#/a', 'MQTT-4.8.2-2'],
    ['$share/+/a', 'MQTT-4.8.2-2'],
    ['$share/#/a', 'MQTT-4.8.2-2'],
    ['$share/#', 'MQTT-4.8.2-2'],
    ['$share/g/a+', 'MQTT-4.7.1-2'], // the filter part follows the usual rules
    ['$share/g/a/#/b', 'MQTT-4.7.1-1'],
  ];
  for (const [filter, id] of invalid) {
    it(`[${id}] ${JSON.stringify(filter)} is not a valid topic filter: rejected in SUBSCRIBE and UNSUBSCRIBE at level 5`, () => {
      assert.notEqual(topicFilterError(filter), undefined);
      for (const bytes of [rawSubscribeV5([[filter, 0]]), rawUnsubscribeV5([filter])]) {
        const res = decodeBytes(bytes, V5);
        assert.ok(res.error instanceof ProtocolError, `${filter} rejected`);
        assert.deepStrictEqual(res.packets, []);
        // An invalid filter is a malformed packet or a protocol error; the codec must not invent another code.
        assert.ok([MALFORMED, PROTOCOL_ERROR].includes(res.error.reasonCode as 0x81 | 0x82), `reason 0x${res.error.reasonCode.toString(16)}`);
      }
    });
  }
});

describe('MQTT 5 reason codes', () => {
  const cases: Array<[string, string, (code: number) => Buffer]> = [
    ['CONNACK', 'MQTT-3.2.2-8', (c) => rawPacket(0x20, [0, c, 0])],
    ['PUBACK', 'MQTT-3.4.2-1', (c) => rawPacket(0x40, [...u16(1), c])],
    ['PUBREC', 'MQTT-3.5.2-1', (c) => rawPacket(0x50, [...u16(1), c])],
    ['PUBREL', 'MQTT-3.6.2-1', (c) => rawPacket(0x62, [...u16(1), c])],
    ['PUBCOMP', 'MQTT-3.7.2-1', (c) => rawPacket(0x70, [...u16(1), c])],
    ['SUBACK', 'MQTT-3.9.3-2', (c) => rawPacket(0x90, [...u16(1), 0, c])],
    ['UNSUBACK', 'MQTT-3.11.3-2', (c) => rawPacket(0xb0, [...u16(1), 0, c])],
    ['DISCONNECT', 'MQTT-3.14.2-1', (c) => rawPacket(0xe0, [c])],
    ['AUTH', 'MQTT-3.15.2-1', (c) => rawPacket(0xf0, [c])],
  ];
  for (const [name, id, build] of cases) {
    it(`[${id}] ${name}: the reason codes of its table are accepted, every other byte value is a Malformed Packet (0x81)`, () => {
      const valid = new Set(REASON_CODES[name]!);
      for (let code = 0; code < 256; code++) {
        if (valid.has(code)) accepted(build(code));
        else rejected(build(code), MALFORMED);
      }
    });
  }

  it('reason codes with properties are checked too: PUBACK 0x92, SUBACK 0x04, UNSUBACK 0x10, AUTH 0x04 with properties → 0x81', () => {
    rejected(rawPacket(0x40, [...u16(1), 0x92, ...block(pStr(0x1f, 'x'))]), MALFORMED);
    rejected(rawPacket(0x90, [...u16(1), ...block(pStr(0x1f, 'x')), 0x00, 0x04]), MALFORMED);
    rejected(rawPacket(0xb0, [...u16(1), ...block(pStr(0x1f, 'x')), 0x11, 0x10]), MALFORMED);
    rejected(rawPacket(0xf0, [0x04, ...block(pStr(0x15, 'm'))]), MALFORMED);
  });

  it('a v5 SUBACK / UNSUBACK lists one code per filter: several accepted, none rejected', () => {
    assert.deepStrictEqual((accepted(rawPacket(0xb0, [...u16(1), 0, 0x00, 0x11, 0x8f]))), { type: P.UNSUBACK, packetId: 1, reasonCodes: [0, 0x11, 0x8f] });
    rejected(rawPacket(0xb0, [...u16(1), 0]), MALFORMED);
    rejected(rawPacket(0x90, [...u16(1), 0]), MALFORMED);
  });
});

describe('MQTT 5 fixed header flags', () => {
  it('[MQTT-3.14.1-1] DISCONNECT with reserved flag bits set is a Malformed Packet (0x81)', () => {
    for (let flags = 1; flags < 16; flags++) rejected(rawPacket(0xe0 | flags, [0x00]), MALFORMED);
  });
  it('[MQTT-3.15.1-1] AUTH with reserved flag bits set is a Malformed Packet (0x81)', () => {
    for (let flags = 1; flags < 16; flags++) rejected(rawPacket(0xf0 | flags, [0x18, 0]), MALFORMED);
  });
  it('[MQTT-3.2.2-1] CONNACK acknowledge flags bits 7-1 set: Malformed Packet (0x81)', () => {
    for (const flags of [0x02, 0x80, 0xfe]) rejected(rawPacket(0x20, [flags, 0, 0]), MALFORMED);
  });
});

describe('rules that depend on the protocol level', () => {
  it('[3.1.2.9] a password without a user name is accepted at level 5', () => {
    const c = accepted(rawConnectV5({ password: [1, 2, 3] })) as ConnectPacket;
    assert.equal(c.username, undefined);
    assert.deepStrictEqual(c.password, Buffer.from([1, 2, 3]));
    assert.equal(c.protocolVersion, 5);
  });

  it('[MQTT-3.1.2-22 (3.1.1)] a password without a user name is rejected at level 4', () => {
    const res = decodeBytes(rawConnect({ level: 4, password: [1, 2, 3] }));
    assert.ok(res.error instanceof ProtocolError);
    assert.deepStrictEqual(res.packets, []);
  });

  it('[3.3.2.3.4] an empty topic name is accepted by the codec in a v5 PUBLISH (Topic Alias), with or without the alias', () => {
    const p = accepted(rawPublishV5({ topic: '', props: block(pU16(0x23, 4)) })) as PublishPacket;
    assert.equal(p.topic, '');
    assert.equal(p.properties?.topicAlias, 4);
    assert.equal((accepted(rawPublishV5({ qos: 0, topic: '' })) as PublishPacket).topic, '');
  });

  it('[MQTT-4.7.3-1 (3.1.1)] an empty topic name is rejected at level 4', () => {
    const res = decodeBytes(rawPublish({ topic: '' }), { version: 4 });
    assert.ok(res.error instanceof ProtocolError);
    assert.deepStrictEqual(res.packets, []);
  });

  it('[MQTT-3.3.2-2] wildcards in a v5 PUBLISH topic are still rejected', () => {
    rejected(rawPublishV5({ topic: 'a/+' }), MALFORMED);
    rejected(rawPublishV5({ topic: '#', props: block(pU16(0x23, 1)) }), MALFORMED);
  });

  it('[2.1.2 (3.1.1)] the AUTH packet type (15) is rejected at levels 3 and 4', () => {
    for (const version of [3, 4] as const) {
      const res = decodeBytes(Buffer.from([0xf0, 0x00]), { version });
      assert.ok(res.error instanceof ProtocolError, `level ${version}`);
      assert.deepStrictEqual(res.packets, []);
      assert.ok(decodeBytes(Buffer.from([0xf0, 0x02, 0x18, 0x00]), { version }).error instanceof ProtocolError);
    }
    assert.deepStrictEqual(accepted(Buffer.from([0xf0, 0x00])), { type: P.AUTH, reasonCode: 0 });
  });

  it('a DISCONNECT with a body is rejected at level 4 (3.1.1 DISCONNECT has none) and accepted at level 5', () => {
    assert.ok(decodeBytes(Buffer.from([0xe0, 0x01, 0x04]), { version: 4 }).error instanceof ProtocolError);
    assert.deepStrictEqual(accepted(Buffer.from([0xe0, 0x01, 0x04])), { type: P.DISCONNECT, reasonCode: 4 });
  });

  it('properties are parsed only at level 5: the same PUBLISH bytes differ in meaning at level 4', () => {
    const bytes = rawPublishV5({ qos: 1, props: block(pU16(0x23, 9)), payload: [0x7a] });
    const v5 = accepted(bytes) as PublishPacket;
    assert.deepStrictEqual(v5.properties, { topicAlias: 9 });
    assert.deepStrictEqual(v5.payload, Buffer.from([0x7a]));
    const v4 = accepted(bytes, { version: 4 }) as PublishPacket;
    assert.equal(v4.properties, undefined);
    assert.deepStrictEqual(v4.payload, Buffer.from([3, 0x23, 0, 9, 0x7a]));
  });

  it('a level-5 CONNECT switches the decoder to level 5 for the packets after it', () => {
    const bytes = Buffer.concat([rawConnectV5({ props: block(pU32(0x11, 30)) }), Buffer.from([0xf0, 0x00]), rawPublishV5({ props: block(pU16(0x23, 2)) })]);
    const res = decodeBytes(bytes, { version: 4 });
    assert.equal(res.error, undefined, res.error?.message);
    assert.equal(res.decoder.version, 5);
    assert.deepStrictEqual(res.packets.map((p) => p.type), [P.CONNECT, P.AUTH, P.PUBLISH]);
    assert.deepStrictEqual((res.packets[2] as PublishPacket).properties, { topicAlias: 2 });
  });

  it('[MQTT-3.1.2-3] the reserved CONNECT flag, and [3.1.2.6] will QoS 3, are Malformed Packets (0x81) at level 5', () => {
    rejected(rawConnectV5({ flags: 0x03 }), MALFORMED);
    rejected(rawConnectV5({ will: { qos: 3 } }), MALFORMED);
  });

  it('[MQTT-3.3.1-4] a v5 PUBLISH with QoS 3 is a Malformed Packet (0x81)', () => {
    rejected(rawPacket(0x36, [...lp('a'), ...u16(1), 0]), MALFORMED);
  });

  it('[MQTT-3.1.2-2] protocol name "MQIsdp" with level 5 is an unsupported protocol version (0x84)', () => {
    const bytes = rawConnect({ protocolName: 'MQIsdp', level: 5 });
    rejected(bytes, ReasonCode.UnsupportedProtocolVersion, { version: 4 });
  });

  it('v5 packet objects encode at level 5 and decode back; the encoder uses the level it is given', () => {
    const p: Packet = { type: P.PUBLISH, qos: 0, dup: false, retain: false, topic: 't', payload: Buffer.from('x'), properties: { contentType: 'c' } };
    assert.deepStrictEqual(accepted(encodePacket(p, 5)), p);
    assert.deepStrictEqual(accepted(encodePacket(p, 4), { version: 4 }),
      { type: P.PUBLISH, qos: 0, dup: false, retain: false, topic: 't', payload: Buffer.from('x') });
  });
});

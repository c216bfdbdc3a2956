import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  PacketDecoder, PacketType, ProtocolError, ReasonCode, topicFilterError, topicNameError, type ProtocolVersion,
} from '../../src/protocol/index.js';
import {
  decodeBytes, lp, rawConnect, rawPacket, rawPublish, rawSubscribe, rawUnsubscribe, u16, type DecodeOptions,
} from '../helpers/codec.js';

/** The bytes decode to exactly one packet, without error. */
function accepted(bytes: Buffer, options: DecodeOptions = {}) {
  const res = decodeBytes(bytes, options);
  assert.equal(res.error, undefined, `expected acceptance, got: ${res.error?.message}`);
  assert.equal(res.packets.length, 1);
  return res.packets[0]!;
}

/** The bytes are rejected with a ProtocolError and no packet is reported. */
function rejected(bytes: Buffer, options: DecodeOptions = {}): ProtocolError {
  const res = decodeBytes(bytes, options);
  assert.ok(res.error instanceof ProtocolError, `expected a ProtocolError for ${bytes.toString('hex')}`);
  assert.deepStrictEqual(res.packets, [], 'no packet reported');
  return res.error;
}

/** Each fixture is a valid packet of that type with the required flags (3.1.1 table 2.2). */
const VALID: Record<number, { flags: number; body: number[] }> = {
  [PacketType.CONNECT]: { flags: 0, body: [...rawConnect().subarray(2)] },
  [PacketType.CONNACK]: { flags: 0, body: [0, 0] },
  [PacketType.PUBACK]: { flags: 0, body: u16(1) },
  [PacketType.PUBREC]: { flags: 0, body: u16(1) },
  [PacketType.PUBREL]: { flags: 2, body: u16(1) },
  [PacketType.PUBCOMP]: { flags: 0, body: u16(1) },
  [PacketType.SUBSCRIBE]: { flags: 2, body: [...u16(1), ...lp('a'), 0] },
  [PacketType.SUBACK]: { flags: 0, body: [...u16(1), 0] },
  [PacketType.UNSUBSCRIBE]: { flags: 2, body: [...u16(1), ...lp('a')] },
  [PacketType.UNSUBACK]: { flags: 0, body: u16(1) },
  [PacketType.PINGREQ]: { flags: 0, body: [] },
  [PacketType.PINGRESP]: { flags: 0, body: [] },
  [PacketType.DISCONNECT]: { flags: 0, body: [] },
};
const NAMES = ['', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE', 'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT'];

describe('fixed header', () => {
  it('[2.2.3] a remaining length longer than 4 bytes is malformed, as soon as the fifth length byte arrives', () => {
    rejected(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]));
    const decoder = new PacketDecoder();
    let called = false;
    assert.equal(decoder.push(Buffer.from([0x30, 0x80, 0x80, 0x80]), () => (called = true)), undefined);
    assert.ok(decoder.push(Buffer.from([0x80]), () => (called = true)) instanceof ProtocolError);
    assert.equal(called, false);
    // Control: the largest 4-byte value is legal; the decoder just waits for the body.
    const big = new PacketDecoder();
    assert.equal(big.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), () => true), undefined);
  });

  for (const [typeText, fixture] of Object.entries(VALID)) {
    const type = Number(typeText);
    it(`[MQTT-2.2.2-2] ${NAMES[type]} with reserved flag bits other than ${fixture.flags.toString(2).padStart(4, '0')} is rejected`, () => {
      for (const version of [4] as ProtocolVersion[]) {
        accepted(rawPacket((type << 4) | fixture.flags, fixture.body), { version });
        for (let flags = 0; flags < 16; flags++) {
          if (flags === fixture.flags) continue;
          rejected(rawPacket((type << 4) | flags, fixture.body), { version });
        }
      }
    });
  }

  it('[MQTT-2.2.2-2] the cases named in the spec table: SUBSCRIBE with flags 0, PUBREL with 0, PUBACK with 1, UNSUBSCRIBE with 0', () => {
    rejected(rawSubscribe([['a', 0]], 1, 0x0));
    rejected(rawPacket(0x60, u16(1)));
    rejected(rawPacket(0x41, u16(1)));
    rejected(rawUnsubscribe(['a'], 1, 0x0));
  });

  it('MQTT 3.1: DUP set on a re-sent PUBREL, SUBSCRIBE or UNSUBSCRIBE (flags 1010) is accepted at level 3', () => {
    // MQTT V3.1 (IBM spec, fixed header "DUP flag"): DUP is set when re-delivering PUBLISH, PUBREL,
    // SUBSCRIBE or UNSUBSCRIBE; the 0010 strictness of [MQTT-2.2.2-2] is a 3.1.1 rule.
    accepted(rawPacket(0x6a, u16(1)), { version: 3 });
    accepted(rawSubscribe([['a', 0]], 1, 0x0a), { version: 3 });
    accepted(rawUnsubscribe(['a'], 1, 0x0a), { version: 3 });
  });

  for (const version of [3, 4] as const) {
    it(`[2.2.1] reserved packet types 0 and 15 are rejected at level ${version}`, () => {
      rejected(Buffer.from([0x00, 0x00]), { version });
      rejected(Buffer.from([0xf0, 0x00]), { version });
      rejected(Buffer.from([0x00, 0x02, 0x00, 0x01]), { version });
      rejected(Buffer.from([0xf0, 0x02, 0x00, 0x00]), { version });
    });
  }

  it('packet larger than maxPacketSize is rejected with 0x95 from the fixed header alone, before the body arrives', () => {
    const decoder = new PacketDecoder(100);
    let called = false;
    // PUBLISH announcing 128 bytes of body: 131 bytes in all.
    const err = decoder.push(Buffer.from([0x30, 0x80, 0x01]), () => (called = true));
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.reasonCode, ReasonCode.PacketTooLarge);
    assert.equal(err.reasonCode, 0x95);
    assert.equal(called, false);
    // A 1 MiB limit facing a header that announces 256 MiB: rejected at once.
    const mib = new PacketDecoder(1024 * 1024);
    const huge = mib.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), () => true);
    assert.equal(huge?.reasonCode, 0x95);
    // Also when the header arrives one byte at a time.
    const slow = new PacketDecoder(100);
    assert.equal(slow.push(Buffer.from([0x30]), () => true), undefined);
    assert.equal(slow.push(Buffer.from([0x80]), () => true), undefined);
    assert.equal(slow.push(Buffer.from([0x01]), () => true)?.reasonCode, 0x95);
  });

  it('maxPacketSize counts the whole packet: exactly the limit is accepted, one byte more is rejected', () => {
    // PUBLISH QoS 0, topic "a": 2 header bytes + 3 topic bytes + payload.
    const atLimit = rawPublish({ topic: 'a', payload: new Array(95).fill(0x41) });
    assert.equal(atLimit.length, 100);
    accepted(atLimit, { maxPacketSize: 100 });
    const over = rawPublish({ topic: 'a', payload: new Array(96).fill(0x41) });
    assert.equal(rejected(over, { maxPacketSize: 100 }).reasonCode, 0x95);
  });

  it('trailing bytes after a PINGREQ, PINGRESP, DISCONNECT body are rejected', () => {
    rejected(rawPacket(0xc0, [0x00]));
    rejected(rawPacket(0xd0, [0x00]));
    rejected(rawPacket(0xe0, [0x00]));
  });

  it('trailing bytes after a PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK packet identifier are rejected', () => {
    rejected(rawPacket(0x40, [0x00, 0x01, 0x00]));
    rejected(rawPacket(0x50, [0x00, 0x01, 0x00]));
    rejected(rawPacket(0x62, [0x00, 0x01, 0x00]));
    rejected(rawPacket(0x70, [0x00, 0x01, 0x00]));
    rejected(rawPacket(0xb0, [0x00, 0x01, 0x00]));
  });

  it('trailing bytes after a CONNECT payload or CONNACK are rejected', () => {
    rejected(rawConnect({ trailing: [0x00] }));
    rejected(rawPacket(0x20, [0, 0, 0]));
  });

  it('bodies shorter than their fields (truncated packet id, string, CONNECT header) are rejected', () => {
    rejected(rawPacket(0x40, [0x00]));
    rejected(rawPacket(0x40, []));
    rejected(rawPacket(0x30, [0x00, 0x05, 0x61]));
    rejected(rawPacket(0x32, [...lp('a'), 0x00]));
    rejected(rawPacket(0x10, [...lp('MQTT'), 4]));
    rejected(rawPacket(0x10, [...lp('MQTT'), 4, 0x82, 0, 60, ...lp('id')])); // user name flag, no user name
    rejected(rawPacket(0x10, [...lp('MQTT'), 4, 0x06, 0, 60, ...lp('id'), ...lp('w')])); // will flag, no will message
    rejected(rawPacket(0x20, [0]));
  });
});

describe('PUBLISH', () => {
  it('[MQTT-3.3.1-4] a PUBLISH with both QoS bits set (QoS 3) is rejected', () => {
    accepted(rawPublish({ qos: 2 }));
    rejected(rawPublish({ flags: 0b0110 }));
    rejected(rawPublish({ flags: 0b1111 }));
  });

  it('[MQTT-3.3.1-2] DUP on a QoS 0 PUBLISH is rejected', () => {
    accepted(rawPublish({ qos: 1, dup: true }));
    rejected(rawPublish({ qos: 0, dup: true }));
    rejected(rawPublish({ qos: 0, dup: true, retain: true }));
  });

  it('[MQTT-3.3.2-2] wildcards in a PUBLISH topic name are rejected', () => {
    accepted(rawPublish({ topic: 'a/b' }));
    for (const topic of ['+', '#', 'a/+', 'a/#', '+/b', 'a/b+', 'a#', 'sport/tennis/#']) rejected(rawPublish({ topic }));
  });

  it('[MQTT-4.7.3-1] an empty PUBLISH topic name is rejected', () => {
    rejected(rawPublish({ topic: '' }));
  });

  it('[MQTT-2.3.1-1] packet identifier 0 is rejected on QoS 1 and QoS 2 PUBLISH', () => {
    accepted(rawPublish({ qos: 1, packetId: 1 }));
    rejected(rawPublish({ qos: 1, packetId: 0 }));
    rejected(rawPublish({ qos: 2, packetId: 0 }));
  });

  it('[MQTT-2.3.1-5] a QoS 0 PUBLISH has no packet identifier: the bytes after the topic are payload', () => {
    const p = accepted(rawPublish({ qos: 0, payload: [0, 0] }));
    assert.ok(p.type === PacketType.PUBLISH);
    assert.equal(p.packetId, undefined);
    assert.deepStrictEqual([...p.payload], [0, 0]);
  });

  it('topic names with empty levels, spaces and "$" are valid', () => {
    for (const topic of ['/', '/a', 'a/', 'a//b', ' ', '$SYS/x', 'a b/c']) accepted(rawPublish({ topic }));
  });
});

describe('UTF-8 strings', () => {
  const bad: Array<[string, number[], string]> = [
    ['U+0000', [0x61, 0x00, 0x62], 'MQTT-1.5.3-2'],
    ['an encoded surrogate U+D800 (ED A0 80)', [0x61, 0xed, 0xa0, 0x80], 'MQTT-1.5.3-1'],
    ['an encoded surrogate U+DFFF (ED BF BF)', [0xed, 0xbf, 0xbf], 'MQTT-1.5.3-1'],
    ['an overlong "/" (C0 AF)', [0x61, 0xc0, 0xaf], 'MQTT-1.5.3-1'],
    ['an overlong U+0000 (C0 80)', [0xc0, 0x80], 'MQTT-1.5.3-1'],
    ['a 3-byte overlong (E0 80 AF)', [0xe0, 0x80, 0xaf], 'MQTT-1.5.3-1'],
    ['byte FF', [0x61, 0xff], 'MQTT-1.5.3-1'],
    ['a lone continuation byte (80)', [0x80], 'MQTT-1.5.3-1'],
    ['a truncated sequence (E2 82)', [0x61, 0xe2, 0x82], 'MQTT-1.5.3-1'],
    ['a code point above U+10FFFF (F4 90 80 80)', [0xf4, 0x90, 0x80, 0x80], 'MQTT-1.5.3-1'],
  ];
  const good = [...Buffer.from('a/é/€/\u{1F600}', 'utf8')];

  for (const [what, bytes, id] of bad) {
    it(`[${id}] ${what} is rejected in a PUBLISH topic, client id, user name, will topic and topic filters`, () => {
      accepted(rawPublish({ topic: good }));
      rejected(rawPublish({ topic: bytes }));
      accepted(rawConnect({ clientId: good }));
      rejected(rawConnect({ clientId: bytes }));
      accepted(rawConnect({ username: good }));
      rejected(rawConnect({ username: bytes }));
      accepted(rawConnect({ will: { topic: good } }));
      rejected(rawConnect({ will: { topic: bytes } }));
      accepted(rawSubscribe([[good, 0]]));
      rejected(rawSubscribe([[bytes, 0]]));
      accepted(rawUnsubscribe([good]));
      rejected(rawUnsubscribe([bytes]));
    });
  }

  it('[MQTT-1.5.3-1] ill-formed UTF-8 in the client id is rejected at level 3 too', () => {
    accepted(rawConnect({ protocolName: 'MQIsdp', level: 3, clientId: good }));
    rejected(rawConnect({ protocolName: 'MQIsdp', level: 3, clientId: [0xed, 0xa0, 0x80] }));
    rejected(rawConnect({ protocolName: 'MQIsdp', level: 3, clientId: [0x61, 0x00] }));
  });

  it('the password is binary data: any bytes, including 00 and FF, are accepted', () => {
    const p = accepted(rawConnect({ username: 'u', password: [0x00, 0xff, 0xed, 0xa0, 0x80] }));
    assert.ok(p.type === PacketType.CONNECT);
    assert.deepStrictEqual([...p.password!], [0x00, 0xff, 0xed, 0xa0, 0x80]);
  });
});

describe('topic filters', () => {
  const validFilters = ['+', '#', '+/+', '/#', 'a//b', '/', '+/', '/+', '//', 'a/+/b/#', '+/#', '$SYS/#', 'sport/tennis/+', 'sport/+/player1', 'a b', '$'];
  const invalidFilters: Array<[string, string]> = [
    ['a/#/b', 'MQTT-4.7.1-2'], ['#/a', 'MQTT-4.7.1-2'], ['a#', 'MQTT-4.7.1-2'], ['a/b#', 'MQTT-4.7.1-2'], ['##', 'MQTT-4.7.1-2'],
    ['#/', 'MQTT-4.7.1-2'], ['sport/tennis#', 'MQTT-4.7.1-2'], ['sport/tennis/#/ranking', 'MQTT-4.7.1-2'],
    ['+a', 'MQTT-4.7.1-3'], ['a+', 'MQTT-4.7.1-3'], ['a/+b', 'MQTT-4.7.1-3'], ['a/b+/c', 'MQTT-4.7.1-3'], ['++', 'MQTT-4.7.1-3'],
    ['sport+', 'MQTT-4.7.1-3'], ['+#', 'MQTT-4.7.1-2'], ['#+', 'MQTT-4.7.1-2'],
    ['', 'MQTT-4.7.3-1'],
  ];

  it('valid filters (+, #, +/+, /#, a//b, ...) are accepted in SUBSCRIBE and UNSUBSCRIBE', () => {
    for (const f of validFilters) {
      assert.equal(topicFilterError(f), undefined, f);
      const sub = accepted(rawSubscribe([[f, 1]]));
      assert.ok(sub.type === PacketType.SUBSCRIBE);
      assert.deepStrictEqual(sub.subscriptions, [{ filter: f, qos: 1 }]);
      accepted(rawUnsubscribe([f]));
    }
  });

  for (const [f, id] of invalidFilters) {
    it(`[${id}] filter ${JSON.stringify(f)} is rejected in SUBSCRIBE and UNSUBSCRIBE`, () => {
      assert.notEqual(topicFilterError(f), undefined);
      rejected(rawSubscribe([[f, 0]]));
      rejected(rawSubscribe([['ok', 0], [f, 0]]));
      rejected(rawUnsubscribe([f]));
      rejected(rawUnsubscribe(['ok', f]));
    });
  }

  it('topicNameError accepts names and rejects wildcards and the empty name', () => {
    for (const t of ['a', '/', 'a//b', '$SYS/broker', ' ']) assert.equal(topicNameError(t), undefined, t);
    for (const t of ['', '+', '#', 'a/+', 'a/#', 'a+b']) assert.notEqual(topicNameError(t), undefined, t);
  });
});

describe('SUBSCRIBE / UNSUBSCRIBE / acks', () => {
  it('[MQTT-2.3.1-1] packet identifier 0 is rejected on SUBSCRIBE, UNSUBSCRIBE, PUBACK, PUBREC, PUBREL, PUBCOMP', () => {
    accepted(rawSubscribe([['a', 0]], 1));
    rejected(rawSubscribe([['a', 0]], 0));
    accepted(rawUnsubscribe(['a'], 1));
    rejected(rawUnsubscribe(['a'], 0));
    rejected(rawPacket(0x40, u16(0)));
    rejected(rawPacket(0x50, u16(0)));
    rejected(rawPacket(0x62, u16(0)));
    rejected(rawPacket(0x70, u16(0)));
  });

  it('[MQTT-3.8.3-3] a SUBSCRIBE without topic filters is rejected', () => {
    rejected(rawSubscribe([]));
  });

  it('[MQTT-3.10.3-2] an UNSUBSCRIBE without topic filters is rejected', () => {
    rejected(rawUnsubscribe([]));
  });

  it('[MQTT-3-8.3-4] a SUBSCRIBE requesting QoS 3 or with reserved bits of the QoS byte set is rejected', () => {
    for (const q of [0, 1, 2]) accepted(rawSubscribe([['a', q]]));
    for (const options of [3, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xfc, 0xff, 0x81]) {
      rejected(rawSubscribe([['a', options]]));
      rejected(rawSubscribe([['a', 0], ['b', options]]));
    }
  });

  it('a SUBSCRIBE whose last filter has no requested-QoS byte is rejected', () => {
    rejected(rawPacket(0x82, [...u16(1), ...lp('a')]));
  });
});

describe('CONNECT', () => {
  it('[MQTT-3.1.2-3] the reserved connect flag (bit 0) set is rejected', () => {
    accepted(rawConnect({ flags: 0x02 }));
    rejected(rawConnect({ flags: 0x03 }));
    rejected(rawConnect({ flags: 0x01 }));
  });

  it('[MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] will QoS or will retain set without the will flag is rejected', () => {
    rejected(rawConnect({ flags: 0x02 | (1 << 3) })); // will QoS 1
    rejected(rawConnect({ flags: 0x02 | (2 << 3) })); // will QoS 2
    rejected(rawConnect({ flags: 0x02 | 0x20 })); // will retain
  });

  it('[MQTT-3.1.2-14] will QoS 3 is rejected', () => {
    for (const qos of [0, 1, 2]) accepted(rawConnect({ will: { topic: 'w', qos, retain: true } }));
    rejected(rawConnect({ will: { topic: 'w', qos: 3 } }));
  });

  it('[MQTT-3.1.2-22] the password flag without the user name flag is rejected', () => {
    accepted(rawConnect({ username: 'u', password: [1] }));
    rejected(rawConnect({ flags: 0x02 | 0x40, password: [1] }));
  });

  it('[MQTT-3.3.2-2] a will topic with wildcards, or empty [MQTT-4.7.3-1], is rejected', () => {
    for (const topic of ['+', '#', 'a/+', 'a/#', '']) rejected(rawConnect({ will: { topic } }));
  });

  it('[MQTT-3.1.2-1] an unknown protocol name is a malformed packet (0x81)', () => {
    for (const name of ['MQTX', 'mqtt', 'MQIsdP', '', 'MQTTT']) {
      const err = rejected(rawConnect({ protocolName: name, level: 4 }));
      assert.equal(err.reasonCode, ReasonCode.MalformedPacket, name);
    }
  });

  it('[MQTT-3.1.2-2] a known protocol name with an unsupported level is UnsupportedProtocolVersion (0x84)', () => {
    accepted(rawConnect({ protocolName: 'MQTT', level: 4 }));
    accepted(rawConnect({ protocolName: 'MQIsdp', level: 3 }));
    for (const [name, level] of [['MQTT', 3], ['MQTT', 6], ['MQTT', 0], ['MQTT', 255], ['MQIsdp', 4], ['MQIsdp', 5]] as const) {
      const err = rejected(rawConnect({ protocolName: name, level }));
      assert.equal(err.reasonCode, ReasonCode.UnsupportedProtocolVersion, `${name} level ${level}`);
      assert.equal(err.reasonCode, 0x84);
    }
  });

  it('the CONNECT decoder sets the level from the packet, whatever the decoder assumed', () => {
    const res = decodeBytes(rawConnect({ protocolName: 'MQIsdp', level: 3 }), { version: 4 });
    assert.equal(res.error, undefined);
    assert.equal(res.decoder.version, 3);
    const p = res.packets[0]!;
    assert.ok(p.type === PacketType.CONNECT);
    assert.equal(p.protocolName, 'MQIsdp');
    assert.equal(p.protocolVersion, 3);
  });

  it('a zero-length client id is accepted by the codec (the broker decides) [MQTT-3.1.3-6]', () => {
    const p = accepted(rawConnect({ clientId: '' }));
    assert.ok(p.type === PacketType.CONNECT);
    assert.equal(p.clientId, '');
  });
});

describe('packets from the server side', () => {
  it('[MQTT-3.2.2-1] CONNACK reserved acknowledge flags (bits 7-1) are rejected at level 4', () => {
    accepted(rawPacket(0x20, [0x01, 0x00]));
    for (const flags of [0x02, 0x80, 0xfe, 0xff]) rejected(rawPacket(0x20, [flags, 0x00]));
  });

  it('[MQTT-3.9.3-2] SUBACK return codes other than 0x00, 0x01, 0x02, 0x80 are rejected', () => {
    for (const code of [0, 1, 2, 0x80]) accepted(rawPacket(0x90, [...u16(1), code]));
    for (const code of [3, 0x7f, 0x81, 0xff]) rejected(rawPacket(0x90, [...u16(1), code]));
    rejected(rawPacket(0x90, u16(1))); // no return codes
    rejected(rawPacket(0x90, [...u16(0), 0])); // packet id 0
  });
});

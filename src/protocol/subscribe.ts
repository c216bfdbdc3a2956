import { PacketType, type ProtocolVersion, type QoS } from './constants.js';
import { malformed, protocolViolation } from './errors.js';
import { startPacket, utf8Length } from './fixed-header.js';
import type { SubackPacket, SubscribePacket, SubscriptionRequest } from './packets.js';
import type { Reader } from './primitives.js';
import { propertiesLength, readProperties, writeProperties } from './properties.js';
import { readPacketId } from './publish.js';
import { VALID_REASON_CODES } from './reason-codes.js';
import { parseSharedFilter, topicFilterError } from './topic-rules.js';

export function decodeSubscribe(r: Reader, version: ProtocolVersion): SubscribePacket {
  const packetId = readPacketId(r);
  const properties = version === 5 ? readProperties(r, PacketType.SUBSCRIBE) : undefined;
  const subscriptions: SubscriptionRequest[] = [];
  while (r.remaining > 0) {
    const filter = r.utf8('topic filter');
    const problem = topicFilterError(filter, version);
    if (problem) throw malformed(problem);
    const options = r.u8('subscription options');
    subscriptions.push(version === 5 ? readOptionsV5(filter, options) : readQosV4(options, filter));
  }
  // A Malformed Packet in 3.1.1 [MQTT-3.8.3-3], a Protocol Error in MQTT 5 [MQTT-3.8.3-2].
  if (subscriptions.length === 0) {
    throw version === 5 ? protocolViolation('SUBSCRIBE without topic filters', 'MQTT-3.8.3-2') : malformed('SUBSCRIBE without topic filters', 'MQTT-3.8.3-3');
  }
  const packet: SubscribePacket = { type: PacketType.SUBSCRIBE, packetId, subscriptions };
  if (properties) packet.properties = properties;
  return packet;
}

function readQosV4(options: number, filter: string): SubscriptionRequest {
  if (options & 0xfc) throw malformed('reserved bits set in requested QoS byte', 'MQTT-3-8.3-4');
  if ((options & 0x03) === 3) throw malformed('requested QoS 3', 'MQTT-3-8.3-4');
  return { filter, qos: (options & 0x03) as QoS };
}

function readOptionsV5(filter: string, options: number): SubscriptionRequest {
  if (options & 0xc0) throw malformed('reserved bits set in subscription options', 'MQTT-3.8.3-5');
  const qos = options & 0x03;
  if (qos === 3) throw protocolViolation('maximum QoS 3 in subscription options');
  const retainHandling = (options >> 4) & 0x03;
  if (retainHandling === 3) throw protocolViolation('retain handling 3');
  const noLocal = (options & 0x04) !== 0;
  if (noLocal && parseSharedFilter(filter)) throw protocolViolation('no local on a shared subscription', 'MQTT-3.8.3-4');
  return {
    filter,
    qos: qos as QoS,
    noLocal,
    retainAsPublished: (options & 0x08) !== 0,
    retainHandling: retainHandling as 0 | 1 | 2,
  };
}

export function encodeSubscribe(p: SubscribePacket, version: ProtocolVersion): Buffer {
  const lengths = p.subscriptions.map((s) => utf8Length(s.filter));
  const propsLen = version === 5 ? propertiesLength(p.properties) : 0;
  const length = 2 + propsLen + lengths.reduce((sum, l) => sum + 2 + l + 1, 0);
  const w = startPacket((PacketType.SUBSCRIBE << 4) | 0x02, length);
  w.u16(p.packetId);
  if (version === 5) writeProperties(w, p.properties);
  p.subscriptions.forEach((s, i) => {
    w.utf8(s.filter, lengths[i]!);
    let options: number = s.qos;
    if (version === 5) {
      if (s.noLocal) options |= 0x04;
      if (s.retainAsPublished) options |= 0x08;
      options |= (s.retainHandling ?? 0) << 4;
    }
    w.u8(options);
  });
  return w.buf;
}

const VALID_SUBACK_CODES_V4 = new Set([0, 1, 2, 0x80]);

export function decodeSuback(r: Reader, version: ProtocolVersion): SubackPacket {
  const packetId = readPacketId(r);
  const properties = version === 5 ? readProperties(r, PacketType.SUBACK) : undefined;
  const valid = version === 5 ? VALID_REASON_CODES.SUBACK! : VALID_SUBACK_CODES_V4;
  const returnCodes: number[] = [];
  while (r.remaining > 0) {
    const code = r.u8('return code');
    // MQTT 3.1 has no failure code; 3.1.1 adds 0x80 [MQTT-3.9.3-2].
    if (!valid.has(code) || (version === 3 && code === 0x80)) {
      throw malformed(`invalid SUBACK return code 0x${code.toString(16)}`, 'MQTT-3.9.3-2');
    }
    returnCodes.push(code);
  }
  if (returnCodes.length === 0) throw malformed('SUBACK without return codes');
  const packet: SubackPacket = { type: PacketType.SUBACK, packetId, returnCodes };
  if (properties) packet.properties = properties;
  return packet;
}

export function encodeSuback(p: SubackPacket, version: ProtocolVersion): Buffer {
  const propsLen = version === 5 ? propertiesLength(p.properties) : 0;
  const w = startPacket(PacketType.SUBACK << 4, 2 + propsLen + p.returnCodes.length);
  w.u16(p.packetId);
  if (version === 5) writeProperties(w, p.properties);
  for (const code of p.returnCodes) w.u8(code);
  return w.buf;
}

import { PacketType, type ProtocolVersion } from './constants.js';
import { malformed, protocolViolation } from './errors.js';
import { startPacket, utf8Length } from './fixed-header.js';
import type { UnsubackPacket, UnsubscribePacket } from './packets.js';
import type { Reader } from './primitives.js';
import { propertiesLength, readProperties, writeProperties } from './properties.js';
import { readPacketId } from './publish.js';
import { VALID_REASON_CODES } from './reason-codes.js';
import { topicFilterError } from './topic-rules.js';

export function decodeUnsubscribe(r: Reader, version: ProtocolVersion): UnsubscribePacket {
  const packetId = readPacketId(r);
  const properties = version === 5 ? readProperties(r, PacketType.UNSUBSCRIBE) : undefined;
  const filters: string[] = [];
  while (r.remaining > 0) {
    const filter = r.utf8('topic filter');
    const problem = topicFilterError(filter, version);
    if (problem) throw malformed(problem);
    filters.push(filter);
  }
  if (filters.length === 0) {
    throw version === 5 ? protocolViolation('UNSUBSCRIBE without topic filters', 'MQTT-3.10.3-2') : malformed('UNSUBSCRIBE without topic filters', 'MQTT-3.10.3-2');
  }
  const packet: UnsubscribePacket = { type: PacketType.UNSUBSCRIBE, packetId, filters };
  if (properties) packet.properties = properties;
  return packet;
}

export function encodeUnsubscribe(p: UnsubscribePacket, version: ProtocolVersion): Buffer {
  const lengths = p.filters.map(utf8Length);
  const propsLen = version === 5 ? propertiesLength(p.properties) : 0;
  const length = 2 + propsLen + lengths.reduce((sum, l) => sum + 2 + l, 0);
  const w = startPacket((PacketType.UNSUBSCRIBE << 4) | 0x02, length);
  w.u16(p.packetId);
  if (version === 5) writeProperties(w, p.properties);
  p.filters.forEach((f, i) => w.utf8(f, lengths[i]!));
  return w.buf;
}

/** UNSUBACK: a packet identifier; in MQTT 5 also properties and one reason code per filter. */
export function decodeUnsuback(r: Reader, version: ProtocolVersion): UnsubackPacket {
  const packetId = readPacketId(r);
  const packet: UnsubackPacket = { type: PacketType.UNSUBACK, packetId };
  if (version === 5) {
    const properties = readProperties(r, PacketType.UNSUBACK);
    if (properties) packet.properties = properties;
    const reasonCodes: number[] = [];
    while (r.remaining > 0) {
      const code = r.u8('reason code');
      if (!VALID_REASON_CODES.UNSUBACK!.has(code)) throw malformed(`invalid UNSUBACK reason code 0x${code.toString(16)}`);
      reasonCodes.push(code);
    }
    if (reasonCodes.length === 0) throw malformed('UNSUBACK without reason codes');
    packet.reasonCodes = reasonCodes;
  }
  if (r.remaining !== 0) throw malformed('trailing bytes after UNSUBACK');
  return packet;
}

export function encodeUnsuback(p: UnsubackPacket, version: ProtocolVersion): Buffer {
  if (version < 5) {
    const w = startPacket(PacketType.UNSUBACK << 4, 2);
    w.u16(p.packetId);
    return w.buf;
  }
  const codes = p.reasonCodes ?? [];
  const w = startPacket(PacketType.UNSUBACK << 4, 2 + propertiesLength(p.properties) + codes.length);
  w.u16(p.packetId);
  writeProperties(w, p.properties);
  for (const code of codes) w.u8(code);
  return w.buf;
}

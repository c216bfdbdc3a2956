import { PacketType, type ProtocolVersion } from './constants.js';
import { malformed } from './errors.js';
import { startPacket } from './fixed-header.js';
import type { AckPacket, Properties } from './packets.js';
import type { Reader } from './primitives.js';
import { propertiesLength, readProperties, writeProperties } from './properties.js';
import { readPacketId } from './publish.js';
import { VALID_REASON_CODES } from './reason-codes.js';

export type AckType =
  | typeof PacketType.PUBACK
  | typeof PacketType.PUBREC
  | typeof PacketType.PUBREL
  | typeof PacketType.PUBCOMP;

const VALID_CODES: Record<AckType, ReadonlySet<number>> = {
  [PacketType.PUBACK]: VALID_REASON_CODES.PUBACK!,
  [PacketType.PUBREC]: VALID_REASON_CODES.PUBACK!,
  [PacketType.PUBREL]: VALID_REASON_CODES.PUBREL!,
  [PacketType.PUBCOMP]: VALID_REASON_CODES.PUBREL!,
};

/**
 * PUBACK, PUBREC, PUBREL, PUBCOMP: a packet identifier; in MQTT 5 optionally a
 * reason code and properties (absent means Success) [MQTT-3.4.2-1].
 */
export function decodeAck<T extends AckType>(type: T, r: Reader, version: ProtocolVersion): AckPacket<T> {
  const packetId = readPacketId(r);
  const packet: AckPacket<T> = { type, packetId };
  if (version === 5 && r.remaining > 0) {
    const reasonCode = r.u8('reason code');
    if (!VALID_CODES[type].has(reasonCode)) throw malformed(`invalid reason code 0x${reasonCode.toString(16)}`);
    packet.reasonCode = reasonCode;
    if (r.remaining > 0) {
      const properties = readProperties(r, type);
      if (properties) packet.properties = properties;
    }
  }
  if (r.remaining !== 0) throw malformed('trailing bytes after packet identifier');
  return packet;
}

export function encodeAck(
  type: AckType, packetId: number, version: ProtocolVersion, reasonCode = 0, properties?: Properties,
): Buffer {
  // PUBREL carries the fixed flags 0010 [MQTT-3.6.1-1].
  const first = (type << 4) | (type === PacketType.PUBREL ? 0x02 : 0);
  if (version < 5 || (reasonCode === 0 && !properties)) {
    const w = startPacket(first, 2);
    w.u16(packetId);
    return w.buf;
  }
  const w = startPacket(first, 3 + (properties ? propertiesLength(properties) : 0));
  w.u16(packetId);
  w.u8(reasonCode);
  if (properties) writeProperties(w, properties);
  return w.buf;
}

import { PacketType, type ProtocolVersion } from './constants.js';
import { malformed } from './errors.js';
import { startPacket } from './fixed-header.js';
import type { AckPacket } from './packets.js';
import type { Reader } from './primitives.js';
import { readPacketId } from './publish.js';

export type AckType =
  | typeof PacketType.PUBACK
  | typeof PacketType.PUBREC
  | typeof PacketType.PUBREL
  | typeof PacketType.PUBCOMP
  | typeof PacketType.UNSUBACK;

/** PUBACK, PUBREC, PUBREL, PUBCOMP (and 3.1.1 UNSUBACK): a packet identifier and nothing else. */
export function decodeAck<T extends AckType>(type: T, r: Reader, _version: ProtocolVersion): AckPacket<T> {
  const packetId = readPacketId(r);
  if (r.remaining !== 0) throw malformed('trailing bytes after packet identifier');
  return { type, packetId };
}

export function encodeAck(type: AckType, packetId: number, _version: ProtocolVersion): Buffer {
  // PUBREL carries the fixed flags 0010 [MQTT-3.6.1-1].
  const first = (type << 4) | (type === PacketType.PUBREL ? 0x02 : 0);
  const w = startPacket(first, 2);
  w.u16(packetId);
  return w.buf;
}

import { PacketType, type ProtocolVersion } from './constants.js';
import { malformed } from './errors.js';
import { startPacket } from './fixed-header.js';
import type { AuthPacket, DisconnectPacket, PingreqPacket, PingrespPacket, Properties } from './packets.js';
import type { Reader } from './primitives.js';
import { propertiesLength, readProperties, writeProperties } from './properties.js';
import { VALID_REASON_CODES } from './reason-codes.js';

export type EmptyType = typeof PacketType.PINGREQ | typeof PacketType.PINGRESP | typeof PacketType.DISCONNECT;
type EmptyPacket = PingreqPacket | PingrespPacket | DisconnectPacket;

/** PINGREQ, PINGRESP and (before MQTT 5) DISCONNECT have no variable header and no payload. */
export function decodeEmpty(type: EmptyType, r: Reader): EmptyPacket {
  if (r.remaining !== 0) throw malformed('non-zero remaining length on a packet that has none');
  return { type } as EmptyPacket;
}

const ENCODED = new Map<EmptyType, Buffer>([
  [PacketType.PINGREQ, Buffer.from([PacketType.PINGREQ << 4, 0])],
  [PacketType.PINGRESP, Buffer.from([PacketType.PINGRESP << 4, 0])],
  [PacketType.DISCONNECT, Buffer.from([PacketType.DISCONNECT << 4, 0])],
]);

/** Shared immutable bytes: callers must not modify them. */
export function encodeEmpty(type: EmptyType): Buffer {
  return ENCODED.get(type)!;
}

/** MQTT 5 DISCONNECT and AUTH: an optional reason code (absent = 0) and optional properties. */
export function decodeReasoned<T extends typeof PacketType.DISCONNECT | typeof PacketType.AUTH>(
  type: T, r: Reader,
): T extends typeof PacketType.AUTH ? AuthPacket : DisconnectPacket {
  let reasonCode = 0;
  let properties: Properties | undefined;
  if (r.remaining > 0) {
    reasonCode = r.u8('reason code');
    const valid = type === PacketType.AUTH ? VALID_REASON_CODES.AUTH! : VALID_REASON_CODES.DISCONNECT!;
    if (!valid.has(reasonCode)) throw malformed(`invalid reason code 0x${reasonCode.toString(16)}`);
    if (r.remaining > 0) properties = readProperties(r, type);
  }
  if (r.remaining !== 0) throw malformed('trailing bytes after properties');
  const packet: DisconnectPacket | AuthPacket = { type, reasonCode };
  if (properties) packet.properties = properties;
  return packet as T extends typeof PacketType.AUTH ? AuthPacket : DisconnectPacket;
}

export function encodeReasoned(
  type: typeof PacketType.DISCONNECT | typeof PacketType.AUTH, reasonCode: number, properties: Properties | undefined,
  version: ProtocolVersion,
): Buffer {
  if (version < 5) return encodeEmpty(PacketType.DISCONNECT);
  if (reasonCode === 0 && !properties) return Buffer.from([type << 4, 0]);
  const w = startPacket(type << 4, 1 + (properties ? propertiesLength(properties) : 0));
  w.u8(reasonCode);
  if (properties) writeProperties(w, properties);
  return w.buf;
}

import { PacketType } from './constants.js';
import { malformed } from './errors.js';
import type { DisconnectPacket, PingreqPacket, PingrespPacket } from './packets.js';
import type { Reader } from './primitives.js';

export type EmptyType = typeof PacketType.PINGREQ | typeof PacketType.PINGRESP | typeof PacketType.DISCONNECT;
type EmptyPacket = PingreqPacket | PingrespPacket | DisconnectPacket;

/** PINGREQ, PINGRESP and (3.1.1) DISCONNECT have no variable header and no payload. */
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

import { PacketType, type ProtocolVersion } from './constants.js';
import { malformed } from './errors.js';
import { startPacket } from './fixed-header.js';
import type { ConnackPacket } from './packets.js';
import type { Reader } from './primitives.js';

export function decodeConnack(r: Reader, version: ProtocolVersion): ConnackPacket {
  const ackFlags = r.u8('connect acknowledge flags');
  // MQTT 3.1 has no session-present bit; the whole byte is reserved.
  if (version >= 4 && (ackFlags & 0xfe) !== 0) throw malformed('reserved CONNACK flags set', 'MQTT-3.2.2-1');
  const returnCode = r.u8('connect return code');
  if (r.remaining !== 0) throw malformed('trailing bytes after CONNACK');
  return { type: PacketType.CONNACK, sessionPresent: version >= 4 && (ackFlags & 1) === 1, returnCode };
}

export function encodeConnack(p: ConnackPacket, version: ProtocolVersion): Buffer {
  const w = startPacket(PacketType.CONNACK << 4, 2);
  w.u8(version >= 4 && p.sessionPresent ? 1 : 0);
  w.u8(p.returnCode);
  return w.buf;
}

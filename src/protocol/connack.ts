import { PacketType, type ProtocolVersion } from './constants.js';
import { malformed } from './errors.js';
import { startPacket } from './fixed-header.js';
import type { ConnackPacket } from './packets.js';
import type { Reader } from './primitives.js';
import { propertiesLength, readProperties, writeProperties } from './properties.js';
import { VALID_REASON_CODES } from './reason-codes.js';

export function decodeConnack(r: Reader, version: ProtocolVersion): ConnackPacket {
  const ackFlags = r.u8('connect acknowledge flags');
  // MQTT 3.1 has no session-present bit; the whole byte is reserved.
  if (version >= 4 && (ackFlags & 0xfe) !== 0) throw malformed('reserved CONNACK flags set', 'MQTT-3.2.2-1');
  const returnCode = r.u8('connect return code');
  const packet: ConnackPacket = { type: PacketType.CONNACK, sessionPresent: version >= 4 && (ackFlags & 1) === 1, returnCode };
  if (version === 5) {
    if (!VALID_REASON_CODES.CONNACK!.has(returnCode)) throw malformed(`invalid CONNACK reason code 0x${returnCode.toString(16)}`);
    const properties = readProperties(r, PacketType.CONNACK);
    if (properties) packet.properties = properties;
  }
  if (r.remaining !== 0) throw malformed('trailing bytes after CONNACK');
  return packet;
}

export function encodeConnack(p: ConnackPacket, version: ProtocolVersion): Buffer {
  const w = startPacket(PacketType.CONNACK << 4, 2 + (version === 5 ? propertiesLength(p.properties) : 0));
  w.u8(version >= 4 && p.sessionPresent ? 1 : 0);
  w.u8(p.returnCode);
  if (version === 5) writeProperties(w, p.properties);
  return w.buf;
}

import { PacketType, PROTOCOL_NAME, PROTOCOL_NAME_V31, type ProtocolVersion, type QoS } from './constants.js';
import { malformed, ProtocolError } from './errors.js';
import { startPacket, utf8Length } from './fixed-header.js';
import type { ConnectPacket, WillMessage } from './packets.js';
import type { Reader } from './primitives.js';
import { propertiesLength, readProperties, WILL, writeProperties } from './properties.js';
import { ReasonCode } from './reason-codes.js';
import { topicNameError } from './topic-rules.js';

const FLAG_RESERVED = 0x01;
const FLAG_CLEAN = 0x02;
const FLAG_WILL = 0x04;
const FLAG_WILL_RETAIN = 0x20;
const FLAG_PASSWORD = 0x40;
const FLAG_USERNAME = 0x80;

/** Protocol levels this codec decodes, by protocol name. */
const SUPPORTED_LEVELS: ReadonlyMap<string, readonly number[]> = new Map([
  [PROTOCOL_NAME_V31, [3]],
  [PROTOCOL_NAME, [4, 5]],
]);

export function decodeConnect(r: Reader): ConnectPacket {
  const protocolName = r.utf8('protocol name');
  const level = r.u8('protocol level');
  if (protocolName !== PROTOCOL_NAME && protocolName !== PROTOCOL_NAME_V31) {
    throw malformed(`unknown protocol name "${protocolName}"`, 'MQTT-3.1.2-1');
  }
  if (!SUPPORTED_LEVELS.get(protocolName)!.includes(level)) {
    // The broker answers CONNACK 0x01 before closing [MQTT-3.1.2-2].
    throw new ProtocolError(
      `unsupported protocol ${protocolName} level ${level}`,
      ReasonCode.UnsupportedProtocolVersion,
      'MQTT-3.1.2-2',
    );
  }
  const protocolVersion = level as ProtocolVersion;
  const flags = r.u8('connect flags');
  if (flags & FLAG_RESERVED) throw malformed('reserved connect flag set', 'MQTT-3.1.2-3');
  const hasWill = (flags & FLAG_WILL) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & FLAG_WILL_RETAIN) !== 0;
  if (!hasWill && (willQos !== 0 || willRetain)) {
    throw malformed('will QoS/retain set without will flag', 'MQTT-3.1.2-11');
  }
  if (willQos === 3) throw malformed('will QoS 3', 'MQTT-3.1.2-14');
  const hasUsername = (flags & FLAG_USERNAME) !== 0;
  const hasPassword = (flags & FLAG_PASSWORD) !== 0;
  // MQTT 5 allows a password without a user name.
  if (hasPassword && !hasUsername && protocolVersion < 5) {
    throw malformed('password flag without username flag', 'MQTT-3.1.2-22');
  }

  const keepalive = r.u16('keep alive');
  const properties = protocolVersion === 5 ? readProperties(r, PacketType.CONNECT) : undefined;
  const clientId = r.utf8('client identifier');
  const packet: ConnectPacket = {
    type: PacketType.CONNECT,
    protocolName,
    protocolVersion,
    clean: (flags & FLAG_CLEAN) !== 0,
    keepalive,
    clientId,
  };
  if (properties) packet.properties = properties;
  if (hasWill) {
    const willProperties = protocolVersion === 5 ? readProperties(r, WILL) : undefined;
    const topic = r.utf8('will topic');
    const problem = topicNameError(topic);
    if (problem) throw malformed(`will topic: ${problem}`);
    const payload = r.binary('will message');
    packet.will = { topic, payload, qos: willQos as QoS, retain: willRetain };
    if (willProperties) packet.will.properties = willProperties;
  }
  if (hasUsername) packet.username = r.utf8('user name');
  if (hasPassword) packet.password = r.binary('password');
  if (r.remaining !== 0) throw malformed('trailing bytes after CONNECT payload');
  return packet;
}

export function encodeConnect(p: ConnectPacket): Buffer {
  const nameLen = utf8Length(p.protocolName);
  const idLen = utf8Length(p.clientId);
  const will: WillMessage | undefined = p.will;
  const willTopicLen = will ? utf8Length(will.topic) : 0;
  const userLen = p.username !== undefined ? utf8Length(p.username) : 0;
  const v5 = p.protocolVersion === 5;
  let length = 2 + nameLen + 1 + 1 + 2 + 2 + idLen;
  if (v5) length += propertiesLength(p.properties);
  if (will) length += 2 + willTopicLen + 2 + will.payload.length + (v5 ? propertiesLength(will.properties) : 0);
  if (p.username !== undefined) length += 2 + userLen;
  if (p.password !== undefined) length += 2 + p.password.length;

  let flags = 0;
  if (p.clean) flags |= FLAG_CLEAN;
  if (will) {
    flags |= FLAG_WILL | (will.qos << 3);
    if (will.retain) flags |= FLAG_WILL_RETAIN;
  }
  if (p.username !== undefined) flags |= FLAG_USERNAME;
  if (p.password !== undefined) flags |= FLAG_PASSWORD;

  const w = startPacket(PacketType.CONNECT << 4, length);
  w.utf8(p.protocolName, nameLen);
  w.u8(p.protocolVersion);
  w.u8(flags);
  w.u16(p.keepalive);
  if (v5) writeProperties(w, p.properties);
  w.utf8(p.clientId, idLen);
  if (will) {
    if (v5) writeProperties(w, will.properties);
    w.utf8(will.topic, willTopicLen);
    w.binary(will.payload);
  }
  if (p.username !== undefined) w.utf8(p.username, userLen);
  if (p.password !== undefined) w.binary(p.password);
  return w.buf;
}

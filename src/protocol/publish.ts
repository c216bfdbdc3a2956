import { PacketType, type ProtocolVersion, type QoS } from './constants.js';
import { malformed } from './errors.js';
import { startPacket, utf8Length } from './fixed-header.js';
import type { Properties, PublishPacket } from './packets.js';
import { varintLength, Writer, type Reader } from './primitives.js';
import { propertiesLength, readProperties, writeProperties } from './properties.js';
import { topicNameError } from './topic-rules.js';

export function decodePublish(flags: number, r: Reader, version: ProtocolVersion): PublishPacket {
  const qos = (flags >> 1) & 0x03;
  if (qos === 3) throw malformed('PUBLISH with QoS 3', 'MQTT-3.3.1-4');
  const dup = (flags & 0x08) !== 0;
  if (dup && qos === 0) throw malformed('DUP set on a QoS 0 PUBLISH', 'MQTT-3.3.1-2');
  const topic = r.utf8('topic name');
  // MQTT 5: an empty topic is valid when a topic alias stands for it (checked by the receiver).
  if (!(version === 5 && topic.length === 0)) {
    const problem = topicNameError(topic);
    if (problem) throw malformed(problem);
  }
  const packet: PublishPacket = {
    type: PacketType.PUBLISH,
    dup,
    qos: qos as QoS,
    retain: (flags & 0x01) !== 0,
    topic,
    payload: undefined as unknown as Buffer,
  };
  if (qos > 0) packet.packetId = readPacketId(r);
  if (version === 5) {
    const properties = readProperties(r, PacketType.PUBLISH);
    if (properties) packet.properties = properties;
  }
  packet.payload = r.rest();
  return packet;
}

export function readPacketId(r: Reader): number {
  const id = r.u16('packet identifier');
  if (id === 0) throw malformed('packet identifier 0', 'MQTT-2.3.1-1');
  return id;
}

function publishFirstByte(p: PublishPacket): number {
  return (PacketType.PUBLISH << 4) | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 0x01 : 0);
}

/** The whole PUBLISH in one buffer (copies the payload). */
export function encodePublish(p: PublishPacket, version: ProtocolVersion): Buffer {
  const topicLen = utf8Length(p.topic);
  const propsLen = version === 5 ? propertiesLength(p.properties) : 0;
  const length = 2 + topicLen + (p.qos > 0 ? 2 : 0) + propsLen + p.payload.length;
  const w = startPacket(publishFirstByte(p), length);
  w.utf8(p.topic, topicLen);
  if (p.qos > 0) w.u16(p.packetId!);
  if (version === 5) writeProperties(w, p.properties);
  w.bytes(p.payload);
  return w.buf;
}

/**
 * Everything of a PUBLISH but the payload, so a payload can be written after it
 * without copying (the socket gathers both in one writev when corked).
 * The property block is written for MQTT 5 only.
 */
export function encodePublishHeader(
  topic: string, topicByteLength: number, qos: QoS, retain: boolean, dup: boolean, packetId: number, payloadLength: number,
  version: ProtocolVersion = 4, properties?: Properties,
): Buffer {
  const propsLen = version === 5 ? propertiesLength(properties) : 0;
  const variable = 2 + topicByteLength + (qos > 0 ? 2 : 0) + propsLen;
  const remaining = variable + payloadLength;
  const w = new Writer(1 + varintLength(remaining) + variable);
  w.u8((PacketType.PUBLISH << 4) | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0));
  w.varint(remaining);
  w.utf8(topic, topicByteLength);
  if (qos > 0) w.u16(packetId);
  if (version === 5) writeProperties(w, properties);
  return w.buf;
}

/** Size in bytes of a whole PUBLISH, to honour a client's Maximum Packet Size. */
export function publishPacketSize(
  topicByteLength: number, qos: QoS, payloadLength: number, version: ProtocolVersion, properties?: Properties,
): number {
  const remaining = 2 + topicByteLength + (qos > 0 ? 2 : 0) + (version === 5 ? propertiesLength(properties) : 0) + payloadLength;
  return 1 + varintLength(remaining) + remaining;
}

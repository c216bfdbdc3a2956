import { encodeAck } from './ack.js';
import { encodeConnack } from './connack.js';
import { encodeConnect } from './connect.js';
import { PacketType, type ProtocolVersion } from './constants.js';
import { encodeEmpty, encodeReasoned } from './empty.js';
import type { Packet } from './packets.js';
import { encodePublish } from './publish.js';
import { encodeSuback, encodeSubscribe } from './subscribe.js';
import { encodeUnsuback, encodeUnsubscribe } from './unsubscribe.js';

/** Encodes any packet for the given protocol level. */
export function encodePacket(p: Packet, version: ProtocolVersion): Buffer {
  switch (p.type) {
    case PacketType.CONNECT: return encodeConnect(p);
    case PacketType.CONNACK: return encodeConnack(p, version);
    case PacketType.PUBLISH: return encodePublish(p, version);
    case PacketType.PUBACK:
    case PacketType.PUBREC:
    case PacketType.PUBREL:
    case PacketType.PUBCOMP:
      return encodeAck(p.type, p.packetId, version, p.reasonCode ?? 0, p.properties);
    case PacketType.UNSUBACK: return encodeUnsuback(p, version);
    case PacketType.SUBSCRIBE: return encodeSubscribe(p, version);
    case PacketType.SUBACK: return encodeSuback(p, version);
    case PacketType.UNSUBSCRIBE: return encodeUnsubscribe(p, version);
    case PacketType.PINGREQ:
    case PacketType.PINGRESP:
      return encodeEmpty(p.type);
    case PacketType.DISCONNECT:
      return encodeReasoned(p.type, p.reasonCode ?? 0, p.properties, version);
    case PacketType.AUTH:
      if (version < 5) throw new RangeError('AUTH exists only in MQTT 5');
      return encodeReasoned(p.type, p.reasonCode, p.properties, version);
  }
}

import { PacketType, type ProtocolVersion, type QoS } from './constants.js';
import { malformed } from './errors.js';
import { startPacket, utf8Length } from './fixed-header.js';
import type { SubackPacket, SubscribePacket, SubscriptionRequest } from './packets.js';
import type { Reader } from './primitives.js';
import { readPacketId } from './publish.js';
import { topicFilterError } from './topic-rules.js';

export function decodeSubscribe(r: Reader, _version: ProtocolVersion): SubscribePacket {
  const packetId = readPacketId(r);
  const subscriptions: SubscriptionRequest[] = [];
  while (r.remaining > 0) {
    const filter = r.utf8('topic filter');
    const problem = topicFilterError(filter);
    if (problem) throw malformed(problem);
    const options = r.u8('requested QoS');
    if (options & 0xfc) throw malformed('reserved bits set in requested QoS byte', 'MQTT-3-8.3-4');
    if ((options & 0x03) === 3) throw malformed('requested QoS 3', 'MQTT-3-8.3-4');
    subscriptions.push({ filter, qos: (options & 0x03) as QoS });
  }
  if (subscriptions.length === 0) throw malformed('SUBSCRIBE without topic filters', 'MQTT-3.8.3-3');
  return { type: PacketType.SUBSCRIBE, packetId, subscriptions };
}

export function encodeSubscribe(p: SubscribePacket, _version: ProtocolVersion): Buffer {
  const lengths = p.subscriptions.map((s) => utf8Length(s.filter));
  const length = 2 + lengths.reduce((sum, l) => sum + 2 + l + 1, 0);
  const w = startPacket((PacketType.SUBSCRIBE << 4) | 0x02, length);
  w.u16(p.packetId);
  p.subscriptions.forEach((s, i) => {
    w.utf8(s.filter, lengths[i]!);
    w.u8(s.qos);
  });
  return w.buf;
}

const VALID_SUBACK_CODES_V4 = new Set([0, 1, 2, 0x80]);

export function decodeSuback(r: Reader, version: ProtocolVersion): SubackPacket {
  const packetId = readPacketId(r);
  const returnCodes: number[] = [];
  while (r.remaining > 0) {
    const code = r.u8('return code');
    // MQTT 3.1 has no failure code; 3.1.1 adds 0x80 [MQTT-3.9.3-2].
    if (!VALID_SUBACK_CODES_V4.has(code) || (version === 3 && code === 0x80)) {
      throw malformed(`invalid SUBACK return code 0x${code.toString(16)}`, 'MQTT-3.9.3-2');
    }
    returnCodes.push(code);
  }
  if (returnCodes.length === 0) throw malformed('SUBACK without return codes');
  return { type: PacketType.SUBACK, packetId, returnCodes };
}

export function encodeSuback(p: SubackPacket, _version: ProtocolVersion): Buffer {
  const w = startPacket(PacketType.SUBACK << 4, 2 + p.returnCodes.length);
  w.u16(p.packetId);
  for (const code of p.returnCodes) w.u8(code);
  return w.buf;
}

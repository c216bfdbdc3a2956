import { PacketType, type ProtocolVersion } from './constants.js';
import { malformed } from './errors.js';
import { startPacket, utf8Length } from './fixed-header.js';
import type { UnsubscribePacket } from './packets.js';
import type { Reader } from './primitives.js';
import { readPacketId } from './publish.js';
import { topicFilterError } from './topic-rules.js';

export function decodeUnsubscribe(r: Reader, _version: ProtocolVersion): UnsubscribePacket {
  const packetId = readPacketId(r);
  const filters: string[] = [];
  while (r.remaining > 0) {
    const filter = r.utf8('topic filter');
    const problem = topicFilterError(filter);
    if (problem) throw malformed(problem);
    filters.push(filter);
  }
  if (filters.length === 0) throw malformed('UNSUBSCRIBE without topic filters', 'MQTT-3.10.3-2');
  return { type: PacketType.UNSUBSCRIBE, packetId, filters };
}

export function encodeUnsubscribe(p: UnsubscribePacket, _version: ProtocolVersion): Buffer {
  const lengths = p.filters.map(utf8Length);
  const length = 2 + lengths.reduce((sum, l) => sum + 2 + l, 0);
  const w = startPacket((PacketType.UNSUBSCRIBE << 4) | 0x02, length);
  w.u16(p.packetId);
  p.filters.forEach((f, i) => w.utf8(f, lengths[i]!));
  return w.buf;
}

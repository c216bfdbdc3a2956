import { PacketType, type UnsubscribePacket } from '../../protocol/index.js';
import type { Connection } from '../connection.js';

export function handleUnsubscribe(conn: Connection, packet: UnsubscribePacket): void {
  const broker = conn.broker;
  for (const filter of packet.filters) broker.unsubscribe(conn.session!, filter);
  // UNSUBACK even when nothing matched [MQTT-3.10.4-5], with the same packet id [MQTT-3.10.4-4].
  conn.sendAck(PacketType.UNSUBACK, packet.packetId);
  broker.emit('unsubscribe', conn.client!, packet.filters);
}

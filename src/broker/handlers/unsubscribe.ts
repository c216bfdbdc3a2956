import { ReasonCode, type UnsubscribePacket } from '../../protocol/index.js';
import type { Connection } from '../connection.js';

export function handleUnsubscribe(conn: Connection, packet: UnsubscribePacket): void {
  const broker = conn.broker;
  const reasonCodes = packet.filters.map((filter) =>
    broker.unsubscribe(conn.session!, filter) ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted,
  );
  // UNSUBACK even when nothing matched [MQTT-3.10.4-5], with the same packet id [MQTT-3.10.4-4],
  // and in MQTT 5 one reason code per filter [MQTT-3.11.3-1].
  conn.sendUnsuback(packet.packetId, reasonCodes);
  broker.emit('unsubscribe', conn.client!, packet.filters);
}

import { PacketType, ProtocolError, ReasonCode, type PublishPacket } from '../../protocol/index.js';
import type { Connection } from '../connection.js';

export function handlePublish(conn: Connection, packet: PublishPacket): void | Promise<void> {
  const broker = conn.broker;
  broker.stats.publishReceived++;
  const limitError = broker.topicLimitError(packet.topic);
  if (limitError) throw new ProtocolError(limitError, ReasonCode.TopicNameInvalid);

  const session = conn.session!;
  // A repeated QoS 2 packet id before PUBREL is the same message: acknowledge, do not route again [MQTT-4.3.3-2].
  if (packet.qos === 2 && session.incomingQos2.has(packet.packetId!)) {
    const packetId = packet.packetId!;
    broker.store.whenDurable(() => conn.sendAck(PacketType.PUBREC, packetId)); // not ahead of the first PUBREC
    return;
  }
  // '$' topics belong to the broker; a client's publish to one is acknowledged and dropped.
  if (packet.topic.charCodeAt(0) === 0x24) return acknowledge(conn, packet, false);

  const authorize = broker.hooks.authorizePublish;
  if (!authorize) return acknowledge(conn, packet, true);
  const verdict = authorize(conn.client!, packet);
  if (typeof verdict === 'boolean') return acknowledge(conn, packet, verdict);
  return verdict.then((allowed) => acknowledge(conn, packet, allowed));
}

/** Routes the message if allowed, then acknowledges once the store has it durably. */
function acknowledge(conn: Connection, packet: PublishPacket, allowed: boolean): void {
  const broker = conn.broker;
  if (allowed) broker.publishFromClient(conn, packet);
  else {
    broker.stats.publishDropped++;
    broker.logger.debug({ clientId: conn.client?.id, topic: packet.topic }, 'publish not authorized, dropped');
  }
  if (packet.qos === 0) return;
  const packetId = packet.packetId!;
  if (packet.qos === 1) {
    broker.store.whenDurable(() => conn.sendAck(PacketType.PUBACK, packetId)); // [MQTT-4.3.2-2]
    return;
  }
  const session = conn.session!;
  session.incomingQos2.add(packetId);
  if (session.persistent) broker.store.putIncomingQos2(session.clientId, packetId);
  broker.store.whenDurable(() => conn.sendAck(PacketType.PUBREC, packetId)); // [MQTT-4.3.3-2]
}

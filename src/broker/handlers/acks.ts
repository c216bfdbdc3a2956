import { PacketType, ReasonCode, type AckPacket } from '../../protocol/index.js';
import type { Connection } from '../connection.js';

type Ack = AckPacket<number>;

export function handlePuback(conn: Connection, packet: Ack): void {
  if (!conn.broker.delivery.complete(conn.session!, packet.packetId, 1)) unknownId(conn, 'PUBACK', packet.packetId);
}

export function handlePubrec(conn: Connection, packet: Ack): void {
  if (!conn.broker.delivery.released(conn.session!, packet.packetId, packet.reasonCode ?? 0)) unknownId(conn, 'PUBREC', packet.packetId);
}

export function handlePubcomp(conn: Connection, packet: Ack): void {
  if (!conn.broker.delivery.complete(conn.session!, packet.packetId, 2)) unknownId(conn, 'PUBCOMP', packet.packetId);
}

/**
 * PUBREL ends an incoming QoS 2 flow; PUBCOMP is sent even for an id already
 * released [MQTT-4.3.3-2] (MQTT 5: with 0x92, Packet Identifier not found).
 */
export function handlePubrel(conn: Connection, packet: Ack): void {
  const session = conn.session!;
  const changesBefore = conn.broker.store.changes;
  const known = session.incomingQos2.delete(packet.packetId);
  if (known && session.persistent) conn.broker.store.deleteIncomingQos2(session.clientId, packet.packetId);
  const reasonCode = known ? ReasonCode.Success : ReasonCode.PacketIdentifierNotFound;
  conn.acknowledge(PacketType.PUBCOMP, packet.packetId, reasonCode, changesBefore);
}

function unknownId(conn: Connection, what: string, packetId: number): void {
  // Late or duplicate acknowledgements happen after a resend; 3.1.1 defines no error for them.
  conn.broker.logger.debug({ clientId: conn.client?.id, packetId }, `${what} for unknown packet id ignored`);
}

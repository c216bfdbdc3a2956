import { PacketType, PACKET_TYPE_NAMES, protocolViolation, type Packet } from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from './acks.js';
import { handleAuth } from './auth.js';
import { handleConnect } from './connect.js';
import { handleDisconnect } from './disconnect.js';
import { handlePingreq } from './ping.js';
import { handlePublish } from './publish.js';
import { handleSubscribe } from './subscribe.js';
import { handleUnsubscribe } from './unsubscribe.js';

/** One handler per inbound packet type. A returned promise holds later packets of the connection back. */
export function dispatch(conn: Connection, packet: Packet): void | Promise<void> {
  if (conn.state === 'awaiting-connect') {
    if (packet.type !== PacketType.CONNECT) {
      throw protocolViolation(`first packet must be CONNECT, got ${PACKET_TYPE_NAMES[packet.type]}`, 'MQTT-3.1.0-1');
    }
    return handleConnect(conn, packet);
  }
  if (conn.state === 'connecting') {
    // Between CONNECT and CONNACK only AUTH may come, during enhanced authentication [MQTT-4.12.0-?].
    if (packet.type !== PacketType.AUTH) throw protocolViolation(`${PACKET_TYPE_NAMES[packet.type]} before CONNACK`);
    return handleAuth(conn, packet);
  }
  switch (packet.type) {
    case PacketType.PUBLISH: return handlePublish(conn, packet);
    case PacketType.PUBACK: return handlePuback(conn, packet);
    case PacketType.PUBREC: return handlePubrec(conn, packet);
    case PacketType.PUBREL: return handlePubrel(conn, packet);
    case PacketType.PUBCOMP: return handlePubcomp(conn, packet);
    case PacketType.SUBSCRIBE: return handleSubscribe(conn, packet);
    case PacketType.UNSUBSCRIBE: return handleUnsubscribe(conn, packet);
    case PacketType.PINGREQ: return handlePingreq(conn);
    case PacketType.DISCONNECT: return handleDisconnect(conn, packet);
    case PacketType.AUTH: return handleAuth(conn, packet);
    case PacketType.CONNECT:
      throw protocolViolation('second CONNECT on one connection', 'MQTT-3.1.0-2');
    default:
      throw protocolViolation(`a client must not send ${PACKET_TYPE_NAMES[packet.type]}`);
  }
}

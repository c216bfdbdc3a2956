import { randomBytes } from 'node:crypto';
import { ConnectReturnCode, MAX_CLIENT_ID_LENGTH_V31, type ConnectPacket } from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import type { ClientInfo } from '../hooks.js';

export function handleConnect(conn: Connection, packet: ConnectPacket): void | Promise<void> {
  const broker = conn.broker;
  conn.version = packet.protocolVersion;
  conn.keepalive = packet.keepalive;
  conn.state = 'connecting';

  let clientId = packet.clientId;
  // MQTT 3.1 identifiers are 1 to 23 characters; longer ones are rejected with return code 2.
  if (packet.protocolVersion === 3 && [...clientId].length > MAX_CLIENT_ID_LENGTH_V31) {
    return refuse(conn, ConnectReturnCode.IdentifierRejected);
  }
  if (clientId.length === 0) {
    // 3.1 requires an identifier; 3.1.1 allows an empty one only with a clean session [MQTT-3.1.3-8].
    if (packet.protocolVersion === 3 || !packet.clean) return refuse(conn, ConnectReturnCode.IdentifierRejected);
    clientId = `moat-${randomBytes(9).toString('base64url')}`; // [MQTT-3.1.3-6]
  }
  if (broker.isClosing || broker.stats.connectedClients >= broker.limits.maxConnections) {
    return refuse(conn, ConnectReturnCode.ServerUnavailable);
  }
  if (packet.will && broker.topicLimitError(packet.will.topic)) {
    return refuse(conn, ConnectReturnCode.NotAuthorized);
  }

  const verdict = broker.authenticate(conn, packet);
  if (typeof verdict === 'number') return finishConnect(conn, packet, clientId, verdict);
  return verdict.then((code) => finishConnect(conn, packet, clientId, code));
}

function finishConnect(conn: Connection, packet: ConnectPacket, clientId: string, returnCode: number): void {
  if (conn.state !== 'connecting') return; // the socket went away while a hook was deciding
  if (returnCode !== ConnectReturnCode.Accepted) return refuse(conn, returnCode);
  const broker = conn.broker;
  const client: ClientInfo = {
    id: clientId,
    username: packet.username,
    protocolVersion: packet.protocolVersion,
    clean: packet.clean,
    keepalive: packet.keepalive,
    remoteAddress: conn.peer.remoteAddress,
    remotePort: conn.peer.remotePort,
    listener: conn.listener.name,
  };
  conn.client = client;
  // The will may wait a long time: keep its own copy, not a view of a 64 KiB socket chunk.
  conn.will = packet.will && { ...packet.will, payload: Buffer.from(packet.will.payload) };

  const { session, present } = broker.attachSession(conn, clientId, packet.clean);
  conn.state = 'connected';
  // Session present is 0 for a clean session [MQTT-3.2.2-1] and tells whether state was resumed otherwise [MQTT-3.2.2-2].
  conn.sendConnack(ConnectReturnCode.Accepted, present);
  if (present) {
    broker.delivery.resendInflight(session);
    broker.delivery.drainQueue(session);
  }
  // After the resends, so that a listener publishing here cannot overtake them [MQTT-4.6.0-1].
  broker.clientConnected(conn);
}

/** A CONNACK with a non-zero return code is followed by closing the connection [MQTT-3.2.2-5]. */
function refuse(conn: Connection, returnCode: number): void {
  conn.sendConnack(returnCode, false); // session present 0 with a refusal [MQTT-3.2.2-4]
  conn.close(`connection refused, return code ${returnCode}`, { publishWill: false });
}

import { protocolViolation, ReasonCode, type DisconnectPacket } from '../../protocol/index.js';
import type { Connection } from '../connection.js';

/**
 * A DISCONNECT discards the will [MQTT-3.14.4-3] and closes the connection [MQTT-3.14.4-1].
 * MQTT 5: only reason 0x00 discards the will [MQTT-3.1.2-8] (0x04 asks for it, and a client
 * reporting an error keeps it), and the Session Expiry Interval may change (but not from 0
 * in CONNECT: a Protocol Error, section 3.14.2.2.2).
 */
export function handleDisconnect(conn: Connection, packet: DisconnectPacket): void {
  const session = conn.session!;
  const expiry = packet.properties?.sessionExpiryInterval;
  if (expiry !== undefined) {
    if (conn.requestedSessionExpiry === 0 && expiry !== 0) {
      throw protocolViolation('session expiry set on DISCONNECT after 0 at CONNECT');
    }
    session.expiryInterval = Math.min(expiry, conn.broker.capabilities.maximumSessionExpiryInterval);
    conn.broker.saveSessionRecord(session);
  }
  const reasonCode = packet.reasonCode ?? ReasonCode.Success;
  if (reasonCode !== ReasonCode.Success) {
    conn.close(`client disconnected with reason 0x${reasonCode.toString(16)}`, { cause: 'client' });
    return;
  }
  conn.will = undefined;
  conn.close('client disconnected', { graceful: true, publishWill: false, cause: 'client' });
}

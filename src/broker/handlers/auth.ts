import { protocolViolation, ReasonCode, type AuthPacket } from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import type { AuthStep } from '../enhanced-auth.js';
import { continueAuthentication } from './connect.js';

/**
 * AUTH (MQTT 5 section 4.12): the next round of the exchange started by CONNECT,
 * or a re-authentication once connected.
 */
export function handleAuth(conn: Connection, packet: AuthPacket): void | Promise<void> {
  const method = packet.properties?.authenticationMethod;
  // Only with the method the connection was set up with [MQTT-4.12.0-5], [MQTT-4.12.1-1].
  if (conn.authMethod === undefined || method !== conn.authMethod) {
    throw protocolViolation('AUTH without the Authentication Method of the CONNECT', 'MQTT-4.12.0-5');
  }
  const data = packet.properties?.authenticationData;
  if (conn.state === 'connecting') {
    if (packet.reasonCode !== ReasonCode.ContinueAuthentication || !conn.authExchange) {
      throw protocolViolation('unexpected AUTH reason code while connecting');
    }
    return continueAuthentication(conn, data);
  }
  if (packet.reasonCode === ReasonCode.ReAuthenticate) {
    conn.authExchange = conn.broker.authMethods.get(method)!.begin(conn.broker.reauthenticationRequest(conn), true);
  } else if (packet.reasonCode !== ReasonCode.ContinueAuthentication || !conn.authExchange) {
    throw protocolViolation('AUTH out of sequence');
  }
  let step: AuthStep | Promise<AuthStep>;
  try {
    step = conn.authExchange.step(data);
  } catch {
    return reauthenticationDone(conn, { result: 'failure' });
  }
  if (step instanceof Promise) return step.then((s) => reauthenticationDone(conn, s), () => reauthenticationDone(conn, { result: 'failure' }));
  reauthenticationDone(conn, step);
}

function reauthenticationDone(conn: Connection, step: AuthStep): void {
  if (!conn.isConnected) return;
  const method = conn.authMethod!;
  if (step.result === 'continue') {
    conn.sendAuth(ReasonCode.ContinueAuthentication, step.data ? { authenticationMethod: method, authenticationData: step.data } : { authenticationMethod: method });
    return;
  }
  conn.authExchange = undefined;
  if (step.result === 'success') {
    conn.sendAuth(ReasonCode.Success, step.data ? { authenticationMethod: method, authenticationData: step.data } : { authenticationMethod: method });
    return;
  }
  // A failed re-authentication ends the connection [MQTT-4.12.1-2]; 0x87 is the DISCONNECT code for it
  // (0x86 exists only in CONNACK).
  conn.disconnect(ReasonCode.NotAuthorized, 're-authentication failed');
}

import type { Connection } from '../connection.js';

/** A DISCONNECT discards the will [MQTT-3.14.4-3] and closes the connection [MQTT-3.14.4-1]. */
export function handleDisconnect(conn: Connection): void {
  conn.will = undefined;
  conn.close('client disconnected', { graceful: true, publishWill: false });
}

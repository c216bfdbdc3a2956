import type { Connection } from '../connection.js';

export function handlePingreq(conn: Connection): void {
  conn.sendPingresp(); // [MQTT-3.12.4-1]
}

import { SUBACK_FAILURE_V4, PacketType, encodeSuback, type QoS, type SubscribePacket } from '../../protocol/index.js';
import type { Connection } from '../connection.js';

type Verdict = boolean | QoS;

export function handleSubscribe(conn: Connection, packet: SubscribePacket): void | Promise<void> {
  const broker = conn.broker;
  const authorize = broker.hooks.authorizeSubscribe;
  const verdicts: Array<Verdict | Promise<Verdict>> = packet.subscriptions.map((s) => {
    if (broker.topicLimitError(s.filter)) return false;
    return authorize ? authorize(conn.client!, { filter: s.filter, qos: s.qos }) : true;
  });
  if (verdicts.some((v) => v instanceof Promise)) {
    return Promise.all(verdicts).then((settled) => completeSubscribe(conn, packet, settled));
  }
  completeSubscribe(conn, packet, verdicts as Verdict[]);
}

function completeSubscribe(conn: Connection, packet: SubscribePacket, verdicts: Verdict[]): void {
  if (!conn.isConnected) return;
  const broker = conn.broker;
  const session = conn.session!;
  const granted: QoS[] = [];
  const returnCodes = packet.subscriptions.map((s, i) => {
    const verdict = verdicts[i]!;
    if (verdict === false) return SUBACK_FAILURE_V4;
    const qos = (verdict === true ? s.qos : Math.min(verdict, s.qos)) as QoS;
    broker.subscribe(session, s.filter, qos); // replaces an existing identical filter [MQTT-3.8.4-3]
    granted.push(qos);
    return qos;
  });
  // SUBACK has the SUBSCRIBE's packet id [MQTT-3.8.4-2] and one return code per filter [MQTT-3.8.4-5].
  conn.write(encodeSuback({ type: PacketType.SUBACK, packetId: packet.packetId, returnCodes }, conn.version));
  const accepted = packet.subscriptions.filter((_, i) => returnCodes[i] !== SUBACK_FAILURE_V4);
  accepted.forEach((s, i) => broker.sendRetained(session, s.filter, granted[i]!)); // [MQTT-3.3.1-6]
  broker.emit('subscribe', conn.client!, accepted.map((s, i) => ({ filter: s.filter, qos: granted[i]! })));
}

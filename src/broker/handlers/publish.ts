import { isUtf8 } from 'node:buffer';
import {
  PacketType, ProtocolError, protocolViolation, ReasonCode, topicNameError, type Properties, type PublishPacket,
} from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import { expiryDeadline } from '../message.js';
import { LATENCY_SAMPLE_EVERY } from '../stats.js';

export function handlePublish(conn: Connection, packet: PublishPacket): void | Promise<void> {
  const broker = conn.broker;
  const stats = broker.stats;
  stats.publishReceivedByQos[packet.qos]++;
  stats.payloadBytesReceivedByQos[packet.qos] += packet.payload.length;
  conn.publishesIn++;
  // One in LATENCY_SAMPLE_EVERY is timed to its deliveries (a clock read for each would cost every message).
  const sampledAt = (++stats.publishReceived & (LATENCY_SAMPLE_EVERY - 1)) === 0 ? performance.now() : 0;
  const session = conn.session!;
  if (conn.version === 5) checkV5(conn, packet);
  const limitError = broker.topicLimitError(packet.topic);
  if (limitError) throw new ProtocolError(limitError, ReasonCode.TopicNameInvalid);

  // A repeated QoS 2 packet id before PUBREL is the same message: acknowledge, do not route again [MQTT-4.3.3-2].
  if (packet.qos === 2 && session.incomingQos2.has(packet.packetId!)) {
    conn.acknowledge(PacketType.PUBREC, packet.packetId!, ReasonCode.Success, broker.store.changes); // not ahead of the first PUBREC
    return;
  }
  // '$' topics belong to the broker; a client's publish to one is acknowledged and dropped, unless a hook takes it
  // as a command (`$CONTROL/...`), which is not routed either.
  if (packet.topic.charCodeAt(0) === 0x24) {
    const taken = broker.hooks.receiveControl?.(conn.client!, packet) === true;
    return acknowledge(conn, packet, taken ? ReasonCode.Success : ReasonCode.NotAuthorized, false);
  }
  // Client-to-broker payload encryption (src/payload): decrypted here, before anything reads the payload.
  const openPayload = broker.hooks.openPayload;
  if (openPayload !== undefined) {
    const verdict = openPayload(conn.client!, packet);
    if (verdict !== undefined) return acknowledge(conn, packet, verdict, verdict !== ReasonCode.Success);
  }
  // Bounded growth: a new retained topic beyond the limit is refused (counted), not stored over others.
  if (packet.retain && packet.payload.length > 0 && broker.retained.wouldExceed(packet.topic, broker.limits.maxRetainedMessages)) {
    broker.stats.retainedRefused++;
    return acknowledge(conn, packet, ReasonCode.QuotaExceeded);
  }
  if (packet.properties?.payloadFormatIndicator === 1 && !isUtf8(packet.payload)) {
    return acknowledge(conn, packet, ReasonCode.PayloadFormatInvalid); // [MQTT-3.3.2-4]
  }

  const authorize = broker.hooks.authorizePublish;
  if (!authorize) return acknowledge(conn, packet, ReasonCode.Success, true, sampledAt);
  const verdict = authorize(conn.client!, packet);
  if (typeof verdict === 'boolean') return acknowledge(conn, packet, verdict ? ReasonCode.Success : ReasonCode.NotAuthorized, true, sampledAt);
  return verdict.then((allowed) => acknowledge(conn, packet, allowed ? ReasonCode.Success : ReasonCode.NotAuthorized, true, sampledAt));
}

/** MQTT 5 rules: topic aliases, what a client may not send, and the broker's advertised limits. */
function checkV5(conn: Connection, packet: PublishPacket): void {
  const caps = conn.broker.capabilities;
  const props = packet.properties;
  const alias = props?.topicAlias;
  if (alias !== undefined) {
    if (alias > caps.topicAliasMaximum) {
      throw new ProtocolError(`topic alias ${alias} above the maximum ${caps.topicAliasMaximum}`, ReasonCode.TopicAliasInvalid, 'MQTT-3.3.2-9');
    }
    if (packet.topic.length > 0) (conn.incomingAliases ??= new Map()).set(alias, packet.topic);
    else {
      const topic = conn.incomingAliases?.get(alias);
      if (topic === undefined) throw protocolViolation(`topic alias ${alias} was never set`, 'MQTT-3.3.2-8');
      packet.topic = topic;
    }
  } else if (packet.topic.length === 0) {
    throw protocolViolation('empty topic name without a topic alias', 'MQTT-3.3.2-8');
  }
  if (props?.subscriptionIdentifiers) throw protocolViolation('a client must not send a subscription identifier', 'MQTT-3.3.4-6');
  if (props?.responseTopic !== undefined && topicNameError(props.responseTopic)) {
    throw protocolViolation('the Response Topic must be a valid topic name', 'MQTT-3.3.2-14');
  }
  if (packet.qos > caps.maximumQoS) throw new ProtocolError(`QoS ${packet.qos} not supported`, ReasonCode.QoSNotSupported, 'MQTT-3.2.2-11');
  if (packet.retain && !caps.retainAvailable) throw new ProtocolError('retain not supported', ReasonCode.RetainNotSupported, 'MQTT-3.2.2-14');
  if (packet.qos > 0 && !(packet.qos === 2 && conn.session!.incomingQos2.has(packet.packetId!))) {
    if (conn.pendingPubacks + conn.session!.incomingQos2.size >= caps.receiveMaximum) {
      throw new ProtocolError('more unacknowledged publishes than Receive Maximum', ReasonCode.ReceiveMaximumExceeded, 'MQTT-3.3.4-9');
    }
  }
}

/**
 * Routes the message if allowed (and `route`), then acknowledges once the store has it durably. `sampledAt`: when
 * the PUBLISH arrived, if it is one whose time to delivery is measured.
 */
function acknowledge(conn: Connection, packet: PublishPacket, verdict: number, route = true, sampledAt = 0): void {
  const broker = conn.broker;
  const changesBefore = broker.store.changes;
  let reasonCode: number = verdict;
  if (verdict === ReasonCode.Success && !route) {
    // Taken by a hook (a command): nothing to route.
  } else if (verdict === ReasonCode.Success) {
    const delivered = broker.publishFromClient(
      conn, packet, forwardable(packet.properties), expiryDeadline(packet.properties?.messageExpiryInterval),
    );
    if (delivered === 0) reasonCode = ReasonCode.NoMatchingSubscribers;
    else if (sampledAt !== 0) broker.timeDelivery(sampledAt);
  } else {
    broker.stats.drop(verdict === ReasonCode.NotAuthorized ? 'notAuthorized' : 'refused');
    broker.logger.debug({ clientId: conn.client?.id, topic: packet.topic, reasonCode: verdict }, 'publish refused, dropped');
    if (verdict === ReasonCode.NotAuthorized && broker.unauthorizedPublish === 'disconnect' && packet.topic.charCodeAt(0) !== 0x24) {
      conn.disconnect(ReasonCode.NotAuthorized, `not authorized to publish to ${packet.topic}`);
      return;
    }
  }
  if (packet.qos === 0) return;
  const packetId = packet.packetId!;
  if (packet.qos === 1) {
    conn.acknowledge(PacketType.PUBACK, packetId, reasonCode, changesBefore);
    return;
  }
  // A PUBREC with a failure code ends the QoS 2 flow at once (MQTT 5 section 4.3.3).
  if (reasonCode < 0x80) {
    const session = conn.session!;
    session.incomingQos2.add(packetId);
    if (session.persistent) broker.store.putIncomingQos2(session.clientId, packetId);
  }
  conn.acknowledge(PacketType.PUBREC, packetId, reasonCode, changesBefore);
}

/** Properties forwarded to subscribers: all but the Topic Alias, which belongs to one connection [MQTT-3.3.2-7]. */
function forwardable(props: Properties | undefined): Properties | undefined {
  if (props?.topicAlias === undefined) return props;
  const { topicAlias: _alias, ...rest } = props;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

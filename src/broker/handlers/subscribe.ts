import {
  isWildcardFilter, parseSharedFilter, ProtocolError, ReasonCode, SUBACK_FAILURE_V4, type QoS, type SubscribePacket,
  type SubscriptionRequest,
} from '../../protocol/index.js';
import type { SubscriptionRecord } from '../../store/store.js';
import type { Connection } from '../connection.js';

/** A grant (true = as requested, or a QoS cap), or a refusal carrying its MQTT 5 reason code. */
type Verdict = boolean | QoS | { refused: number };

export function handleSubscribe(conn: Connection, packet: SubscribePacket): void | Promise<void> {
  const broker = conn.broker;
  const caps = broker.capabilities;
  const subscriptionId = packet.properties?.subscriptionIdentifiers?.[0];
  if (subscriptionId !== undefined && !caps.subscriptionIdentifiersAvailable) {
    throw new ProtocolError('subscription identifiers are not supported', ReasonCode.SubscriptionIdentifiersNotSupported);
  }
  const authorize = broker.hooks.authorizeSubscribe;
  const verdicts: Array<Verdict | Promise<Verdict>> = packet.subscriptions.map((s) => {
    if (broker.topicLimitError(s.filter)) return { refused: ReasonCode.TopicFilterInvalid };
    const shared = parseSharedFilter(s.filter);
    if (shared && !caps.sharedSubscriptionAvailable) return { refused: ReasonCode.SharedSubscriptionsNotSupported };
    if (!caps.wildcardSubscriptionAvailable && isWildcardFilter(shared ? shared.filter : s.filter)) {
      return { refused: ReasonCode.WildcardSubscriptionsNotSupported };
    }
    if (!authorize) return true;
    const answer = authorize(conn.client!, { filter: s.filter, qos: s.qos });
    return answer instanceof Promise ? answer.then(notAuthorizedIfFalse) : notAuthorizedIfFalse(answer);
  });
  if (verdicts.some((v) => v instanceof Promise)) {
    return Promise.all(verdicts).then((settled) => completeSubscribe(conn, packet, settled, subscriptionId));
  }
  completeSubscribe(conn, packet, verdicts as Verdict[], subscriptionId);
}

function notAuthorizedIfFalse(answer: boolean | QoS): Verdict {
  return answer === false ? { refused: ReasonCode.NotAuthorized } : answer;
}

function completeSubscribe(conn: Connection, packet: SubscribePacket, verdicts: Verdict[], subscriptionId: number | undefined): void {
  if (!conn.isConnected) return;
  const broker = conn.broker;
  const session = conn.session!;
  const granted: Array<{ request: SubscriptionRequest; record: SubscriptionRecord; isNew: boolean }> = [];
  const returnCodes = packet.subscriptions.map((s, i) => {
    const verdict = verdicts[i]!;
    if (typeof verdict === 'object') return conn.version === 5 ? verdict.refused : SUBACK_FAILURE_V4;
    let qos = (verdict === true ? s.qos : Math.min(verdict as number, s.qos)) as QoS;
    if (qos > broker.capabilities.maximumQoS) qos = broker.capabilities.maximumQoS;
    const record: SubscriptionRecord = { filter: s.filter, qos };
    if (s.noLocal) record.noLocal = true;
    if (s.retainAsPublished) record.retainAsPublished = true;
    if (subscriptionId !== undefined) record.subscriptionId = subscriptionId;
    // Replaces an existing identical filter [MQTT-3.8.4-3].
    granted.push({ request: s, record, isNew: broker.subscribe(session, record) });
    return qos;
  });
  // SUBACK has the SUBSCRIBE's packet id [MQTT-3.8.4-2] and one return code per filter [MQTT-3.8.4-5].
  conn.sendSuback(packet.packetId, returnCodes);
  for (const { request, record, isNew } of granted) {
    // Retained messages: never for a shared subscription; per Retain Handling otherwise [MQTT-3.3.1-9..11].
    if (parseSharedFilter(request.filter)) continue;
    const handling = request.retainHandling ?? 0;
    if (handling === 0 || (handling === 1 && isNew)) broker.sendRetained(session, record); // [MQTT-3.3.1-6]
  }
  broker.emit('subscribe', conn.client!, granted.map((g) => ({ filter: g.record.filter, qos: g.record.qos })));
}

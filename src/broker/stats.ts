import { reasonName } from '../protocol/index.js';
import { LatencyHistogram } from '../measure/latency.js';

/** Why a message was not delivered (each also counts in `publishDropped`); /metrics labels them in snake_case. */
export class DropCounts {
  /** Its Message Expiry Interval passed before it could be sent. */
  expired = 0;
  /** QoS 0 to a client that is not connected. */
  offline = 0;
  /** QoS 0 to a client whose socket is not taking bytes (including load shedding under memory pressure). */
  slowConsumer = 0;
  /** Larger than the client's Maximum Packet Size [MQTT-3.1.2-25]. */
  tooLarge = 0;
  /** Refused by authorization: on publish, or on delivery after a permission was revoked. */
  notAuthorized = 0;
  /** Refused on publish for another reason (retained-message limit, payload format invalid). */
  refused = 0;
  /** The session's queue was full. */
  queueFull = 0;
  /** The publisher went past its message or byte rate. */
  rateLimited = 0;
  /** A shared subscription group whose members had all gone. */
  noSubscriber = 0;
  /** Multi-core mode: the worker it was for was not reading. */
  peerStuck = 0;
}

/** Counters behind $SYS/broker/... and /metrics; plain fields so the hot path only increments. */
export class BrokerStats {
  readonly startedAt = Date.now();
  packetsReceived = 0;
  packetsSent = 0;
  bytesReceived = 0;
  bytesSent = 0;
  publishReceived = 0;
  publishSent = 0;
  /** Messages not delivered because of a limit (queue full, slow consumer, offline QoS 0). */
  publishDropped = 0;
  /** Messages dropped because a session queue was full (either policy); also counted in publishDropped. */
  queueDropped = 0;
  /** Retained publishes refused because max_retained_messages was reached. */
  retainedRefused = 0;
  /** TLS handshakes that failed, on every TLS listener. */
  tlsHandshakesFailed = 0;
  /** CONNECTs refused because memory was past the high-water mark. */
  overloadRefused = 0;
  /** QoS 0 messages not sent to slow consumers while memory was past the high-water mark (also in publishDropped). */
  shed = 0;
  /** Times memory went past the high-water mark. */
  overloads = 0;
  /** Stored sessions dropped to make room under a session cap, and new ones refused because nothing could be dropped. */
  sessionsDropped = 0;
  sessionsRefused = 0;
  connectedClients = 0;
  maxConnectedClients = 0;
  totalConnections = 0;
  /** CONNECTs accepted. */
  connectsAccepted = 0;
  /** By QoS (index 0, 1, 2): PUBLISH packets received from clients and sent to them, and their payload bytes. */
  readonly publishReceivedByQos = [0, 0, 0];
  readonly payloadBytesReceivedByQos = [0, 0, 0];
  readonly publishSentByQos = [0, 0, 0];
  readonly payloadBytesSentByQos = [0, 0, 0];
  readonly droppedBy = new DropCounts();
  /** CONNECTs refused, by the MQTT 5 reason (the 3.1.1 return code's equivalent), e.g. BadUserNameOrPassword. */
  readonly connectsRefusedBy: Record<string, number> = {};
  /** Connections that ended after their CONNECT was accepted, by cause (see `DisconnectCause`). */
  readonly disconnectsBy: Record<string, number> = {};
  /** From a PUBLISH arriving to its deliveries written to the subscribers' sockets, sampled (see `LATENCY_SAMPLE_EVERY`). */
  readonly deliveryLatency = new LatencyHistogram();

  /** A message not delivered, and why. */
  drop(cause: keyof DropCounts): void {
    this.publishDropped++;
    this.droppedBy[cause]++;
  }

  /** `reason`: a reason label, or `will_not_authorized` (the ACL refused the will: not an authentication failure). */
  connectRefused(reason: string): void {
    this.connectsRefusedBy[reason] = (this.connectsRefusedBy[reason] ?? 0) + 1;
  }

  disconnected(cause: string): void {
    this.disconnectsBy[cause] = (this.disconnectsBy[cause] ?? 0) + 1;
  }
}

/** An MQTT 5 reason code as a metric label: BadUserNameOrPassword is bad_user_name_or_password. */
export function reasonLabel(code: number): string {
  return snakeCase(reasonName(code));
}

/** BadUserNameOrPassword is bad_user_name_or_password; "QoS" is one word (QoSNotSupported: qos_not_supported). */
export function snakeCase(name: string): string {
  return name.replace(/QoS/g, 'Qos').replace(/(?<=[a-z0-9])(?=[A-Z])/g, '_').toLowerCase();
}

/** One publish in this many has its publish-to-delivery time measured (a power of two: a mask, not a division). */
export const LATENCY_SAMPLE_EVERY = 64;

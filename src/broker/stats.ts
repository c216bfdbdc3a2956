/** Counters behind $SYS/broker/...; plain fields so the hot path only increments. */
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
}

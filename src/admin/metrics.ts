import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { LATENCY_BUCKETS, type LatencyFigures } from '../measure/latency.js';
import { snakeCase } from '../broker/stats.js';
import type { BrokerFigures, MetricsSource, ScrapeFigures } from './figures.js';

export { brokerFigures, type BrokerFigures, type MetricsSource, type ScrapeFigures } from './figures.js';

/**
 * /metrics in the Prometheus text format. Nothing here runs per message: at each scrape the source is read once
 * (`MetricsSource`: the broker of this process, or the sums over the workers of a multi-core broker), from what the
 * broker already counts (BrokerStats, the guard's counters) or holds (connections, sessions, retained messages), and
 * process figures (CPU, memory, event-loop lag, garbage collection) of this process come from prom-client's default
 * metrics; a multi-core broker adds each worker's as `moat_worker_*{worker="i"}`. docs/operations.md lists every metric.
 */

export interface Metrics {
  /** One scrape: the source read once, every metric written from what it gave. */
  metrics(): Promise<string>;
  readonly contentType: string;
}

export function createMetrics(source: MetricsSource): Metrics {
  const registers = [new Registry()];
  const registry = registers[0]!;
  collectDefaultMetrics({ register: registry });
  /** The figures of the scrape under way: set just before the registry collects (every collect runs at once). */
  let current: ScrapeFigures | undefined;
  const figures = (): BrokerFigures => current!.broker;
  const stats = (): BrokerFigures['stats'] => current!.broker.stats;

  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({ name, help, registers, collect() {
      this.reset();
      this.inc(read());
    } });
  };
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({ name, help, registers, collect() {
      this.set(read());
    } });
  };
  const labelled = <L extends string>(kind: 'counter' | 'gauge', name: string, help: string, label: L, read: () => Iterable<[string, number]>): void => {
    if (kind === 'counter') {
      new Counter({ name, help, labelNames: [label], registers, collect() {
        this.reset();
        for (const [value, n] of read()) this.inc({ [label]: value } as Record<L, string>, n);
      } });
    } else {
      new Gauge({ name, help, labelNames: [label], registers, collect() {
        this.reset();
        for (const [value, n] of read()) this.set({ [label]: value } as Record<L, string>, n);
      } });
    }
  };

  /** A histogram whose counts are kept by the broker (LatencyHistogram) and only written out here. */
  const histogram = (name: string, help: string, read: () => LatencyFigures | undefined): void => {
    registry.registerMetric({
      name, help, type: 'histogram',
      get() {
        const h = read();
        if (!h) return { name, help, type: 'histogram', values: [], aggregator: 'sum' };
        const values: Array<{ metricName: string; labels: Record<string, string>; value: number }> = [];
        let cumulative = 0;
        LATENCY_BUCKETS.forEach((bound, i) => {
          cumulative += h.counts[i] ?? 0;
          values.push({ metricName: `${name}_bucket`, labels: { le: String(bound) }, value: cumulative });
        });
        values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: h.count });
        values.push({ metricName: `${name}_sum`, labels: {}, value: h.sum });
        values.push({ metricName: `${name}_count`, labels: {}, value: h.count });
        return { name, help, type: 'histogram', values, aggregator: 'sum' };
      },
    } as never);
  };

  new Gauge({ name: 'moat_build_info', help: 'Always 1, labelled with the broker version.', labelNames: ['version'], registers, collect() {
    this.set({ version: figures().version }, 1);
  } });

  // Connections: counted by iterating them at scrape time (nothing is kept per listener on the hot path).
  new Gauge({ name: 'moat_connections', help: 'Connected MQTT clients (CONNECT accepted), by listener and protocol version.', labelNames: ['listener', 'protocol'], registers, collect() {
    this.reset();
    for (const { listener, protocol, count } of figures().connections) this.set({ listener, protocol }, count);
  } });
  gauge('moat_connections_max', 'The most clients connected at once since the broker started.', () => stats().maxConnectedClients);
  counter('moat_connections_opened_total', 'Connections accepted by the listeners (before CONNECT; refused ones included).', () => stats().totalConnections);
  counter('moat_connects_accepted_total', 'CONNECTs accepted (CONNACK with success).', () => stats().connectsAccepted);
  labelled('counter', 'moat_connects_refused_total', 'CONNECTs refused, by reason: the MQTT 5 reason code sent (for MQTT 3.1/3.1.1 clients, the equivalent of the return code sent), in snake case: bad_user_name_or_password, not_authorized, banned, client_identifier_not_valid, server_unavailable, server_busy, unsupported_protocol_version, bad_authentication_method, malformed_packet, protocol_error, ...', 'reason',
    () => Object.entries(stats().connectsRefusedBy));
  labelled('counter', 'moat_authentication_failures_total', 'CONNECTs refused by authentication, by reason: bad_user_name_or_password (unknown user or wrong password), not_authorized (the credentials are right but this client may not connect: client identifier binding, certificate, hook), bad_authentication_method (an enhanced authentication method not offered, or its exchange failed).', 'reason',
    () => AUTHENTICATION_REASONS.map((reason) => [reason, stats().connectsRefusedBy[reason] ?? 0]));
  labelled('counter', 'moat_disconnects_total', 'Connections ended after their CONNECT was accepted, by cause: client (the client sent DISCONNECT), connection_lost (the network connection closed without DISCONNECT), network_error, keep_alive_timeout, session_taken_over, administrative_action (kicked through the API), not_authorized, message_rate_too_high, quota_exceeded, maximum_connect_time (credentials expired), server_shutting_down, or a protocol error\'s reason (malformed_packet, protocol_error, topic_alias_invalid, receive_maximum_exceeded, packet_too_large, ...).', 'cause',
    () => Object.entries(stats().disconnectsBy));

  // Sessions and what they hold: one pass over the sessions per scrape.
  new Gauge({ name: 'moat_sessions', help: 'Sessions held, by state: online (a client connected) or offline (a stored session waiting for its client).', labelNames: ['state'], registers, collect() {
    this.set({ state: 'online' }, figures().sessions.online);
    this.set({ state: 'offline' }, figures().sessions.offline);
  } });
  gauge('moat_queued_messages', 'Messages waiting in session queues (offline clients, full in-flight windows, congested sockets).', () => figures().sessions.queued);
  gauge('moat_queued_bytes', 'Bytes of the messages waiting in session queues.', () => figures().sessions.queuedBytes);
  gauge('moat_inflight_messages', 'QoS 1 and 2 messages sent and not yet acknowledged.', () => figures().sessions.inflight);
  gauge('moat_inflight_bytes', 'Bytes of the QoS 1 and 2 messages not yet acknowledged.', () => figures().sessions.inflightBytes);
  gauge('moat_sessions_stored', 'Stored sessions counted by the session caps (clean session off, or a session expiry).', () => figures().sessions.stored);
  counter('moat_sessions_dropped_total', 'Stored sessions dropped to make room under a session cap.', () => stats().sessionsDropped);
  counter('moat_sessions_refused_total', 'Clients refused because a session cap was reached and nothing could make room.', () => stats().sessionsRefused);
  gauge('moat_subscriptions', 'Subscriptions held (shared ones included).', () => figures().subscriptions);
  gauge('moat_retained_messages', 'Retained messages held.', () => figures().retained);
  counter('moat_retained_refused_total', 'Retained publishes refused because max_retained_messages was reached.', () => stats().retainedRefused);

  // Traffic.
  counter('moat_packets_received_total', 'MQTT packets received, of every type.', () => stats().packetsReceived);
  counter('moat_packets_sent_total', 'MQTT packets sent, of every type.', () => stats().packetsSent);
  counter('moat_bytes_received_total', 'Bytes received from clients.', () => stats().bytesReceived);
  counter('moat_bytes_sent_total', 'Bytes sent to clients.', () => stats().bytesSent);
  const byQos = (list: () => number[]) => (): Array<[string, number]> => list().map((n, qos) => [String(qos), n]);
  labelled('counter', 'moat_messages_received_total', 'PUBLISH packets received from clients, by QoS.', 'qos', byQos(() => stats().publishReceivedByQos));
  labelled('counter', 'moat_messages_sent_total', 'PUBLISH packets sent to clients, by QoS (the QoS of the delivery).', 'qos', byQos(() => stats().publishSentByQos));
  labelled('counter', 'moat_payload_bytes_received_total', 'Payload bytes of the PUBLISH packets received from clients, by QoS.', 'qos', byQos(() => stats().payloadBytesReceivedByQos));
  labelled('counter', 'moat_payload_bytes_sent_total', 'Payload bytes of the PUBLISH packets sent to clients, by QoS.', 'qos', byQos(() => stats().payloadBytesSentByQos));
  labelled('counter', 'moat_messages_dropped_total', 'Messages not delivered, by cause: expired (Message Expiry Interval passed), offline (QoS 0 to a disconnected client), slow_consumer (QoS 0 to a client whose socket is not taking bytes), too_large (above the client\'s Maximum Packet Size), not_authorized (publish refused by the ACL, or a permission revoked before delivery), refused (publish refused for another reason: retained-message limit, invalid payload format), queue_full (a session queue at its limit), rate_limited (the publisher went past its rate), no_subscriber (a shared group whose members had all gone), peer_stuck (multi-core: a worker not reading).', 'cause',
    () => Object.entries(stats().droppedBy).map(([cause, n]) => [snakeCase(cause), n]));
  counter('moat_messages_shed_total', 'QoS 0 messages not sent to slow consumers while memory was past the high-water mark (also in moat_messages_dropped_total{cause="slow_consumer"}).', () => stats().shed);
  histogram('moat_delivery_latency_seconds', 'From a PUBLISH arriving to its deliveries written to the subscribers\' sockets (or queued for them), sampled: one publish in 64 that has subscribers. Includes authorization (an HTTP hook\'s round trip too).', () => stats().deliveryLatency);
  histogram('moat_store_write_seconds', 'Time to write one batch of changes to the store (SQLite: one transaction; Redis: one MULTI/EXEC round trip). Absent with the memory store.', () => figures().store?.write);
  histogram('moat_store_sync_seconds', 'SQLite with durability strict: time of each fsync of the write-ahead log (acknowledgements of persistent sessions wait for it).', () => figures().store?.sync);
  counter('moat_tls_handshakes_failed_total', 'TLS handshakes that failed, on every TLS listener.', () => stats().tlsHandshakesFailed);

  // Memory and overload protection.
  gauge('moat_memory_held_bytes', 'Memory the broker holds as overload protection measures it: V8 heap in use plus memory outside it (Buffers).', () => figures().memory.held);
  gauge('moat_memory_high_water_bytes', 'limits.memory_high_water: past it new clients are refused and QoS 0 is shed to slow consumers (0: off).', () => figures().memory.highWater);
  gauge('moat_overloaded', '1 while memory is past the high-water mark (new clients refused), else 0.', () => (figures().memory.overloaded ? 1 : 0));
  counter('moat_overloads_total', 'Times memory went past the high-water mark.', () => stats().overloads);
  counter('moat_overload_refused_total', 'CONNECTs refused while overloaded.', () => stats().overloadRefused);

  // The guard: detection and response (present whenever authentication or a guard section is configured), registered
  // at the first scrape whose figures have it.
  let guardRegistered = false;
  const registerGuard = (): void => {
    guardRegistered = true;
    const c = () => current!.broker.guard ?? ZERO_GUARD;
    gauge('moat_guard_bans_active', 'Bans in force (configured, detected and set through the API).', () => c().bansActive);
    labelled('counter', 'moat_guard_bans_issued_total', 'Bans the guard issued on detection, by rule.', 'rule', () => [
      ['failed_authentication', c().bansIssued - c().flappingBans], ['flapping', c().flappingBans],
    ]);
    counter('moat_guard_authentication_failures_total', 'Failed authentications (MQTT and the admin listener\'s users), as the guard counts them.', () => c().authenticationFailures);
    labelled('counter', 'moat_guard_refused_total', 'Connections refused because a ban names them, by where: accept (an address, before a byte is read) or connect (at CONNECT).', 'at', () => [
      ['accept', c().refusedAtAccept], ['connect', c().refusedAtConnect],
    ]);
    counter('moat_guard_connections_limited_total', 'Connections closed at accept for exceeding the connection limits (per address or in all).', () => c().connectionsLimited);
    counter('moat_guard_authentication_delayed_total', 'Authentication answers delayed because the user name or client identifier is being guessed at from many addresses.', () => c().delayedAuthentications);
    counter('moat_guard_names_slowed_total', 'User names and client identifiers that reached the threshold of guesses from many addresses.', () => c().namesSlowed);
    counter('moat_guard_rate_limited_total', 'Connections that went over their publishing rate limit (once per connection).', () => c().rateLimited);
    counter('moat_guard_payloads_refused_total', 'Encrypted payloads refused (not an envelope, an unknown key, tampered, sealed for another topic, or a replayed counter).', () => c().payloadsRefused);
  };

  // Multi-core mode: each worker's state and process figures, labelled by its index.
  let workersRegistered = false;
  const registerWorkers = (): void => {
    workersRegistered = true;
    const perWorker = (name: string, help: string, kind: 'counter' | 'gauge', read: (p: NonNullable<NonNullable<ScrapeFigures['workers']>[number]['process']>) => number): void => {
      labelled(kind, name, help, 'worker', () => (current!.workers ?? []).flatMap((w) => (w.process ? [[String(w.index), read(w.process)] as [string, number]] : [])));
    };
    labelled('gauge', 'moat_workers_up', 'Multi-core mode: 1 for a worker that answered this scrape in time, 0 for one that did not (its figures are left out of the sums).', 'worker',
      () => (current!.workers ?? []).map((w) => [String(w.index), w.process ? 1 : 0]));
    perWorker('moat_worker_heap_used_bytes', 'Multi-core mode: V8 heap in use in each worker process.', 'gauge', (p) => p.heapUsedBytes);
    perWorker('moat_worker_resident_memory_bytes', 'Multi-core mode: resident memory of each worker process.', 'gauge', (p) => p.residentBytes);
    perWorker('moat_worker_cpu_seconds_total', 'Multi-core mode: user and system CPU time of each worker process.', 'counter', (p) => p.cpuSeconds);
    perWorker('moat_worker_eventloop_lag_seconds', 'Multi-core mode: event-loop lag of each worker process, measured as it answered the scrape.', 'gauge', (p) => p.eventLoopLagSeconds);
  };

  return {
    contentType: registry.contentType,
    async metrics() {
      const read = await source.read();
      if (read.broker.guard && !guardRegistered) registerGuard();
      if (read.workers && !workersRegistered) registerWorkers();
      // Every collect runs synchronously as the registry starts: no other scrape can change `current` under it.
      current = read;
      return registry.metrics();
    },
  };
}

/** The reasons of moat_connects_refused_total that are authentication failures. */
const AUTHENTICATION_REASONS = ['bad_user_name_or_password', 'not_authorized', 'bad_authentication_method'];


const ZERO_GUARD = {
  bansActive: 0, bansIssued: 0, flappingBans: 0, authenticationFailures: 0, refusedAtAccept: 0, refusedAtConnect: 0,
  connectionsLimited: 0, delayedAuthentications: 0, namesSlowed: 0, rateLimited: 0, payloadsRefused: 0,
};

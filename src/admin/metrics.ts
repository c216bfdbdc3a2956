import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Broker } from '../broker/broker.js';
import type { Guard } from '../security/guard/index.js';

/**
 * /metrics in the Prometheus text format. Nothing here runs per message: every value is read at scrape time from
 * what the broker already counts (BrokerStats, the guard's counters) or holds (connections, sessions, retained
 * messages), and process figures (CPU, memory, event-loop lag, garbage collection) come from prom-client's default
 * metrics. docs/operations.md lists every metric.
 */

const PROTOCOLS: Record<number, string> = { 3: '3.1', 4: '3.1.1', 5: '5' };

export interface MetricsSource {
  broker: Broker;
  guard: Guard | undefined;
}

export function createMetrics({ broker, guard }: MetricsSource): Registry {
  const registers = [new Registry()];
  const registry = registers[0]!;
  collectDefaultMetrics({ register: registry });
  const stats = broker.stats;

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

  new Gauge({ name: 'moat_build_info', help: 'Always 1, labelled with the broker version.', labelNames: ['version'], registers, collect() {
    this.set({ version: broker.version }, 1);
  } });

  // Connections: counted by iterating them at scrape time (nothing is kept per listener on the hot path).
  new Gauge({ name: 'moat_connections', help: 'Connected MQTT clients (CONNECT accepted), by listener and protocol version.', labelNames: ['listener', 'protocol'], registers, collect() {
    this.reset();
    const counts = new Map<string, { listener: string; protocol: string; n: number }>();
    for (const conn of broker.connections) {
      if (conn.state !== 'connected') continue;
      const protocol = PROTOCOLS[conn.version] ?? String(conn.version);
      const key = `${conn.listener.name}\u0000${protocol}`;
      const entry = counts.get(key) ?? { listener: conn.listener.name, protocol, n: 0 };
      entry.n++;
      counts.set(key, entry);
    }
    for (const { listener, protocol, n } of counts.values()) this.set({ listener, protocol }, n);
  } });
  gauge('moat_connections_max', 'The most clients connected at once since the broker started.', () => stats.maxConnectedClients);
  counter('moat_connections_opened_total', 'Connections accepted by the listeners (before CONNECT; refused ones included).', () => stats.totalConnections);

  // Sessions and what they hold: one pass over the sessions per scrape.
  const sessionFigures = (): { online: number; offline: number; queued: number; queuedBytes: number; inflight: number; inflightBytes: number } => {
    const f = { online: 0, offline: 0, queued: 0, queuedBytes: 0, inflight: 0, inflightBytes: 0 };
    for (const session of broker.sessions.values()) {
      if (session.connection) f.online++;
      else f.offline++;
      f.queued += session.queue.length;
      f.queuedBytes += session.queuedBytes;
      f.inflight += session.inflight.size;
      f.inflightBytes += session.inflightBytes;
    }
    return f;
  };
  let figures = sessionFigures();
  // The session gauges share one pass: the first of them read in a scrape takes it.
  new Gauge({ name: 'moat_sessions', help: 'Sessions held, by state: online (a client connected) or offline (a stored session waiting for its client).', labelNames: ['state'], registers, collect() {
    figures = sessionFigures();
    this.set({ state: 'online' }, figures.online);
    this.set({ state: 'offline' }, figures.offline);
  } });
  gauge('moat_queued_messages', 'Messages waiting in session queues (offline clients, full in-flight windows, congested sockets).', () => figures.queued);
  gauge('moat_queued_bytes', 'Bytes of the messages waiting in session queues.', () => figures.queuedBytes);
  gauge('moat_inflight_messages', 'QoS 1 and 2 messages sent and not yet acknowledged.', () => figures.inflight);
  gauge('moat_inflight_bytes', 'Bytes of the QoS 1 and 2 messages not yet acknowledged.', () => figures.inflightBytes);
  gauge('moat_sessions_stored', 'Stored sessions counted by the session caps (clean session off, or a session expiry).', () => broker.sessionCaps.size);
  counter('moat_sessions_dropped_total', 'Stored sessions dropped to make room under a session cap.', () => stats.sessionsDropped);
  counter('moat_sessions_refused_total', 'Clients refused because a session cap was reached and nothing could make room.', () => stats.sessionsRefused);
  gauge('moat_subscriptions', 'Subscriptions held (shared ones included).', () => broker.router.subscriptionCount);
  gauge('moat_retained_messages', 'Retained messages held.', () => broker.retained.size);
  counter('moat_retained_refused_total', 'Retained publishes refused because max_retained_messages was reached.', () => stats.retainedRefused);

  // Traffic.
  counter('moat_packets_received_total', 'MQTT packets received, of every type.', () => stats.packetsReceived);
  counter('moat_packets_sent_total', 'MQTT packets sent, of every type.', () => stats.packetsSent);
  counter('moat_bytes_received_total', 'Bytes received from clients.', () => stats.bytesReceived);
  counter('moat_bytes_sent_total', 'Bytes sent to clients.', () => stats.bytesSent);
  counter('moat_messages_received_total', 'PUBLISH packets received from clients.', () => stats.publishReceived);
  counter('moat_messages_sent_total', 'PUBLISH packets sent to clients.', () => stats.publishSent);
  labelled('counter', 'moat_messages_dropped_total', 'Messages not delivered to a subscriber, by cause: queue_full (a session queue at its limit), overload_shed (QoS 0 to a slow consumer while memory is past the high-water mark), other (QoS 0 to a slow or offline client, larger than the client accepts, no member of a shared group).', 'cause', () => {
    const other = Math.max(0, stats.publishDropped - stats.queueDropped - stats.shed);
    return [['queue_full', stats.queueDropped], ['overload_shed', stats.shed], ['other', other]];
  });
  counter('moat_tls_handshakes_failed_total', 'TLS handshakes that failed, on every TLS listener.', () => stats.tlsHandshakesFailed);

  // Memory and overload protection.
  gauge('moat_memory_held_bytes', 'Memory the broker holds as overload protection measures it: V8 heap in use plus memory outside it (Buffers).', () => {
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.external;
  });
  gauge('moat_memory_high_water_bytes', 'limits.memory_high_water: past it new clients are refused and QoS 0 is shed to slow consumers (0: off).', () => broker.limits.memoryHighWater);
  gauge('moat_overloaded', '1 while memory is past the high-water mark (new clients refused), else 0.', () => (broker.memory.overloaded ? 1 : 0));
  counter('moat_overloads_total', 'Times memory went past the high-water mark.', () => stats.overloads);
  counter('moat_overload_refused_total', 'CONNECTs refused while overloaded.', () => stats.overloadRefused);

  // The guard: detection and response (present whenever authentication or a guard section is configured).
  if (guard) {
    const c = guard.counters;
    gauge('moat_guard_bans_active', 'Bans in force (configured, detected and set through the API).', () => guard.bans.list().length);
    labelled('counter', 'moat_guard_bans_issued_total', 'Bans the guard issued on detection, by rule.', 'rule', () => [
      ['failed_authentication', c.bansIssued - c.flappingBans], ['flapping', c.flappingBans],
    ]);
    counter('moat_guard_authentication_failures_total', 'Failed authentications (MQTT and the admin listener\'s users), as the guard counts them.', () => c.authenticationFailures);
    labelled('counter', 'moat_guard_refused_total', 'Connections refused because a ban names them, by where: accept (an address, before a byte is read) or connect (at CONNECT).', 'at', () => [
      ['accept', c.refusedAtAccept], ['connect', c.refusedAtConnect],
    ]);
    counter('moat_guard_connections_limited_total', 'Connections closed at accept for exceeding the connection limits (per address or in all).', () => c.connectionsLimited);
    counter('moat_guard_authentication_delayed_total', 'Authentication answers delayed because the user name or client identifier is being guessed at from many addresses.', () => c.delayedAuthentications);
    counter('moat_guard_names_slowed_total', 'User names and client identifiers that reached the threshold of guesses from many addresses.', () => c.namesSlowed);
    counter('moat_guard_rate_limited_total', 'Connections that went over their publishing rate limit (once per connection).', () => c.rateLimited);
  }
  return registry;
}

import type { QoS } from '../protocol/index.js';
import type { InflightRecord, QueuedRecord } from '../store/store.js';
import type { Connection } from './connection.js';
import { Deque } from './deque.js';
import type { ClientInfo } from './hooks.js';

/**
 * Server-side session state [MQTT-4.1.0]: lives as long as the connection for a
 * clean session, and across connections for a persistent one.
 */
export class Session {
  /** Filter → granted QoS. */
  readonly subscriptions = new Map<string, QoS>();
  /** Outgoing QoS 1/2 messages awaiting acknowledgement, in send order. */
  readonly inflight = new Map<number, InflightRecord>();
  /** QoS 1/2 messages waiting for the client (offline, or window full). */
  readonly queue = new Deque<QueuedRecord>();
  queuedBytes = 0;
  /** Incoming QoS 2 packet ids whose PUBREL has not arrived [MQTT-4.3.3-2]. */
  readonly incomingQos2 = new Set<number>();
  connection: Connection | undefined;
  /** The client as last seen, for hooks that judge deliveries while it is offline. */
  client: ClientInfo | undefined;

  /** Router scratch: the message this session was last matched for, and the best QoS so far. */
  matchStamp = 0;
  matchQos: QoS = 0;

  private nextPacketId = 1;
  private nextSeq = 1;

  constructor(
    readonly clientId: string,
    readonly persistent: boolean,
    readonly createdAt: number = Date.now(),
  ) {}

  /** A packet identifier not used by any message in flight [MQTT-2.3.1-2]; undefined if all 65535 are. */
  allocatePacketId(): number | undefined {
    if (this.inflight.size >= 65_535) return undefined;
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65_535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  takeSeq(): number {
    return this.nextSeq++;
  }

  restoreSeq(seq: number): void {
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
  }
}

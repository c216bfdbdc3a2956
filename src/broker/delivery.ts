import { PacketType, type QoS } from '../protocol/index.js';
import type { BrokerStore } from '../store/store.js';
import type { BrokerLimits } from './options.js';
import { ownPayload, sharedQos0Bytes, type Message } from './message.js';
import type { Session } from './session.js';
import type { BrokerStats } from './stats.js';
import type { Logger } from './logger.js';

/**
 * Outgoing messages of one session: write now, or hold in the inflight window
 * and queue. The policy when a limit is hit (documented in docs/limits.md):
 * - QoS 0 to an offline or congested client: dropped.
 * - QoS 1/2 beyond the inflight window, or to a congested/offline client: queued.
 * - Queue full (messages or bytes): the new message is dropped.
 * Every drop is counted in $SYS/broker/publish/messages/dropped.
 */
export class Delivery {
  constructor(
    private readonly limits: BrokerLimits,
    private readonly store: BrokerStore,
    private readonly stats: BrokerStats,
    private readonly logger: Logger,
  ) {}

  deliver(session: Session, message: Message, qos: QoS): void {
    const conn = session.connection;
    const online = conn !== undefined && conn.isConnected;
    if (qos === 0) {
      if (!online || conn.congested) {
        this.stats.publishDropped++;
        return;
      }
      conn.write(sharedQos0Bytes(message, conn.version));
      this.stats.publishSent++;
      return;
    }
    if (online && session.queue.length === 0 && session.inflight.size < this.limits.maxInflightMessages && !conn.congested) {
      this.sendInflight(session, message, qos);
    } else {
      this.enqueue(session, message, qos);
    }
  }

  private sendInflight(session: Session, message: Message, qos: QoS): void {
    ownPayload(message);
    const packetId = session.allocatePacketId()!;
    const entry = { packetId, state: 'publish' as const, qos, message };
    session.inflight.set(packetId, entry);
    if (session.persistent) this.store.putInflight(session.clientId, entry);
    session.connection!.sendPublish(message, qos, packetId, false);
  }

  private enqueue(session: Session, message: Message, qos: QoS): void {
    const size = message.payload.length;
    const { maxQueuedMessages, maxQueuedBytes } = this.limits;
    if (session.queue.length >= maxQueuedMessages || (maxQueuedBytes > 0 && session.queuedBytes + size > maxQueuedBytes)) {
      this.stats.publishDropped++;
      this.logger.debug({ clientId: session.clientId, topic: message.topic }, 'session queue full, message dropped');
      return;
    }
    ownPayload(message);
    const entry = { seq: session.takeSeq(), qos, message };
    session.queue.push(entry);
    session.queuedBytes += size;
    if (session.persistent) this.store.enqueue(session.clientId, entry);
  }

  /** Moves queued messages into the inflight window while the client can take them. */
  drainQueue(session: Session): void {
    const conn = session.connection;
    while (
      conn?.isConnected && session.queue.length > 0 &&
      session.inflight.size < this.limits.maxInflightMessages && !conn.congested
    ) {
      const entry = session.queue.shift()!;
      session.queuedBytes -= entry.message.payload.length;
      if (session.persistent) this.store.dequeue(session.clientId, entry.seq);
      this.sendInflight(session, entry.message, entry.qos);
    }
  }

  /** On reconnect of a persistent session: unacknowledged messages again, with DUP [MQTT-4.4.0-1]. */
  resendInflight(session: Session): void {
    const conn = session.connection!;
    for (const entry of session.inflight.values()) {
      if (entry.state === 'publish') conn.sendPublish(entry.message, entry.qos, entry.packetId, true);
      else conn.sendAck(PacketType.PUBREL, entry.packetId);
    }
  }

  /** PUBACK (QoS 1) or PUBCOMP (QoS 2) ends a flow; returns false for an unknown or mismatched id. */
  complete(session: Session, packetId: number, qos: QoS): boolean {
    const entry = session.inflight.get(packetId);
    if (!entry || entry.qos !== qos || (qos === 2 && entry.state !== 'pubrel')) return false;
    session.inflight.delete(packetId);
    if (session.persistent) this.store.deleteInflight(session.clientId, packetId);
    this.drainQueue(session);
    return true;
  }

  /** PUBREC: the QoS 2 message is received; release it with PUBREL [MQTT-4.3.3-3]. */
  released(session: Session, packetId: number): boolean {
    const entry = session.inflight.get(packetId);
    if (!entry || entry.qos !== 2) return false;
    if (entry.state === 'publish') {
      entry.state = 'pubrel';
      if (session.persistent) this.store.putInflight(session.clientId, entry);
    }
    session.connection!.sendAck(PacketType.PUBREL, packetId);
    return true;
  }
}

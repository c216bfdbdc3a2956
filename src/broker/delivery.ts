import { PacketType, type QoS } from '../protocol/index.js';
import type { BrokerStore, InflightRecord } from '../store/store.js';
import type { BrokerLimits } from './options.js';
import { heldSize, isExpired, ownPayload, sharedQos0Bytes, type Message } from './message.js';
import type { Session } from './session.js';
import type { BrokerStats } from './stats.js';
import type { Logger } from './logger.js';
import type { Connection } from './connection.js';
import type { BrokerHooks } from './hooks.js';

/**
 * Outgoing messages of one session: write now, or hold in the inflight window
 * and queue. The policy when a limit is hit (documented in docs/limits.md):
 * - QoS 0 to an offline or congested client: dropped.
 * - QoS 1/2 beyond the inflight window (the smaller of max_inflight_messages and
 *   the client's Receive Maximum), or to a congested/offline client: queued.
 * - Queue full (messages or bytes): the new message is dropped, or with
 *   `queueOverflow: 'drop_oldest'` the oldest queued ones make room.
 * - Larger than the client's Maximum Packet Size, or expired before onward
 *   delivery started: dropped for that client [MQTT-3.1.2-25], [MQTT-3.3.2-5].
 * Every drop is counted in $SYS/broker/publish/messages/dropped.
 */
export class Delivery {
  constructor(
    private readonly limits: BrokerLimits,
    private readonly store: BrokerStore,
    private readonly stats: BrokerStats,
    private readonly logger: Logger,
    private readonly hooks: BrokerHooks = {},
    private readonly pressure: { readonly overloaded: boolean } = { overloaded: false },
  ) {}

  /** `share`: the `$share/...` subscription the message came through, so it can move to another member. */
  deliver(session: Session, message: Message, qos: QoS, share?: string): void {
    if (message.expiresAt !== undefined && isExpired(message, Date.now())) {
      this.stats.drop('expired');
      return;
    }
    const conn = session.connection;
    const online = conn !== undefined && conn.isConnected;
    if (qos === 0) {
      if (!online || conn.congested) {
        this.stats.drop(online ? 'slowConsumer' : 'offline');
        if (online && this.pressure.overloaded) this.stats.shed++;
        return;
      }
      if (this.hooks.sealDelivery !== undefined) message = this.sealedFor(conn, message);
      if (conn.version === 5) {
        if (!conn.sendPublish(message, 0, 0, false)) this.stats.drop('tooLarge');
        return;
      }
      conn.write(sharedQos0Bytes(message, conn.version));
      conn.countPublishSent(0, message.payload.length);
      return;
    }
    const size = heldSize(message);
    if (online && session.queue.length === 0 && this.hasRoom(session, conn, size) && !conn.congested) {
      this.sendInflight(session, conn, message, qos, share, size);
    } else {
      this.enqueue(session, message, qos, share, size);
    }
  }

  /** Whether a message handed to this session now would go out at once (for shared subscriptions). */
  canTakeNow(session: Session): boolean {
    const conn = session.connection;
    return conn !== undefined && conn.isConnected && !conn.congested &&
      session.queue.length === 0 && this.hasRoom(session, conn, 0);
  }

  /**
   * Whether one more message of `bytes` fits the inflight window: fewer messages than the window and,
   * unless nothing is in flight (a message larger than the limit must still go), within the byte limit.
   */
  private hasRoom(session: Session, conn: Connection, bytes: number): boolean {
    if (session.inflight.size >= this.window(conn)) return false;
    const max = this.limits.maxInflightBytes;
    return max === 0 || session.inflightBytes === 0 || session.inflightBytes + bytes <= max;
  }

  /** QoS 1/2 messages a client may have unacknowledged: our limit, or less if its Receive Maximum says so. */
  private window(conn: Connection): number {
    const max = this.limits.maxInflightMessages;
    return conn.clientReceiveMaximum < max ? conn.clientReceiveMaximum : max;
  }

  /** `size`: heldSize(message), worked out once by the caller. */
  private sendInflight(session: Session, conn: Connection, message: Message, qos: QoS, share: string | undefined, size: number): void {
    // Sealed as it goes into the window: what waits in the queue stays as published, a resend (DUP) is the same bytes.
    if (this.hooks.sealDelivery !== undefined) {
      const sealed = this.sealedFor(conn, message);
      if (sealed !== message) size = heldSize((message = sealed));
    }
    if (conn.exceedsMaximumPacketSize(message, qos)) {
      this.stats.drop('tooLarge'); // as if delivered [MQTT-3.1.2-25]
      return;
    }
    ownPayload(message);
    const packetId = session.allocatePacketId()!;
    const entry = share === undefined
      ? { packetId, state: 'publish' as const, qos, message }
      : { packetId, state: 'publish' as const, qos, message, share };
    session.addInflight(entry, size);
    if (session.persistent) this.store.putInflight(session.clientId, entry);
    conn.sendPublish(message, qos, packetId, false);
  }

  private enqueue(session: Session, message: Message, qos: QoS, share: string | undefined, size: number): void {
    const { maxQueuedMessages, maxQueuedBytes } = this.limits;
    if (this.queueFull(session, size)) {
      // drop_oldest makes room unless the new message could never fit on its own.
      const makeRoom = this.limits.queueOverflow === 'drop_oldest' && maxQueuedMessages > 0 && (maxQueuedBytes === 0 || size <= maxQueuedBytes);
      if (!makeRoom) {
        this.queueOverflowed(session, message.topic);
        return;
      }
      while (this.queueFull(session, size)) {
        const oldest = session.queue.shift()!;
        session.queuedBytes -= heldSize(oldest.message);
        if (session.persistent) this.store.dequeue(session.clientId, oldest.seq);
        this.queueOverflowed(session, oldest.message.topic);
      }
    }
    ownPayload(message);
    const entry = share === undefined ? { seq: session.takeSeq(), qos, message } : { seq: session.takeSeq(), qos, message, share };
    session.queue.push(entry);
    session.queuedBytes += size;
    if (session.persistent) this.store.enqueue(session.clientId, entry);
  }

  private queueFull(session: Session, adding: number): boolean {
    const { maxQueuedMessages, maxQueuedBytes } = this.limits;
    return session.queue.length >= maxQueuedMessages || (maxQueuedBytes > 0 && session.queuedBytes + adding > maxQueuedBytes);
  }

  private queueOverflowed(session: Session, topic: string): void {
    this.stats.drop('queueFull');
    this.stats.queueDropped++;
    this.logger.debug({ clientId: session.clientId, topic, policy: this.limits.queueOverflow }, 'session queue full, message dropped');
  }

  /** The message as this connection's client gets it: sealed for it (src/payload), or as it is. */
  private sealedFor(conn: Connection, message: Message): Message {
    const client = conn.client;
    return client === undefined ? message : this.hooks.sealDelivery!(client, message) ?? message;
  }

  /** Moves queued messages into the inflight window while the client can take them (held-back resends first). */
  drainQueue(session: Session): void {
    const conn = session.connection;
    if (!conn) return;
    const window = this.window(conn);
    const pending = session.resendPending;
    while (pending.length > 0 && conn.isConnected && session.inflight.size - pending.length < window && !conn.congested) {
      const entry = session.inflight.get(pending.shift()!);
      if (entry) this.resend(session, conn, entry);
    }
    if (pending.length > 0) return;
    const now = Date.now();
    while (conn.isConnected && session.queue.length > 0 && !conn.congested) {
      const size = heldSize(session.queue.peek()!.message);
      if (!this.hasRoom(session, conn, size)) break;
      const entry = session.queue.shift()!;
      session.queuedBytes -= size;
      if (session.persistent) this.store.dequeue(session.clientId, entry.seq);
      if (isExpired(entry.message, now)) {
        this.stats.drop('expired');
        continue;
      }
      // Checked again on the way out: a permission revoked while the message waited stops it.
      const authorize = this.hooks.authorizeDelivery;
      if (authorize && session.client && !authorize(session.client, entry.message)) {
        this.stats.drop('notAuthorized');
        continue;
      }
      this.sendInflight(session, conn, entry.message, entry.qos, entry.share, size);
    }
  }

  /**
   * On reconnect: unacknowledged messages again, with DUP [MQTT-4.4.0-1], as many
   * as the client's Receive Maximum allows at once [MQTT-3.3.4-9] and its socket takes
   * without passing the outbound limit; the rest follow as acknowledgements arrive and
   * the socket drains, before anything new.
   */
  resendInflight(session: Session): void {
    const conn = session.connection!;
    const window = this.window(conn);
    session.resendPending.length = 0;
    let sent = 0;
    for (const entry of [...session.inflight.values()]) {
      if (sent < window && conn.isConnected && !conn.congested) {
        this.resend(session, conn, entry);
        sent++;
      } else {
        session.resendPending.push(entry.packetId);
      }
    }
  }

  private resend(session: Session, conn: Connection, entry: InflightRecord): void {
    if (entry.state === 'pubrel') {
      conn.sendAck(PacketType.PUBREL, entry.packetId);
      return;
    }
    // The session may now belong to someone else (a takeover) or the permission may be gone: checked again.
    const authorize = this.hooks.authorizeDelivery;
    const refused = authorize !== undefined && session.client !== undefined && !authorize(session.client, entry.message);
    // Too large for this connection's Maximum Packet Size: dropped as if delivered [MQTT-3.1.2-25].
    if (refused || !conn.sendPublish(entry.message, entry.qos, entry.packetId, true)) {
      this.stats.drop(refused ? 'notAuthorized' : 'tooLarge');
      session.removeInflight(entry.packetId);
      if (session.persistent) this.store.deleteInflight(session.clientId, entry.packetId);
    }
  }

  /** PUBACK (QoS 1) or PUBCOMP (QoS 2) ends a flow; returns false for an unknown or mismatched id. */
  complete(session: Session, packetId: number, qos: QoS): boolean {
    const entry = session.inflight.get(packetId);
    if (!entry || entry.qos !== qos || (qos === 2 && entry.state !== 'pubrel')) return false;
    session.removeInflight(packetId);
    if (session.persistent) this.store.deleteInflight(session.clientId, packetId);
    this.drainQueue(session);
    return true;
  }

  /** PUBREC: the QoS 2 message is received; release it with PUBREL [MQTT-4.3.3-3]. */
  released(session: Session, packetId: number, reasonCode: number): boolean {
    const entry = session.inflight.get(packetId);
    if (!entry || entry.qos !== 2) return false;
    // An MQTT 5 PUBREC with a reason code of 0x80 or greater ends the flow there (section 4.3.3).
    if (reasonCode >= 0x80) return this.forget(session, packetId);
    if (entry.state === 'publish') {
      entry.state = 'pubrel';
      if (session.persistent) this.store.putInflight(session.clientId, entry);
    }
    session.connection!.sendAck(PacketType.PUBREL, packetId);
    return true;
  }

  private forget(session: Session, packetId: number): boolean {
    session.removeInflight(packetId);
    if (session.persistent) this.store.deleteInflight(session.clientId, packetId);
    this.drainQueue(session);
    return true;
  }
}

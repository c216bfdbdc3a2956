import type { QoS, WillMessage } from '../protocol/index.js';
import type { InflightRecord, QueuedRecord, SubscriptionRecord } from '../store/store.js';
import type { Connection } from './connection.js';
import { Deque } from './deque.js';
import { LazyMap, LazySet } from './lazy.js';
import { heldSize } from './message.js';
import type { ClientInfo } from './hooks.js';
import type { SessionOwner } from './session-caps.js';

/** Session Expiry Interval meaning "never" [MQTT-3.1.2-?: 0xFFFFFFFF]. */
export const NEVER_EXPIRES = 0xffff_ffff;

/** A will waiting for its Will Delay Interval to pass (cancelled if the client comes back in time). */
export interface PendingWill {
  will: WillMessage;
  /** Undefined: a will kept by a cluster node that died, published as the embedding program's messages are. */
  client: ClientInfo | undefined;
  publishAt: number;
}

/**
 * Server-side session state [MQTT-4.1.0]: lives as long as the connection for a
 * clean session (or Session Expiry Interval 0), and across connections otherwise.
 */
export class Session {
  /** Filter as subscribed → its options (QoS first). */
  readonly subscriptions = new LazyMap<string, SubscriptionRecord>();
  /** Outgoing QoS 1/2 messages awaiting acknowledgement, in send order (change it through addInflight/removeInflight). */
  readonly inflight = new LazyMap<number, InflightRecord>();
  /** Payload and property bytes of the messages in `inflight`. */
  inflightBytes = 0;
  /** QoS 1/2 messages waiting for the client (offline, or window full). */
  readonly queue = new Deque<QueuedRecord>();
  queuedBytes = 0;
  /** Incoming QoS 2 packet ids whose PUBREL has not arrived [MQTT-4.3.3-2]. */
  readonly incomingQos2 = new LazySet<number>();
  /** Inflight packet ids still to be resent after a reconnect, held back by the client's Receive Maximum. */
  readonly resendPending: number[] = [];
  connection: Connection | undefined;
  /** The client as last seen, for hooks that judge deliveries while it is offline. */
  client: ClientInfo | undefined;
  /** Seconds the session outlives its connection; NEVER_EXPIRES for ever. */
  expiryInterval: number;
  /** Epoch ms at which an offline session ends; undefined while connected or if it never expires. */
  expiresAt: number | undefined;
  pendingWill: PendingWill | undefined;
  /** Who left a stored session behind (SessionCaps keeps this), and when its client last left (epoch ms; undefined while connected). */
  owner: SessionOwner | undefined;
  leftAt: number | undefined;

  /** Router scratch: the message this session was last matched for, and what the matches add up to. */
  matchStamp = 0;
  matchQos: QoS = 0;
  matchRetainAsPublished = false;
  matchSubscriptionIds: number[] | undefined;

  private nextPacketId = 1;
  private nextSeq = 1;

  constructor(
    readonly clientId: string,
    /** Written to the store (outlives its connection); fixed when the session is created. */
    readonly persistent: boolean,
    readonly createdAt: number = Date.now(),
  ) {
    this.expiryInterval = persistent ? NEVER_EXPIRES : 0;
  }

  /** A packet identifier not used by any message in flight [MQTT-2.3.1-2]; undefined if all 65535 are. */
  allocatePacketId(): number | undefined {
    if (this.inflight.size >= 65_535) return undefined;
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65_535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  /** `size`: heldSize(entry.message), when the caller has it already. */
  addInflight(entry: InflightRecord, size = heldSize(entry.message)): void {
    const replaced = this.inflight.get(entry.packetId);
    if (replaced) this.inflightBytes -= heldSize(replaced.message);
    this.inflight.set(entry.packetId, entry);
    this.inflightBytes += size;
  }

  removeInflight(packetId: number): void {
    const entry = this.inflight.get(packetId);
    if (!entry) return;
    this.inflight.delete(packetId);
    this.inflightBytes -= heldSize(entry.message);
  }

  clearInflight(): void {
    this.inflight.clear();
    this.inflightBytes = 0;
  }

  takeSeq(): number {
    return this.nextSeq++;
  }

  restoreSeq(seq: number): void {
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
  }
}

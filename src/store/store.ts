import type { LatencyHistogram } from '../measure/latency.js';
import type { Properties, QoS } from '../protocol/index.js';

/** What a store logs: write failures, and (encryption at rest) the progress of a rekey. */
export interface StoreLogger {
  error(obj: object, msg?: string): void;
  warn?(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
}

/** A message as the broker keeps it: retained, queued for a session, or in flight. */
export interface StoredMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** MQTT 5 properties forwarded to subscribers (never a topic alias). */
  properties?: Properties;
  /** Epoch ms after which the message must not start onward delivery (MQTT 5 Message Expiry Interval). */
  expiresAt?: number;
}

export interface SessionRecord {
  clientId: string;
  createdAt: number;
  /** Session Expiry Interval in seconds; 0xFFFFFFFF (and 3.1.1 persistent sessions) never expire. */
  expiryInterval?: number;
  /**
   * Epoch ms at which the session expires: set when its client leaves, absent while
   * one is connected (and for sessions that never expire), so a restart keeps the clock.
   */
  expiresAt?: number;
  /** Epoch ms at which its client last left (absent while one is connected): the session caps drop the longest gone first. */
  leftAt?: number;
  /** Who left the session behind (the session caps count by them): the user name and source address it last connected with. */
  username?: string;
  remoteAddress?: string;
}

export interface SubscriptionRecord {
  /** The filter as subscribed, `$share/{group}/...` included. */
  filter: string;
  qos: QoS;
  /** MQTT 5 subscription options. */
  noLocal?: boolean;
  retainAsPublished?: boolean;
  subscriptionId?: number;
}

export interface InflightRecord {
  packetId: number;
  /** 'publish': awaiting PUBACK/PUBREC; 'pubrel': PUBREL sent, awaiting PUBCOMP. */
  state: 'publish' | 'pubrel';
  qos: QoS;
  message: StoredMessage;
  /** The shared subscription (`$share/...` filter) it was delivered through, if any. */
  share?: string;
}

export interface QueuedRecord {
  seq: number;
  qos: QoS;
  message: StoredMessage;
  share?: string;
}

export interface RecoveredSession {
  record: SessionRecord;
  subscriptions: SubscriptionRecord[];
  queue: QueuedRecord[];
  inflight: InflightRecord[];
  incomingQos2: number[];
}

/** A piece of security data (a ban, a user, a role...) kept under a kind and a key; the value is JSON. */
export interface StoredRecord {
  kind: string;
  key: string;
  value: unknown;
}

export interface RecoveredState {
  sessions: RecoveredSession[];
  retained: StoredMessage[];
  records: StoredRecord[];
}

/**
 * Persistence of broker state. The engine keeps its working state in memory and
 * reports every change here, in order, without waiting. A store may apply the
 * changes asynchronously (batched, on disk, over the network); `whenDurable`
 * calls back once every change made before it is safe, and the engine waits for
 * it before acknowledging a QoS 1/2 message. Only persistent sessions are
 * written; clean sessions live and die in memory.
 */
/** Each batch written (SQLite: a transaction; Redis: a MULTI/EXEC round trip), and each fsync (SQLite, strict). */
export interface StoreTimings {
  write: LatencyHistogram;
  sync?: LatencyHistogram;
}

export interface BrokerStore {
  /** Loads the state left by the previous run. Called once, before any change. */
  open(): Promise<RecoveredState>;
  /** Makes every change durable and releases resources. */
  close(): Promise<void>;

  saveSession(record: SessionRecord): void;
  /** Deletes the session and everything that belongs to it. */
  deleteSession(clientId: string): void;
  putSubscription(clientId: string, subscription: SubscriptionRecord): void;
  deleteSubscription(clientId: string, filter: string): void;
  enqueue(clientId: string, entry: QueuedRecord): void;
  dequeue(clientId: string, seq: number): void;
  putInflight(clientId: string, entry: InflightRecord): void;
  deleteInflight(clientId: string, packetId: number): void;
  putIncomingQos2(clientId: string, packetId: number): void;
  deleteIncomingQos2(clientId: string, packetId: number): void;
  putRetained(message: StoredMessage): void;
  deleteRetained(topic: string): void;
  /** Bans and other security data, persisted with the same durability as the rest. */
  putRecord(kind: string, key: string, value: unknown): void;
  deleteRecord(kind: string, key: string): void;

  /**
   * Calls `done` once every change made before this call is durable
   * (synchronously if it already is). Callbacks run in the order registered.
   */
  whenDurable(done: () => void): void;
  /** True when no change is waiting to become durable (lets the engine skip the barrier). */
  durableNow(): boolean;
  /** How long its writes take, for /metrics (a store that writes nowhere has none). */
  readonly timings?: StoreTimings;
  /**
   * How many changes were made so far. The engine compares it before and after
   * handling a packet: an acknowledgement for a packet that changed nothing need
   * not wait for other clients' changes to become durable.
   */
  readonly changes: number;
}

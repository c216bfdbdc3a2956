import type {
  BrokerStore, InflightRecord, QueuedRecord, RecoveredState, SessionRecord, StoredMessage, SubscriptionRecord,
} from './store.js';

interface SessionData {
  record: SessionRecord;
  subscriptions: Map<string, SubscriptionRecord>;
  queue: Map<number, QueuedRecord>;
  inflight: Map<number, InflightRecord>;
  incomingQos2: Set<number>;
}

/**
 * Keeps state in this process' memory: nothing survives the process, but a
 * broker closed and re-created with the same instance recovers everything,
 * which is how embedding programs restart a broker without losing sessions.
 */
export class MemoryStore implements BrokerStore {
  private readonly sessions = new Map<string, SessionData>();
  private readonly retained = new Map<string, StoredMessage>();
  /** `${kind}\n${key}` → record; values are kept as JSON text, as the disk stores keep them. */
  private readonly records = new Map<string, { kind: string; key: string; json: string }>();
  changes = 0;

  async open(): Promise<RecoveredState> {
    return {
      sessions: [...this.sessions.values()].map((s) => ({
        record: { ...s.record },
        subscriptions: [...s.subscriptions.values()],
        queue: [...s.queue.values()].sort((a, b) => a.seq - b.seq),
        inflight: [...s.inflight.values()],
        incomingQos2: [...s.incomingQos2],
      })),
      retained: [...this.retained.values()],
      records: [...this.records.values()].map((r) => ({ kind: r.kind, key: r.key, value: JSON.parse(r.json) as unknown })),
    };
  }

  async close(): Promise<void> {}

  saveSession(record: SessionRecord): void {
    this.changes++;
    const existing = this.sessions.get(record.clientId);
    if (existing) existing.record = { ...record };
    else {
      this.sessions.set(record.clientId, {
        record: { ...record },
        subscriptions: new Map(),
        queue: new Map(),
        inflight: new Map(),
        incomingQos2: new Set(),
      });
    }
  }

  deleteSession(clientId: string): void {
    this.changes++;
    this.sessions.delete(clientId);
  }

  putSubscription(clientId: string, subscription: SubscriptionRecord): void {
    this.changes++;
    this.sessions.get(clientId)?.subscriptions.set(subscription.filter, { ...subscription });
  }

  deleteSubscription(clientId: string, filter: string): void {
    this.changes++;
    this.sessions.get(clientId)?.subscriptions.delete(filter);
  }

  enqueue(clientId: string, entry: QueuedRecord): void {
    this.changes++;
    this.sessions.get(clientId)?.queue.set(entry.seq, entry);
  }

  dequeue(clientId: string, seq: number): void {
    this.changes++;
    this.sessions.get(clientId)?.queue.delete(seq);
  }

  putInflight(clientId: string, entry: InflightRecord): void {
    this.changes++;
    this.sessions.get(clientId)?.inflight.set(entry.packetId, { ...entry });
  }

  deleteInflight(clientId: string, packetId: number): void {
    this.changes++;
    this.sessions.get(clientId)?.inflight.delete(packetId);
  }

  putIncomingQos2(clientId: string, packetId: number): void {
    this.changes++;
    this.sessions.get(clientId)?.incomingQos2.add(packetId);
  }

  deleteIncomingQos2(clientId: string, packetId: number): void {
    this.changes++;
    this.sessions.get(clientId)?.incomingQos2.delete(packetId);
  }

  putRetained(message: StoredMessage): void {
    this.changes++;
    this.retained.set(message.topic, message);
  }

  deleteRetained(topic: string): void {
    this.changes++;
    this.retained.delete(topic);
  }

  putRecord(kind: string, key: string, value: unknown): void {
    this.changes++;
    this.records.set(`${kind}\n${key}`, { kind, key, json: JSON.stringify(value) });
  }

  deleteRecord(kind: string, key: string): void {
    this.changes++;
    this.records.delete(`${kind}\n${key}`);
  }

  whenDurable(done: () => void): void {
    done();
  }

  durableNow(): boolean {
    return true;
  }
}

import type { Properties } from '../protocol/index.js';
import type { BrokerStore, StoredMessage } from '../store/store.js';
import { TopicTree } from '../topics/index.js';
import { isExpired, type Message } from './message.js';

/**
 * Retained messages [MQTT-3.3.1-5]: one per topic, replaced by the next
 * retained publish and cleared by a retained publish with an empty payload
 * [MQTT-3.3.1-10], [MQTT-3.3.1-11].
 */
export class RetainedMessages {
  private readonly tree = new TopicTree<Message>();

  constructor(private readonly store: BrokerStore) {}

  get size(): number {
    return this.tree.size;
  }

  /** Whether storing a retained message on `topic` would pass `limit` (replacing or clearing never does). */
  wouldExceed(topic: string, limit: number): boolean {
    return limit > 0 && this.tree.size >= limit && this.tree.get(topic) === undefined;
  }

  /**
   * Applies a retained publish. The payload is copied so the socket chunk it came in can be freed. `persist` false:
   * in memory only (cluster mode: the node it was published on stored it in the store the nodes share).
   */
  update(topic: string, payload: Buffer, qos: Message['qos'], properties?: Properties, expiresAt?: number, persist = true): void {
    if (payload.length === 0) {
      if (this.tree.delete(topic) && persist) this.store.deleteRetained(topic);
      return;
    }
    const message: Message = { topic, payload: Buffer.from(payload), qos, retain: true, ownsPayload: true };
    // Own copies, not views of the socket chunk the message arrived in.
    if (properties) {
      message.properties = properties.correlationData
        ? { ...properties, correlationData: Buffer.from(properties.correlationData) }
        : properties;
    }
    if (expiresAt !== undefined) message.expiresAt = expiresAt;
    this.tree.set(topic, message);
    const stored: StoredMessage = { topic, payload: message.payload, qos, retain: true };
    if (message.properties) stored.properties = message.properties;
    if (expiresAt !== undefined) stored.expiresAt = expiresAt;
    if (persist) this.store.putRetained(stored);
  }

  /** A message read from the store (which keeps retained messages with `retain: true`). */
  restore(message: Message): void {
    message.retain = true;
    this.tree.set(message.topic, message);
  }

  /** Retained messages matching `filter`; expired ones are deleted instead [MQTT-3.3.2-5]. */
  match(filter: string, now: number, visit: (message: Message) => void): void {
    const expired: string[] = [];
    this.tree.match(filter, (message) => {
      if (isExpired(message, now)) expired.push(message.topic);
      else visit(message);
    });
    for (const topic of expired) if (this.tree.delete(topic)) this.store.deleteRetained(topic);
  }
}

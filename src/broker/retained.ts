import type { BrokerStore } from '../store/store.js';
import { TopicTree } from '../topics/index.js';
import type { Message } from './message.js';

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

  /** Applies a retained publish. The payload is copied so the socket chunk it came in can be freed. */
  update(topic: string, payload: Buffer, qos: Message['qos']): void {
    if (payload.length === 0) {
      if (this.tree.delete(topic)) this.store.deleteRetained(topic);
      return;
    }
    const message: Message = { topic, payload: Buffer.from(payload), qos, retain: true };
    this.tree.set(topic, message);
    this.store.putRetained({ topic, payload: message.payload, qos, retain: true });
  }

  restore(message: Message): void {
    this.tree.set(message.topic, { ...message, retain: true });
  }

  match(filter: string, visit: (message: Message) => void): void {
    this.tree.match(filter, visit);
  }
}

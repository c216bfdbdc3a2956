import type { QoS } from '../protocol/index.js';
import { SubscriptionTrie } from '../topics/index.js';
import type { Delivery } from './delivery.js';
import type { BrokerHooks } from './hooks.js';
import type { Message } from './message.js';
import type { Session } from './session.js';

export interface RouteEntry {
  session: Session;
  qos: QoS;
}

/**
 * Routes a message to every session with a matching subscription. A session
 * with several matching filters gets the message once, at the highest granted
 * QoS (3.1.1 section 3.3.5), and never above the QoS it was published with.
 */
export class Router {
  readonly trie = new SubscriptionTrie<RouteEntry>();
  private stamp = 0;
  private readonly matched: Session[] = [];
  private readonly collect = (entry: RouteEntry): void => {
    const session = entry.session;
    if (session.matchStamp !== this.stamp) {
      session.matchStamp = this.stamp;
      session.matchQos = entry.qos;
      this.matched.push(session);
    } else if (entry.qos > session.matchQos) {
      session.matchQos = entry.qos;
    }
  };

  constructor(
    private readonly delivery: Delivery,
    private readonly hooks: BrokerHooks,
  ) {}

  private routing = false;
  private readonly deferred: Message[] = [];

  /**
   * Routes a message. A publish made while routing (from a hook or an event
   * listener) is routed right after the current one, in order.
   */
  route(message: Message): void {
    if (this.routing) {
      this.deferred.push(message);
      return;
    }
    this.routing = true;
    try {
      this.routeNow(message);
      while (this.deferred.length > 0) this.routeNow(this.deferred.shift()!);
    } finally {
      this.routing = false;
      this.deferred.length = 0;
    }
  }

  private routeNow(message: Message): void {
    this.stamp++;
    const matched = this.matched;
    matched.length = 0;
    this.trie.match(message.topic, this.collect);
    const authorize = this.hooks.authorizeDelivery;
    for (let i = 0; i < matched.length; i++) {
      const session = matched[i]!;
      if (authorize && session.client && !authorize(session.client, message)) continue;
      const qos = (message.qos < session.matchQos ? message.qos : session.matchQos) as QoS;
      this.delivery.deliver(session, message, qos);
    }
    matched.length = 0;
  }

  subscribe(session: Session, filter: string, qos: QoS): boolean {
    return this.trie.add(filter, session.clientId, { session, qos });
  }

  unsubscribe(session: Session, filter: string): boolean {
    return this.trie.remove(filter, session.clientId);
  }
}

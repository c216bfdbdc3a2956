import type { QoS } from '../protocol/index.js';
import { SubscriptionTrie } from '../topics/index.js';
import type { Delivery } from './delivery.js';
import type { BrokerHooks } from './hooks.js';
import type { Message } from './message.js';
import type { PeerRouting, SharedGroupFilter } from './peers.js';
import type { Session } from './session.js';
import { SharedGroup } from './shared.js';

export interface RouteEntry {
  session: Session;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  subscriptionId: number | undefined;
}

/**
 * Routes a message to every session with a matching subscription. A session
 * with several matching filters gets one copy, at the highest granted QoS
 * (3.1.1 section 3.3.5), never above the published QoS, carrying the
 * subscription identifiers of every match [MQTT-3.3.4-3]. Each shared
 * subscription group that matches adds one copy for one of its members.
 */
export class Router {
  readonly trie = new SubscriptionTrie<RouteEntry | SharedGroup>();
  private readonly groups = new Map<string, SharedGroup>();
  private stamp = 0;
  private publisher: Session | undefined;
  private readonly matched: Session[] = [];
  private readonly matchedGroups: SharedGroup[] = [];
  private readonly collect = (value: RouteEntry | SharedGroup): void => {
    if (value instanceof SharedGroup) {
      if (value.stamp !== this.stamp) {
        value.stamp = this.stamp;
        this.matchedGroups.push(value);
      }
      return;
    }
    const session = value.session;
    if (value.noLocal && session === this.publisher) return; // [MQTT-3.8.3-3]
    if (session.matchStamp !== this.stamp) {
      session.matchStamp = this.stamp;
      session.matchQos = value.qos;
      session.matchRetainAsPublished = value.retainAsPublished;
      session.matchSubscriptionIds = value.subscriptionId === undefined ? undefined : [value.subscriptionId];
      this.matched.push(session);
      return;
    }
    if (value.qos > session.matchQos) session.matchQos = value.qos;
    if (value.retainAsPublished) session.matchRetainAsPublished = true;
    if (value.subscriptionId !== undefined) (session.matchSubscriptionIds ??= []).push(value.subscriptionId);
  };
  private routing = false;
  private readonly deferred: Array<[Message, Session | undefined, SharedGroupFilter | undefined, ((session: Session) => boolean) | undefined]> = [];

  constructor(
    private readonly delivery: Delivery,
    private readonly hooks: BrokerHooks,
    /** Told when a filter gets its first or loses its last subscriber here. */
    private readonly peers?: Pick<PeerRouting, 'filterAdded' | 'filterRemoved'>,
  ) {}

  get subscriptionCount(): number {
    let shared = 0;
    for (const group of this.groups.values()) shared += group.members.length - 1;
    return this.trie.size + shared;
  }

  /**
   * Routes a message; returns how many sessions it was handed to. A publish made
   * while routing (from a hook or an event listener) is routed right after the
   * current one, in order (and reports 0).
   */
  route(message: Message, publisher: Session | undefined, servesGroup?: SharedGroupFilter, among?: (session: Session) => boolean): number {
    if (this.routing) {
      this.deferred.push([message, publisher, servesGroup, among]);
      return 0;
    }
    this.routing = true;
    try {
      const count = this.routeNow(message, publisher, servesGroup, among);
      while (this.deferred.length > 0) {
        const [next, from, serves, only] = this.deferred.shift()!;
        this.routeNow(next, from, serves, only);
      }
      return count;
    } finally {
      this.routing = false;
      if (this.deferred.length !== 0) this.deferred.length = 0;
    }
  }

  /** `among`: only these sessions may receive it (cluster mode: what a dead node's inbox held for the sessions adopted from it). */
  private routeNow(message: Message, publisher: Session | undefined, servesGroup: SharedGroupFilter | undefined, among?: (session: Session) => boolean): number {
    this.stamp++;
    this.publisher = publisher;
    const matched = this.matched;
    const groups = this.matchedGroups;
    this.trie.match(message.topic, this.collect);
    this.publisher = undefined;
    const authorize = this.hooks.authorizeDelivery;
    let count = 0;
    for (let i = 0; i < matched.length; i++) {
      const session = matched[i]!;
      if (authorize && session.client && !authorize(session.client, message)) continue;
      if (among !== undefined && !among(session)) continue;
      const qos = (message.qos < session.matchQos ? message.qos : session.matchQos) as QoS;
      this.delivery.deliver(session, forSubscriber(message, session.matchRetainAsPublished, session.matchSubscriptionIds), qos);
      count++;
    }
    // Setting the length is a runtime call even on an empty array: skipped for the common empty case.
    if (matched.length !== 0) matched.length = 0;
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i]!;
      if (servesGroup && !servesGroup(group.key)) continue; // a peer broker serves this group for this message
      if (this.deliverShared(group, message, undefined, among)) count++;
    }
    if (groups.length !== 0) groups.length = 0;
    return count;
  }

  /** Hands a message to one member of a shared group; false if the group has no member to take it. */
  deliverShared(group: SharedGroup, message: Message, exclude: Session | undefined, among?: (session: Session) => boolean): boolean {
    const authorize = this.hooks.authorizeDelivery;
    const member = group.pick(
      (s) => this.delivery.canTakeNow(s) && !(authorize && s.client && !authorize(s.client, message)),
      exclude,
      among,
    );
    if (!member) return false;
    if (authorize && member.session.client && !authorize(member.session.client, message)) return false;
    const qos = (message.qos < member.qos ? message.qos : member.qos) as QoS;
    const ids = member.subscriptionId === undefined ? undefined : [member.subscriptionId];
    this.delivery.deliver(member.session, forSubscriber(message, member.retainAsPublished, ids), qos, group.key);
    return true;
  }

  group(key: string): SharedGroup | undefined {
    return this.groups.get(key);
  }

  subscribe(session: Session, filter: string, entry: RouteEntry, share?: { key: string; filter: string }): void {
    if (!share) {
      if (this.trie.add(filter, session.clientId, entry)) this.peers?.filterAdded(filter);
      return;
    }
    let group = this.groups.get(share.key);
    if (!group) {
      group = new SharedGroup(share.key, share.filter);
      this.groups.set(share.key, group);
      this.trie.add(share.filter, groupKey(share.key), group);
      this.peers?.filterAdded(share.key);
    }
    group.upsert(entry);
  }

  unsubscribe(session: Session, filter: string, share?: { key: string; filter: string }): void {
    if (!share) {
      if (this.trie.remove(filter, session.clientId)) this.peers?.filterRemoved(filter);
      return;
    }
    const group = this.groups.get(share.key);
    if (!group) return;
    group.remove(session);
    if (group.members.length === 0) {
      this.groups.delete(share.key);
      this.trie.remove(share.filter, groupKey(share.key));
      this.peers?.filterRemoved(share.key);
    }
  }
}

/**
 * Trie key of a shared group. Subscribers are keyed by client id, and a client id
 * may look like "$share/g/t" but can never contain U+0000, so groups cannot collide.
 */
function groupKey(shareKey: string): string {
  return `\u0000${shareKey}`;
}

/** A message as routed, before any subscriber's options (to hand a shared message to another member). */
export function asPublished(message: Message): Message {
  const base: Message = { topic: message.topic, payload: message.payload, qos: message.qos, retain: false };
  if (message.publishedRetain !== undefined) base.publishedRetain = message.publishedRetain;
  if (message.expiresAt !== undefined) base.expiresAt = message.expiresAt;
  if (message.properties) {
    const { subscriptionIdentifiers: _ids, ...rest } = message.properties;
    if (Object.keys(rest).length > 0) base.properties = rest;
  }
  return base;
}

/**
 * The message as one subscriber receives it: retain flag as published when its
 * subscription asks for it [MQTT-3.3.1-12], and its subscription identifiers.
 * The shared object is returned when nothing differs, so encodings stay shared.
 */
function forSubscriber(message: Message, retainAsPublished: boolean, subscriptionIds: number[] | undefined): Message {
  const retain = retainAsPublished && message.publishedRetain === true;
  if (!retain && subscriptionIds === undefined) return message;
  const derived: Message = { topic: message.topic, payload: message.payload, qos: message.qos, retain };
  if (message.publishedRetain !== undefined) derived.publishedRetain = message.publishedRetain;
  if (message.expiresAt !== undefined) derived.expiresAt = message.expiresAt;
  if (message.topicLength !== undefined) derived.topicLength = message.topicLength;
  if (subscriptionIds !== undefined) derived.properties = { ...message.properties, subscriptionIdentifiers: subscriptionIds };
  else if (message.properties) derived.properties = message.properties;
  return derived;
}

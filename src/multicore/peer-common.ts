import type { Broker } from '../broker/broker.js';
import type { Message } from '../broker/message.js';
import type { SharedGroupFilter } from '../broker/peers.js';
import type { PublishFrame } from './frames.js';

/**
 * What both kinds of peers (multi-core workers, src/multicore; cluster nodes, src/cluster) do alike with the frames
 * they exchange: order competing retained publishes, share out shared-subscription groups, and route a frame here.
 */

/**
 * How many subscribers here each filter has (a shared one: groups), as the router reports them. A filter at zero is
 * forgotten here; the peers are told later (withdrawing late costs only messages sent in vain).
 */
export class SubscriberCounts {
  private readonly counts = new Map<string, number>();

  added(filter: string): void {
    this.counts.set(filter, (this.counts.get(filter) ?? 0) + 1);
  }

  removed(filter: string): void {
    const left = (this.counts.get(filter) ?? 1) - 1;
    if (left > 0) this.counts.set(filter, left);
    else this.counts.delete(filter);
  }

  has(filter: string): boolean {
    return this.counts.has(filter);
  }
}

/** How long the order stamp of a retained topic is kept: far longer than a frame spends between peers. */
const RETAIN_STAMP_TTL_MS = 60_000;

/** Last writer wins per retained topic: by the publishing peer's stamp, then its origin byte. */
export class RetainOrder {
  private readonly stamps = new Map<string, { stamp: number; origin: number; at: number }>();

  /** A retained publish sent from here. */
  sent(topic: string, stamp: number, origin: number): void {
    this.stamps.set(topic, { stamp, origin, at: Date.now() });
  }

  /** Whether a retained publish from a peer is newer than any seen for its topic (it is then the newest). */
  isNewest(topic: string, stamp: number, origin: number): boolean {
    const known = this.stamps.get(topic);
    if (known && (known.stamp > stamp || (known.stamp === stamp && known.origin > origin))) return false;
    this.stamps.set(topic, { stamp, origin, at: Date.now() });
    return true;
  }

  prune(now: number): void {
    for (const [topic, entry] of this.stamps) if (now - entry.at > RETAIN_STAMP_TTL_MS) this.stamps.delete(topic);
  }
}

/**
 * Shares out the shared groups a message matched on peers (`matched`: a group and a peer with members): for each group,
 * in turn among the peers with members (`self` too if a member is here), one serves the message. Returns the groups
 * each peer serves; fills `away` with the groups this one leaves to a peer.
 */
export function shareGroups<P>(
  matched: ReadonlyArray<{ group: string | undefined; peer: P }>, self: P, hasMemberHere: (group: string) => boolean,
  turns: Map<string, number>, away: Set<string>,
): Map<P, string[]> {
  const byGroup = new Map<string, P[]>();
  for (const { group, peer } of matched) {
    let peers = byGroup.get(group!);
    if (!peers) byGroup.set(group!, (peers = hasMemberHere(group!) ? [self] : []));
    peers.push(peer);
  }
  const perPeer = new Map<P, string[]>();
  for (const [group, peers] of byGroup) {
    const turn = turns.get(group) ?? 0;
    turns.set(group, turn + 1);
    const chosen = peers[turn % peers.length]!;
    if (chosen === self) continue;
    away.add(group);
    let list = perPeer.get(chosen);
    if (!list) perPeer.set(chosen, (list = []));
    list.push(group);
  }
  return perPeer;
}

/** Routes a PUBLISH frame from a peer to this broker's subscribers (and its retained set when `applyRetain`). */
export function routeFromPeer(broker: Broker, frame: PublishFrame, applyRetain: boolean): void {
  // A group assigned here whose last member left while the peer did not know yet.
  for (const key of frame.groups) if (!broker.router.group(key)) broker.stats.drop('noSubscriber');
  broker.routeFromPeer(messageOf(frame), applyRetain, frame.deliver, groupsOf(frame));
}

/** The message a PUBLISH frame carries, as routed here. */
export function messageOf(frame: PublishFrame): Message {
  // Subscribers of an established subscription get RETAIN cleared [MQTT-3.3.1-9], as in Broker.route.
  const message: Message = { topic: frame.topic, payload: frame.payload, qos: frame.qos, retain: false, publishedRetain: frame.retain };
  if (frame.properties) message.properties = frame.properties;
  if (frame.expiresAt !== undefined) message.expiresAt = frame.expiresAt;
  return message;
}

/** The shared groups a frame's receiver serves. */
export function groupsOf(frame: PublishFrame): SharedGroupFilter {
  const groups = frame.groups;
  return groups.length === 0 ? SERVE_NONE : (key) => groups.includes(key);
}

const SERVE_NONE: SharedGroupFilter = () => false;

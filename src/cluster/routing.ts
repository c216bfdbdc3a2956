import type { ChainableCommander, Redis } from 'ioredis';
import { describeTarget, type RedisTarget } from '../store/redis-target.js';
import { CLOSE_WAIT_MS, closeNode, connectNode } from './connections.js';
import type { Broker } from '../broker/broker.js';
import type { BrokerHooks } from '../broker/hooks.js';
import type { Logger } from '../broker/logger.js';
import type { Message } from '../broker/message.js';
import type { PeerRouting, SharedGroupFilter } from '../broker/peers.js';
import { decodeFrame, FrameType, FrameWriter, type PublishFrame } from '../multicore/frames.js';
import { groupsOf, messageOf, RetainOrder, routeFromPeer, shareGroups, SubscriberCounts } from '../multicore/peer-common.js';
import { parseSharedFilter } from '../protocol/index.js';
import { SubscriptionTrie } from '../topics/index.js';
import { ClusterKeys } from './keys.js';
import { NodeTable } from './nodes.js';
import { TwoPaths, type Window } from './two-paths.js';

/**
 * Cluster mode (docs/cluster.md): the broker's `PeerRouting` over Redis. Each node keeps the filters it has
 * subscribers for in a set of its own, tells the others of every change on a pub/sub channel, and mirrors theirs in
 * a trie; a message crosses to each node with a matching subscription once, as an entry of that node's inbox
 * stream, added in the store's own MULTI/EXEC batch, so a QoS 1 or 2 publish is acknowledged only once it is in
 * Redis. A node reads its inbox through a consumer group and acknowledges an entry only once what routing it
 * changed in its own store is durable: a node that dies between the two reads the entry again when it comes back.
 */

export interface ClusterRoutingOptions {
  /** redis://host:port/db of the cluster's Redis (the store's own Redis). */
  redis: RedisTarget;
  nodeId: string;
  keys: ClusterKeys;
  /** How often this node says it is alive, and after how long without a word a node is dead. */
  heartbeatMs: number;
  deadAfterMs: number;
  /**
   * Adds commands to the store's next batch (undefined: none, what is pending covers it): `changes` moves, so
   * acknowledgements wait for that batch.
   */
  batch(op: ((m: ChainableCommander) => void) | undefined): void;
  /** Runs `done` once the store has made durable what was handed to it so far. */
  whenDurable(done: () => void): void;
  logger: Logger;
}

/** A subscription on another node: plain, or one shared group there. */
interface RemoteInterest {
  peer: string;
  group: string | undefined;
}

const CONSUMER_GROUP = 'moat';
/** Entries read from the inbox per call, and how long a read blocks waiting for more. */
const READ_COUNT = 512;
const READ_BLOCK_MS = 1000;
/** An inbox never holds more than about this many entries (a node long gone). */
const INBOX_MAX_LENGTH = 1_000_000;
/** Entries waiting for Redis past which this node stops reading its clients (see hold). */
const HOLD_BYTES = 4 * 1024 * 1024;
/** A SUBACK waits at most this long for this node's own announcement to come back on the channel. */
const ANNOUNCE_TIMEOUT_MS = 2000;
/**
 * How long a node that handed a session over forwards what still reaches its filters there: far longer than the
 * others take to learn the filters at the session's new node (an announcement, at most ANNOUNCE_TIMEOUT_MS).
 */
const FORWARD_MS = 5000;
/** A dead node nobody announced the adoption of is routed to (its inbox) at least this long. */
const ORPHAN_MIN_MS = 30_000;
/** Filters without subscribers here are withdrawn this long after the last one left (as in multi-core mode); the others' filters are read again as often. */
const RECONCILE_MS = 10_000;


export class ClusterRouting implements PeerRouting {
  private broker: Broker | undefined;
  private redis: Redis | undefined;
  private subscriber: Redis | undefined;
  private reader: Redis | undefined;
  /** Times the inbox connection closed: a read out across a close may have been answered, the answer lost. */
  private readerCloses = 0;
  private readonly remote = new SubscriptionTrie<RemoteInterest>();
  /** Filters each other node has, as this node knows them. */
  private readonly remoteFilters = new Map<string, Set<string>>();
  private readonly nodes: NodeTable;
  /** Subscribers here per filter (shared: groups), as the router reports them. */
  private readonly counts = new SubscriberCounts();
  private readonly announced = new Set<string>();
  /**
   * Dead nodes whose filters are still routed to (into their inbox) until the survivor adopting their sessions says it
   * has taken the filters over, by when each died here: nothing published meanwhile for their sessions is lost.
   */
  private readonly orphans = new Map<string, number>();
  /** While this node adopts a dead node's sessions: filters to announce with the adoption, not before. */
  private deferred: Set<string> | undefined;
  /**
   * Sessions arriving here (adopted from a dead node, or handed over) can, for a while, be reached by one message both
   * the usual way and handed on (from the dead node's inbox, or forwarded by the node they left): they get it once.
   */
  private readonly twoPaths = new TwoPaths();
  private adoptionWindow: Window | undefined;
  /**
   * The windows of adoptions that followed each other here (a dead adopter's unfinished adoptions come right after its
   * own), oldest first: open until FORWARD_MS after the last ends, so a session adopted in an earlier one is known to
   * have had what was routed to it here since then.
   */
  private adoptionChain: Window[] = [];
  private adoptionChainClose: NodeJS.Timeout | undefined;
  /** Sessions handed over to another node lately: what still reaches their filters here is forwarded to them there. */
  private readonly forwards = new SubscriptionTrie<Forward>();
  private forwarding = 0;
  /** Where each of those sessions went (the last move), and the trie entries of each move. */
  private readonly forwardedTo = new Map<string, { node: string; entries: Array<[string, string]> }>();
  private forwardSeq = 0;
  /** The last message routed here from each other node (a session handed over has what it matched). */
  private readonly lastRouted = new Map<string, number>();
  /** Sessions being claimed from another node: what that node forwards to them before they are here waits. */
  private readonly arriving = new Map<string, PublishFrame[]>();
  /** Numbers the messages this node sends to others (one number for all the nodes a message goes to). */
  private messageSeq = Date.now() * 1000;
  private readonly adoptionEchoes = new Map<string, () => void>();
  /** Announcements waiting to come back on the channel, by filter. */
  private readonly echoes = new Map<string, Array<() => void>>();
  private readonly askedAt = new Map<string, number>();
  private readonly groupTurn = new Map<string, number>();
  /** Frames for each node gathered until the store writes its batch: one inbox entry per node and batch. */
  private readonly outboxes = new Map<string, Outbox>();
  private readonly retainOrder = new RetainOrder();
  /** XACKs sent and not answered yet: a clean stop waits for them. */
  private readonly acking = new Set<Promise<unknown>>();
  private beating = false;
  /** Bytes of inbox entries handed to the store's batch and not yet written, roughly (reset when a batch is). */
  private unsentBytes = 0;
  private holding = false;
  private readonly written = (): void => {
    this.unsentBytes = 0;
  };
  private stampSeq = 0;
  /**
   * Numbers this node's inbox entries, for the receivers' dedup: above any number a previous run of this node used,
   * as it starts from the time in µs (the clock must not go back across a restart).
   */
  private entrySeq = Date.now() * 1000;
  /** The last entry routed here from each sending node (`applied` in Redis, written with what routing it stored). */
  private readonly applied = new Map<string, number>();
  /** Entries skipped as already routed (a batch Redis ran twice, or entries read again after a crash). */
  duplicatesSkipped = 0;
  private readonly origin: number;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  private reading: Promise<void> | undefined;
  forwarded = 0;
  // Scratch state of one match.
  private readonly matchedNodes = new Set<string>();
  private readonly matchedGroups: RemoteInterest[] = [];
  private readonly collect = (value: RemoteInterest): void => {
    if (value.group === undefined) this.matchedNodes.add(value.peer);
    else this.matchedGroups.push(value);
  };

  /** Hooks to compose last: a SUBSCRIBE's verdict waits until the other nodes have been told of its filter. */
  readonly hooks: BrokerHooks = {
    authorizeSubscribe: (_client, subscription) => this.announceAndWait(subscription.filter),
  };

  /** The others' retained messages are in the store all nodes share. */
  readonly sharesRetainedStore = true;

  constructor(private readonly options: ClusterRoutingOptions) {
    this.nodes = new NodeTable(options.nodeId, options.deadAfterMs);
    let hash = 0;
    for (const c of options.nodeId) hash = (hash * 31 + c.charCodeAt(0)) & 0xff;
    this.origin = hash;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** Other nodes alive, as this node last saw them. */
  liveNodes(): string[] {
    return this.nodes.alive();
  }

  /**
   * Joins the cluster: listens for the others' changes, registers this node and its filters (the subscriptions of
   * the sessions the store restored), reads the others' filters, and starts reading this node's inbox.
   */
  private readonly joinedHandlers: Array<(broker: Broker) => Promise<void>> = [];

  /** Runs once this node has joined, before clients are served (the session owners start there). */
  onJoined(next: (broker: Broker) => Promise<void>): void {
    this.joinedHandlers.push(next);
  }

  private readonly removedHandlers: Array<(node: string, diedAt: number, inherited: string[]) => Promise<void>> = [];
  private readonly fenceHandlers: Array<() => void> = [];
  private readonly rejoinHandlers: Array<(removed: boolean) => Promise<void>> = [];
  /** When a heartbeat last succeeded (monotonic ms), and whether this node stopped serving since. */
  private lastBeat = performance.now();
  private fenced = false;
  private rejoining = false;

  get isFenced(): boolean {
    return this.fenced;
  }

  /** Too long without a heartbeat to know whether this node is still a member, or rejoining after being removed. */
  private isStale(): boolean {
    return this.rejoining || performance.now() - this.lastBeat > this.options.deadAfterMs - 2 * this.options.heartbeatMs;
  }

  /** Runs when this node has been cut from Redis for `deadAfterMs` (it must stop serving). */
  onFenced(handler: () => void): void {
    this.fenceHandlers.push(handler);
  }

  /** Runs when this node reaches Redis again after being cut off, or finds it was declared dead (`removed`). */
  onRejoin(handler: (removed: boolean) => Promise<void>): void {
    this.rejoinHandlers.push(handler);
  }

  /**
   * Runs on the one survivor that removed a dead node (its sessions are adopted there), with its last beat (ms, Redis'
   * clock) and the nodes whose adoption the dead node had begun and not finished (this survivor finishes them).
   */
  onNodeRemoved(handler: (node: string, diedAt: number, inherited: string[]) => Promise<void>): void {
    this.removedHandlers.push(handler);
  }

  /** The broker this routing serves (before it listens). */
  attach(broker: Broker): void {
    this.broker = broker;
  }

  /** Called by the broker once its state is recovered, before any client is served. */
  async join(): Promise<void> {
    try {
      await this.start();
      for (const next of this.joinedHandlers) await next(this.broker!);
    } catch (err) {
      await this.close();
      throw new Error(`cannot join the cluster at ${describeTarget(this.options.redis)}: ${(err as Error).message}`);
    }
  }

  private async start(): Promise<void> {
    const keys = this.options.keys;
    // The heartbeat says when Redis is away.
    [this.redis, this.subscriber, this.reader] = await connectNode(this.options.redis, this.options.nodeId, ['commands', 'events', 'inbox']);
    this.subscriber.on('message', (_channel: string, text: string) => this.onEvent(text));
    await this.subscriber.subscribe(keys.events);
    // Events sent while a connection was down are lost: after a reconnect, this node's filters are written again
    // and the others' read again.
    this.subscriber.on('ready', () => this.resync());
    this.redis.on('ready', () => this.resync());
    this.reader.on('close', () => this.readerCloses++);
    await this.ensureGroup('$');
    for (const [node, seq] of Object.entries(await this.redis.hgetall(keys.applied(this.options.nodeId)))) this.applied.set(node, Number(seq));
    await this.register();
    await this.heartbeat();
    this.timers.push(setInterval(() => void this.heartbeat(), this.options.heartbeatMs).unref());
    this.timers.push(setInterval(() => this.reconcile(), RECONCILE_MS).unref());
    this.reading = this.readInbox().catch((err: unknown) => {
      this.options.logger.error({ err: (err as Error).message }, 'cluster: reading this node\'s inbox stopped');
    });
  }

  /** The consumer group of this node's inbox (`from`: where a new group starts reading), unless it exists. */
  private async ensureGroup(from: '$' | '0'): Promise<void> {
    await this.redis!.xgroup('CREATE', this.options.keys.inbox(this.options.nodeId), CONSUMER_GROUP, from, 'MKSTREAM').catch((err: Error) => {
      if (!err.message.includes('BUSYGROUP')) throw err;
    });
  }

  private resync(): void {
    if (this.closed || !this.redis) return;
    this.register().catch(() => undefined); // Redis away again: the next 'ready' tries again
    for (const node of this.nodes.alive()) this.learnNode(node).catch(() => undefined);
  }

  /** Writes this node's filters (what its sessions subscribe to now, replacing what it had before) and says it is up. */
  private async register(): Promise<void> {
    const keys = this.options.keys;
    const mine = keys.filters(this.options.nodeId);
    const multi = this.redis!.multi().del(mine);
    if (this.announced.size > 0) multi.sadd(mine, ...this.announced);
    multi.eval(BEAT, 1, keys.nodes, this.options.nodeId);
    await multi.exec();
    await this.publishEvent('up', '');
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    for (const [, waiting] of this.echoes) for (const done of waiting) done();
    this.echoes.clear();
    // Entries routed here are acknowledged once the store has what they changed: wait for those acknowledgements (not
    // for ever: with Redis gone, they are read again at the next start).
    const settled = (async () => {
      await new Promise<void>((resolve) => this.options.whenDurable(resolve));
      await Promise.allSettled([...this.acking]);
    })();
    await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
    // The filters stay: what is published for this node's persistent sessions while it restarts waits in its inbox.
    this.reader?.disconnect();
    await this.reading?.catch(() => undefined);
    await closeNode([this.subscriber, this.redis]);
  }

  // ---- what is subscribed here ------------------------------------------------------------

  filterAdded(filter: string): void {
    this.counts.added(filter);
    if (!this.announced.has(filter)) this.announce(filter);
  }

  filterRemoved(filter: string): void {
    this.counts.removed(filter); // withdrawn by reconcile, not at once
  }

  private announce(filter: string): void {
    this.announced.add(filter);
    if (this.deferred) {
      this.deferred.add(filter);
      return;
    }
    if (!this.redis) return; // before start: registered by start
    void this.redis.sadd(this.options.keys.filters(this.options.nodeId), filter).then(() => this.publishEvent('+', filter), (err: Error) => {
      // Not announced: the next SUBSCRIBE to it tries again (and a reconnect writes every filter again).
      this.announced.delete(filter);
      this.options.logger.error({ err: err.message, filter }, 'cluster: cannot register a subscription in Redis');
    });
  }

  private announceAndWait(filter: string): true | Promise<true> {
    this.askedAt.set(filter, Date.now());
    if (this.announced.has(filter) && !this.echoes.has(filter)) return true;
    return new Promise<true>((resolve) => {
      let waiting = this.echoes.get(filter);
      if (!waiting) this.echoes.set(filter, (waiting = []));
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.options.logger.warn({ filter }, 'cluster: a subscription was not confirmed by Redis in time');
        const left = this.echoes.get(filter)?.filter((d) => d !== done);
        if (left && left.length > 0) this.echoes.set(filter, left);
        else this.echoes.delete(filter);
        resolve(true);
      }, ANNOUNCE_TIMEOUT_MS);
      waiting.push(done);
      if (!this.announced.has(filter)) this.announce(filter);
    });
  }

  /** Withdraws filters nobody here has subscribed to for a while; forgets old retained stamps and group turns. */
  private reconcile(): void {
    const now = Date.now();
    for (const filter of this.announced) {
      if (this.counts.has(filter) || this.echoes.has(filter)) continue;
      if (now - (this.askedAt.get(filter) ?? 0) < RECONCILE_MS) continue;
      this.announced.delete(filter);
      void this.redis?.srem(this.options.keys.filters(this.options.nodeId), filter).then(() => this.publishEvent('-', filter), () => undefined);
    }
    for (const [filter, at] of this.askedAt) if (now - at >= RECONCILE_MS) this.askedAt.delete(filter);
    this.retainOrder.prune(now);
    for (const [node, since] of this.orphans) {
      if (performance.now() - since > Math.max(this.options.deadAfterMs, ORPHAN_MIN_MS)) {
        this.orphans.delete(node);
        this.forgetNode(node);
      }
    }
    this.groupTurn.clear();
    // Events can be lost (a reconnect of the events connection): the others' filters are read again now and then.
    for (const node of this.nodes.alive()) this.learnNode(node).catch(() => undefined);
  }

  // ---- the other nodes ----------------------------------------------------------------------

  private publishEvent(kind: '+' | '-' | 'up', filter: string): Promise<unknown> {
    return this.redis!.publish(this.options.keys.events, `${kind}\u0000${this.options.nodeId}\u0000${filter}`);
  }

  private onEvent(text: string): void {
    const [kind, node, filter, ...adoptedFilters] = text.split('\u0000') as [string, string, string, ...string[]];
    if (kind === 'adopted') {
      // One step: the adopter's filters in, the dead node's out, so a message goes to one or the other, never both.
      if (node === this.options.nodeId) this.adoptionEchoes.get(filter)?.();
      else for (const f of adoptedFilters) this.addRemote(node, f);
      this.orphans.delete(filter);
      this.forgetNode(filter);
      return;
    }
    if (node === this.options.nodeId) {
      // Our own announcement, back: every node subscribed to the channel has been sent it.
      const waiting = kind === '+' ? this.echoes.get(filter) : undefined;
      if (waiting) {
        this.echoes.delete(filter);
        for (const done of waiting) done();
      }
      return;
    }
    if (kind === 'up' || !this.nodes.isAlive(node)) {
      // A node this one took for dead speaks (a freeze of Redis made every beat look old): it is alive; its filters are read again.
      this.learnNode(node).catch(() => undefined);
      return;
    }
    if (kind === '+') this.addRemote(node, filter);
    else if (kind === '-') this.removeRemote(node, filter);
  }

  /** Reads a node's filters (a node new to this one, or back after a restart). */
  private async learnNode(node: string): Promise<void> {
    this.nodes.heard(node, Date.now());
    this.orphans.delete(node);
    const filters = await this.redis!.smembers(this.options.keys.filters(node));
    const known = this.remoteFilters.get(node);
    for (const filter of known ?? []) if (!filters.includes(filter)) this.removeRemote(node, filter);
    for (const filter of filters) this.addRemote(node, filter);
  }

  private addRemote(node: string, filter: string): void {
    let filters = this.remoteFilters.get(node);
    if (!filters) this.remoteFilters.set(node, (filters = new Set()));
    if (filters.has(filter)) return;
    filters.add(filter);
    const shared = parseSharedFilter(filter);
    if (shared) this.remote.add(shared.filter, `${node}\u0000${filter}`, { peer: node, group: filter });
    else this.remote.add(filter, node, { peer: node, group: undefined });
  }

  private removeRemote(node: string, filter: string): void {
    const filters = this.remoteFilters.get(node);
    if (!filters?.delete(filter)) return;
    const shared = parseSharedFilter(filter);
    if (shared) this.remote.remove(shared.filter, `${node}\u0000${filter}`);
    else this.remote.remove(filter, node);
  }

  private forgetNode(node: string): void {
    for (const filter of [...(this.remoteFilters.get(node) ?? [])]) this.removeRemote(node, filter);
    this.remoteFilters.delete(node);
  }

  /**
   * Says this node is alive and reads when the others last did: a node new to this one has its filters read, and a
   * node silent for longer than `deadAfterMs` is dead (nothing is sent to it any more; the first survivor to see it
   * takes its filters out of Redis).
   */
  private async heartbeat(): Promise<void> {
    const redis = this.redis;
    if (!redis || this.closed) return;
    // Cut from Redis as long as the others need to declare a node dead: they may be taking its sessions over, so it
    // stops serving rather than go on alone.
    // Two heartbeats early: the others count from the last beat Redis has, and this check runs once per heartbeat.
    const fenceAfter = this.options.deadAfterMs - 2 * this.options.heartbeatMs;
    if (!this.fenced && performance.now() - this.lastBeat > fenceAfter) {
      this.fenced = true;
      this.options.logger.error({ silentMs: Math.round(performance.now() - this.lastBeat) }, 'cluster: cut from Redis for nearly dead_after_ms; clients disconnected and refused until it is back');
      for (const handler of this.fenceHandlers) handler();
    }
    if (this.beating) return;
    this.beating = true;
    const keys = this.options.keys;
    try {
      const sentAt = performance.now();
      // Redis' clock, not the nodes': liveness does not depend on their clocks agreeing.
      const [now, previous, flat] = await redis.eval(HEARTBEAT, 1, keys.nodes, this.options.nodeId) as [number, string | null | false, string[]];
      const beats: Record<string, string> = {};
      for (let i = 0; i < flat.length; i += 2) beats[flat[i]!] = flat[i + 1]!;
      this.lastBeat = sentAt;
      // Removed by the others (this process was stopped, or cut from Redis, for longer than dead_after_ms): they
      // took its filters out, published its clients' wills and may have taken its sessions; it drops what is no longer
      // its own, registers its filters again and says it is back.
      const removed = previous === null || previous === false;
      if (removed || this.fenced) {
        if (removed) this.options.logger.warn({ node: this.options.nodeId }, 'cluster: this node was declared dead by the others; rejoining');
        this.rejoining = removed;
        try {
          for (const handler of this.rejoinHandlers) await handler(removed);
          if (removed) await this.register();
        } finally {
          this.rejoining = false;
        }
        if (this.fenced) this.options.logger.info({ node: this.options.nodeId }, 'cluster: Redis reachable again; serving clients again');
        this.fenced = false;
      }
      const change = this.nodes.update(beats, now);
      for (const node of change.joined) await this.learnNode(node);
      for (const node of change.died) {
        // Still routed to until a survivor has adopted its sessions and their filters (or for dead_after_ms more).
        if (!this.orphans.has(node)) this.orphans.set(node, performance.now());
        this.options.logger.warn({ node, silentMs: now - Number(beats[node] ?? 0) }, 'cluster: a node stopped answering; routed to only until its sessions are adopted');
        // Only the survivor whose script removes the entry cleans up, and only if the node did not come back meanwhile.
        const reaped = await redis.eval(REAP_NODE, 3, keys.nodes, keys.filters(node), keys.adopting, node, beats[node] ?? '', this.options.nodeId) as [number, ...string[]];
        if (reaped[0] === 1) {
          const inherited = reaped.slice(1) as string[];
          this.options.logger.warn({ node, ...(inherited.length > 0 && { inheritedAdoptions: inherited }) }, 'cluster: dead node removed from the cluster');
          // Not awaited: adopting its sessions may take longer than a heartbeat, and this node must go on beating.
          for (const handler of this.removedHandlers) {
            handler(node, Number(beats[node] ?? now), inherited).catch((err: unknown) => {
              this.options.logger.error({ node, err: (err as Error).message }, 'cluster: adopting a dead node\'s sessions failed');
            });
          }
        }
      }
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, 'cluster: heartbeat failed (Redis unreachable?)');
    } finally {
      this.beating = false;
    }
  }

  // ---- adopting a dead node's sessions --------------------------------------------------------

  /**
   * This node adopts a dead node's sessions now (synchronously, after this call): the dead node's filters are no
   * longer routed to from here (its adopted sessions are here), and the filters they bring are announced together
   * with the adoption by `announceAdoption`.
   */
  beginAdoption(dead: string, adopted: ReadonlySet<string>): void {
    this.orphans.delete(dead);
    this.forgetNode(dead);
    this.deferred ??= new Set();
    clearTimeout(this.adoptionChainClose);
    this.adoptionWindow = this.twoPaths.open(adopted);
    this.adoptionChain.push(this.adoptionWindow);
  }

  /** The adoption is over (the dead node's inbox read a last time). */
  endAdoption(): void {
    // Kept a while: this node's own inbox may still hold copies of what the dead node's inbox held.
    if (this.adoptionWindow) {
      this.adoptionWindow = undefined;
      clearTimeout(this.adoptionChainClose);
      this.adoptionChainClose = setTimeout(() => {
        for (const window of this.adoptionChain.splice(0)) this.twoPaths.close(window);
      }, FORWARD_MS).unref();
    }
    // An adoption that failed before announcing: its filters are announced the usual way.
    const deferred = this.deferred;
    this.deferred = undefined;
    for (const filter of deferred ?? []) {
      this.announced.delete(filter);
      this.announce(filter);
    }
  }

  /**
   * Tells every node, in one event, that this node now has the filters the adopted sessions brought (and any
   * subscribed meanwhile) and the dead node's are gone; resolves once Redis has sent the event to every node.
   */
  async announceAdoption(dead: string): Promise<void> {
    const filters = [...(this.deferred ?? [])];
    this.deferred = undefined;
    const keys = this.options.keys;
    const echoed = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.options.logger.warn({ node: dead }, 'cluster: the adoption of a dead node was not confirmed by Redis in time');
        this.adoptionEchoes.delete(dead);
        resolve();
      }, ANNOUNCE_TIMEOUT_MS);
      this.adoptionEchoes.set(dead, () => {
        clearTimeout(timer);
        this.adoptionEchoes.delete(dead);
        resolve();
      });
    });
    const multi = this.redis!.multi();
    if (filters.length > 0) multi.sadd(keys.filters(this.options.nodeId), ...filters);
    await multi.publish(keys.events, ['adopted', this.options.nodeId, dead, ...filters].join('\u0000')).exec();
    await echoed;
    // SUBACKs that waited for one of these filters go on.
    for (const filter of filters) {
      const waiting = this.echoes.get(filter);
      this.echoes.delete(filter);
      for (const done of waiting ?? []) done();
    }
  }

  // ---- messages out ---------------------------------------------------------------------------

  published(message: Message, retain: boolean): SharedGroupFilter | undefined {
    this.forwarded = 0;
    if (!this.redis) return undefined;
    const id = ++this.messageSeq;
    // Sessions arriving here get this message here; the node they left may forward it too (it has their filters a while).
    if (this.twoPaths.active) this.twoPaths.routedUsually(this.options.nodeId, id);
    if (this.forwarding > 0) this.forward(message, retain, this.options.nodeId, id);
    this.matchedNodes.clear();
    this.remote.match(message.topic, this.collect);
    let perNodeGroups: Map<string, string[]> | undefined;
    let servesGroup: SharedGroupFilter | undefined;
    if (this.matchedGroups.length > 0) {
      const away = new Set<string>();
      perNodeGroups = shareGroups(this.matchedGroups, this.options.nodeId, (key) => this.broker!.router.group(key) !== undefined, this.groupTurn, away);
      this.matchedGroups.length = 0;
      servesGroup = (key) => !away.has(key);
    }
    // A retained message goes to every node, so each keeps the whole retained set.
    const targets = retain ? this.nodes.alive() : [...this.matchedNodes, ...(perNodeGroups?.keys() ?? [])];
    if (targets.length === 0) return servesGroup;
    const stamp = retain ? this.retainStamp(message.topic) : 0;
    const sent = new Set<string>();
    for (const node of targets) {
      if (sent.has(node) || (!this.nodes.isAlive(node) && !this.orphans.has(node))) continue;
      sent.add(node);
      const groups = perNodeGroups?.get(node) ?? NO_GROUPS;
      const deliver = this.matchedNodes.has(node) || groups.length > 0;
      if (deliver) this.forwarded++;
      this.send(node, {
        topic: message.topic, payload: message.payload, qos: message.qos, retain, deliver, retainStamp: stamp, origin: this.origin,
        expiresAt: message.expiresAt, properties: message.properties, groups, id,
      });
    }
    if (this.unsentBytes > HOLD_BYTES && !this.holding) this.hold();
    return servesGroup;
  }

  /** Adds a frame to a node's outbox: in the store's next batch, so the publish's acknowledgement waits for it. */
  private send(node: string, frame: PublishFrame): void {
    const outbox = this.outboxOf(node);
    const before = outbox.writer.length;
    outbox.writer.publish(frame);
    // The outbox's entry is in the store's next batch already, or goes in now; either way this publish counts as a
    // change of that batch, so its acknowledgement waits for it.
    if (outbox.queued) this.options.batch(undefined);
    else {
      outbox.queued = true;
      this.options.batch(this.flushOp(outbox));
    }
    if (this.unsentBytes === 0) this.options.whenDurable(this.written);
    this.unsentBytes += outbox.writer.length - before;
  }

  // ---- sessions moving between nodes ------------------------------------------------------------

  /**
   * A session was handed over to `node`: for FORWARD_MS, what reaches its filters here (the others route here until
   * they know the filters are there) goes on to it there, as a frame for it alone.
   */
  forwardSession(clientId: string, node: string, filters: readonly string[]): Record<string, number> {
    this.stopForwarding(clientId); // an earlier move of the same session: this one replaces it
    // Keyed per move: a second move within FORWARD_MS has entries of its own, which the first one's timer leaves alone.
    const key = `${clientId}\u0000${++this.forwardSeq}`;
    const entries: Array<[string, string]> = [];
    for (const filter of filters) {
      if (parseSharedFilter(filter) !== undefined) continue; // a group's messages go to its other members
      this.forwards.add(filter, key, { clientId, node });
      entries.push([filter, key]);
    }
    const move = { node, entries };
    this.forwardedTo.set(clientId, move);
    this.forwarding++;
    setTimeout(() => {
      if (this.forwardedTo.get(clientId) === move) this.stopForwarding(clientId);
    }, FORWARD_MS).unref();
    return { ...Object.fromEntries(this.lastRouted), [this.options.nodeId]: this.messageSeq };
  }

  /** Forwarding for a session ends (its time is up, it moved again, or the claim was given up and it stays here). */
  stopForwarding(clientId: string): void {
    const move = this.forwardedTo.get(clientId);
    if (!move) return;
    this.forwardedTo.delete(clientId);
    this.forwarding--;
    for (const [filter, key] of move.entries) this.forwards.remove(filter, key);
  }

  private forward(message: Message, retain: boolean, origin: string, id: number): void {
    const targets = new Map<string, string>();
    this.forwards.match(message.topic, (f: Forward) => targets.set(f.clientId, f.node));
    for (const [clientId, node] of targets) {
      this.send(node, {
        topic: message.topic, payload: message.payload, qos: message.qos, retain, deliver: true, retainStamp: 0, origin: this.origin,
        expiresAt: message.expiresAt, properties: message.properties, groups: NO_GROUPS, id, target: { clientId, origin },
      });
    }
  }

  /**
   * This node claims a session from another: what that node forwards to it waits until it is here. Returns what to
   * call right after it is adopted here (or the claim failed): from then on, for a while, it gets each message once.
   */
  expectSession(clientId: string): (routedUpTo: Record<string, number>) => void {
    this.arriving.set(clientId, []);
    return (routedUpTo) => {
      const waiting = this.arriving.get(clientId) ?? [];
      this.arriving.delete(clientId);
      // Back here from a node it had gone to: what this node forwarded there for it stops.
      if (this.broker!.sessions.has(clientId)) this.stopForwarding(clientId);
      const window = this.twoPaths.open(new Set([clientId]), routedUpTo);
      setTimeout(() => this.twoPaths.close(window), FORWARD_MS + ANNOUNCE_TIMEOUT_MS).unref();
      for (const frame of waiting) this.deliverForwarded(frame);
    };
  }

  /** A frame the node a session left forwarded to it. */
  private deliverForwarded(frame: PublishFrame): void {
    const { clientId, origin } = frame.target!;
    const waiting = this.arriving.get(clientId);
    if (waiting) {
      waiting.push(frame);
      return;
    }
    const window = frame.id === undefined ? undefined : this.twoPaths.windowOf(clientId);
    if (window && !this.twoPaths.handOn(window, origin, frame.id!)) return;
    this.broker!.routeAmong(messageOf(frame), (id) => id === clientId, NO_GROUP_SERVED);
  }

  /**
   * Past HOLD_BYTES of entries Redis has not taken yet, this node stops reading its clients until it has: QoS 0
   * publishers as fast as their sockets go would otherwise pile messages up in memory here.
   */
  private hold(): void {
    this.holding = true;
    this.broker!.holdReading(true);
    this.options.whenDurable(() => {
      this.unsentBytes = 0;
      this.holding = false;
      this.broker!.holdReading(false);
    });
  }

  private outboxOf(node: string): Outbox {
    let outbox = this.outboxes.get(node);
    if (!outbox) this.outboxes.set(node, (outbox = { inbox: this.options.keys.inbox(node), writer: new FrameWriter(), queued: false }));
    return outbox;
  }

  /**
   * The batch command that sends an outbox: run as the store builds its batch, it makes what gathered so far one
   * entry (kept, should the store send the batch again after a failure; what gathers meanwhile goes in the next).
   */
  private flushOp(outbox: Outbox): (m: ChainableCommander) => void {
    let entry: Buffer | undefined;
    let seq = '';
    return (m) => {
      if (entry === undefined) {
        outbox.queued = false;
        entry = outbox.writer.take() ?? EMPTY;
        seq = String(++this.entrySeq);
      }
      // Sent again after a failure (or by the client after a reconnect) it keeps its number: the receiver skips a twin.
      if (entry.length > 0) m.xadd(outbox.inbox, 'MAXLEN', '~', INBOX_MAX_LENGTH, '*', 'f', entry, 'n', this.options.nodeId, 's', seq);
    };
  }

  /** Wall-clock microseconds, made unique per topic here: nodes order competing retained publishes by it. */
  private retainStamp(topic: string): number {
    const stamp = Date.now() * 1000 + (this.stampSeq = (this.stampSeq + 1) % 1000);
    this.retainOrder.sent(topic, stamp, this.origin);
    return stamp;
  }

  // ---- messages in ----------------------------------------------------------------------------

  /** Entries delivered before a crash and never acknowledged first, then new ones, until the node closes. */
  private async readInbox(): Promise<void> {
    const inbox = this.options.keys.inbox(this.options.nodeId);
    let from = '0';
    while (!this.closed) {
      let reply: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
      const closes = this.readerCloses;
      try {
        reply = await this.reader!.xreadgroupBuffer('GROUP', CONSUMER_GROUP, this.options.nodeId, 'COUNT', READ_COUNT, 'BLOCK', READ_BLOCK_MS, 'STREAMS', inbox, from) as typeof reply;
      } catch (err) {
        if (this.closed) return;
        const message = (err as Error).message;
        this.options.logger.error({ err: message }, 'cluster: reading this node\'s inbox failed; trying again');
        // Redis lost the stream or its group (restarted without its data): a new group reads what arrives from now on.
        if (/NOGROUP|no longer exists/.test(message)) await this.ensureGroup('0').catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 500));
        from = '0';
        continue;
      }
      if (this.readerCloses !== closes) {
        // The connection closed while this read was out and ioredis sent it again: Redis may have answered the first
        // copy, its entries now pending for this node and never seen here. The pending list is read again, in order,
        // before anything newer is acknowledged (an acknowledgement trims the stream below it); routed ones are skipped.
        from = '0';
        continue;
      }
      const entries = reply?.[0]?.[1] ?? [];
      if (this.isStale()) {
        // Maybe declared dead meanwhile (stopped, or cut off): its sessions may be adopted elsewhere, with these entries.
        // Nothing is routed until a heartbeat says (and a rejoin settles) otherwise; then the entries come again.
        while (this.isStale() && !this.closed) await new Promise((resolve) => setTimeout(resolve, 100));
        from = '0';
        continue;
      }
      if (from !== '>' && entries.length === 0) {
        from = '>'; // the backlog is done (a read of it returns at once, empty at its end: never read past that)
        continue;
      }
      const ids: string[] = [];
      const advanced = new Set<string>();
      for (const [id, fields] of entries) {
        ids.push(id.toString());
        // A pending entry trimmed from the stream meanwhile comes back without its fields: acknowledged, skipped.
        const entry = fields && readEntry(fields);
        if (!entry) continue;
        if (isRoutedAlready(this.applied, entry)) {
          this.duplicatesSkipped++;
          continue;
        }
        this.applied.set(entry.sender, entry.seq);
        advanced.add(entry.sender);
        this.routeEntry(entry.frames, (frame) => this.routeFrame(frame, entry.sender));
      }
      if (from !== '>') from = entries.at(-1)![0].toString(); // the backlog's next page
      // After what routing these entries stored, in the same batch or a later one: a crash between the two routes
      // them again (at least once), never skips one.
      // Both only while this node is one of the cluster's and its sessions are not being adopted: declared dead (stopped,
      // and not told yet, or restarted meanwhile), its inbox is the adopter's to drain, which goes by these numbers and
      // needs the entries.
      const { keys, nodeId } = this.options;
      if (advanced.size > 0) {
        const pairs = [...advanced].flatMap((node) => [node, String(this.applied.get(node))]);
        this.options.batch((m) => m.eval(SET_APPLIED_IF_MEMBER, 3, keys.applied(nodeId), keys.nodes, keys.adopting, nodeId, ...pairs));
      }
      // Acknowledged once what routing stored here (queued messages of persistent sessions) is durable; entries up to
      // there leave the stream (Redis keeps only what may still be needed).
      if (ids.length > 0) {
        const last = ids.at(-1)!;
        this.options.whenDurable(() => {
          const acked = this.redis!.eval(ACK_IF_MEMBER, 3, inbox, keys.nodes, keys.adopting, nodeId, CONSUMER_GROUP, last, ...ids).catch(() => undefined);
          this.acking.add(acked);
          void acked.finally(() => this.acking.delete(acked));
        });
      }
    }
  }

  /** An entry: the frames one node gathered for another during a store batch, each after its 4-byte length. */
  private routeEntry(bytes: Buffer, route: (frame: PublishFrame) => void): void {
    for (let at = 0; at + 4 <= bytes.length;) {
      const end = at + 4 + bytes.readUInt32BE(at);
      if (end > bytes.length) {
        this.options.logger.error({ bytes: bytes.length }, 'cluster: an inbox entry ends inside a frame; the rest skipped');
        return;
      }
      try {
        const frame = decodeFrame(bytes, at + 4, end);
        if (frame.type === FrameType.Publish) route(frame);
      } catch (err) {
        this.options.logger.error({ err: (err as Error).message }, 'cluster: an inbox entry could not be routed; skipped');
      }
      at = end;
    }
  }

  private routeFrame(frame: PublishFrame, sender: string): void {
    if (frame.target) {
      this.deliverForwarded(frame);
      return;
    }
    // Last writer wins per retained topic, by the publishing node's clock, then the hash of its id.
    const applyRetain = frame.retain && this.retainOrder.isNewest(frame.topic, frame.retainStamp, frame.origin);
    if (frame.deliver && frame.id !== undefined) {
      this.lastRouted.set(sender, frame.id);
      if (this.forwarding > 0) this.forward(messageOf(frame), frame.retain, sender, frame.id);
      const hadIt = this.twoPaths.active ? this.twoPaths.routedUsually(sender, frame.id) : undefined;
      if (hadIt) {
        // Sessions arriving here had it handed on already: the others get it.
        routeFromPeer(this.broker!, { ...frame, deliver: false }, applyRetain);
        this.broker!.routeAmong(messageOf(frame), (clientId) => !hadIt(clientId), groupsOf(frame));
        return;
      }
    }
    routeFromPeer(this.broker!, frame, applyRetain);
  }

  /**
   * Of the adopted sessions, those a message from a dead node's inbox reached here already: routed through this node's
   * own inbox (sent to both before the adoption was known), or published here, since the session is here (the oldest
   * window of the adoptions in a row it is in: one adopted from a dead adopter came in an earlier one).
   */
  private cameUsually(origin: string, id: number): (clientId: string) => boolean {
    const verdicts = new Map<Window, boolean>();
    return (clientId) => {
      const window = this.adoptionChain.find((w) => w.sessions.has(clientId));
      if (!window) return false;
      let had = verdicts.get(window);
      if (had === undefined) verdicts.set(window, (had = !this.twoPaths.handOn(window, origin, id)));
      return had;
    };
  }

  /**
   * A dead node's inbox, after its sessions were adopted here (`adopted`): what it never routed goes to those
   * sessions (the others here had their own copy; retained messages are in the shared set already), then the inbox
   * and its dedup state are removed. Returns how many messages were routed.
   */
  async drainInboxOf(node: string, adopted: ReadonlySet<string>, remove: boolean): Promise<number> {
    const redis = this.redis!;
    const { keys } = this.options;
    const inbox = keys.inbox(node);
    const applied = new Map<string, number>();
    for (const [sender, seq] of Object.entries(await redis.hgetall(keys.applied(node)))) applied.set(sender, Number(seq));
    let routed = 0;
    let start = '-';
    while (adopted.size > 0) {
      const entries = await redis.xrangeBuffer(inbox, start, '+', 'COUNT', READ_COUNT);
      for (const [, fields] of entries) {
        const entry = readEntry(fields);
        if (!entry || isRoutedAlready(applied, entry)) continue;
        applied.set(entry.sender, entry.seq);
        this.routeEntry(entry.frames, (frame) => {
          if (!frame.deliver) return;
          const cameUsually = frame.id === undefined ? undefined : this.cameUsually(entry.sender, frame.id);
          let handedOn = false;
          this.broker!.routeAmong(messageOf(frame), (clientId) => {
            const give = adopted.has(clientId) && !cameUsually?.(clientId);
            if (give) handedOn = true;
            return give;
          }, groupsOf(frame));
          if (handedOn) routed++;
        });
      }
      if (entries.length < READ_COUNT) break;
      start = `(${entries.at(-1)![0].toString()}`;
    }
    // Where it is drained to, in the same store batch as what it routed or a later one: a crash between the two routes
    // them again (at least once), never skips one.
    if (!remove && applied.size > 0) {
      const pairs = [...applied].flatMap(([sender, seq]) => [sender, String(seq)]);
      this.options.batch((m) => m.hset(keys.applied(node), ...pairs));
    }
    // What it routed is stored here before the entries go: a crash before leaves them for the node's return.
    await new Promise<void>((resolve) => this.options.whenDurable(resolve));
    if (remove) await redis.del(inbox, keys.applied(node));
    return routed;
  }
}

/**
 * Writes this node's heartbeat with Redis' own time and reads everyone's (KEYS: nodes; ARGV: node). Returns the time,
 * this node's previous beat (false: it had none, or was removed as dead) and the hash. A node removed as dead is not
 * written back: the others see it again only once it has rejoined (register).
 */
const HEARTBEAT = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if previous then redis.call('HSET', KEYS[1], ARGV[1], now) end
return {now, previous, redis.call('HGETALL', KEYS[1])}`;

/**
 * Acknowledges inbox entries and trims the stream up to the last (KEYS: inbox, nodes, adopting; ARGV: node, group,
 * last id, ids...), unless the node was removed as dead or its sessions are being adopted: its adopter drains the inbox.
 */
const ACK_IF_MEMBER = `if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 or redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 0 end
redis.call('XACK', KEYS[1], ARGV[2], unpack(ARGV, 4))
redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[3])
return 1`;

/**
 * Records how far a node routed each sender's entries (KEYS: applied, nodes, adopting; ARGV: node, sender, number,
 * ...), unless it was removed as dead or its sessions are being adopted.
 */
const SET_APPLIED_IF_MEMBER = `if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 or redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1`;

/** This node's beat, in Redis' time (KEYS: nodes; ARGV: node). */
const BEAT = `local t = redis.call('TIME')
return redis.call('HSET', KEYS[1], ARGV[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))`;

/**
 * Removes a dead node's entry and filters, unless it beat again since it was read, and marks its sessions as being
 * adopted by the caller (KEYS: nodes, filters, adopting; ARGV: node, beat, caller). The adoptions the dead node had
 * begun become the caller's too, in the same step: a restart of the dead node then finds them taken on, and a claim
 * waits for the caller. Returns {1, those nodes...}, or {0}.
 */
const REAP_NODE = `if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return {0} end
-- A caller removed itself meanwhile (it does not know yet) adopts nothing: its own remover would not take it on.
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 0 then return {0} end
-- Nor does a caller whose own sessions the dead node was adopting (it restarted meanwhile): the dead node's copies
-- have what it drained for them, the caller's do not; another survivor takes that adoption on.
if redis.call('HGET', KEYS[3], ARGV[3]) == ARGV[1] then return {0} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
local result = {1}
local marks = redis.call('HGETALL', KEYS[3])
for i = 1, #marks, 2 do
  if marks[i + 1] == ARGV[1] then
    redis.call('HSET', KEYS[3], marks[i], ARGV[3])
    result[#result + 1] = marks[i]
  end
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return result`;

/** Frames gathered for one node, and whether the store's pending batch already has the command that sends them. */
interface Outbox {
  inbox: string;
  writer: FrameWriter;
  queued: boolean;
}

const EMPTY = Buffer.alloc(0);

/** An inbox entry: its frames, the node that sent it, and that node's number for it. */
interface InboxEntry {
  frames: Buffer;
  sender: string;
  seq: number;
}

/** The fields of an inbox entry (`f` frames, `n` sender, `s` number); undefined for one trimmed meanwhile. */
function readEntry(fields: Buffer[]): InboxEntry | undefined {
  let frames: Buffer | undefined;
  let sender = '';
  let seq = 0;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toString();
    if (name === 'f') frames = fields[i + 1];
    else if (name === 'n') sender = fields[i + 1]!.toString();
    else if (name === 's') seq = Number(fields[i + 1]!.toString());
  }
  return frames && { frames, sender, seq };
}

/** Whether an entry was routed already: its sender numbers its entries in the order Redis stores them. */
function isRoutedAlready(applied: ReadonlyMap<string, number>, entry: InboxEntry): boolean {
  return entry.seq !== 0 && entry.seq <= (applied.get(entry.sender) ?? 0);
}

const NO_GROUPS: readonly string[] = [];

const NO_GROUP_SERVED: SharedGroupFilter = () => false;

/** A session handed over lately, and the node it went to. */
interface Forward {
  clientId: string;
  node: string;
}

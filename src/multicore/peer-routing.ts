import net from 'node:net';
import path from 'node:path';
import type { Broker } from '../broker/broker.js';
import type { BrokerHooks } from '../broker/hooks.js';
import type { Logger } from '../broker/logger.js';
import type { Message } from '../broker/message.js';
import type { PeerRouting, SharedGroupFilter } from '../broker/peers.js';
import { parseSharedFilter } from '../protocol/index.js';
import { SubscriptionTrie } from '../topics/index.js';
import { FrameReader, FrameType, FrameWriter, type Frame } from './frames.js';
import { RetainOrder, routeFromPeer, shareGroups, SubscriberCounts } from './peer-common.js';

/** A peer's subscription as this worker knows it: plain, or one shared group. */
interface RemoteInterest {
  peer: number;
  group: string | undefined;
}

/**
 * Past this many unsent bytes to a peer, this worker stops reading its clients until the
 * link drains: the peer is the bottleneck, and what they publish would only pile up here.
 */
const LINK_HOLD_BYTES = 1024 * 1024;
/** Past this many, QoS 0 messages to that peer are dropped (clients already read keep publishing into it). */
const LINK_DROP_BYTES = 64 * 1024 * 1024;
/** Past this many, QoS 1 and 2 messages to that peer are dropped too: a peer this far behind is stuck. */
const LINK_HARD_LIMIT = 256 * 1024 * 1024;
/**
 * Longest hold of this worker's clients for a peer that does not drain: past it, reading resumes
 * (and the drop marks apply) until every link has drained once, so a stalled peer cannot freeze
 * this worker's clients for good.
 */
const HOLD_LIMIT_MS = 5000;
/** A peer that does not answer an interest within this time is not waited for (it is likely gone). */
const ACK_TIMEOUT_MS = 5000;
/**
 * How often filters without subscribers here are withdrawn from the peers. Withdrawing later
 * than the last unsubscribe costs only messages the peers send in vain (this worker drops them),
 * and it cannot race a SUBSCRIBE that found the filter announced: a filter asked for in the last
 * interval stays.
 */
const RECONCILE_MS = 10_000;

class PeerLink {
  readonly writer = new FrameWriter();
  readonly reader = new FrameReader();
  /** Filters this peer has told us about (to forget them if it goes). */
  readonly filters = new Set<string>();
  flushScheduled = false;
  constructor(readonly index: number, readonly socket: net.Socket) {}
}

export interface PeerRoutingOptions {
  /** This worker's index, 0..workers-1. */
  index: number;
  workers: number;
  /** Directory for the workers' Unix sockets (one per worker, `w{index}.sock`). */
  socketDir: string;
  logger: Logger;
}

/**
 * Multi-core mode, inside one worker process: keeps every other worker told which
 * filters are subscribed here, and sends each routed message once to each worker that
 * has a matching subscription (retained messages to all, so each worker keeps the full
 * retained set). Shared groups with members on several workers are served by one of them
 * per message, chosen by the publishing worker in turn.
 *
 * A SUBACK for a filter new to this worker waits until every peer has acknowledged it,
 * so a message published anywhere after the subscriber saw its SUBACK reaches it.
 */
export class PeerRoutingLinks implements PeerRouting {
  private broker: Broker | undefined;
  private readonly links: Array<PeerLink | undefined> = [];
  private readonly remote = new SubscriptionTrie<RemoteInterest>();
  /** Subscribers here per filter (shared: groups), as the router reports them. */
  private readonly counts = new SubscriberCounts();
  /** Filters the peers have been told about. */
  private readonly announced = new Set<string>();
  /** Announcements still waiting for acknowledgements, by filter. */
  private readonly pending = new Map<string, Promise<true>>();
  private readonly waiters = new Map<number, { left: Set<number>; done: () => void }>();
  private seq = 0;
  private readonly retainOrder = new RetainOrder();
  /** When a SUBSCRIBE last asked for each filter (reconcile keeps those asked for recently). */
  private readonly askedAt = new Map<string, number>();
  /** Peers that got the message last routed, with subscribers for it (read by the broker). */
  forwarded = 0;
  /** A link to a peer broke while not closing: the workers no longer share their routing. */
  onLinkLost: ((peer: number) => void) | undefined;
  private readonly groupTurn = new Map<string, number>();
  private server: net.Server | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private holding = false;
  private holdTimer: NodeJS.Timeout | undefined;
  /** The hold ran out: no new hold until every link has drained. */
  private holdSuspended = false;
  // Scratch state of one match, reset per message.
  private mask = 0;
  private readonly matchedGroups: RemoteInterest[] = [];
  private readonly collect = (value: RemoteInterest): void => {
    if (value.group === undefined) this.mask |= 1 << value.peer;
    else this.matchedGroups.push(value);
  };

  /** Hooks to compose last: a SUBSCRIBE's verdict waits for the peers to know its filter. */
  readonly hooks: BrokerHooks = {
    authorizeSubscribe: (_client, subscription) => this.announceAndWait(subscription.filter),
  };

  constructor(private readonly options: PeerRoutingOptions) {
    if (options.workers > 31) throw new RangeError('multi-core mode supports at most 31 workers');
  }

  static socketPath(dir: string, index: number): string {
    return path.join(dir, `w${index}.sock`);
  }

  /**
   * Listens for the higher-numbered workers and connects to the lower-numbered ones;
   * resolves once linked to all of them.
   */
  async start(broker: Broker): Promise<void> {
    this.broker = broker;
    const { index, workers, socketDir } = this.options;
    const expected = workers - 1 - index;
    let accepted = 0;
    let resolveAccepted: () => void = () => {};
    const allAccepted = new Promise<void>((resolve) => {
      resolveAccepted = resolve;
      if (expected === 0) resolve();
    });
    this.server = net.createServer((socket) => {
      socket.on('error', () => socket.destroy());
      // The connecting worker's first byte is its index.
      socket.once('data', (first) => {
        const peer = first[0]!;
        this.attach(peer, socket, first.subarray(1));
        if (++accepted === expected) resolveAccepted();
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(PeerRoutingLinks.socketPath(socketDir, index), () => resolve());
    });
    for (let peer = 0; peer < index; peer++) {
      const socket = await connectWithRetry(PeerRoutingLinks.socketPath(socketDir, peer));
      socket.write(Buffer.from([index]));
      this.attach(peer, socket, Buffer.alloc(0));
    }
    await allAccepted;
    this.reconcileTimer = setInterval(() => this.reconcile(), RECONCILE_MS).unref();
  }

  /** The workers are stopping together: links that close from now on are expected. */
  beginClose(): void {
    this.closed = true;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    clearTimeout(this.holdTimer);
    for (const link of this.links) link?.socket.end();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  // ---- what is subscribed here ------------------------------------------------

  filterAdded(filter: string): void {
    this.counts.added(filter);
    if (!this.announced.has(filter)) this.announce(filter);
  }

  filterRemoved(filter: string): void {
    this.counts.removed(filter); // withdrawn by reconcile, not at once
  }

  private announceAndWait(filter: string): true | Promise<true> {
    this.askedAt.set(filter, Date.now());
    const waiting = this.pending.get(filter);
    if (waiting) return waiting;
    if (this.announced.has(filter)) return true;
    return this.announce(filter);
  }

  private announce(filter: string): Promise<true> {
    this.announced.add(filter);
    const seq = (this.seq = (this.seq + 1) >>> 0);
    const left = new Set<number>();
    for (const link of this.links) {
      if (!link) continue;
      link.writer.interest(seq, filter);
      this.flushLater(link);
      left.add(link.index);
    }
    const done = new Promise<true>((resolve) => {
      if (left.size === 0) return resolve(true);
      const timer = setTimeout(() => {
        this.options.logger.warn({ filter, peers: [...left] }, 'multi-core: peers did not acknowledge a subscription in time');
        finish();
      }, ACK_TIMEOUT_MS);
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(seq);
        this.pending.delete(filter);
        resolve(true);
      };
      this.waiters.set(seq, { left, done: finish });
    });
    if (left.size > 0) this.pending.set(filter, done);
    return done;
  }

  private withdraw(filter: string): void {
    if (!this.announced.delete(filter)) return;
    for (const link of this.links) {
      if (!link) continue;
      link.writer.uninterest(filter);
      this.flushLater(link);
    }
  }

  /**
   * Withdraws filters with no subscriber here (unsubscribed, or announced for a SUBSCRIBE that was
   * then refused) that no SUBSCRIBE asked for in the last interval; forgets old retained stamps and
   * the turns of shared groups (a turn only spreads the load).
   */
  private reconcile(): void {
    const now = Date.now();
    for (const filter of this.announced) {
      if (this.counts.has(filter) || this.pending.has(filter)) continue;
      if (now - (this.askedAt.get(filter) ?? 0) < RECONCILE_MS) continue;
      this.withdraw(filter);
    }
    for (const [filter, at] of this.askedAt) if (now - at >= RECONCILE_MS) this.askedAt.delete(filter);
    this.retainOrder.prune(now);
    this.groupTurn.clear();
  }

  // ---- messages out -------------------------------------------------------------

  published(message: Message, retain: boolean): SharedGroupFilter | undefined {
    const topic = message.topic;
    this.forwarded = 0;
    this.mask = 0;
    this.remote.match(topic, this.collect);
    const mask = this.mask;
    let perWorkerGroups: Map<number, string[]> | undefined;
    let servesGroup: SharedGroupFilter | undefined;
    if (this.matchedGroups.length > 0) {
      const away = new Set<string>();
      perWorkerGroups = shareGroups(this.matchedGroups, this.options.index, (key) => this.broker!.router.group(key) !== undefined, this.groupTurn, away);
      this.matchedGroups.length = 0;
      servesGroup = (key) => !away.has(key);
    }
    let stamp = 0;
    if (retain) {
      stamp = Number(process.hrtime.bigint());
      this.retainOrder.sent(topic, stamp, this.options.index);
    }
    for (const link of this.links) {
      if (!link) continue;
      const groups = perWorkerGroups?.get(link.index) ?? NO_GROUPS;
      const deliver = (mask & (1 << link.index)) !== 0 || groups.length > 0;
      if (!deliver && !retain) continue;
      const unsent = link.socket.writableLength;
      if (unsent > LINK_DROP_BYTES && ((message.qos === 0 && !retain) || unsent > LINK_HARD_LIMIT)) {
        this.broker!.stats.drop('peerStuck');
        if (message.qos > 0) this.options.logger.error({ peer: link.index, unsent }, 'multi-core: a peer worker is stuck; QoS 1/2 message to it dropped');
        continue;
      }
      if (deliver) this.forwarded++;
      link.writer.publish({
        topic, payload: message.payload, qos: message.qos, retain, deliver, retainStamp: stamp, origin: this.options.index,
        expiresAt: message.expiresAt, properties: message.properties, groups,
      });
      this.flushLater(link);
    }
    return servesGroup;
  }

  private flushLater(link: PeerLink): void {
    if (link.flushScheduled) return;
    link.flushScheduled = true;
    process.nextTick(() => {
      link.flushScheduled = false;
      const bytes = link.writer.take();
      if (!bytes || link.socket.destroyed) return;
      link.socket.write(bytes);
      if (link.socket.writableLength > LINK_HOLD_BYTES && !this.holding && !this.holdSuspended) this.hold();
    });
  }

  private hold(): void {
    this.holding = true;
    this.broker!.holdReading(true);
    this.holdTimer = setTimeout(() => {
      this.options.logger.warn({ holdMs: HOLD_LIMIT_MS }, 'multi-core: a peer worker is not draining; reading this worker\'s clients again');
      this.holdSuspended = true;
      this.release();
    }, HOLD_LIMIT_MS);
  }

  private release(): void {
    clearTimeout(this.holdTimer);
    this.holding = false;
    this.broker!.holdReading(false);
  }

  /** Reading resumes once no link is over the hold mark. */
  private onDrain(): void {
    for (const link of this.links) if (link && link.socket.writableLength > LINK_HOLD_BYTES) return;
    this.holdSuspended = false;
    if (this.holding) this.release();
  }

  // ---- frames in ------------------------------------------------------------------

  private attach(peer: number, socket: net.Socket, rest: Buffer): void {
    const link = new PeerLink(peer, socket);
    this.links[peer] = link;
    socket.setNoDelay(true);
    const onFrame = (frame: Frame): void => {
      try {
        this.onFrame(link, frame);
      } catch (err) {
        // A hook or the store failing for one message must not cut the link the others need.
        this.options.logger.error({ err, peer }, 'multi-core: routing a message from a peer worker failed');
      }
    };
    const onData = (chunk: Buffer): void => {
      try {
        link.reader.push(chunk, onFrame);
      } catch (err) {
        this.options.logger.error({ err, peer }, 'multi-core: bad frame from a peer worker; dropping the link');
        socket.destroy();
      }
    };
    socket.on('data', onData);
    socket.on('error', (err) => {
      if (!this.closed) this.options.logger.error({ err: err.message, peer }, 'multi-core: peer link error');
    });
    socket.on('close', () => this.detach(link));
    socket.on('drain', () => this.onDrain());
    // Tell the new peer everything subscribed here so far (sessions restored from the store).
    for (const filter of this.announced) link.writer.interest(0, filter);
    this.flushLater(link);
    if (rest.length > 0) onData(rest);
  }

  private detach(link: PeerLink): void {
    if (this.links[link.index] !== link) return;
    this.links[link.index] = undefined;
    for (const filter of link.filters) this.forgetRemote(link.index, filter);
    for (const waiter of [...this.waiters.values()]) {
      if (waiter.left.delete(link.index) && waiter.left.size === 0) waiter.done();
    }
    this.onDrain();
    if (!this.closed) {
      this.options.logger.error({ peer: link.index }, 'multi-core: link to a peer worker closed');
      this.onLinkLost?.(link.index);
    }
  }

  private onFrame(link: PeerLink, frame: Frame): void {
    switch (frame.type) {
      case FrameType.Publish:
        // Last writer wins per retained topic, by the publishing worker's monotonic clock, then its index.
        routeFromPeer(this.broker!, frame, frame.retain && this.retainOrder.isNewest(frame.topic, frame.retainStamp, frame.origin));
        return;
      case FrameType.Interest: {
        if (!link.filters.has(frame.filter)) {
          link.filters.add(frame.filter);
          const shared = parseSharedFilter(frame.filter);
          if (shared) this.remote.add(shared.filter, `${link.index}\u0000${frame.filter}`, { peer: link.index, group: frame.filter });
          else this.remote.add(frame.filter, String(link.index), { peer: link.index, group: undefined });
        }
        if (frame.seq !== 0) {
          link.writer.ack(frame.seq);
          this.flushLater(link);
        }
        return;
      }
      case FrameType.Uninterest:
        if (link.filters.delete(frame.filter)) this.forgetRemote(link.index, frame.filter);
        return;
      case FrameType.Ack: {
        const waiter = this.waiters.get(frame.seq);
        if (waiter && waiter.left.delete(link.index) && waiter.left.size === 0) waiter.done();
        return;
      }
    }
  }

  private forgetRemote(worker: number, filter: string): void {
    const shared = parseSharedFilter(filter);
    if (shared) this.remote.remove(shared.filter, `${worker}\u0000${filter}`);
    else this.remote.remove(filter, String(worker));
  }
}

const NO_GROUPS: readonly string[] = [];

async function connectWithRetry(socketPath: string): Promise<net.Socket> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect(socketPath, () => {
          socket.off('error', reject);
          resolve(socket);
        });
        socket.once('error', reject);
      });
    } catch (err) {
      if (attempt >= 200) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

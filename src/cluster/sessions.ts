import { randomBytes } from 'node:crypto';
import type { RedisTarget } from '../store/redis-target.js';
import { closeNode, connectNode } from './connections.js';
import type { Redis } from 'ioredis';
import type { Broker } from '../broker/broker.js';
import type { Logger } from '../broker/logger.js';
import type { SessionOwnership } from '../broker/peers.js';
import type { InflightRecord, QueuedRecord, RecoveredSession, StoredMessage } from '../store/store.js';
import { ReasonCode, type WillMessage } from '../protocol/index.js';
import type { ClusterKeys } from './keys.js';

/**
 * Cluster mode: each Client Identifier's session lives on one node. The owner of each identifier is in the hash
 * `owners`; a CONNECT on another node claims it: that node asks the owner (on the owner's control channel) to
 * surrender the session, the owner closes the old connection with DISCONNECT 0x8E, writes the session's state
 * (subscriptions, queued and in-flight messages) under a handover key and answers, and the claiming node adopts it
 * before its CONNACK (session present).
 */

export interface ClusterSessionsOptions {
  redis: RedisTarget;
  nodeId: string;
  keys: ClusterKeys;
  /** Silent this long (ms, by Redis' clock), a node is dead. */
  deadAfterMs: number;
  /** This node is cut from Redis (it serves no client until it is back). */
  isFenced(): boolean;
  /** Runs `done` once this node's store has made durable what was handed to it so far. */
  whenDurable(done: () => void): void;
  /** A dead node's stored session, taken out of its store (undefined: it had none). */
  takeFromDeadNode(node: string, clientId: string): Promise<RecoveredSession | undefined>;
  /** A dead node's stored session, left there; and removing some from its store. */
  readFromDeadNode(node: string, clientId: string): Promise<RecoveredSession | undefined>;
  deleteFromDeadNode(node: string, clientIds: readonly string[]): Promise<void>;
  /** The Client Identifiers of a dead node's stored sessions. */
  sessionIdsOf(node: string): Promise<string[]>;
  /**
   * The routing side of adopting a dead node's sessions (ClusterRouting): `begin` right before they are adopted
   * here, `announce` once they are (their filters, and the dead node's gone, in one event to every node), `drain` to
   * route what the dead node's inbox held and it never routed to them (`remove`: then delete the inbox).
   */
  /**
   * The routing side of a session moving between live nodes: `expect` before asking for it (what is forwarded to it
   * waits; the function returned is called once it is here, or the claim failed), `forward` once it has left.
   */
  moving: {
    /** `arrived` takes what the node it left had routed (the session has it): not given to it again here. */
    expect(clientId: string): (routedUpTo: RoutedUpTo) => void;
    /** Returns the last message routed here from each node (the session has what it matched). */
    forward(clientId: string, node: string, filters: readonly string[]): RoutedUpTo;
    stopForwarding(clientId: string): void;
  };
  adoption: {
    begin(node: string, adopted: ReadonlySet<string>): void;
    end(): void;
    announce(node: string): Promise<void>;
    drain(node: string, adopted: ReadonlySet<string>, remove: boolean): Promise<number>;
  };
  /** Messages as the store writes them (sealed with encryption at rest): handed-over sessions and kept wills too. */
  encode(message: StoredMessage): string;
  decode(text: string): StoredMessage;
  logger: Logger;
}

/** How long a claim waits for the owner to hand the session over; past it, the session starts afresh here. */
const HANDOVER_TIMEOUT_MS = 3000;
/** A handover key outlives its claim by far, and is removed by the claimant anyway. */
const HANDOVER_TTL_S = 60;
/** How often a claim of a dead node's session looks again whether a survivor has adopted it. */
const ADOPTION_POLL_MS = 100;
/**
 * After the adoption is announced, how long nodes still routing to the dead node's inbox (a publish of theirs in a
 * store batch under way) have before it is read a last time and removed.
 */
const LAST_DRAIN_AFTER_MS = 2000;
/** An adoption that failed (Redis away) is tried again after this long. */
const ADOPTION_RETRY_MS = 1000;

interface Request {
  type: 'surrender';
  id: string;
  clientId: string;
  from: string;
}

interface Reply {
  type: 'surrendered';
  id: string;
  handed: boolean;
}

export class ClusterSessions implements SessionOwnership {
  private broker: Broker | undefined;
  private redis: Redis | undefined;
  private subscriber: Redis | undefined;
  private readonly waiting = new Map<string, (reply: Reply) => void>();
  /** Claims and surrenders of each Client Identifier, one at a time on this node. */
  private readonly busy = new Map<string, Promise<unknown>>();
  private closed = false;
  /** Adoptions of dead nodes' sessions, one at a time. */
  private adopting: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: ClusterSessionsOptions) {}

  async start(broker: Broker): Promise<void> {
    try {
      await this.connect(broker);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  private async connect(broker: Broker): Promise<void> {
    this.broker = broker;
    [this.redis, this.subscriber] = await connectNode(this.options.redis, this.options.nodeId, ['sessions', 'control']);
    this.subscriber.on('message', (_channel: string, text: string) => this.onControl(text));
    await this.subscriber.subscribe(this.options.keys.control(this.options.nodeId));
    // The sessions this node restored are its own, unless another node took them meanwhile (a claim while this one was
    // down); and the wills this node kept before a crash are published now (their connections died with it).
    // Adoptions this node had begun when it stopped: the sessions it had adopted are its own, and it finishes them.
    const unfinished = Object.entries(await this.redis.hgetall(this.options.keys.adopting)).filter(([, adopter]) => adopter === this.options.nodeId).map(([dead]) => dead);
    for (const dead of unfinished) await this.ownRestoredOf(dead);
    await this.rejoin(false);
    await this.publishWillsOf(this.options.nodeId, Date.now());
    for (const dead of unfinished) void this.adoptNode(dead, Date.now()).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    await closeNode([this.subscriber, this.redis]);
  }

  claim(clientId: string, clean: boolean): Promise<void> | undefined {
    // Before the node has joined (a client faster than the start), sessions are this node's alone.
    return this.redis ? this.oneAtATime(clientId, () => this.claimFrom(clientId, clean)) : undefined;
  }

  /** Runs `task` after every claim and surrender of `clientId` started before it on this node. */
  private oneAtATime<T>(clientId: string, task: () => Promise<T>): Promise<T> {
    const before = this.busy.get(clientId) ?? Promise.resolve();
    const run = before.then(task, task);
    this.busy.set(clientId, run);
    const forget = (): void => {
      if (this.busy.get(clientId) === run) this.busy.delete(clientId);
    };
    run.then(forget, forget);
    return run;
  }

  private async claimFrom(clientId: string, clean: boolean): Promise<void> {
    if (this.options.isFenced()) throw new Error('this node is cut from the cluster\'s Redis');
    const redis = this.redis!;
    const { keys, nodeId } = this.options;
    // A dead node's sessions are adopted by the survivor that removes it, with what its inbox held for them: a claim
    // waits until that is done, then takes the session from the adopter as from any live owner.
    const deadline = performance.now() + HANDOVER_TIMEOUT_MS;
    let previous: string | null;
    let state: ClaimState;
    for (;;) {
      // An adopter that died too is waited for as well: the survivor that removes it takes its adoptions on.
      const [owner, ownerState] = await redis.eval(CLAIM, 3, keys.owners, keys.nodes, keys.adopting, clientId, nodeId, this.options.deadAfterMs) as
        [string | null, ClaimState, string | null];
      previous = owner;
      state = ownerState;
      if (state !== 'wait') break; // owner now
      if (performance.now() > deadline) throw new Error(`the sessions of node ${owner!} are still being adopted`);
      await new Promise((resolve) => setTimeout(resolve, ADOPTION_POLL_MS));
    }
    if (previous === null || previous === nodeId) return;
    if (state === 'gone') {
      // Its node is dead and removed, and nobody adopted this session (it was not stored, or its adopter's mark was void):
      // it is taken out of that node's store here (that node finds it gone if it comes back).
      const stored = await this.options.takeFromDeadNode(previous, clientId);
      if (stored && !clean) {
        this.broker!.adoptSession(stored);
        this.options.logger.info({ clientId, from: previous }, 'cluster: session resumed from a dead node');
      }
      return;
    }
    // What the owner forwards to the session once it has let it go waits for it here.
    const arrived = this.options.moving.expect(clientId);
    let routedUpTo: RoutedUpTo = {};
    try {
      routedUpTo = await this.takeOver(clientId, clean, previous);
    } finally {
      arrived(routedUpTo);
    }
  }

  /** Asks the live owner of a session to hand it over, and adopts what comes (unless the CONNECT starts clean). */
  private async takeOver(clientId: string, clean: boolean, previous: string): Promise<RoutedUpTo> {
    const redis = this.redis!;
    const { keys, nodeId } = this.options;
    const id = randomBytes(8).toString('hex');
    const reply = await new Promise<Reply | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, HANDOVER_TIMEOUT_MS);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(r);
      });
      const request: Request = { type: 'surrender', id, clientId, from: nodeId };
      redis.publish(keys.control(previous), JSON.stringify(request)).catch(() => undefined);
    });
    // Given up: marked in the handover key, which the owner writes only if it is free; if the owner wrote it first,
    // the session is here after all, and it is taken.
    const gaveUp = reply ? null : await redis.set(keys.handover(id), ABANDONED, 'EX', HANDOVER_TTL_S, 'NX').catch(() => null);
    if (!reply && gaveUp !== null) {
      // Starting afresh would leave the session, and maybe its connection, on the other node: refused (0x88) instead.
      // The owner is the silent node again (unless somebody claimed it since), so whoever adopts its sessions if it
      // died counts this one in; a late owner finds the mark and keeps the session.
      await redis.eval(GIVE_BACK, 1, keys.owners, clientId, nodeId, previous).catch(() => undefined);
      throw new Error(`node ${previous} did not hand the session over within ${HANDOVER_TIMEOUT_MS} ms`);
    }
    if (reply && !reply.handed) return {};
    const text = await redis.getdel(keys.handover(id));
    if (text === null || text === ABANDONED || clean) return {}; // a clean start discards the old session [MQTT-3.1.2-4]
    const handed = decodeSession(text, this.options.decode);
    this.broker!.adoptSession(handed);
    this.options.logger.info({ clientId, from: previous }, 'cluster: session taken over from another node');
    return handed.routedUpTo;
  }

  /** Sessions this node restored that it had adopted from `dead` before a crash (still owned by `dead`): its own. */
  private async ownRestoredOf(dead: string): Promise<void> {
    const ids = [...this.broker!.sessions.keys()];
    if (ids.length > 0) await this.redis!.eval(OWN_IF_OWNED_BY, 1, this.options.keys.owners, dead, this.options.nodeId, ...ids);
  }

  /**
   * Cut from Redis: every client is disconnected (0x89 Server busy), without its will (the survivor that removes this
   * node publishes the wills kept in Redis); new clients are refused until Redis is back.
   */
  fence(): void {
    for (const client of [...this.broker!.connectedClients()]) this.broker!.disconnectClient(client.id, 'cut from the cluster', ReasonCode.ServerBusy, false);
  }

  /**
   * Back after being cut off or declared dead: sessions another node owns now leave this one (their connections get
   * 0x8E); the rest are this node's again. Declared dead, its clients' wills were published by a survivor and their
   * connections are closed too, without their wills: they connect again, here or elsewhere.
   */
  async rejoin(removed: boolean): Promise<void> {
    const broker = this.broker!;
    // Declared dead (or restarted after being), this node's sessions are being adopted by a survivor: what it keeps is
    // decided once that is done. An adopter that dies meanwhile has its adoption taken on by the node that removes it.
    for (let waited = 0; waited < 30_000; waited += ADOPTION_POLL_MS) {
      if (await this.redis!.hget(this.options.keys.adopting, this.options.nodeId) === null) break;
      await new Promise((resolve) => setTimeout(resolve, ADOPTION_POLL_MS));
    }
    const ids = [...broker.sessions.keys()];
    const owners = ids.length > 0 ? await this.redis!.hmget(this.options.keys.owners, ...ids) : [];
    const mine: string[] = [];
    ids.forEach((clientId, i) => {
      const owner = owners[i];
      if (owner && owner !== this.options.nodeId) broker.surrenderSession(clientId);
      else mine.push(clientId);
    });
    if (mine.length > 0) await this.redis!.hset(this.options.keys.owners, ...mine.flatMap((id) => [id, this.options.nodeId]));
    if (removed) this.fence();
  }

  willKept(clientId: string, will: WillMessage): void {
    const stored: StoredMessage = { topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain };
    if (will.properties) stored.properties = will.properties;
    this.redis?.hset(this.options.keys.wills(this.options.nodeId), clientId, this.options.encode(stored)).catch(() => undefined);
  }

  willGone(clientId: string): void {
    this.redis?.hdel(this.options.keys.wills(this.options.nodeId), clientId).catch(() => undefined);
  }

  /**
   * A dead node was removed, by this survivor alone: its stored sessions become this node's, with what its inbox held
   * for them and it never routed, and the wills of the clients it had connected are published here once (a will
   * with a delay, of a session adopted, waits for it as if the connection had closed at `diedAt`). Claims of those
   * sessions wait until this is done.
   */
  adoptNode(node: string, diedAt: number): Promise<void> {
    const run = this.adopting.then(() => this.adopt(node, diedAt));
    this.adopting = run.catch(() => undefined);
    return run;
  }

  private async adopt(node: string, diedAt: number): Promise<void> {
    try {
      await this.adoptOnce(node, diedAt);
    } catch (err) {
      // The mark stays (claims of its sessions wait): tried again, which skips what is done already.
      this.options.logger.error({ node, err: (err as Error).message }, 'cluster: adopting a dead node\'s sessions failed; trying again');
      await new Promise((resolve) => setTimeout(resolve, ADOPTION_RETRY_MS));
      if (this.redis && !this.closed) void this.adoptNode(node, diedAt).catch(() => undefined);
    }
  }

  private async adoptOnce(node: string, diedAt: number): Promise<void> {
    const redis = this.redis!;
    const { keys, nodeId, adoption } = this.options;
    const adopted = new Set<string>();
    if (!await this.stillAdopting(node)) return;
    // Read, not taken: they leave the dead node's store only once this node's has them (a crash in between leaves them
    // in both, and this node, back, finishes the adoption).
    const ids = await this.options.sessionIdsOf(node);
    const read: RecoveredSession[] = [];
    for (const clientId of ids) {
      if (this.broker!.sessions.has(clientId)) continue; // adopted before a crash of this node
      try {
        const stored = await this.options.readFromDeadNode(node, clientId);
        if (stored) read.push(stored);
      } catch (err) {
        this.options.logger.error({ node, clientId, err: (err as Error).message }, 'cluster: a dead node\'s session could not be read; left in its store');
      }
    }
    let routed = 0;
    if (!await this.stillAdopting(node)) return;
    // In one step: from now on a message published here reaches them here, not through the dead node's inbox.
    adoption.begin(node, adopted);
    try {
      for (const clientId of ids) if (this.broker!.sessions.has(clientId)) adopted.add(clientId);
      for (const stored of read) {
        this.broker!.adoptSession(stored);
        if (this.broker!.sessions.has(stored.record.clientId)) adopted.add(stored.record.clientId);
      }
      await this.publishWillsOf(node, diedAt);
      routed += await adoption.drain(node, adopted, false);
      await adoption.announce(node);
      // Publishes the other nodes routed to the dead node's inbox before they heard of the adoption: read a last time.
      await new Promise((resolve) => setTimeout(resolve, LAST_DRAIN_AFTER_MS));
      if (!await this.stillAdopting(node)) return;
      routed += await adoption.drain(node, adopted, true);
    } finally {
      adoption.end();
    }
    await new Promise<void>((resolve) => this.options.whenDurable(resolve));
    if (!await this.stillAdopting(node)) return;
    // Owners only where the dead node still is one (a claim cannot have changed them meanwhile: they wait for the mark).
    if (adopted.size > 0) await redis.eval(OWN_IF_OWNED_BY, 1, keys.owners, node, nodeId, ...adopted);
    // Those adopted before a crash of this node (skipped above) leave the dead node's store too.
    await this.options.deleteFromDeadNode(node, [...adopted]);
    // Claims of the dead node's sessions wait for this mark: gone, they go on (from this node).
    await redis.eval(DROP_ADOPTION, 1, keys.adopting, node, nodeId);
    this.options.logger.warn({ node, sessions: adopted.size, messages: routed }, 'cluster: the sessions of a dead node adopted here');
  }

  /**
   * Whether this node still holds the mark of `dead`'s adoption. Stalled (a pause, a slow Redis) until declared dead
   * itself, it lost the mark to the survivor that removed it, or `dead` is back: it stops there (what it adopted it gives
   * up as it rejoins, where others own it), and in particular removes nothing from `dead`'s store.
   */
  private async stillAdopting(dead: string): Promise<boolean> {
    if (await this.redis!.hget(this.options.keys.adopting, dead) === this.options.nodeId) return true;
    this.options.logger.warn({ node: dead }, 'cluster: the adoption of a dead node is no longer this node\'s; left to the one that has it');
    return false;
  }

  /**
   * The wills a node kept for its connections, published here once: a dead node's (by the survivor that removed it),
   * or this node's own after a crash. A will with a delay whose session is here waits for it from `closedAt`.
   */
  async publishWillsOf(node: string, closedAt: number): Promise<void> {
    const key = this.options.keys.wills(node);
    const [[, wills]] = (await this.redis!.multi().hgetall(key).del(key).exec()) as [[unknown, Record<string, string>], unknown];
    for (const [clientId, text] of Object.entries(wills)) {
      try {
        const stored = this.options.decode(text);
        const will: WillMessage = { topic: stored.topic, payload: stored.payload, qos: stored.qos, retain: stored.retain, ...(stored.properties && { properties: stored.properties }) };
        if (this.broker!.delayWill(clientId, will, closedAt)) continue;
        const properties = will.properties && { ...will.properties };
        if (properties) delete properties.willDelayInterval;
        this.broker!.publish({ topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, ...(properties && { properties }) });
        this.options.logger.info({ clientId, node, topic: will.topic }, 'cluster: will of a dead node\'s client published');
      } catch (err) {
        this.options.logger.error({ clientId, node, err: (err as Error).message }, 'cluster: a dead node\'s will could not be published');
      }
    }
  }

  private onControl(text: string): void {
    let message: Request | Reply;
    try {
      message = JSON.parse(text) as Request | Reply;
    } catch {
      return;
    }
    if (message.type === 'surrendered') {
      this.waiting.get(message.id)?.(message);
      return;
    }
    if (message.type === 'surrender') void this.oneAtATime(message.clientId, () => this.surrender(message));
  }

  /** Another node claims a session: hand it over (written once this node's store no longer has it). */
  private async surrender(request: Request): Promise<void> {
    const redis = this.redis!;
    const { keys } = this.options;
    let handed = false;
    try {
      // Its connection closes here without its will: the session goes on elsewhere.
      this.willGone(request.clientId);
      const session = this.broker!.sessions.has(request.clientId) ? this.broker!.surrenderSession(request.clientId) : undefined;
      if (session) {
        // What still reaches its filters here (the others learn of them at the claimant shortly) follows it there; and
        // what was routed here already (in the session now) is not given to it again there.
        const routedUpTo = this.options.moving.forward(request.clientId, request.from, session.subscriptions.map((sub) => sub.filter));
        await new Promise<void>((resolve) => this.options.whenDurable(resolve));
        const written = await redis.set(keys.handover(request.id), encodeSession({ ...session, routedUpTo }, this.options.encode), 'EX', HANDOVER_TTL_S, 'NX');
        if (written === null) {
          // The claimant gave up waiting (this node was slow): the session stays here.
          this.options.moving.stopForwarding(request.clientId);
          this.broker!.adoptSession(session);
          this.options.logger.warn({ clientId: request.clientId }, 'cluster: a claim gave up before the session was handed over; it stays here');
        } else handed = true;
      }
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message, clientId: request.clientId }, 'cluster: a session could not be handed over');
    }
    const reply: Reply = { type: 'surrendered', id: request.id, handed };
    await redis.publish(keys.control(request.from), JSON.stringify(reply)).catch(() => undefined);
  }
}

/**
 * What a claim found of the previous owner: alive (it is asked to hand the session over), gone (removed from the
 * cluster: the session is taken from its store), or wait (dead and not removed yet, or its sessions being adopted).
 */
type ClaimState = 'alive' | 'gone' | 'wait';

/**
 * Makes this node the owner of a Client Identifier, unless the owner is dead and its sessions not adopted yet
 * (KEYS: owners, nodes, adopting; ARGV: client id, this node, dead_after_ms). Liveness by Redis' clock, as the
 * heartbeats. Returns the previous owner, its state, and who adopts its sessions (if anybody does).
 */
const CLAIM = `local owner = redis.call('HGET', KEYS[1], ARGV[1])
local state = 'alive'
if owner and owner ~= ARGV[2] then
  local adopter = redis.call('HGET', KEYS[3], owner)
  if adopter then
    if redis.call('HEXISTS', KEYS[2], adopter) == 1 then return {owner, 'wait', adopter} end
    -- An adopter no longer among the nodes had its adoptions taken on when it was removed: a mark left behind
    -- (written by an older version) is void.
    redis.call('HDEL', KEYS[3], owner)
  end
  local beat = redis.call('HGET', KEYS[2], owner)
  if not beat then
    state = 'gone'
  else
    local t = redis.call('TIME')
    if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(beat) > tonumber(ARGV[3]) then return {owner, 'wait', false} end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {owner, state, false}`;

/** Gives a Client Identifier back to its previous owner (KEYS: owners; ARGV: client id, this node, previous), unless claimed since. */
const GIVE_BACK = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 0`;

/** Makes this node the owner of Client Identifiers the dead node still owns (KEYS: owners; ARGV: dead node, this node, ids...). */
const OWN_IF_OWNED_BY = `for i = 3, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then redis.call('HSET', KEYS[1], ARGV[i], ARGV[2]) end
end
return 0`;

/** Ends an adoption (KEYS: adopting; ARGV: dead node, adopter), unless another survivor has taken it on since. */
const DROP_ADOPTION = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`;

/** What a claimant that gave up writes in the handover key (the owner then keeps the session). */
const ABANDONED = 'abandoned';

/** The last message number routed on a node, by the node that numbered it. */
export type RoutedUpTo = Record<string, number>;

/** A session as handed over: its state, and what the node it left had routed. */
interface HandedSession extends RecoveredSession {
  routedUpTo: RoutedUpTo;
}

/** A session as JSON for the handover key; messages as the store writes them (sealed, with encryption at rest). */
function encodeSession(session: HandedSession, encode: (m: StoredMessage) => string): string {
  return JSON.stringify({
    routedUpTo: session.routedUpTo,
    record: session.record,
    subscriptions: session.subscriptions,
    queue: session.queue.map((e) => ({ ...e, message: encode(e.message) })),
    inflight: session.inflight.map((e) => ({ ...e, message: encode(e.message) })),
    incomingQos2: session.incomingQos2,
  });
}

function decodeSession(text: string, decode: (text: string) => StoredMessage): HandedSession {
  const raw = JSON.parse(text) as Omit<HandedSession, 'queue' | 'inflight'> & {
    queue: Array<Omit<QueuedRecord, 'message'> & { message: string }>;
    inflight: Array<Omit<InflightRecord, 'message'> & { message: string }>;
  };
  return {
    routedUpTo: raw.routedUpTo ?? {},
    record: raw.record,
    subscriptions: raw.subscriptions,
    queue: raw.queue.map((e) => ({ ...e, message: decode(e.message) })),
    inflight: raw.inflight.map((e) => ({ ...e, message: decode(e.message) })),
    incomingQos2: raw.incomingQos2,
  };
}

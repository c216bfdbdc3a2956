import { randomBytes } from 'node:crypto';
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
  url: string;
  nodeId: string;
  keys: ClusterKeys;
  /** Whether a node is alive, as the heartbeats say. */
  isAlive(node: string): boolean;
  /** This node is cut from Redis (it serves no client until it is back). */
  isFenced(): boolean;
  /** Runs `done` once this node's store has made durable what was handed to it so far. */
  whenDurable(done: () => void): void;
  /** A dead node's stored session, taken out of its store (undefined: it had none). */
  takeFromDeadNode(node: string, clientId: string): Promise<RecoveredSession | undefined>;
  /** Messages as the store writes them (sealed with encryption at rest): handed-over sessions and kept wills too. */
  encode(message: StoredMessage): string;
  decode(text: string): StoredMessage;
  logger: Logger;
}

/** How long a claim waits for the owner to hand the session over; past it, the session starts afresh here. */
const HANDOVER_TIMEOUT_MS = 3000;
/** A handover key outlives its claim by far, and is removed by the claimant anyway. */
const HANDOVER_TTL_S = 60;

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
    const { Redis } = await import('ioredis');
    const connect = (name: string): Redis => {
      const redis = new Redis(this.options.url, { lazyConnect: true, maxRetriesPerRequest: null, enableOfflineQueue: true, connectionName: `moat-${this.options.nodeId}-${name}` });
      redis.on('error', () => {});
      return redis;
    };
    this.redis = connect('sessions');
    this.subscriber = connect('control');
    await Promise.all([this.redis.connect(), this.subscriber.connect()]);
    this.subscriber.on('message', (_channel: string, text: string) => this.onControl(text));
    await this.subscriber.subscribe(this.options.keys.control(this.options.nodeId));
    // The sessions this node restored are its own, unless another node took them meanwhile (a claim while this one was
    // down); and the wills this node kept before a crash are published now (their connections died with it).
    await this.rejoin(false);
    await this.publishWillsOf(this.options.nodeId);
  }

  async close(): Promise<void> {
    await this.subscriber?.quit().catch(() => undefined);
    await this.redis?.quit().catch(() => undefined);
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
    // Owner now, whoever had it: a CONNECT on another node meanwhile claims it from here.
    const [[, previous]] = (await redis.multi().hget(keys.owners, clientId).hset(keys.owners, clientId, nodeId).exec()) as [[unknown, string | null], unknown];
    if (previous === null || previous === nodeId) return;
    if (!this.options.isAlive(previous)) {
      // Its node is dead: the session is taken out of that node's store (it finds it gone if it comes back).
      const stored = await this.options.takeFromDeadNode(previous, clientId);
      if (stored && !clean) {
        this.broker!.adoptSession(stored);
        this.options.logger.info({ clientId, from: previous }, 'cluster: session resumed from a dead node');
      }
      return;
    }
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
    if (!reply) {
      // Starting afresh would leave the session, and maybe its connection, on the other node: refused (0x88) instead.
      throw new Error(`node ${previous} did not hand the session over within ${HANDOVER_TIMEOUT_MS} ms`);
    }
    if (!reply.handed) return;
    const text = await redis.getdel(keys.handover(id));
    if (text === null || clean) return; // a clean start discards the old session [MQTT-3.1.2-4]
    this.broker!.adoptSession(decodeSession(text, this.options.decode));
    this.options.logger.info({ clientId, from: previous }, 'cluster: session taken over from another node');
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
   * A dead node was removed (by this survivor alone): the wills of the clients it had connected are published here,
   * once, and without their delay.
   */
  async publishWillsOf(node: string): Promise<void> {
    const key = this.options.keys.wills(node);
    const [[, wills]] = (await this.redis!.multi().hgetall(key).del(key).exec()) as [[unknown, Record<string, string>], unknown];
    for (const [clientId, text] of Object.entries(wills)) {
      try {
        const will = this.options.decode(text);
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
        await new Promise<void>((resolve) => this.options.whenDurable(resolve));
        await redis.set(keys.handover(request.id), encodeSession(session, this.options.encode), 'EX', HANDOVER_TTL_S);
        handed = true;
      }
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message, clientId: request.clientId }, 'cluster: a session could not be handed over');
    }
    const reply: Reply = { type: 'surrendered', id: request.id, handed };
    await redis.publish(keys.control(request.from), JSON.stringify(reply)).catch(() => undefined);
  }
}

/** A session as JSON for the handover key; messages as the store writes them (sealed, with encryption at rest). */
function encodeSession(session: RecoveredSession, encode: (m: StoredMessage) => string): string {
  return JSON.stringify({
    record: session.record,
    subscriptions: session.subscriptions,
    queue: session.queue.map((e) => ({ ...e, message: encode(e.message) })),
    inflight: session.inflight.map((e) => ({ ...e, message: encode(e.message) })),
    incomingQos2: session.incomingQos2,
  });
}

function decodeSession(text: string, decode: (text: string) => StoredMessage): RecoveredSession {
  const raw = JSON.parse(text) as Omit<RecoveredSession, 'queue' | 'inflight'> & {
    queue: Array<Omit<QueuedRecord, 'message'> & { message: string }>;
    inflight: Array<Omit<InflightRecord, 'message'> & { message: string }>;
  };
  return {
    record: raw.record,
    subscriptions: raw.subscriptions,
    queue: raw.queue.map((e) => ({ ...e, message: decode(e.message) })),
    inflight: raw.inflight.map((e) => ({ ...e, message: decode(e.message) })),
    incomingQos2: raw.incomingQos2,
  };
}

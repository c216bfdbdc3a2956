import type { ChainableCommander, Redis } from 'ioredis';
import { jsonToRow, messageFromJson, messageToJson, rowToJson, rowToMessage, sealRow } from './codec.js';
import { AtRestCipher, AtRestError, type AtRestKeys } from './at-rest.js';
import { StoreError } from './errors.js';
import { RedisLock } from './lock.js';
import { LatencyHistogram } from '../measure/latency.js';
import type {
  BrokerStore, StoreLogger, StoreTimings, InflightRecord, QueuedRecord, RecoveredSession, RecoveredState, SessionRecord, StoredMessage, StoredRecord, SubscriptionRecord,
} from './store.js';
import { describeTarget, openRedis, type RedisTarget } from './redis-target.js';

export interface RedisStoreOptions {
  /** redis://host:port/db */
  url: string;
  /** The master Sentinel names, found through these Sentinels (`url` then gives its password, database, TLS). */
  sentinel?: RedisTarget['sentinel'];
  /** Or a Redis Cluster, reached through some of its nodes (keyPrefix must then be a hash tag: one slot). */
  clusterNodes?: RedisTarget['clusterNodes'];
  /**
   * Acknowledge a batch only once this many replicas have it too (Redis WAIT), or `waitTimeoutMs` passed (the log
   * says so): with Sentinel, what a failover promotes has what was acknowledged.
   */
  waitReplicas?: number;
  waitTimeoutMs?: number;
  /** Prefix of every key, so brokers can share a Redis (default "moat:"). */
  keyPrefix?: string;
  /** The hash of retained messages, if not `{keyPrefix}retained`: cluster mode's nodes share one. */
  retainedKey?: string;
  logger?: StoreLogger;
  /** Encryption at rest of queued, in-flight and retained messages (docs/payload-encryption.md, "At rest"). */
  encryption?: AtRestKeys;
  /** While another broker holds the prefix, keep trying this long before refusing (default 0: refuse at once). */
  lockWaitMs?: number;
  /** How long the lock lives without renewal (default 30 s; renewed every third of it). */
  lockTtlMs?: number;
  /**
   * The lock expired (Redis unreachable for longer than its lifetime) and another broker holds it now: this one
   * must stop writing. Default: an error is logged.
   */
  onLockLost?: (holder: string) => void;
}

/** How long a batch waits for `waitReplicas` by default, and while replicas were missing at the last batch. */
const DEFAULT_WAIT_TIMEOUT_MS = 1000;
const SHORT_WAIT_MS = 10;
/** While short of replicas, how often a batch waits for them (SHORT_WAIT_MS; Redis times WAIT out at its hz, ~100 ms). */
const REPLICA_PROBE_MS = 1000;

/** Schema version kept in `{prefix}meta`; the same place SQLite keeps `user_version`. */
export const REDIS_SCHEMA_VERSION = 1;
/** Sessions whose keys are read in one pipeline at startup, and the HSCAN batch size. */
const LOAD_CHUNK = 500;
const SCAN_COUNT = 5000;
/** Fields read per HSCAN call by a rekey pass, and re-encrypted by one script call. */
const REKEY_BATCH = 200;

/**
 * Replaces hash fields whose value is still the one the rekey pass read (ARGV: field, old, new, ...): a field the
 * broker deleted or rewrote meanwhile stays as the broker left it. Returns how many were replaced.
 */
const REPLACE_UNCHANGED = `local n = 0
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    n = n + 1
  end
end
return n`;

/** Records re-encrypted by a rekey pass, per kind. */
export interface ReencryptionCounts {
  queued: number;
  inflight: number;
  retained: number;
}

/**
 * The BrokerStore on a Redis server. Changes are gathered per event-loop turn
 * and sent as one MULTI/EXEC; `whenDurable` callbacks run when Redis has
 * answered it, so acknowledgements are as durable as Redis' own settings make
 * them (with `appendonly yes` and `appendfsync always`, on disk before the reply).
 * A failed batch (Redis down) is kept and retried; acknowledgements wait.
 */
export class RedisStore implements BrokerStore {
  changes = 0;
  readonly timings: StoreTimings = { write: new LatencyHistogram() };
  private redis: Redis | undefined;
  private readonly prefix: string;
  private batch: Array<(m: ReturnType<Redis['multi']>) => void> = [];
  private batchWaiters: Array<() => void> = [];
  /** The batch being written, and the callbacks that wait for it. */
  private writing: { ops: RedisStore['batch']; waiters: Array<() => void> } | undefined;
  private scheduled = false;
  private retryDelay = 10;
  private opening: Promise<RecoveredState> | undefined;
  /** Held from open to close: one broker per key prefix. */
  private lock: RedisLock | undefined;
  private readonly cipher: AtRestCipher | undefined;
  /** Records the last load found under another key than the current one (or plain): a rekey pass starts after open. */
  private staleRecords = 0;
  /** The rekey pass running; a newer one (another key) replaces it, and the older one's callers wait for it. */
  private rekeyRun: { generation: number; done: Promise<ReencryptionCounts> } | undefined;
  private rekeyGeneration = 0;

  private readonly retainedKey: string;

  private readonly target: RedisTarget;

  constructor(private readonly options: RedisStoreOptions) {
    this.target = { url: options.url, ...(options.sentinel && { sentinel: options.sentinel }), ...(options.clusterNodes && { clusterNodes: options.clusterNodes }) };
    this.prefix = options.keyPrefix ?? 'moat:';
    this.retainedKey = options.retainedKey ?? `${this.prefix}retained`;
    if (options.encryption) this.cipher = new AtRestCipher(options.encryption);
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  async open(): Promise<RecoveredState> {
    const opening = this.openStore();
    this.opening = opening;
    try {
      return await opening;
    } finally {
      this.opening = undefined;
    }
  }

  private async openStore(): Promise<RecoveredState> {
    // Loaded here, not at startup: ioredis costs a quarter of a second to load, and most brokers never use it.
    const ioredis = await import('ioredis');
    const redis = openRedis(ioredis, this.target, { lazyConnect: true, maxRetriesPerRequest: null, enableOfflineQueue: true });
    redis.on('close', () => this.connectionEpoch++);
    redis.on('error', () => {}); // reconnects by itself; failures surface as failed batches
    try {
      await redis.connect();
      this.lock = await RedisLock.acquire(redis, this.prefix, describeTarget(this.target), {
        onLost: this.options.onLockLost ?? ((holder) => {
          this.options.logger?.error({ url: describeTarget(this.target), keyPrefix: this.prefix, holder }, 'the store lock expired and is held by another broker now; stop one of them');
        }),
        ...(this.options.lockWaitMs !== undefined && { waitMs: this.options.lockWaitMs }),
        ...(this.options.lockTtlMs !== undefined && { ttlMs: this.options.lockTtlMs }),
      });
      const version = Number((await redis.hget(this.key('meta'), 'schema')) ?? '0');
      if (version > REDIS_SCHEMA_VERSION) {
        throw new Error(`written by a newer Moat (schema ${version}, this version reads up to ${REDIS_SCHEMA_VERSION}); refusing to start`);
      }
      if (version < REDIS_SCHEMA_VERSION) await redis.hset(this.key('meta'), 'schema', String(REDIS_SCHEMA_VERSION));
      const state = await this.load(redis);
      this.redis = redis;
      // Plain records (encryption just turned on) or records under an older key: re-encrypted in the background.
      if (this.cipher && this.staleRecords > 0) this.reencrypt().catch(() => undefined); // a failure is logged
      return state;
    } catch (err) {
      await this.lock?.release();
      this.lock = undefined;
      redis.disconnect();
      if (err instanceof StoreError) throw err;
      if (err instanceof AtRestError) throw new StoreError(describeTarget(this.target), `${err.message} (key prefix "${this.prefix}"); refusing to start`);
      throw new StoreError(describeTarget(this.target), `cannot use the Redis store: ${(err as Error).message}`);
    }
  }

  /**
   * Reads the state with HSCAN (bounded replies, no multi-second HGETALL of a
   * million retained messages blocking Redis) and per-session keys pipelined in chunks.
   */
  /** Reads one stored message, counting it if it is not under the current key. */
  private readonly readMessage = (text: string): StoredMessage => {
    const row = jsonToRow(text);
    if (this.cipher && row.key_id !== this.cipher.currentKeyId) this.staleRecords++;
    return rowToMessage(row, this.cipher);
  };

  private async load(redis: Redis): Promise<RecoveredState> {
    this.staleRecords = 0;
    const records = await this.scanHash(redis, this.key('sessions'));
    const sessions: RecoveredSession[] = [];
    const ids = [...records.keys()];
    for (let start = 0; start < ids.length; start += LOAD_CHUNK) {
      const chunk = ids.slice(start, start + LOAD_CHUNK);
      const pipeline = redis.pipeline();
      for (const clientId of chunk) {
        pipeline.hgetall(this.key('subs', clientId));
        pipeline.hgetall(this.key('queue', clientId));
        pipeline.hgetall(this.key('inflight', clientId));
        pipeline.smembers(this.key('in2', clientId));
      }
      const replies = (await pipeline.exec()) ?? [];
      chunk.forEach((clientId, i) => {
        const [subs, queue, inflight, incoming] = replies.slice(i * 4, i * 4 + 4).map(([err, value]) => {
          if (err) throw err;
          return value;
        }) as [Record<string, string>, Record<string, string>, Record<string, string>, string[]];
        sessions.push(this.sessionFrom(records.get(clientId)!, subs, queue, inflight, incoming));
      });
    }
    const retained: StoredMessage[] = [];
    for (const text of (await this.scanHash(redis, this.retainedKey)).values()) retained.push(this.readMessage(text));
    const security: StoredRecord[] = [];
    for (const kind of await redis.smembers(this.key('record-kinds'))) {
      for (const [key, json] of await this.scanHash(redis, this.key('records', kind))) {
        security.push({ kind, key, value: JSON.parse(json) as unknown });
      }
    }
    return { sessions, retained, records: security };
  }

  /** A whole hash through HSCAN; a field HSCAN reports twice is kept once. */
  private async scanHash(redis: Redis, key: string): Promise<Map<string, string>> {
    const fields = new Map<string, string>();
    let cursor = '0';
    do {
      const [next, flat] = await redis.hscan(key, cursor, 'COUNT', SCAN_COUNT);
      for (let i = 0; i < flat.length; i += 2) fields.set(flat[i]!, flat[i + 1]!);
      cursor = next;
    } while (cursor !== '0');
    return fields;
  }

  async close(): Promise<void> {
    // A close during open waits for it, so the connection and the lock it took are released too.
    if (this.opening) await this.opening.catch(() => undefined);
    if (!this.redis) return;
    for (let i = 0; i < 50 && (this.batch.length > 0 || this.writing); i++) {
      if (!this.writing) this.write();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Not for ever: with Redis gone, the lock's release and QUIT would wait for it (the lock then expires by itself).
    const giveUp = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 3000).unref());
    await Promise.race([this.lock?.release(), giveUp()]);
    this.lock = undefined;
    await Promise.race([this.redis.quit().catch(() => undefined), giveUp()]);
    this.redis.disconnect();
    this.redis = undefined;
  }

  private change(op: (m: ReturnType<Redis['multi']>) => void): void {
    this.changes++;
    this.batch.push(op);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        if (!this.writing) this.write();
      });
    }
  }

  /**
   * Cluster mode: reads one session another broker kept under `prefix` (a dead node's) and removes it from there, in
   * one transaction, so that broker finds it gone if it comes back. Undefined if it has no such session.
   */
  async takeSession(prefix: string, clientId: string): Promise<RecoveredSession | undefined> {
    return this.readSessionOf(prefix, clientId, true);
  }

  /** Cluster mode: reads one session another broker kept under `prefix`, leaving it there (`remove`: taking it out). */
  async readSessionOf(prefix: string, clientId: string, remove = false): Promise<RecoveredSession | undefined> {
    const redis = this.redis;
    if (!redis) return undefined;
    const at = (...parts: string[]): string => prefix + parts.join(':');
    const multi = redis.multi()
      .hget(at('sessions'), clientId).hgetall(at('subs', clientId)).hgetall(at('queue', clientId)).hgetall(at('inflight', clientId)).smembers(at('in2', clientId));
    if (remove) multi.hdel(at('sessions'), clientId).del(at('subs', clientId), at('queue', clientId), at('inflight', clientId), at('in2', clientId));
    const replies = await multi.exec();
    if (!replies) return undefined;
    const [record, subs, queue, inflight, incoming] = replies.slice(0, 5).map(([err, value]) => {
      if (err) throw err;
      return value;
    }) as [string | null, Record<string, string>, Record<string, string>, Record<string, string>, string[]];
    return record === null ? undefined : this.sessionFrom(record, subs, queue, inflight, incoming);
  }

  /** Cluster mode: removes sessions another broker kept under `prefix` (a dead node's, once adopted elsewhere). */
  async deleteSessionsOf(prefix: string, clientIds: readonly string[]): Promise<void> {
    const redis = this.redis;
    if (!redis || clientIds.length === 0) return;
    const multi = redis.multi().hdel(`${prefix}sessions`, ...clientIds);
    for (const id of clientIds) multi.del(`${prefix}subs:${id}`, `${prefix}queue:${id}`, `${prefix}inflight:${id}`, `${prefix}in2:${id}`);
    await multi.exec();
  }

  /** Cluster mode: the Client Identifiers of the sessions another broker kept under `prefix` (a dead node's). */
  async sessionIdsOf(prefix: string): Promise<string[]> {
    const redis = this.redis;
    if (!redis) return [];
    const ids: string[] = [];
    let cursor = '0';
    do {
      const [next, flat] = await redis.hscan(`${prefix}sessions`, cursor, 'COUNT', SCAN_COUNT);
      for (let i = 0; i < flat.length; i += 2) ids.push(flat[i]!);
      cursor = next;
    } while (cursor !== '0');
    return ids;
  }

  /** A session from its record and the hashes and set of its keys. */
  private sessionFrom(
    record: string, subs: Record<string, string>, queue: Record<string, string>, inflight: Record<string, string>, incoming: string[],
  ): RecoveredSession {
    return {
      record: JSON.parse(record) as SessionRecord,
      subscriptions: Object.values(subs).map((s) => JSON.parse(s) as SubscriptionRecord),
      queue: Object.values(queue).map((text) => parseQueued(text, this.readMessage)).sort((a, b) => a.seq - b.seq),
      inflight: Object.values(inflight).map((text) => parseInflight(text, this.readMessage)),
      incomingQos2: incoming.map(Number),
    };
  }

  /** A message as this store writes one (sealed, with encryption at rest), for cluster mode's own keys. */
  encodeMessage(message: StoredMessage): string {
    return messageToJson(message, this.cipher);
  }

  decodeMessage(text: string): StoredMessage {
    return messageFromJson(text, this.cipher);
  }

  /**
   * Adds another module's commands (cluster mode's routing) to the next batch: they share its MULTI/EXEC, and what
   * waits for `whenDurable` waits for them too. Without `op`, a change that an op already in the pending batch covers.
   */
  addToBatch(op: ((m: ChainableCommander) => void) | undefined): void {
    if (op) this.change(op);
    else this.changes++; // covered by an op of the pending batch
  }

  saveSession(r: SessionRecord): void {
    const text = JSON.stringify(r);
    this.change((m) => m.hset(this.key('sessions'), r.clientId, text));
  }

  deleteSession(clientId: string): void {
    this.change((m) => {
      m.hdel(this.key('sessions'), clientId);
      m.del(this.key('subs', clientId), this.key('queue', clientId), this.key('inflight', clientId), this.key('in2', clientId));
    });
  }

  putSubscription(clientId: string, s: SubscriptionRecord): void {
    const text = JSON.stringify(s);
    this.change((m) => m.hset(this.key('subs', clientId), s.filter, text));
  }

  deleteSubscription(clientId: string, filter: string): void {
    this.change((m) => m.hdel(this.key('subs', clientId), filter));
  }

  enqueue(clientId: string, e: QueuedRecord): void {
    const text = JSON.stringify({ seq: e.seq, qos: e.qos, share: e.share, message: messageToJson(e.message, this.cipher) });
    this.change((m) => m.hset(this.key('queue', clientId), String(e.seq), text));
  }

  dequeue(clientId: string, seq: number): void {
    this.change((m) => m.hdel(this.key('queue', clientId), String(seq)));
  }

  putInflight(clientId: string, e: InflightRecord): void {
    const text = JSON.stringify({ packetId: e.packetId, state: e.state, qos: e.qos, share: e.share, message: messageToJson(e.message, this.cipher) });
    this.change((m) => m.hset(this.key('inflight', clientId), String(e.packetId), text));
  }

  deleteInflight(clientId: string, packetId: number): void {
    this.change((m) => m.hdel(this.key('inflight', clientId), String(packetId)));
  }

  putIncomingQos2(clientId: string, packetId: number): void {
    this.change((m) => m.sadd(this.key('in2', clientId), String(packetId)));
  }

  deleteIncomingQos2(clientId: string, packetId: number): void {
    this.change((m) => m.srem(this.key('in2', clientId), String(packetId)));
  }

  putRetained(message: StoredMessage): void {
    const text = messageToJson(message, this.cipher);
    this.change((m) => m.hset(this.retainedKey, message.topic, text));
  }

  deleteRetained(topic: string): void {
    this.change((m) => m.hdel(this.retainedKey, topic));
  }

  putRecord(kind: string, key: string, value: unknown): void {
    const json = JSON.stringify(value);
    this.change((m) => {
      m.sadd(this.key('record-kinds'), kind);
      m.hset(this.key('records', kind), key, json);
    });
  }

  deleteRecord(kind: string, key: string): void {
    this.change((m) => m.hdel(this.key('records', kind), key));
  }

  // ---- encryption at rest: rekey ----

  /**
   * The key file read again (SIGHUP): new records use its current key at once, and a rekey pass re-encrypts the
   * rest. Keys the file no longer holds stay readable in memory until the restart. False: nothing changed.
   */
  useKeys(keys: AtRestKeys): boolean {
    if (!this.cipher || !this.cipher.differs(keys)) return false; // turning encryption on needs a restart
    const keptInMemory = this.cipher.use(keys);
    if (keptInMemory.length > 0) {
      this.options.logger?.warn?.({ file: keys.file, keyIds: keptInMemory }, 'key ids no longer in the store key file stay readable until the restart');
    }
    this.reencrypt().catch(() => undefined); // a failure is logged
    return true;
  }

  /**
   * Re-encrypts every queued, in-flight and retained record not under the current key (plain ones included): HSCAN
   * batches, each replaced by a script only where the broker has not changed the field meanwhile. Resolves with the
   * counts once done; a pass started meanwhile (another key) takes over, and this one resolves with it.
   */
  reencrypt(): Promise<ReencryptionCounts> {
    if (!this.cipher || !this.redis) return Promise.resolve({ queued: 0, inflight: 0, retained: 0 });
    const generation = ++this.rekeyGeneration;
    const done = this.rekeyPass(generation, this.cipher.currentKeyId);
    this.rekeyRun = { generation, done };
    return done;
  }

  private async rekeyPass(generation: number, keyId: number): Promise<ReencryptionCounts> {
    const where = { url: describeTarget(this.target), keyPrefix: this.prefix, keyId };
    this.options.logger?.info?.(where, 'store rekey started');
    const startedAt = performance.now();
    // Records sealed before the key changed are written before the pass reads.
    await new Promise<void>((resolve) => this.whenDurable(resolve));
    const counts: ReencryptionCounts = { queued: 0, inflight: 0, retained: 0 };
    let unreadable = 0;
    const superseded = (): boolean => generation !== this.rekeyGeneration || this.redis === undefined;
    const resealMessage = (text: string): string | undefined => {
      const row = jsonToRow(text);
      if (row.key_id === keyId) return undefined;
      try {
        return rowToJson(sealRow(row, this.cipher!));
      } catch (err) {
        // Changed since the start (which opened every record): left as it is, said once per pass.
        if (!unreadable++) this.options.logger?.error({ ...where, err: (err as Error).message }, 'store rekey: a record does not open; left as it is');
        return undefined;
      }
    };
    // Queued and in-flight entries hold the message's JSON in their own.
    const resealEntry = (text: string): string | undefined => {
      const entry = JSON.parse(text) as { message: string };
      const message = resealMessage(entry.message);
      return message === undefined ? undefined : JSON.stringify({ ...entry, message });
    };
    try {
      counts.retained += await this.rekeyHash(this.retainedKey, resealMessage, superseded);
      let cursor = '0';
      do {
        const [next, flat] = await this.redis!.hscan(this.key('sessions'), cursor, 'COUNT', REKEY_BATCH);
        for (let i = 0; i < flat.length && !superseded(); i += 2) {
          counts.queued += await this.rekeyHash(this.key('queue', flat[i]!), resealEntry, superseded);
          counts.inflight += await this.rekeyHash(this.key('inflight', flat[i]!), resealEntry, superseded);
        }
        cursor = next;
      } while (cursor !== '0' && !superseded());
    } catch (err) {
      if (superseded()) return this.rekeyRun && this.rekeyRun.generation !== generation ? this.rekeyRun.done : counts;
      this.rekeyRun = undefined;
      this.options.logger?.error({ ...where, err: (err as Error).message }, 'store rekey failed; it starts again at the next reload or start');
      throw err;
    }
    if (superseded()) {
      // A newer pass runs (or the store closed: the next start goes on).
      return this.rekeyRun && this.rekeyRun.generation !== generation ? this.rekeyRun.done : counts;
    }
    this.rekeyRun = undefined;
    const ms = Math.round(performance.now() - startedAt);
    if (unreadable > 0) this.options.logger?.error({ ...where, ...counts, unreadable, ms }, 'store rekey incomplete: records that do not open were left as they are; keep the old keys');
    else this.options.logger?.info?.({ ...where, ...counts, ms }, 'store rekey complete');
    return counts;
  }

  /** One hash through HSCAN; returns how many fields were re-encrypted. */
  private async rekeyHash(key: string, reseal: (text: string) => string | undefined, superseded: () => boolean): Promise<number> {
    let replaced = 0;
    let cursor = '0';
    do {
      const [next, flat] = await this.redis!.hscan(key, cursor, 'COUNT', REKEY_BATCH);
      const args: string[] = [];
      for (let i = 0; i < flat.length; i += 2) {
        const resealed = reseal(flat[i + 1]!);
        if (resealed !== undefined) args.push(flat[i]!, flat[i + 1]!, resealed);
      }
      if (args.length > 0) replaced += Number(await this.redis!.eval(REPLACE_UNCHANGED, 1, key, ...args));
      cursor = next;
    } while (cursor !== '0' && !superseded());
    return replaced;
  }

  whenDurable(done: () => void): void {
    if (this.batch.length > 0) this.batchWaiters.push(done);
    else if (this.writing) this.writing.waiters.push(done);
    else done();
  }

  durableNow(): boolean {
    return this.batch.length === 0 && this.writing === undefined;
  }

  /**
   * WAIT, on the server that ran the batch: WAIT names no key, and a Redis Cluster client would send it to any master;
   * behind a keyed command in one pipeline it goes where the keys' slot is.
   */
  private async waitFor(redis: Redis, replicas: number, timeoutMs: number): Promise<number> {
    const replies = await redis.pipeline().exists(this.key('meta')).wait(replicas, timeoutMs).exec();
    const [err, count] = replies?.[1] ?? [new Error('WAIT not answered'), 0];
    if (err) throw err;
    return Number(count);
  }

  /** Counts the store connection's drops. */
  private connectionEpoch = 0;
  private fewReplicasLoggedAt = 0;
  private shortOfReplicas = false;
  private replicasProbedAt = 0;

  /** Fewer replicas than `waitReplicas` had a batch in time: acknowledged anyway (logged at most every 10 s). */
  private fewReplicas(replicas: number): void {
    const now = Date.now();
    if (now - this.fewReplicasLoggedAt < 10_000) return;
    this.fewReplicasLoggedAt = now;
    this.options.logger?.error({ replicas, wanted: this.options.waitReplicas, url: describeTarget(this.target) }, 'Redis replicas did not confirm writes in time (wait_timeout_ms); acknowledging without them until they do (checked every second): a failover now could lose writes');
  }

  /** Sends the gathered changes as one MULTI/EXEC; callbacks run once Redis has answered. */
  private write(): void {
    const redis = this.redis;
    if (!redis || this.batch.length === 0) return;
    const writing = { ops: this.batch, waiters: this.batchWaiters };
    this.batch = [];
    this.batchWaiters = [];
    this.writing = writing;
    const multi = redis.multi();
    for (const op of writing.ops) op(multi);
    const started = performance.now();
    const epoch = this.connectionEpoch;
    const executed = multi.exec();
    // Sent right behind the transaction on the same connection: answered once enough replicas have it.
    // Short of replicas at the last wait (one died, a failover left none): batches go on without waiting, and one a
    // second waits briefly to see whether they are back; not the whole timeout for every batch.
    let replicated: Promise<number> | undefined;
    if (this.options.waitReplicas) {
      const now = performance.now();
      if (!this.shortOfReplicas) replicated = this.waitFor(redis, this.options.waitReplicas, this.options.waitTimeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS);
      else if (now - this.replicasProbedAt >= REPLICA_PROBE_MS) {
        this.replicasProbedAt = now;
        replicated = this.waitFor(redis, this.options.waitReplicas, SHORT_WAIT_MS);
      }
    }
    Promise.all([executed, replicated]).then(
      ([results, replicas]) => {
        const failed = results?.find(([err]) => err);
        if (!results || failed) throw failed?.[0] ?? new Error('transaction discarded');
        // ioredis sends what was unanswered again on the next connection: a WAIT answered there (a new master after a
        // failover) says nothing of the batch the lost one ran. Sent again (an entry Redis holds twice is routed once).
        if (replicated !== undefined && this.connectionEpoch !== epoch) throw new Error('the connection to Redis dropped while replicas were awaited');
        if (replicas !== undefined) {
          this.shortOfReplicas = replicas < this.options.waitReplicas!;
          if (this.shortOfReplicas) this.fewReplicas(replicas);
        }
        this.timings.write.observeSince(started);
        this.writing = undefined;
        this.retryDelay = 10;
        for (const done of writing.waiters) done();
        if (this.batch.length > 0) this.write();
      },
    ).catch((err: unknown) => {
      this.options.logger?.error({ err: (err as Error).message, url: describeTarget(this.target) }, 'Redis write failed; acknowledgements wait until it succeeds');
      // Put the batch back in front of newer changes and try again.
      this.batch = [...writing.ops, ...this.batch];
      this.batchWaiters = [...writing.waiters, ...this.batchWaiters];
      this.writing = undefined;
      setTimeout(() => this.write(), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 1000);
    });
  }
}

function parseQueued(text: string, read: (text: string) => StoredMessage): QueuedRecord {
  const raw = JSON.parse(text) as { seq: number; qos: QueuedRecord['qos']; share?: string; message: string };
  const entry: QueuedRecord = { seq: raw.seq, qos: raw.qos, message: read(raw.message) };
  if (raw.share !== undefined) entry.share = raw.share;
  return entry;
}

function parseInflight(text: string, read: (text: string) => StoredMessage): InflightRecord {
  const raw = JSON.parse(text) as { packetId: number; state: InflightRecord['state']; qos: InflightRecord['qos']; share?: string; message: string };
  const entry: InflightRecord = { packetId: raw.packetId, state: raw.state, qos: raw.qos, message: read(raw.message) };
  if (raw.share !== undefined) entry.share = raw.share;
  return entry;
}

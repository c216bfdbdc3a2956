import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisTarget } from '../store/redis-target.js';
import { closeNode, connectNode, connectOrClose } from './connections.js';
import type { Logger } from '../broker/logger.js';
import type { RuntimeRecord, RuntimeSecurity } from '../security/runtime-store.js';
import type { ClusterKeys } from './keys.js';

/**
 * Cluster mode: users, groups and roles changed at runtime (the REST API, Mosquitto's dynamic-security API) are the
 * cluster's. Every record a change writes on a node (cascades included) goes into one hash all nodes share, with the
 * hash's next version number, and to every node on a channel, in one script; each node applies the records in version
 * order, its own too, so concurrent changes of one item end the same everywhere (the last one Redis ran). A node reads
 * the whole hash (with its version) when it joins, after a reconnect, when a version is missing from what it heard
 * (an event lost), and whenever the hash's version differs from its own at the periodic check; what arrives during a
 * read is applied after it, if newer. The first node of a cluster brings its own set into the hash, in the same script
 * that finds the hash without one: of two nodes starting a cluster at once, one set wins whole. Versions start from
 * Redis' clock in milliseconds, so a hash lost and begun again is ahead of every node, not behind.
 */

export interface ClusterRuntimeOptions {
  redis: RedisTarget;
  nodeId: string;
  keys: ClusterKeys;
  runtime: RuntimeSecurity;
  logger: Logger;
}

/** Hash field that says the hash holds the cluster's set (an empty set is a set too). */
const SEEDED = '\u0000seeded';
/** Hash field: the number of the last change written (each change's event carries it). */
const VERSION = '\u0000version';
/** How often a node checks that it has heard every change (events lost without a reconnect). */
const CHECK_MS = 10_000;
/** A change Redis refused (a connection lost mid-script) is sent again after this long, unless changed since. */
const RETRY_MS = 1000;

/** The hash's next version (KEYS[1]: hash, ARGV[1]: version field); a hash without one starts from Redis' clock. */
const NEXT_VERSION = `local function nextVersion()
  if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
    local t = redis.call('TIME')
    redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
  end
  return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
end
`;

/**
 * KEYS: hash, this change's key. ARGV: version field, record field, value ('' deletes), channel, event. Returns the
 * change's version; a change run already (sent again after its reply was lost) is not run twice.
 */
const SHARE = `${NEXT_VERSION}local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local v = nextVersion()
redis.call('SET', KEYS[2], string.format('%.0f', v), 'EX', 600)
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[2]) else redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) end
redis.call('PUBLISH', ARGV[4], string.format('%.0f', v) .. '\\n' .. ARGV[5])
return v`;

/**
 * KEYS: hash. ARGV: version field, seeded field, channel, event, then this node's records as field/value pairs. A hash
 * without a set gets this node's records, and the other nodes are told to read it. Returns the whole hash.
 */
const READ_OR_SEED = `${NEXT_VERSION}if redis.call('HSETNX', KEYS[1], ARGV[2], '1') == 1 then
  for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  redis.call('PUBLISH', ARGV[3], string.format('%.0f', nextVersion()) .. '\\n' .. ARGV[4])
end
return redis.call('HGETALL', KEYS[1])`;

interface RuntimeEvent {
  version: number;
  from: string;
  /** Absent: the hash was begun again (seeded), read it. */
  record?: RuntimeRecord;
}

export class ClusterRuntime {
  private redis: Redis | undefined;
  private subscriber: Redis | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** This node's latest change of each field not yet written to Redis (sent again after a failure while it is the latest). */
  private readonly unwritten = new Map<string, RuntimeRecord>();
  /** The version this node's set is at. */
  private version = 0;
  /** Events heard during a read of the hash: applied after it, those it did not have. */
  private heardWhileReading: RuntimeEvent[] | undefined;
  private readAgain = false;
  private closed = false;

  constructor(private readonly options: ClusterRuntimeOptions) {}

  async start(): Promise<void> {
    await connectOrClose(() => this.connect(), () => this.close());
  }

  private async connect(): Promise<void> {
    [this.redis, this.subscriber] = await connectNode(this.options.redis, this.options.nodeId, ['runtime', 'runtime-events']);
    this.subscriber.on('message', (_channel: string, text: string) => this.onEvent(text));
    await this.subscriber.subscribe(this.options.keys.runtimeEvents);
    await this.readShared();
    this.subscriber.on('ready', () => this.catchUp());
    this.timer = setInterval(() => void this.check(), CHECK_MS).unref();
    this.options.runtime.onRecord((record) => this.share(record));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await closeNode([this.subscriber, this.redis]);
  }

  /** Reads the hash again (events were lost), logging a failure: the next check or reconnect tries again. */
  private catchUp(): void {
    this.readShared().catch((err: Error) => this.options.logger.error({ err: err.message }, 'cluster: runtime users, groups and roles could not be read again'));
  }

  /**
   * The hash at another version than this node: ahead (an event lost without a reconnect, e.g. a subscription moved
   * on a Redis Cluster), or behind (the hash lost and begun again while this node heard nothing of it).
   */
  private async check(): Promise<void> {
    if (this.closed || this.heardWhileReading) return;
    const text = await this.redis!.hget(this.options.keys.runtime, VERSION).catch(() => null);
    if (text !== null && Number(text) !== this.version && !this.heardWhileReading) this.catchUp();
  }

  /** The cluster's set replaces this node's; a cluster without one yet gets this node's. */
  private async readShared(): Promise<void> {
    if (this.heardWhileReading) {
      this.readAgain = true; // a read is running: it reads once more when done
      return;
    }
    const { keys, runtime } = this.options;
    this.heardWhileReading = [];
    try {
      do {
        this.readAgain = false;
        const mine = runtime.records().flatMap((r) => [fieldOf(r), JSON.stringify(r.value)]);
        const seeding = JSON.stringify({ from: this.options.nodeId });
        const flat = await this.redis!.eval(READ_OR_SEED, 1, keys.runtime, VERSION, SEEDED, keys.runtimeEvents, seeding, ...mine) as string[];
        const records: RuntimeRecord[] = [];
        let version = 0;
        for (let i = 0; i < flat.length; i += 2) {
          if (flat[i] === VERSION) version = Number(flat[i + 1]);
          const record = recordOf(flat[i]!, flat[i + 1]!);
          if (record) records.push(record);
        }
        runtime.replaceAll(records);
        this.version = version;
        // Heard meanwhile: what the hash had already is skipped; a version missing after it means reading again.
        const heard = this.heardWhileReading.sort((a, b) => a.version - b.version);
        this.heardWhileReading = [];
        for (const event of heard) if (!this.apply(event)) this.readAgain = true;
      } while (this.readAgain && !this.closed);
    } finally {
      this.heardWhileReading = undefined;
    }
  }

  private share(record: RuntimeRecord, id = randomBytes(8).toString('hex')): void {
    const { keys, nodeId } = this.options;
    const field = fieldOf(record);
    this.unwritten.set(field, record);
    const value = record.value === undefined ? '' : JSON.stringify(record.value);
    this.redis!.eval(SHARE, 2, keys.runtime, keys.runtimeChange(id), VERSION, field, value, keys.runtimeEvents, JSON.stringify({ from: nodeId, record })).then(
      () => {
        if (this.unwritten.get(field) === record) this.unwritten.delete(field);
      },
      (err: Error) => {
        this.options.logger.error({ err: err.message, kind: record.kind, key: record.key }, 'cluster: a runtime change could not be shared; trying again');
        setTimeout(() => {
          // Changed again here since: that change is the one to share.
          if (!this.closed && this.unwritten.get(field) === record) this.share(record, id);
        }, RETRY_MS).unref();
      },
    );
  }

  private onEvent(text: string): void {
    const cut = text.indexOf('\n');
    let event: RuntimeEvent;
    try {
      event = { version: Number(text.slice(0, cut)), ...(JSON.parse(text.slice(cut + 1)) as Omit<RuntimeEvent, 'version'>) };
    } catch {
      return;
    }
    if (cut <= 0 || !Number.isInteger(event.version)) return;
    if (this.heardWhileReading) {
      this.heardWhileReading.push(event);
      return;
    }
    if (!this.apply(event)) this.catchUp();
  }

  /**
   * Applies the next change (false: one before it is missing, or the hash was begun again: read it); one this node
   * has already is skipped. This node's own changes too, in Redis' order: two nodes changing one item end alike (a
   * node changing an item twice in quick succession shows the first value again until the second comes back).
   */
  private apply(event: RuntimeEvent): boolean {
    if (event.version <= this.version) return true;
    if (event.version > this.version + 1 || !event.record) return false;
    this.version = event.version;
    this.options.runtime.applyRecord(event.record);
    return true;
  }
}

function fieldOf(record: RuntimeRecord): string {
  return `${record.kind}\u0000${record.key}`;
}

function recordOf(field: string, text: string): RuntimeRecord | undefined {
  const cut = field.indexOf('\u0000');
  const kind = field.slice(0, cut);
  if (cut <= 0 || (kind !== 'user' && kind !== 'group' && kind !== 'role')) return undefined;
  try {
    return { kind, key: field.slice(cut + 1), value: JSON.parse(text) as RuntimeRecord['value'] };
  } catch {
    return undefined;
  }
}

import type { Redis } from 'ioredis';
import type { RedisTarget } from '../store/redis-target.js';
import { closeNode, connectNode } from './connections.js';
import type { Logger } from '../broker/logger.js';
import type { RuntimeRecord, RuntimeSecurity } from '../security/runtime-store.js';
import type { ClusterKeys } from './keys.js';

/**
 * Cluster mode: users, groups and roles changed at runtime (the REST API, Mosquitto's dynamic-security API) are the
 * cluster's. Every record a change writes on a node (cascades included) goes into one hash all nodes share and, in the
 * same transaction, to every node on a channel; each node applies the records in the order Redis sent them, its own
 * too, so concurrent changes of one item end the same everywhere (the last one Redis ran). A node that joins, or
 * reconnects (events sent meanwhile are lost), replaces its set with the hash; the first node of a cluster brings its
 * own set into the hash.
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

export class ClusterRuntime {
  private redis: Redis | undefined;
  private subscriber: Redis | undefined;
  /** This node's changes on their way through Redis, by field: an echo older than the last one is not applied. */
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly options: ClusterRuntimeOptions) {}

  async start(): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  private async connect(): Promise<void> {
    [this.redis, this.subscriber] = await connectNode(this.options.redis, this.options.nodeId, ['runtime', 'runtime-events']);
    this.subscriber.on('message', (_channel: string, text: string) => this.onEvent(text));
    await this.subscriber.subscribe(this.options.keys.runtimeEvents);
    await this.readShared();
    this.subscriber.on('ready', () => {
      this.readShared().catch((err: Error) => this.options.logger.error({ err: err.message }, 'cluster: runtime users, groups and roles could not be read again'));
    });
    this.options.runtime.onRecord((record) => this.share(record));
  }

  async close(): Promise<void> {
    await closeNode([this.subscriber, this.redis]);
  }

  /** The cluster's set replaces this node's; a cluster without one yet gets this node's. */
  private async readShared(): Promise<void> {
    const { keys, runtime } = this.options;
    const seeded = await this.redis!.hsetnx(keys.runtime, SEEDED, '1');
    if (seeded === 1) {
      const records = runtime.records();
      if (records.length > 0) await this.redis!.hset(keys.runtime, ...records.flatMap((r) => [fieldOf(r), JSON.stringify(r.value)]));
      return;
    }
    const records: RuntimeRecord[] = [];
    for (const [field, text] of Object.entries(await this.redis!.hgetall(keys.runtime))) {
      const record = recordOf(field, text);
      if (record) records.push(record);
    }
    runtime.replaceAll(records);
  }

  private share(record: RuntimeRecord): void {
    const { keys, nodeId } = this.options;
    const field = fieldOf(record);
    this.inFlight.set(field, (this.inFlight.get(field) ?? 0) + 1);
    const multi = this.redis!.multi();
    if (record.value === undefined) multi.hdel(keys.runtime, fieldOf(record));
    else multi.hset(keys.runtime, fieldOf(record), JSON.stringify(record.value));
    multi.publish(keys.runtimeEvents, JSON.stringify({ from: nodeId, record }));
    multi.exec().catch((err: Error) => {
      this.settle(field);
      this.options.logger.error({ err: err.message, kind: record.kind, key: record.key }, 'cluster: a runtime change could not be shared');
    });
  }

  private onEvent(text: string): void {
    let event: { from: string; record: RuntimeRecord };
    try {
      event = JSON.parse(text) as typeof event;
    } catch {
      return;
    }
    // This node's own records too (the last of them): applied again in Redis' order, two nodes changing one item end alike.
    if (event.from === this.options.nodeId && this.settle(fieldOf(event.record)) > 0) return;
    this.options.runtime.applyRecord(event.record);
  }

  /** One of this node's changes of `field` has come back (or failed); returns how many are still on their way. */
  private settle(field: string): number {
    const left = (this.inFlight.get(field) ?? 1) - 1;
    if (left > 0) this.inFlight.set(field, left);
    else this.inFlight.delete(field);
    return left;
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

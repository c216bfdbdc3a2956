import path from 'node:path';
import { describeTarget } from '../store/redis-target.js';
import type { ClusterConfig } from '../config/cluster.js';
import type { StoreConfig } from '../config/load.js';
import { MemoryStore } from '../store/memory.js';
import { RedisStore } from '../store/redis.js';
import { SqliteStore } from '../store/sqlite.js';
import type { BrokerStore, StoreLogger } from '../store/store.js';
import { readAtRestKeys, type AtRestKeys } from '../store/at-rest.js';

/** Each worker of multi-core mode keeps its own sessions: a directory or key prefix of its own. */
export function storeForWorker(config: StoreConfig, index: number | undefined): StoreConfig {
  if (index === undefined) return config;
  switch (config.type) {
    case 'memory': return config;
    case 'redis': return { ...config, keyPrefix: `${config.keyPrefix ?? 'moat:'}worker-${index}:` };
    case 'sqlite': return { ...config, directory: path.join(config.directory, `worker-${index}`) };
  }
}

/** A node of a cluster keeps its sessions under a key prefix of its own (its lock: one process per node id). */
export function storeForNode(config: StoreConfig, cluster: ClusterConfig | undefined): StoreConfig {
  if (!cluster || config.type !== 'redis') return config;
  // Retained messages are the cluster's: one hash for every node (a broker's own, from before it joined, included).
  return { ...config, keyPrefix: nodeStorePrefix(config, cluster.nodeId), retainedKey: `${config.keyPrefix ?? 'moat:'}retained` };
}

/** Where a cluster node keeps its sessions in the Redis store. */
export function nodeStorePrefix(config: StoreConfig, nodeId: string): string {
  return `${config.type === 'redis' ? config.keyPrefix ?? 'moat:' : 'moat:'}node:${nodeId}:`;
}

/** A worker whose predecessor (an orphan of a killed primary) is still closing waits this long for its store. */
const WORKER_LOCK_WAIT_MS = 10_000;

export interface StoreContext {
  logger: StoreLogger & { info(obj: object, msg?: string): void };
  /** This process is a worker of multi-core mode. */
  worker: boolean;
  /** The store's lock was lost to another broker (Redis): this broker must stop. */
  onLockLost: (holder: string) => void;
}

export function createStore(config: StoreConfig, { logger, worker, onLockLost }: StoreContext): BrokerStore {
  const lockWaitMs = worker ? WORKER_LOCK_WAIT_MS : 0;
  switch (config.type) {
    case 'memory': return new MemoryStore();
    case 'redis':
      return new RedisStore({
        url: config.url, keyPrefix: config.keyPrefix, logger, lockWaitMs, onLockLost, ...encryptionOf(config),
        ...(config.sentinel && { sentinel: config.sentinel }),
        ...(config.clusterNodes && { clusterNodes: config.clusterNodes }),
        ...(config.waitReplicas !== undefined && { waitReplicas: config.waitReplicas }),
        ...(config.waitTimeoutMs !== undefined && { waitTimeoutMs: config.waitTimeoutMs }),
        ...(config.retainedKey !== undefined && { retainedKey: config.retainedKey }),
      });
    case 'sqlite':
      return new SqliteStore({
        directory: path.resolve(config.directory), durability: config.durability, flushIntervalMs: config.flushIntervalMs, logger, lockWaitMs,
        ...encryptionOf(config),
      });
  }
}

function encryptionOf(config: StoreConfig): { encryption?: AtRestKeys } {
  return config.type !== 'memory' && config.encryption ? { encryption: readAtRestKeys(config.encryption.keyFile) } : {};
}

/**
 * SIGHUP: the store's key file (encryption at rest) read again. New records use its current key at once and the
 * store re-encrypts the others in the background, logging `store rekey complete`. A file that does not read keeps
 * the keys in force. True when the keys changed.
 */
export function reloadStoreKeys(store: BrokerStore, config: StoreConfig, logger: StoreContext['logger']): boolean {
  if (config.type === 'memory' || !config.encryption || !(store instanceof SqliteStore || store instanceof RedisStore)) return false;
  let keys: AtRestKeys;
  try {
    keys = readAtRestKeys(config.encryption.keyFile);
  } catch (err) {
    logger.error({ file: config.encryption.keyFile, err: (err as Error).message }, 'store key file not reloaded; the keys in force stay');
    return false;
  }
  try {
    return store.useKeys(keys);
  } catch (err) {
    logger.error({ file: config.encryption.keyFile, err: (err as Error).message }, 'store key file not reloaded; the keys in force stay');
    return false;
  }
}

/** Where the state lives, for the start-up line: an absolute directory, or the Redis address and key prefix. */
export function describeStore(config: StoreConfig): string {
  switch (config.type) {
    case 'memory': return 'memory';
    case 'redis': return `${describeTarget(config)} (key prefix "${config.keyPrefix ?? 'moat:'}")`;
    case 'sqlite': return `${path.resolve(config.directory)} (${config.durability})`;
  }
}

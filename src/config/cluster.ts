import type { Locate } from './file-checks.js';
import type { RedisTarget } from '../store/redis-target.js';
import { redisKeyPrefix, redisTargetOf } from './load.js';
import type { FileConfig } from './schema.js';

/** The `cluster:` section (docs/cluster.md): this node's name, the cluster's Redis, and when a silent node is dead. */
export interface ClusterConfig {
  nodeId: string;
  /** The cluster's Redis: the store's. */
  redis: RedisTarget;
  /** Prefix of the cluster's own keys (default: the store's prefix followed by "cluster:"). */
  keyPrefix: string;
  heartbeatMs: number;
  deadAfterMs: number;
}

export const DEFAULT_HEARTBEAT_MS = 1000;
export const DEFAULT_DEAD_AFTER_MS = 10_000;

export function readCluster(config: FileConfig, located: Locate): ClusterConfig | undefined {
  const section = config.cluster;
  if (!section) return undefined;
  // Sessions, retained messages and the routing between nodes live in Redis: every node must reach the same one.
  if (config.store?.type !== 'redis') {
    throw located(['cluster'], `needs the Redis store (store: { type: redis, url: ... }) that every node of the cluster shares; the store here is ${config.store?.type ?? 'sqlite (the default)'}`);
  }
  const heartbeatMs = section.heartbeat_ms ?? DEFAULT_HEARTBEAT_MS;
  const deadAfterMs = section.dead_after_ms ?? DEFAULT_DEAD_AFTER_MS;
  if (deadAfterMs < 3 * heartbeatMs) {
    throw located(['cluster', 'dead_after_ms'], `${deadAfterMs} ms is less than three heartbeats (heartbeat_ms: ${heartbeatMs}): a node would be declared dead after one late heartbeat`);
  }
  const storePrefix = redisKeyPrefix(config.store) ?? 'moat:';
  const redis: RedisTarget = redisTargetOf(config.store);
  return {
    redis, nodeId: section.node_id, keyPrefix: `${storePrefix}cluster:`, heartbeatMs, deadAfterMs,
  };
}

import type { Cluster, Redis, RedisOptions } from 'ioredis';

/**
 * Where a Redis is: one server (`url`); the master Sentinel names (`sentinel`), found through the Sentinels and
 * followed across failovers; or a Redis Cluster (`clusterNodes`, some of its nodes), whose slot owners are followed
 * across failovers. The URL's user, password and TLS (rediss://) apply in every case, its database to the first two.
 */
export interface RedisTarget {
  url: string;
  sentinel?: { name: string; nodes: Array<{ host: string; port: number }> };
  clusterNodes?: Array<{ host: string; port: number }>;
}

/** What is used of the ioredis module (loaded on demand: it costs a quarter of a second). */
export interface IoRedisModule {
  Redis: typeof Redis;
  Cluster: typeof Cluster;
}

/**
 * A connection to the target; ioredis' own reconnection does the rest. A Redis Cluster client has the commands of a
 * single connection, and every key Moat uses carries one hash tag (one slot), so its transactions and scripts work
 * there unchanged: it is typed as one.
 */
export function openRedis(ioredis: IoRedisModule, target: RedisTarget, options: RedisOptions): Redis {
  if (target.clusterNodes) {
    const { lazyConnect, enableOfflineQueue, ...perNode } = options;
    const url = new URL(target.url);
    const redisOptions: RedisOptions = {
      ...perNode,
      ...(url.username && { username: decodeURIComponent(url.username) }),
      ...(url.password && { password: decodeURIComponent(url.password) }),
      ...(url.protocol === 'rediss:' && { tls: {} }),
    };
    const cluster = new ioredis.Cluster(target.clusterNodes, {
      lazyConnect: lazyConnect ?? false, enableOfflineQueue: enableOfflineQueue ?? true, redisOptions,
      // Slots move during a failover: keep asking rather than fail the command.
      retryDelayOnClusterDown: 200, retryDelayOnFailover: 200, retryDelayOnTryAgain: 200, maxRedirections: 64,
      clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    });
    return cluster as unknown as Redis;
  }
  if (!target.sentinel) return new ioredis.Redis(target.url, options);
  return new ioredis.Redis(target.url, { ...options, sentinels: target.sentinel.nodes, name: target.sentinel.name });
}

/** The target in words, for logs and errors (never the password). */
export function describeTarget(target: RedisTarget): string {
  const url = target.url.replace(/\/\/[^@/]*@/, '//');
  if (target.clusterNodes) return `Redis Cluster via ${target.clusterNodes.map((n) => `${n.host}:${n.port}`).join(', ')}`;
  if (!target.sentinel) return url;
  return `Sentinel master "${target.sentinel.name}" via ${target.sentinel.nodes.map((n) => `${n.host}:${n.port}`).join(', ')}`;
}

import type { Redis } from 'ioredis';
import { openRedis, type RedisTarget } from '../store/redis-target.js';

/**
 * Connections of one node to the cluster's Redis, one per use (commands, a subscription, a blocking read), named
 * `moat-{node}-{use}` in Redis' CLIENT LIST. They reconnect by themselves and queue commands meanwhile; failures
 * surface where commands fail. Resolves once all are connected; if one cannot connect, none is left open.
 */
export async function connectNode(target: RedisTarget, nodeId: string, uses: readonly string[]): Promise<Redis[]> {
  const ioredis = await import('ioredis');
  const connections = uses.map((use) => {
    const redis = openRedis(ioredis, target, { lazyConnect: true, maxRetriesPerRequest: null, enableOfflineQueue: true, connectionName: `moat-${nodeId}-${use}` });
    redis.on('error', () => {});
    return redis;
  });
  try {
    await Promise.all(connections.map((redis) => redis.connect()));
    return connections;
  } catch (err) {
    for (const redis of connections) redis.disconnect();
    throw err;
  }
}

/** How long closing waits for Redis to answer QUIT before it drops the connection (with Redis gone it never would). */
export const CLOSE_WAIT_MS = 3000;

/** Closes a node's connections: QUIT, or after CLOSE_WAIT_MS without an answer, a plain disconnect. */
export async function closeNode(connections: ReadonlyArray<Redis | undefined>): Promise<void> {
  for (const redis of connections) {
    await Promise.race([redis?.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
    redis?.disconnect();
  }
}

/** Runs `connect`; if it fails, `close` lets go of what it had opened, and the error goes on. */
export async function connectOrClose(connect: () => Promise<void>, close: () => Promise<void>): Promise<void> {
  try {
    await connect();
  } catch (err) {
    await close();
    throw err;
  }
}

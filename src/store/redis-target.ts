import type { Redis, RedisOptions } from 'ioredis';

/**
 * Where a Redis is: one server (`url`), or the master Sentinel names (`sentinel`), found through the Sentinels and
 * followed across failovers. The URL's password, database and TLS (rediss://) apply to the master either way.
 */
export interface RedisTarget {
  url: string;
  sentinel?: { name: string; nodes: Array<{ host: string; port: number }> };
}

/** A connection to the target; ioredis' own reconnection does the rest (Sentinel: to the master of the moment). */
export function openRedis(RedisClass: typeof Redis, target: RedisTarget, options: RedisOptions): Redis {
  if (!target.sentinel) return new RedisClass(target.url, options);
  return new RedisClass(target.url, { ...options, sentinels: target.sentinel.nodes, name: target.sentinel.name });
}

/** The target in words, for logs and errors (never the password). */
export function describeTarget(target: RedisTarget): string {
  const url = target.url.replace(/\/\/[^@/]*@/, '//');
  if (!target.sentinel) return url;
  return `Sentinel master "${target.sentinel.name}" via ${target.sentinel.nodes.map((n) => `${n.host}:${n.port}`).join(', ')}`;
}

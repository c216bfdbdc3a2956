import type { Redis } from 'ioredis';
import type { RedisTarget } from '../store/redis-target.js';
import { closeNode, connectNode, connectOrClose } from './connections.js';
import type { Logger } from '../broker/logger.js';
import type { BanAuthority } from '../multicore/shared-bans.js';
import type { Ban } from '../security/index.js';
import type { ClusterKeys } from './keys.js';

/**
 * Cluster mode: the guard's bans are the cluster's. A ban added or lifted on one node (detected by its guard, or set
 * through the admin API or a program) goes into the hash of bans every node shares and to every node at once on the
 * bans channel; each node applies those of the others without passing them on again (as multi-core workers do), and a
 * node that starts reads the whole hash.
 */

export interface ClusterBansOptions {
  redis: RedisTarget;
  nodeId: string;
  keys: ClusterKeys;
  guard: BanAuthority;
  logger: Logger;
}

interface BanEvent {
  type: 'added' | 'removed';
  ban: Ban;
  from: string;
}

export class ClusterBans {
  private redis: Redis | undefined;
  private subscriber: Redis | undefined;

  constructor(private readonly options: ClusterBansOptions) {}

  async start(): Promise<void> {
    await connectOrClose(() => this.connect(), () => this.close());
  }

  private async connect(): Promise<void> {
    const { keys, guard } = this.options;
    [this.redis, this.subscriber] = await connectNode(this.options.redis, this.options.nodeId, ['bans', 'bans-events']);
    this.subscriber.on('message', (_channel: string, text: string) => this.onEvent(text));
    await this.subscriber.subscribe(keys.banEvents);
    // What the others set before this node started (or while it was away), then what this node has of its own.
    const now = Date.now();
    for (const text of Object.values(await this.redis.hgetall(keys.bans))) {
      const ban = parseBan(text);
      if (ban && (ban.until === undefined || ban.until > now)) this.adopt(ban);
    }
    for (const ban of guard.bans.list()) if (ban.source !== 'config') this.share({ type: 'added', ban, from: this.options.nodeId });
    guard.bans.onChange((change) => this.share({ type: change.type === 'added' ? 'added' : 'removed', ban: change.ban, from: this.options.nodeId }));
  }

  async close(): Promise<void> {
    await closeNode([this.subscriber, this.redis]);
  }

  private share(event: BanEvent): void {
    const { keys } = this.options;
    const field = `${event.ban.kind}:${event.ban.value}`;
    const multi = this.redis!.multi();
    if (event.type === 'added') {
      multi.hset(keys.bans, field, JSON.stringify(event.ban));
    } else multi.hdel(keys.bans, field);
    multi.publish(keys.banEvents, JSON.stringify(event));
    multi.exec().catch((err: Error) => this.options.logger.error({ err: err.message, ban: field }, 'cluster: a ban could not be shared'));
  }

  private onEvent(text: string): void {
    let event: BanEvent;
    try {
      event = JSON.parse(text) as BanEvent;
    } catch {
      return;
    }
    if (event.from === this.options.nodeId) return;
    if (event.type === 'added') this.adopt(event.ban);
    else this.options.guard.bans.withdraw(event.ban);
  }

  /** A ban from another node, and the offence it punishes (the next ban here doubles, as there). */
  private adopt(ban: Ban): void {
    if (this.options.guard.bans.apply(ban)) this.options.guard.adoptOffence(ban);
  }
}

function parseBan(text: string): Ban | undefined {
  try {
    return JSON.parse(text) as Ban;
  } catch {
    return undefined;
  }
}

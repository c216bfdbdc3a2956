import { MAX_ALLOWANCE_PAUSE_MS, type PublishAllowance } from '../../broker/hooks.js';

/** How fast one client may publish; a limit left out is no limit. */
export interface RateLimit {
  messagesPerSecond?: number;
  bytesPerSecond?: number;
  /** Seconds' worth of each rate a client may send at once after a quiet spell (default 1). */
  burstSeconds?: number;
  /** Past the limit: `pause` reading from the client (default: nothing is lost), or `disconnect` it. */
  action?: 'pause' | 'disconnect';
}

/** The first time a connection is held back, and when it is closed, for its allowance (not once per message). */
export type OverLimit = (limit: 'messages' | 'bytes', action: 'paused' | 'disconnected') => void;

/**
 * Two token buckets (messages, bytes) for one connection. A message is always let through and may leave a
 * bucket in debt: the answer is then how long the connection must wait to be out of it, which keeps the
 * average at the rate without holding a packet that has already been read.
 */
export class PublishRate implements PublishAllowance {
  readonly action: 'pause' | 'disconnect';
  exceeded: 'messages' | 'bytes' = 'messages';
  private messages: number;
  private bytes: number;
  private readonly messageRate: number;
  private readonly byteRate: number;
  private readonly messageBurst: number;
  private readonly byteBurst: number;
  private last: number;
  private told = false;

  constructor(limit: RateLimit, now: number, private readonly overLimit?: OverLimit) {
    const burst = limit.burstSeconds ?? 1;
    this.messageRate = limit.messagesPerSecond ?? 0;
    this.byteRate = limit.bytesPerSecond ?? 0;
    this.messageBurst = Math.max(1, this.messageRate * burst);
    this.byteBurst = Math.max(1, this.byteRate * burst);
    this.messages = this.messageBurst;
    this.bytes = this.byteBurst;
    this.action = limit.action ?? 'pause';
    this.last = now;
  }

  take(bytes: number, now: number): number {
    // The broker's clock is read once per chunk and may lag the one this started with: never a negative refill.
    const elapsed = Math.max(0, now - this.last) / 1000;
    if (now > this.last) this.last = now;
    let wait = 0;
    if (this.messageRate > 0) {
      this.messages = Math.min(this.messageBurst, this.messages + elapsed * this.messageRate) - 1;
      if (this.messages < 0) {
        wait = (-this.messages / this.messageRate) * 1000;
        this.exceeded = 'messages';
      }
    }
    if (this.byteRate > 0) {
      this.bytes = Math.min(this.byteBurst, this.bytes + elapsed * this.byteRate) - bytes;
      const byteWait = this.bytes < 0 ? (-this.bytes / this.byteRate) * 1000 : 0;
      if (byteWait > wait) {
        wait = byteWait;
        this.exceeded = 'bytes';
      }
    }
    if (wait === 0) return 0;
    // The broker closes a connection that would wait too long even under `pause` (see MAX_ALLOWANCE_PAUSE_MS).
    const closes = this.action === 'disconnect' || wait > MAX_ALLOWANCE_PAUSE_MS;
    if (closes || !this.told) {
      this.told = true;
      this.overLimit?.(this.exceeded, closes ? 'disconnected' : 'paused');
    }
    return Math.ceil(wait);
  }
}

/** The most generous of several limits, each rate on its own (a client with two roles gets the larger of each). */
export function mostGenerous(limits: readonly RateLimit[]): RateLimit | undefined {
  if (limits.length === 0) return undefined;
  if (limits.length === 1) return limits[0];
  const widest = (of: (l: RateLimit) => number | undefined): number | undefined => {
    const values = limits.map(of);
    // A role without this rate does not limit it.
    return values.some((v) => v === undefined || v === 0) ? undefined : Math.max(...(values as number[]));
  };
  const merged: RateLimit = {};
  const messages = widest((l) => l.messagesPerSecond);
  const bytes = widest((l) => l.bytesPerSecond);
  if (messages !== undefined) merged.messagesPerSecond = messages;
  if (bytes !== undefined) merged.bytesPerSecond = bytes;
  merged.burstSeconds = Math.max(...limits.map((l) => l.burstSeconds ?? 1));
  // Disconnecting only if every role says so: the gentler response wins.
  merged.action = limits.every((l) => l.action === 'disconnect') ? 'disconnect' : 'pause';
  return merged;
}

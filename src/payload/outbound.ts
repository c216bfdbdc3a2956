import { randomBytes } from 'node:crypto';
import type { CounterPersistence } from './replay.js';

/**
 * The broker's own counters for the envelopes it seals for subscribers, one per key. A counter must never repeat
 * under a key (the subscriber refuses it as a replay, and with its nonce it would break the cipher), so blocks of
 * counters are reserved in the store ahead of use: after a restart, counting resumes above the last reservation.
 * A reservation is not waited for, so a crash can come before it is durable; counting therefore also starts no lower
 * than the time in microseconds (a key sees far fewer than a million deliveries a second, so the time has passed
 * every counter used before the crash), and the nonce differs anyway: its first 4 bytes are random per start.
 */
export class OutboundCounters {
  private readonly keys = new Map<string, { next: bigint; reserved: bigint }>();
  private unread = false;
  /** The nonce's first 4 bytes, new at each start. */
  readonly noncePrefix = randomBytes(4);

  constructor(private persistence?: CounterPersistence, private readonly block = 10_000n, private readonly now: () => number = Date.now) {
    this.unread = persistence !== undefined;
  }

  attach(persistence: CounterPersistence): void {
    this.persistence = persistence;
    this.unread = true;
  }

  /** The next counter for `key` (for a key never used: the time in microseconds). */
  take(key: string): bigint {
    if (this.unread) {
      this.unread = false;
      for (const [stored, reserved] of this.persistence?.load() ?? []) this.keys.set(stored, { next: this.atLeastNow(reserved + 1n), reserved });
    }
    let state = this.keys.get(key);
    if (!state) this.keys.set(key, (state = { next: this.atLeastNow(1n), reserved: 0n }));
    if (state.next > state.reserved) {
      state.reserved = state.next + this.block - 1n;
      this.persistence?.save(key, state.reserved);
    }
    return state.next++;
  }

  private atLeastNow(counter: bigint): bigint {
    const micros = BigInt(Math.floor(this.now())) * 1000n;
    return counter > micros ? counter : micros;
  }

  /** The 12-byte nonce for `counter`: the start's random prefix, then the counter. */
  nonce(counter: bigint): Buffer {
    const nonce = Buffer.allocUnsafe(12);
    this.noncePrefix.copy(nonce, 0);
    nonce.writeBigUInt64BE(counter, 4);
    return nonce;
  }
}

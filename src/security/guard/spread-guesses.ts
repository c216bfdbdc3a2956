import { createHash } from 'node:crypto';
import { addressKey } from './addresses.js';
import { SlidingWindow } from './window.js';

/** How long an address that authenticated under a name stays known as its owner's (never delayed for it). */
const OWNER_MS = 30 * 86_400_000;
const OWNERS_MAX = 100_000;
/** The first delay once a name is past its threshold; it doubles for every further threshold's worth of failures. */
const FIRST_DELAY_MS = 250;

/** A name as a key of fixed size: an attacker's 64 KiB user names or client ids cost no more memory than short ones. */
export function nameKey(name: string): string {
  return createHash('sha256').update(name).digest('base64').slice(0, 22);
}

/**
 * Failed authentications for one name (a user name, a client identifier) from any addresses, none of which
 * need reach its own threshold: past `threshold` within the window, answers for that name wait, longer as the
 * attack goes on, but never for an address that authenticated under that name before (its real owner).
 */
export class SpreadGuesses {
  private readonly failures: SlidingWindow;
  /** `${name key}\n${address key}` → when that address last authenticated under that name. */
  private readonly owners = new Map<string, number>();

  constructor(private readonly threshold: number, windowMs: number, private readonly maxDelayMs: number) {
    // Counted past the threshold (up to five doublings), so the delay can grow with the attack.
    this.failures = new SlidingWindow(threshold * 6, windowMs, 20_000);
  }

  /** Records a failure for `name`; true when this one reached the threshold (from now on its answers wait). */
  failed(name: string, now: number): boolean {
    return this.failures.hit(nameKey(name), now) === this.threshold;
  }

  succeeded(name: string, remoteAddress: string, now: number): void {
    const key = `${nameKey(name)}\n${addressKey(remoteAddress)}`;
    this.owners.delete(key); // re-inserted: Map order is then least recently seen first
    this.owners.set(key, now);
    if (this.owners.size > OWNERS_MAX) this.owners.delete(this.owners.keys().next().value!);
  }

  /** How long the answer to an attempt under `name` from `remoteAddress` waits (ms); 0 when not under attack or its owner. */
  delay(name: string, remoteAddress: string, now: number): number {
    const key = nameKey(name);
    const failures = this.failures.count(key, now);
    if (failures < this.threshold) return 0;
    const owned = this.owners.get(`${key}\n${addressKey(remoteAddress)}`);
    if (owned !== undefined && now - owned < OWNER_MS) return 0;
    const doublings = Math.floor((failures - this.threshold) / this.threshold);
    return Math.min(FIRST_DELAY_MS * 2 ** doublings, this.maxDelayMs);
  }
}

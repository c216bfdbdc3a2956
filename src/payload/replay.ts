/**
 * Replay protection for payload envelopes: per key (an identity and a key id), the highest counter accepted and which
 * of the `window` counters below it were seen, as IPsec keeps its anti-replay window. A counter is accepted once;
 * one more than `window` behind the highest is refused as too old, so QoS 0 messages that overtake each other on
 * the way are not lost while a recorded envelope can never be played again.
 *
 * The highest counter of each key is kept in the store (`persist`), so a restart does not open the door to replays;
 * after a restart only counters above the stored highest are accepted (the window's memory is not kept). A key's
 * new highest is saved once per tick, not once per envelope: a device publishing in bursts costs one store write
 * per read from its socket, and the write still joins the store batch of the turn that accepted the envelopes.
 */

export type ReplayVerdict = 'fresh' | 'replayed' | 'too-old';

export interface CounterPersistence {
  /** The highest counter stored for each key. */
  load(): Iterable<[key: string, highest: bigint]>;
  save(key: string, highest: bigint): void;
}

interface KeyState {
  highest: bigint;
  /** Bit i set: counter `highest - 1 - i` was seen. */
  seen: bigint;
}

export const DEFAULT_REPLAY_WINDOW = 64;

export class ReplayWindow {
  private readonly keys = new Map<string, KeyState>();
  private readonly size: bigint;
  private readonly all: bigint;
  /** Stored counters not read yet: they are, at the first check (the store is open by then). */
  private unread = false;
  /** Keys whose highest moved since the last save. */
  private readonly unsaved = new Set<string>();

  constructor(window = DEFAULT_REPLAY_WINDOW, private persistence?: CounterPersistence) {
    if (!Number.isInteger(window) || window < 0 || window > 1024) throw new RangeError(`replay window: expected 0 to 1024, got ${window}`);
    this.size = BigInt(window);
    this.all = (1n << this.size) - 1n;
    this.unread = persistence !== undefined;
  }

  /** Where the highest counters are kept: read at the first check, and each new highest saved. */
  attach(persistence: CounterPersistence): void {
    this.persistence = persistence;
    this.unread = true;
  }

  private readStored(): void {
    this.unread = false;
    for (const [key, highest] of this.persistence?.load() ?? []) {
      const known = this.keys.get(key);
      // Stored: everything up to it counts as seen (the window's memory is not kept).
      if (!known || known.highest < highest) this.keys.set(key, { highest, seen: this.all });
    }
  }

  /** Accepts `counter` for `key` (recording it) or says why not; call it only for an envelope that authenticated. */
  check(key: string, counter: bigint): ReplayVerdict {
    if (this.unread) this.readStored();
    const state = this.keys.get(key);
    if (!state) {
      this.keys.set(key, { highest: counter, seen: 0n });
      this.saveSoon(key);
      return 'fresh';
    }
    if (counter > state.highest) {
      const shift = counter - state.highest;
      // The old highest becomes bit shift-1; bits pushed past the window are forgotten.
      state.seen = shift > this.size ? 0n : ((state.seen << shift) | (1n << (shift - 1n))) & this.all;
      state.highest = counter;
      this.saveSoon(key);
      return 'fresh';
    }
    const behind = state.highest - counter;
    if (behind === 0n) return 'replayed';
    if (behind > this.size) return 'too-old';
    const bit = 1n << (behind - 1n);
    if ((state.seen & bit) !== 0n) return 'replayed';
    state.seen |= bit;
    return 'fresh';
  }

  private saveSoon(key: string): void {
    if (!this.persistence) return;
    if (this.unsaved.size === 0) process.nextTick(() => this.saveAll());
    this.unsaved.add(key);
  }

  /** Saves every key whose highest moved. */
  saveAll(): void {
    // Emptied first: a save that throws must not stop every later one from being scheduled.
    const keys = [...this.unsaved];
    this.unsaved.clear();
    for (const key of keys) this.persistence?.save(key, this.keys.get(key)!.highest);
  }
}

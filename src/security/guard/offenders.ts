/** How often an address was banned by detection, and when last (epoch ms): the next ban is twice as long. */
export interface Offence {
  offences: number;
  last: number;
}

/**
 * Where offence counts that outlive the process are kept (the server: broker records of kind "offender",
 * keyed by the address as the guard judges it, an IPv6 address by its /64). What `load` gives is checked.
 */
export interface OffencePersistence {
  load(): Iterable<[key: string, value: unknown]>;
  save(key: string, offence: Offence): void;
  delete(key: string): void;
}

const isOffence = (value: unknown): value is Offence =>
  typeof value === 'object' && value !== null && Number.isInteger((value as Offence).offences) && (value as Offence).offences > 0
  && Number.isFinite((value as Offence).last);

/**
 * Repeat offenders, so a ban after a restart still doubles: counts forgotten `forgetAfterMs` after the last
 * offence, at most `max` kept (the longest quiet dropped first, from the store too).
 */
export class Offenders {
  private readonly counts = new Map<string, Offence>();
  private persistence: OffencePersistence | undefined;
  private unread = false;

  constructor(private readonly forgetAfterMs: number, private readonly max = 100_000) {}

  /**
   * From here on every offence is written to `persistence` too. The stored ones are read at the first offence:
   * the store is recovered after the security layer is built, and before any connection is served.
   */
  attach(persistence: OffencePersistence): void {
    this.persistence = persistence;
    this.unread = true;
  }

  /** Records an offence by `key` (an address key); returns its number, this one included (1 once the last is forgotten). */
  offend(key: string, now: number): number {
    if (this.unread) this.readStored(now);
    const previous = this.counts.get(key);
    const offences = previous && now - previous.last < this.forgetAfterMs ? previous.offences + 1 : 1;
    this.keep(key, { offences, last: now });
    return offences;
  }

  /**
   * An offence counted elsewhere (another worker of multi-core mode, which knew of those here): counted and stored
   * as if it were one here, so the next ban here doubles. Two workers may ban at once, each unaware of the
   * other's ban: the higher count and the later time stand. Returns whether anything changed.
   */
  adopt(key: string, offence: Offence, now: number): boolean {
    if (this.unread) this.readStored(now);
    if (!isOffence(offence) || now - offence.last >= this.forgetAfterMs) return false;
    const here = this.counts.get(key);
    if (!here || now - here.last >= this.forgetAfterMs) {
      this.keep(key, { offences: offence.offences, last: offence.last });
      return true;
    }
    if (offence.offences <= here.offences && offence.last <= here.last) return false;
    this.keep(key, { offences: Math.max(here.offences, offence.offences), last: Math.max(here.last, offence.last) });
    return true;
  }

  private keep(key: string, offence: Offence): void {
    this.counts.delete(key); // re-inserted: Map order is then longest quiet first
    this.counts.set(key, offence);
    this.persistence?.save(key, offence);
    while (this.counts.size > this.max) {
      const quietest = this.counts.keys().next().value!;
      this.counts.delete(quietest);
      this.persistence?.delete(quietest);
    }
  }

  private readStored(now: number): void {
    this.unread = false;
    const stored: Array<[string, Offence]> = [];
    for (const [key, value] of this.persistence!.load()) {
      if (isOffence(value) && now - value.last < this.forgetAfterMs) stored.push([key, value]);
      else this.persistence!.delete(key);
    }
    stored.sort((a, b) => a[1].last - b[1].last);
    for (const [key, offence] of stored) if (!this.counts.has(key)) this.counts.set(key, { offences: offence.offences, last: offence.last });
  }
}

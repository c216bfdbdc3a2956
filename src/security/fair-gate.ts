/**
 * Slots for slow work (password hashing) shared fairly between remote addresses: work beyond the slots
 * waits its turn instead of being refused, addresses take turns (one address cannot hold the queue), and
 * a wait is bounded in time and in length. A fleet of honest clients behind one address is served in turn;
 * a flood waits behind everyone else's first attempts.
 */
export interface FairGateOptions {
  /** Work running at once (default 32). */
  slots?: number;
  /** How long one may wait for a slot (default 10 s, the CONNECT timeout); then it is refused. */
  maxWaitMs?: number;
  /** Waiting at most, all addresses together (default 10,000), and from one address (default 2,000). */
  maxQueued?: number;
  maxQueuedPerAddress?: number;
}

interface Waiter {
  grant: (release: (() => void) | undefined) => void;
  timer: NodeJS.Timeout;
}

export class FairGate {
  private running = 0;
  private queued = 0;
  /** Addresses with waiters, in turn order (Map order), each with its waiters first come first served. */
  private readonly waiting = new Map<string, Waiter[]>();
  private readonly slots: number;
  private readonly maxWaitMs: number;
  private readonly maxQueued: number;
  private readonly maxQueuedPerAddress: number;

  constructor(options: FairGateOptions = {}) {
    this.slots = options.slots ?? 32;
    this.maxWaitMs = options.maxWaitMs ?? 10_000;
    this.maxQueued = options.maxQueued ?? 10_000;
    this.maxQueuedPerAddress = options.maxQueuedPerAddress ?? 2_000;
  }

  /**
   * Resolves with the function that frees the slot, or undefined when the wait is refused (too long, too many).
   * `maxWaitMs`: this one's own limit, when less time is left (its connection has been waiting already).
   */
  enter(address: string, maxWaitMs = this.maxWaitMs): Promise<(() => void) | undefined> {
    if (this.running < this.slots && this.queued === 0) return Promise.resolve(this.take());
    const list = this.waiting.get(address) ?? [];
    if (this.queued >= this.maxQueued || list.length >= this.maxQueuedPerAddress) return Promise.resolve(undefined);
    return new Promise((grant) => {
      const waiter: Waiter = {
        grant,
        timer: setTimeout(() => {
          const mine = this.waiting.get(address);
          const at = mine?.indexOf(waiter) ?? -1;
          if (at === -1) return;
          mine!.splice(at, 1);
          if (mine!.length === 0) this.waiting.delete(address);
          this.queued--;
          grant(undefined);
        }, maxWaitMs),
      };
      list.push(waiter);
      this.waiting.set(address, list);
      this.queued++;
    });
  }

  get waitingCount(): number {
    return this.queued;
  }

  private take(): () => void {
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.next();
    };
  }

  /** The next address in turn gets the free slot; it goes to the back of the turn order if it still waits. */
  private next(): void {
    if (this.running >= this.slots) return;
    const first = this.waiting.entries().next();
    if (first.done) return;
    const [address, list] = first.value;
    this.waiting.delete(address);
    const waiter = list.shift()!;
    if (list.length > 0) this.waiting.set(address, list);
    this.queued--;
    clearTimeout(waiter.timer);
    waiter.grant(this.take());
  }
}

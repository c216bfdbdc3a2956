import { banKey, supersedes, type Ban, type BanKind, type BanList } from '../security/guard/bans.js';
import type { PrimaryToWorker, WorkerToPrimary } from './messages.js';

/**
 * Bans shared by the workers of multi-core mode (docs/security.md, "The guard").
 *
 * Each worker's guard decides on its own (failed authentications and flapping it sees, `guard.ban` by a
 * program) and reports every ban it adds or removes to the primary. The primary keeps the table of bans in
 * force and sends each change to the other workers, which apply it to their ban lists silently: no audit
 * line, no event, not counted, not reported back. A detected address ban carries its offence count, which they
 * count too, so the next ban of that address doubles whichever worker sets it. Every worker stores the bans it
 * holds in its own store; at start-up each reports what it has stored, and the primary sends the union
 * (expired bans left out) to all before any connection is handed over. Competing changes to one ban converge
 * on the one `supersedes` picks, in every process.
 */

/** Where the primary's messages go: worker `index`, if it is still connected (false otherwise). */
export interface WorkerChannels {
  count(): number;
  send(index: number, message: PrimaryToWorker): boolean;
}

/** The primary's side: the bans in force in every worker, and a way for a program there to change them. */
export class SharedBans {
  private readonly table = new Map<string, Ban>();
  private readonly requests = new Map<number, { resolve: (answer: Extract<WorkerToPrimary, { type: 'answer' }>) => void; reject: (err: Error) => void }>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly workers: WorkerChannels, private readonly now: () => number = Date.now) {}

  /** The bans in force in every worker, oldest first (the admin API lists these). */
  list(): Ban[] {
    const now = this.now();
    for (const [key, ban] of this.table) if (expired(ban, now)) this.table.delete(key);
    return [...this.table.values()].sort((a, b) => a.since - b.since);
  }

  /** Start-up: the bans a worker had stored; the newest of each wins, expired ones are left out. */
  merge(bans: readonly Ban[]): void {
    const now = this.now();
    for (const ban of bans) if (!expired(ban, now)) this.keep(ban);
  }

  /** Start-up, once every worker is ready and before any socket: every worker gets the union. */
  distribute(): void {
    const bans = this.list();
    for (let index = 0; index < this.workers.count(); index++) this.workers.send(index, { type: 'bans', bans });
  }

  /**
   * Bans in every worker as `guard.ban` would in one: the first connected worker sets it (one audit line, one
   * event, counted once) and the others get it from here. Resolves with the ban once the table has it.
   */
  async ban(kind: BanKind, value: string, reason: string, seconds?: number): Promise<Ban> {
    const answer = await this.request((id) => ({ type: 'ban-request', id, kind, value, reason, ...(seconds !== undefined && { seconds }) }));
    return answer.ban!;
  }

  /** Lifts a ban in every worker as `guard.unban` would in one; resolves with whether there was one. */
  async unban(kind: BanKind, value: string): Promise<boolean> {
    const answer = await this.request((id) => ({ type: 'unban-request', id, kind, value }));
    return answer.removed === true;
  }

  /** A message from worker `from`; false if it is not about bans. */
  received(from: number, message: WorkerToPrimary): boolean {
    switch (message.type) {
      case 'ban-added': {
        const { ban } = message;
        if (expired(ban, this.now())) return true;
        const kept = this.keep(ban);
        // A newer ban with the same key is in force: the worker that reported the older one gets it back.
        if (kept !== ban) this.workers.send(from, { type: 'ban-added', ban: kept });
        else this.others(from, { type: 'ban-added', ban });
        return true;
      }
      case 'ban-removed': {
        const { ban } = message;
        const key = banKey(ban.kind, ban.value);
        const here = this.table.get(key);
        if (here && supersedes(here, ban)) {
          // What was removed there had been replaced by a newer ban already: that one stays, there too.
          if (!expired(here, this.now())) this.workers.send(from, { type: 'ban-added', ban: here });
          return true;
        }
        this.table.delete(key);
        this.others(from, { type: 'ban-removed', ban });
        return true;
      }
      case 'answer': {
        const request = this.requests.get(message.id);
        if (!request) return true;
        this.requests.delete(message.id);
        if (message.error !== undefined) request.reject(new Error(message.error));
        else request.resolve(message);
        return true;
      }
      default:
        return false;
    }
  }

  /** The broker stops: requests still waiting fail. */
  close(): void {
    this.closed = true;
    for (const { reject } of this.requests.values()) reject(new Error('the broker is stopping'));
    this.requests.clear();
  }

  private request(message: (id: number) => PrimaryToWorker): Promise<Extract<WorkerToPrimary, { type: 'answer' }>> {
    if (this.closed) return Promise.reject(new Error('the broker is stopping'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.requests.set(id, { resolve, reject });
      for (let index = 0; index < this.workers.count(); index++) if (this.workers.send(index, message(id))) return;
      this.requests.delete(id);
      reject(new Error('no worker is running'));
    });
  }

  /** Keeps `ban` unless the table has a newer one with the same key; returns the one in the table. */
  private keep(ban: Ban): Ban {
    const key = banKey(ban.kind, ban.value);
    const here = this.table.get(key);
    if (here && !expired(here, this.now()) && supersedes(here, ban)) return here;
    this.table.set(key, ban);
    return ban;
  }

  private others(from: number, message: PrimaryToWorker): void {
    for (let index = 0; index < this.workers.count(); index++) if (index !== from) this.workers.send(index, message);
  }
}

/** What a worker's guard offers for sharing its bans (the `Guard` class fits). */
export interface BanAuthority {
  readonly bans: BanList;
  ban(kind: BanKind, value: string, reason: string, seconds?: number): Ban;
  unban(kind: BanKind, value: string): boolean;
  /** Counts the offence a detected address ban set elsewhere punishes, so the next ban here doubles. */
  adoptOffence(ban: Ban): void;
}

/**
 * A worker's side: reports the bans added and removed here to the primary, and applies those from the
 * primary without reporting them. Without a guard (nothing authenticates, or it is off) there is nothing to
 * share, and requests from the primary fail with the reason.
 */
export class WorkerBans {
  constructor(private readonly guard: BanAuthority | undefined, private readonly send: (message: WorkerToPrimary) => void) {
    guard?.bans.onChange((change) => send({ type: change.type === 'added' ? 'ban-added' : 'ban-removed', ban: change.ban }));
  }

  /** The bans in this worker's store (read again now that the store is recovered), for the 'ready' message. */
  stored(): Ban[] {
    if (!this.guard) return [];
    this.guard.bans.readStored();
    return this.guard.bans.list().filter((ban) => ban.source !== 'config');
  }

  /** A message from the primary; false if it is not about bans. */
  handle(message: PrimaryToWorker): boolean {
    const bans = this.guard?.bans;
    switch (message.type) {
      case 'bans':
        for (const ban of message.bans) this.adopt(ban);
        return true;
      case 'ban-added':
        this.adopt(message.ban);
        return true;
      case 'ban-removed':
        bans?.withdraw(message.ban);
        return true;
      case 'ban-request':
        this.answer(message.id, (guard) => ({ ban: guard.ban(message.kind, message.value, message.reason, message.seconds) }));
        return true;
      case 'unban-request':
        this.answer(message.id, (guard) => ({ removed: guard.unban(message.kind, message.value) }));
        return true;
      default:
        return false;
    }
  }

  /**
   * A ban from elsewhere, and the offence it punishes: counted even when a ban here supersedes it, as both
   * workers saw the address offend (the counts merge, the higher standing).
   */
  private adopt(ban: Ban): void {
    this.guard?.bans.apply(ban);
    this.guard?.adoptOffence(ban);
  }

  private answer(id: number, act: (guard: BanAuthority) => { ban?: Ban; removed?: boolean }): void {
    if (!this.guard) {
      this.send({ type: 'answer', id, error: 'no guard in this broker: nothing authenticates, or guard: { enabled: false }' });
      return;
    }
    try {
      this.send({ type: 'answer', id, ...act(this.guard) });
    } catch (err) {
      this.send({ type: 'answer', id, error: (err as Error).message });
    }
  }
}

function expired(ban: Ban, now: number): boolean {
  return ban.until !== undefined && ban.until <= now;
}

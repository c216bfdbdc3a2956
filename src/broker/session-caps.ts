import { addressKey } from '../security/guard/addresses.js';
import type { BrokerLimits } from './options.js';
import type { Session } from './session.js';

/** Who left a stored session behind: the user name and source address it connected with. */
export interface SessionOwner {
  username?: string;
  remoteAddress?: string;
}

/**
 * Caps on stored sessions (every CONNECT with clean session off, or a session expiry, leaves one): in all, per user
 * name and per source address (an IPv6 /64 counts as one). At a cap the owner's oldest offline session makes room,
 * then (for the overall cap) the oldest offline session of anyone; if every one is connected, the new one is refused.
 * Only sessions that outlive their connection are counted: clean ones cost nothing beyond the connection.
 */
export class SessionCaps {
  private readonly byOwner = new Map<string, Set<Session>>();
  /** Offline stored sessions, the longest offline first. */
  private readonly offline = new Set<Session>();
  private stored = 0;

  constructor(private readonly limits: BrokerLimits) {}

  get size(): number {
    return this.stored;
  }

  /**
   * Makes room for one more stored session of `owner`, dropping sessions with `drop` (which must call `forget`).
   * `replacing`: a session of the same client identifier that the new one replaces (it does not count).
   * Returns false if a cap is reached and no offline session can go.
   */
  makeRoom(owner: SessionOwner, replacing: Session | undefined, drop: (victim: Session, why: string) => void): boolean {
    const keys = ownerKeys(owner);
    const caps: Array<[key: string | undefined, max: number]> = [
      [keys.user, this.limits.maxSessionsPerUser],
      [keys.address, this.limits.maxSessionsPerAddress],
    ];
    for (const [key, max] of caps) {
      if (key === undefined || max <= 0) continue;
      while (this.count(key, replacing) >= max) {
        const victim = this.oldestOffline(this.byOwner.get(key), replacing);
        if (!victim) return false;
        drop(victim, `more than ${max} stored sessions for ${key.startsWith('u:') ? 'user' : 'address'} ${key.slice(2)}`);
      }
    }
    const max = this.limits.maxSessions;
    if (max > 0) {
      while (this.stored - (replacing?.persistent ? 1 : 0) >= max) {
        const own = [keys.user, keys.address].map((k) => (k === undefined ? undefined : this.oldestOffline(this.byOwner.get(k), replacing)));
        const victim = own[0] ?? own[1] ?? this.oldestOffline(this.offline, replacing);
        if (!victim) return false;
        drop(victim, `more than ${max} stored sessions in all`);
      }
    }
    return true;
  }

  /** A stored session now belongs to `owner` (created, restored, or taken over by another user or address). */
  track(session: Session, owner: SessionOwner): void {
    if (!session.persistent) return;
    if (session.owner !== undefined) this.unindex(session);
    else this.stored++;
    session.owner = owner;
    const keys = ownerKeys(owner);
    for (const key of [keys.user, keys.address]) {
      if (key === undefined) continue;
      let set = this.byOwner.get(key);
      if (!set) this.byOwner.set(key, (set = new Set()));
      set.add(session);
    }
  }

  forget(session: Session): void {
    if (!session.persistent || session.owner === undefined) return;
    this.unindex(session);
    session.owner = undefined;
    this.offline.delete(session);
    this.stored--;
  }

  wentOffline(session: Session): void {
    if (session.persistent && session.owner !== undefined) this.offline.add(session);
  }

  cameBack(session: Session): void {
    this.offline.delete(session);
  }

  private unindex(session: Session): void {
    const keys = ownerKeys(session.owner!);
    for (const key of [keys.user, keys.address]) {
      if (key === undefined) continue;
      const set = this.byOwner.get(key);
      set?.delete(session);
      if (set?.size === 0) this.byOwner.delete(key);
    }
  }

  private count(key: string, replacing: Session | undefined): number {
    const set = this.byOwner.get(key);
    if (!set) return 0;
    return set.size - (replacing !== undefined && set.has(replacing) ? 1 : 0);
  }

  /** The session of `among` offline the longest (sets keep insertion order: the offline set is ordered by leaving). */
  private oldestOffline(among: ReadonlySet<Session> | undefined, except: Session | undefined): Session | undefined {
    if (!among) return undefined;
    if (among === this.offline) {
      for (const session of among) if (session !== except) return session;
      return undefined;
    }
    let oldest: Session | undefined;
    let oldestAt = Infinity;
    for (const session of among) {
      if (session === except || !this.offline.has(session)) continue;
      const at = session.offlineSince ?? 0;
      if (at < oldestAt) {
        oldest = session;
        oldestAt = at;
      }
    }
    return oldest;
  }
}

function ownerKeys(owner: SessionOwner): { user?: string; address?: string } {
  const keys: { user?: string; address?: string } = {};
  if (owner.username !== undefined) keys.user = `u:${owner.username}`;
  if (owner.remoteAddress) keys.address = `a:${addressKey(owner.remoteAddress)}`;
  return keys;
}

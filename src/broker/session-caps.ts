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
  /** Offline stored sessions, the longest offline first: of everyone, and of each owner. */
  private readonly offline = new Set<Session>();
  private readonly offlineByOwner = new Map<string, Set<Session>>();
  private stored = 0;

  constructor(private readonly limits: BrokerLimits) {}

  get size(): number {
    return this.stored;
  }

  /**
   * Makes room for one more stored session of `owner`, dropping sessions with `drop` (which must call `forget`).
   * `replacing`: a session of the same client identifier that the new one replaces (it does not count).
   * Returns false, dropping nothing, if a cap would still be exceeded with every offline session that may go gone.
   */
  makeRoom(owner: SessionOwner, replacing: Session | undefined, drop: (victim: Session, why: string) => void): boolean {
    const keys = ownerKeys(owner);
    // Victims are chosen for every cap first: none goes unless all the caps can be met.
    const victims = new Map<Session, string>();
    const gone = (session: Session): boolean => session === replacing || victims.has(session);
    const caps: Array<[key: string | undefined, max: number, what: string]> = [
      [keys.user, this.limits.maxSessionsPerUser, `user ${owner.username}`],
      [keys.address, this.limits.maxSessionsPerAddress, `address ${owner.remoteAddress}`],
    ];
    for (const [key, max, what] of caps) {
      if (key === undefined || max <= 0) continue;
      const owned = this.byOwner.get(key);
      const left = (): number => (owned === undefined ? 0 : [...victims.keys()].filter((v) => owned.has(v)).length);
      while ((owned?.size ?? 0) - (replacing !== undefined && owned?.has(replacing) ? 1 : 0) - left() >= max) {
        const victim = first(this.offlineByOwner.get(key), gone);
        if (!victim) return false;
        victims.set(victim, `more than ${max} stored sessions for ${what}`);
      }
    }
    const max = this.limits.maxSessions;
    if (max > 0) {
      while (this.stored - (replacing?.persistent && replacing.owner !== undefined ? 1 : 0) - victims.size >= max) {
        const victim = (keys.user === undefined ? undefined : first(this.offlineByOwner.get(keys.user), gone))
          ?? (keys.address === undefined ? undefined : first(this.offlineByOwner.get(keys.address), gone))
          ?? first(this.offline, gone);
        if (!victim) return false;
        victims.set(victim, `more than ${max} stored sessions in all`);
      }
    }
    for (const [victim, why] of victims) drop(victim, why);
    return true;
  }

  /** A stored session now belongs to `owner` (created, restored, or taken over by another user or address). */
  track(session: Session, owner: SessionOwner): void {
    if (!session.persistent) return;
    const wasOffline = this.offline.has(session);
    if (session.owner !== undefined) this.unindex(session);
    else this.stored++;
    session.owner = owner;
    for (const key of keysOf(owner)) add(this.byOwner, key, session);
    if (wasOffline) this.wentOffline(session);
  }

  forget(session: Session): void {
    if (!session.persistent || session.owner === undefined) return;
    this.unindex(session);
    session.owner = undefined;
    this.stored--;
  }

  wentOffline(session: Session): void {
    if (!session.persistent || session.owner === undefined) return;
    this.offline.add(session);
    for (const key of keysOf(session.owner)) add(this.offlineByOwner, key, session);
  }

  cameBack(session: Session): void {
    if (!this.offline.delete(session)) return;
    for (const key of keysOf(session.owner!)) remove(this.offlineByOwner, key, session);
  }

  private unindex(session: Session): void {
    this.cameBack(session);
    for (const key of keysOf(session.owner!)) remove(this.byOwner, key, session);
  }
}

/** The first of `among` (the one offline the longest) that is not already `gone`. */
function first(among: ReadonlySet<Session> | undefined, gone: (session: Session) => boolean): Session | undefined {
  if (among) for (const session of among) if (!gone(session)) return session;
  return undefined;
}

function add(index: Map<string, Set<Session>>, key: string, session: Session): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(session);
}

function remove(index: Map<string, Set<Session>>, key: string, session: Session): void {
  const set = index.get(key);
  if (!set) return;
  set.delete(session);
  if (set.size === 0) index.delete(key);
}

function keysOf(owner: SessionOwner): string[] {
  const keys = ownerKeys(owner);
  return [keys.user, keys.address].filter((k): k is string => k !== undefined);
}

function ownerKeys(owner: SessionOwner): { user?: string; address?: string } {
  const keys: { user?: string; address?: string } = {};
  if (owner.username !== undefined) keys.user = `u:${owner.username}`;
  if (owner.remoteAddress) keys.address = `a:${addressKey(owner.remoteAddress)}`;
  return keys;
}

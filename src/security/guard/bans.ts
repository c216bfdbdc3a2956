import { addressKey, AddressSet } from './addresses.js';

/** What a ban names: one address (an IPv6 /64), a network, a client identifier or a user name. */
export type BanKind = 'address' | 'network' | 'clientId' | 'username';

/** A ban as data: who, by what, until when, why (kept in the store, listed by the admin API to come). */
export interface Ban {
  kind: BanKind;
  /** The address (as given; matched by its /64 for IPv6), the network in CIDR notation, the client id or the user name. */
  value: string;
  reason: string;
  /** Epoch ms; absent: until removed. */
  until?: number;
  /** Epoch ms. */
  since: number;
  /** Who set it: the configuration file, the guard's detection, or a program (library or admin API). */
  source: 'config' | 'guard' | 'api';
  /**
   * An address ban the guard detected: which offence of that address it punishes (1 the first time), so the
   * workers of multi-core mode that apply it count it too. Absent on other bans and on those stored by older versions.
   */
  offences?: number;
}

/** Where bans that outlive the process are kept (the broker's store records). */
export interface BanPersistence {
  load(): Iterable<Ban>;
  save(key: string, ban: Ban): void;
  delete(key: string): void;
}

/** Who is connecting, as far as a ban can tell. */
export interface Suspect {
  remoteAddress: string;
  clientId?: string;
  username?: string;
}

/** What identifies a ban: its kind and value (an IPv6 address by its /64). A newer ban with the same key replaces the older. */
export const banKey = (kind: BanKind, value: string): string => `${kind}:${kind === 'address' ? addressKey(value) : value}`;
const keyOf = banKey;

/**
 * Whether ban `a` replaces ban `b` with the same key: the one set later wins; at the same millisecond, the
 * longer; then an arbitrary but fixed order. Every process that shares bans (the workers of multi-core mode and
 * their primary) applies the same rule, so all keep the same ban whatever order the news reached them in.
 */
export function supersedes(a: Ban, b: Ban): boolean {
  if (a.since !== b.since) return a.since > b.since;
  const untilA = a.until ?? Infinity;
  const untilB = b.until ?? Infinity;
  if (untilA !== untilB) return untilA > untilB;
  return JSON.stringify(a) > JSON.stringify(b);
}

/** A change made here (not one applied from elsewhere, not an expiry, not a configuration ban), for those who share bans. */
export type BanChange = { type: 'added'; ban: Ban } | { type: 'removed'; ban: Ban };

/**
 * The bans in force. Lookups are map reads (and one BlockList check when network bans exist), so a banned
 * client is refused before any credential work. Expired bans disappear when next looked at.
 */
export class BanList {
  private readonly bans = new Map<string, Ban>();
  private readonly networks = new AddressSet();
  private persistence: BanPersistence | undefined;
  private readonly changeListeners: Array<(change: BanChange) => void> = [];

  /**
   * From here on every change (but configuration bans) is written to `persistence` too. The stored bans are
   * read at the first lookup: the store is recovered after the security layer is built, and before any
   * connection is served.
   */
  attach(persistence: BanPersistence): void {
    this.persistence = persistence;
    this.unread = true;
  }

  private unread = false;

  /**
   * Reads the stored bans (again), adding those not known yet: called lazily at the first lookup, and by the
   * server once the store is recovered, in case a program looked up or set bans before that.
   */
  readStored(): void {
    if (!this.persistence) return;
    this.unread = false;
    const now = Date.now();
    for (const ban of this.persistence!.load()) {
      if (ban.until !== undefined && ban.until <= now) this.persistence!.delete(keyOf(ban.kind, ban.value));
      else if (!this.bans.has(keyOf(ban.kind, ban.value))) this.put(ban);
    }
  }

  /**
   * Tells `listener` of every ban added and removed here from now on (by the guard's detection or a program),
   * but not of configuration bans, expiries, or changes applied with `apply` and `withdraw`: multi-core mode
   * passes these on to the other workers, which apply them without passing them on again.
   */
  onChange(listener: (change: BanChange) => void): void {
    this.changeListeners.push(listener);
  }

  add(ban: Ban): void {
    if (this.unread) this.readStored();
    this.sweep(ban.since);
    if (ban.kind === 'network' || ban.kind === 'address') new AddressSet([ban.kind === 'network' ? ban.value : addressOnly(ban.value)]);
    this.put(ban);
    if (ban.source === 'config') return;
    this.persistence?.save(keyOf(ban.kind, ban.value), ban);
    this.changed({ type: 'added', ban });
  }

  /**
   * A ban set elsewhere (another worker): kept and stored like one set here, but no listener is told. Ignored
   * when it has expired or the ban here with the same key `supersedes` it. Returns whether it is in force here now.
   */
  apply(ban: Ban, now = Date.now()): boolean {
    if (this.unread) this.readStored();
    if (ban.until !== undefined && ban.until <= now) return false;
    const key = keyOf(ban.kind, ban.value);
    const found = this.bans.get(key);
    const here = found && this.live(found, now) ? found : undefined;
    if (here && (here.source === 'config' || supersedes(here, ban))) return false;
    if (here && JSON.stringify(here) === JSON.stringify(ban)) return true;
    this.put(ban);
    if (ban.source !== 'config') this.persistence?.save(key, ban);
    return true;
  }

  /**
   * A ban removed elsewhere (another worker): removed here too, without telling any listener, unless the ban here
   * is a newer one (set after the removed one, which it `supersedes`) or comes from the configuration.
   */
  withdraw(removed: Ban): boolean {
    if (this.unread) this.readStored();
    const key = keyOf(removed.kind, removed.value);
    const here = this.bans.get(key);
    if (!here || here.source === 'config' || supersedes(here, removed)) return false;
    this.drop(key, here);
    return true;
  }

  private changed(change: BanChange): void {
    for (const listener of this.changeListeners) {
      try {
        listener(change);
      } catch {
        // a listener's mistake never changes the bans
      }
    }
  }

  private put(ban: Ban): void {
    const key = keyOf(ban.kind, ban.value);
    const previous = this.bans.get(key);
    if (previous?.kind === 'network') this.networks.delete(previous.value);
    this.bans.set(key, ban);
    if (ban.kind === 'network') this.networks.add(ban.value);
  }

  remove(kind: BanKind, value: string): boolean {
    if (this.unread) this.readStored();
    const key = keyOf(kind, value);
    const ban = this.bans.get(key);
    if (!ban) return false;
    this.drop(key, ban);
    if (ban.source !== 'config') this.changed({ type: 'removed', ban });
    return true;
  }

  private drop(key: string, ban: Ban): void {
    this.bans.delete(key);
    if (ban.kind === 'network') this.networks.delete(ban.value);
    if (ban.source !== 'config') this.persistence?.delete(key);
  }

  /** The bans in force, oldest first. */
  list(now = Date.now()): Ban[] {
    if (this.unread) this.readStored();
    return [...this.bans.values()].filter((ban) => this.live(ban, now));
  }

  /** The ban that refuses this address, if any (checked when a connection arrives). */
  forAddress(remoteAddress: string, now = Date.now()): Ban | undefined {
    if (this.unread) this.readStored();
    const ban = this.bans.get(`address:${addressKey(remoteAddress)}`);
    if (ban && this.live(ban, now)) return ban;
    if (this.networks.size === 0 || !this.networks.has(remoteAddress)) return undefined;
    return this.list(now).find((b) => b.kind === 'network' && new AddressSet([b.value]).has(remoteAddress));
  }

  /** The ban that refuses this client, if any (checked at CONNECT, before credentials). */
  forClient(suspect: Suspect, now = Date.now()): Ban | undefined {
    if (this.size === 0) return undefined;
    const byAddress = this.forAddress(suspect.remoteAddress, now);
    if (byAddress) return byAddress;
    const byId = suspect.clientId ? this.bans.get(`clientId:${suspect.clientId}`) : undefined;
    if (byId && this.live(byId, now)) return byId;
    const byUser = suspect.username !== undefined ? this.bans.get(`username:${suspect.username}`) : undefined;
    if (byUser && this.live(byUser, now)) return byUser;
    return undefined;
  }

  get size(): number {
    if (this.unread) this.readStored();
    return this.bans.size;
  }

  /** Expired bans leave memory and the store when a new ban arrives, not only when next looked up. */
  private sweep(now: number): void {
    for (const [key, ban] of [...this.bans]) if (ban.until !== undefined && ban.until <= now) this.drop(key, ban);
  }

  /** An expired ban leaves here (every process sharing it sees it expire on its own: nothing to pass on). */
  private live(ban: Ban, now: number): boolean {
    if (ban.until === undefined || ban.until > now) return true;
    this.drop(keyOf(ban.kind, ban.value), ban);
    return false;
  }
}

/** An address ban names one address: its network part is the guard's business (an IPv6 /64). */
function addressOnly(value: string): string {
  if (value.includes('/')) throw new TypeError(`"${value}": a ban on a network is kind "network"`);
  return value;
}

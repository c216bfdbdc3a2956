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

const keyOf = (kind: BanKind, value: string): string => `${kind}:${kind === 'address' ? addressKey(value) : value}`;

/**
 * The bans in force. Lookups are map reads (and one BlockList check when network bans exist), so a banned
 * client is refused before any credential work. Expired bans disappear when next looked at.
 */
export class BanList {
  private readonly bans = new Map<string, Ban>();
  private readonly networks = new AddressSet();
  private persistence: BanPersistence | undefined;

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

  add(ban: Ban): void {
    if (this.unread) this.readStored();
    this.sweep(ban.since);
    if (ban.kind === 'network' || ban.kind === 'address') new AddressSet([ban.kind === 'network' ? ban.value : addressOnly(ban.value)]);
    this.put(ban);
    if (ban.source !== 'config') this.persistence?.save(keyOf(ban.kind, ban.value), ban);
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
    this.bans.delete(key);
    if (ban.kind === 'network') this.networks.delete(ban.value);
    if (ban.source !== 'config') this.persistence?.delete(key);
    return true;
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
    for (const ban of [...this.bans.values()]) if (ban.until !== undefined && ban.until <= now) this.remove(ban.kind, ban.value);
  }

  private live(ban: Ban, now: number): boolean {
    if (ban.until === undefined || ban.until > now) return true;
    this.remove(ban.kind, ban.value);
    return false;
  }
}

/** An address ban names one address: its network part is the guard's business (an IPv6 /64). */
function addressOnly(value: string): string {
  if (value.includes('/')) throw new TypeError(`"${value}": a ban on a network is kind "network"`);
  return value;
}

import { createHash } from 'node:crypto';
import type { AuthMethod, AuthStep } from '../../broker/enhanced-auth.js';
import type { AuthenticateRequest, AuthenticateResult, BrokerHooks, ClosingStream } from '../../broker/hooks.js';
import type { AuditLog } from '../audit.js';
import { addressKey, AddressSet } from './addresses.js';
import { BanList, type Ban, type BanKind, type BanPersistence } from './bans.js';
import { TokenBuckets } from './buckets.js';
import { SlidingWindow } from './window.js';

type MaybePromise<T> = T | Promise<T>;

/** The guard's settings; every one has a default (docs/security.md, "The guard"). */
export interface GuardOptions {
  /** Addresses and networks never banned by detection and free of per-address limits (static bans still apply); default 127.0.0.1 and ::1. */
  allow?: string[];
  /** Failed authentications from one address (an IPv6 /64) within `failureWindowSeconds` that ban it (default 10 in 60 s). */
  maxFailuresPerAddress?: number;
  failureWindowSeconds?: number;
  /** First ban of an address, doubled on each repeat offence up to `maxBanSeconds`; forgotten after `forgetAfterSeconds` without one. */
  banSeconds?: number;
  maxBanSeconds?: number;
  forgetAfterSeconds?: number;
  /** A client identifier that connects more than `flappingConnects` times within `flappingWindowSeconds` is banned for `flappingBanSeconds`. */
  flappingConnects?: number;
  flappingWindowSeconds?: number;
  flappingBanSeconds?: number;
  /**
   * Failed authentications for one user name, from any addresses, within `failureWindowSeconds` after which its
   * answers are delayed (default 20): a distributed guess is slowed, while an address with a recent success for
   * that user name is never delayed.
   */
  maxFailuresPerUsername?: number;
  /** The longest delay before the answer to a slowed user name (default 8 s, within the CONNECT timeout). */
  maxDelaySeconds?: number;
  /** Connections open at once from one address (an IPv6 /64); more are closed when they arrive (default 10,000). */
  maxConnectionsPerAddress?: number;
  /** New connections a second from one address, after a first burst (defaults 100/s, burst 2,000: a NAT gateway's fleet reconnecting). */
  connectionRatePerAddress?: number;
  connectionBurstPerAddress?: number;
  /** New connections a second from everywhere, after a first burst (defaults 5,000/s, burst 20,000). */
  connectionRate?: number;
  connectionBurst?: number;
  /** Bans from the configuration file: in force from the start, never stored. */
  bans?: Array<{ kind: BanKind; value: string; reason?: string }>;
}

/** Something the guard detected or did; each is an audit line, a library event and a counter. */
export type GuardEvent =
  | { type: 'banned'; ban: Ban; rule: 'failed-authentication' | 'flapping' | 'api'; offences?: number }
  | { type: 'unbanned'; kind: BanKind; value: string }
  | { type: 'refused'; ban: Ban; remoteAddress: string; at: 'accept' | 'connect' };

export interface GuardCounters {
  bansIssued: number;
  authenticationFailures: number;
  flappingBans: number;
  refusedAtAccept: number;
  refusedAtConnect: number;
  /** Connections closed on arrival by the per-address and global connection limits. */
  connectionsLimited: number;
  /** Authentications whose answer was delayed, their user name being guessed at from many addresses. */
  delayedAuthentications: number;
}

/** How long an address that authenticated as a user stays known for it (not delayed when the user name is under attack). */
const KNOWN_ADDRESS_MS = 30 * 86_400_000;
const KNOWN_ADDRESSES_MAX = 100_000;

const DEFAULTS = {
  maxFailuresPerAddress: 10,
  failureWindowSeconds: 60,
  banSeconds: 60,
  maxBanSeconds: 86_400,
  forgetAfterSeconds: 86_400,
  flappingConnects: 15,
  flappingWindowSeconds: 60,
  flappingBanSeconds: 300,
  maxFailuresPerUsername: 20,
  maxDelaySeconds: 8,
  maxConnectionsPerAddress: 10_000,
  connectionRatePerAddress: 100,
  connectionBurstPerAddress: 2_000,
  connectionRate: 5_000,
  connectionBurst: 20_000,
};

const EVERYONE = '*';
const OFFENDERS_MAX = 100_000;

/** A user name as a key of fixed size: an attacker's 64 KiB user names cost no more memory than short ones. */
function nameKey(username: string): string {
  return createHash('sha256').update(username).digest('base64').slice(0, 22);
}
const DEFAULT_ALLOW = ['127.0.0.1', '::1'];

/** How often an address was banned, and when last: the next ban is twice as long. */
interface Offender {
  offences: number;
  last: number;
}

/**
 * Detection and response, apart from the authentication providers: counts failed authentications per address,
 * bans an address past the threshold (longer on each repeat offence), bans flapping client identifiers, and
 * refuses whatever a ban names before any credential work (an address already when it connects).
 */
export class Guard {
  readonly bans = new BanList();
  readonly counters: GuardCounters = {
    bansIssued: 0, authenticationFailures: 0, flappingBans: 0, refusedAtAccept: 0, refusedAtConnect: 0, connectionsLimited: 0,
    delayedAuthentications: 0,
  };
  private readonly settings: typeof DEFAULTS;
  private readonly allow: AddressSet;
  private readonly failures: SlidingWindow;
  private readonly connects: SlidingWindow;
  private readonly offenders = new Map<string, Offender>();
  private readonly open = new Map<string, number>();
  private readonly usernameFailures: SlidingWindow;
  /** `${user}\n${address key}` → when that address last authenticated as that user. */
  private readonly knownAddresses = new Map<string, number>();
  private readonly perAddressRate: TokenBuckets;
  private readonly globalRate: TokenBuckets;
  private readonly listeners: Array<(event: GuardEvent) => void> = [];

  constructor(options: GuardOptions = {}, private readonly audit?: AuditLog, private readonly now: () => number = Date.now) {
    this.settings = { ...DEFAULTS, ...definedOnly(options) };
    // The machine itself by default: a local proxy or tool speaks for many clients, and banning it would lock
    // them all out. Configuring `allow` replaces this.
    this.allow = new AddressSet(options.allow ?? DEFAULT_ALLOW);
    this.failures = new SlidingWindow(this.settings.maxFailuresPerAddress, this.settings.failureWindowSeconds * 1000);
    this.connects = new SlidingWindow(this.settings.flappingConnects + 1, this.settings.flappingWindowSeconds * 1000);
    // Counted past the threshold, so the delay can grow with the attack.
    this.usernameFailures = new SlidingWindow(this.settings.maxFailuresPerUsername * 6, this.settings.failureWindowSeconds * 1000, 20_000);
    this.perAddressRate = new TokenBuckets(this.settings.connectionRatePerAddress, this.settings.connectionBurstPerAddress);
    this.globalRate = new TokenBuckets(this.settings.connectionRate, this.settings.connectionBurst, 1);
    const since = this.now();
    for (const ban of options.bans ?? []) this.bans.add({ kind: ban.kind, value: ban.value, reason: ban.reason ?? 'configuration', since, source: 'config' });
  }

  /** Keeps the bans the guard and programs set in the broker's store, so they survive restarts. */
  attach(persistence: BanPersistence): void {
    this.bans.attach(persistence);
  }

  on(listener: (event: GuardEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Bans by hand (library, admin API); `seconds` absent: until removed. */
  ban(kind: BanKind, value: string, reason: string, seconds?: number): Ban {
    const now = this.now();
    const ban: Ban = { kind, value, reason, since: now, source: 'api', ...(seconds !== undefined && { until: now + seconds * 1000 }) };
    this.bans.add(ban);
    this.emit({ type: 'banned', ban, rule: 'api' });
    return ban;
  }

  unban(kind: BanKind, value: string): boolean {
    const removed = this.bans.remove(kind, value);
    if (removed) this.emit({ type: 'unbanned', kind, value });
    return removed;
  }

  /** The broker hooks: the address check at accept, and the guard's counters in $SYS. */
  hooks(): BrokerHooks {
    return {
      acceptConnection: (peer, _listener, stream) => {
        const now = this.now();
        const ban = this.addressBan(peer.remoteAddress, now);
        if (ban) {
          this.counters.refusedAtAccept++;
          this.emit({ type: 'refused', ban, remoteAddress: peer.remoteAddress, at: 'accept' });
          return false;
        }
        return this.withinConnectionLimits(peer.remoteAddress, stream, now);
      },
      sysTopics: () => this.sysTopics(),
    };
  }

  /**
   * Wraps an authentication chain: a banned client is refused before the chain runs (no credential work);
   * the chain's refusals count against the address, its acceptances against flapping.
   */
  wrap(chain: NonNullable<BrokerHooks['authenticate']>): NonNullable<BrokerHooks['authenticate']> {
    return (request) => {
      const now = this.now();
      const ban = this.clientBan(request, now);
      if (ban) {
        this.refusedAtConnect(ban, request);
        return { ok: false, reason: 'banned' };
      }
      const delay = this.delayFor(request, now);
      const ask = (): MaybePromise<AuthenticateResult> => {
        const answer = chain(request);
        if (answer instanceof Promise) return answer.then((a) => this.judge(request, a));
        return this.judge(request, answer);
      };
      if (delay === 0) return ask();
      this.counters.delayedAuthentications++;
      return new Promise<void>((resolve) => setTimeout(resolve, delay).unref()).then(ask);
    };
  }

  /**
   * Wraps an MQTT 5 enhanced authentication method (SCRAM): a banned client is refused before the exchange
   * starts (0x8A), and the exchange's outcome counts as a provider's would (failures per address and user
   * name, flapping on success).
   */
  wrapMethod(method: AuthMethod): AuthMethod {
    return {
      begin: (request, reauthenticate) => {
        const ban = this.clientBan(request, this.now());
        if (ban) {
          this.refusedAtConnect(ban, request);
          return { step: () => ({ result: 'failure', reason: 'banned' }) };
        }
        const exchange = method.begin(request, reauthenticate);
        return {
          step: (data) => {
            const step = exchange.step(data);
            const judge = (s: AuthStep): AuthStep => {
              if (s.result === 'failure') {
                this.judge(request, false, reauthenticate);
                return s;
              }
              if (s.result !== 'success') return s;
              const verdict = this.judge(request, { ok: true, ...(s.identity && { identity: s.identity }) }, reauthenticate);
              return typeof verdict === 'object' && verdict !== null && !verdict.ok ? { result: 'failure', reason: 'banned' } : s;
            };
            return step instanceof Promise ? step.then(judge) : judge(step);
          },
        };
      },
    };
  }

  /**
   * A user name guessed at from many addresses: past the threshold each answer waits, twice as long for every
   * further threshold's worth of failures, up to the maximum; never for an address that authenticated as that
   * user before (its real owner), nor for an allow-listed address.
   */
  private delayFor(request: AuthenticateRequest, now: number): number {
    const username = request.username;
    if (username === undefined) return 0;
    const failures = this.usernameFailures.count(nameKey(username), now);
    const threshold = this.settings.maxFailuresPerUsername;
    if (failures < threshold || this.allow.has(request.remoteAddress)) return 0;
    const known = this.knownAddresses.get(`${nameKey(username)}\n${addressKey(request.remoteAddress)}`);
    if (known !== undefined && now - known < KNOWN_ADDRESS_MS) return 0;
    const doublings = Math.floor((failures - threshold) / threshold);
    return Math.min(250 * 2 ** doublings, this.settings.maxDelaySeconds * 1000);
  }

  private judge(request: AuthenticateRequest, answer: AuthenticateResult, reauthenticate = false): AuthenticateResult {
    const now = this.now();
    // Only a judgement on the credentials counts: "busy" or "unavailable" say nothing about the client.
    const refused = answer === false || (typeof answer === 'object' && answer !== null && !answer.ok
      && (answer.reason === undefined || answer.reason === 'badCredentials' || answer.reason === 'notAuthorized'));
    if (refused) {
      if (request.username !== undefined) this.usernameFailures.hit(nameKey(request.username), now);
      this.failed(request.remoteAddress, now);
      return answer;
    }
    const accepted = answer === true || (typeof answer === 'object' && answer !== null && answer.ok);
    if (!accepted) return answer;
    // The user the credentials proved (a token's, a certificate's) may differ from the CONNECT user name.
    const proven = typeof answer === 'object' && answer !== null && answer.ok ? answer.identity?.username : undefined;
    if (proven !== undefined && proven !== request.username && this.bans.size > 0) {
      const ban = this.bans.forClient({ remoteAddress: request.remoteAddress, username: proven }, now);
      if (ban) {
        this.refusedAtConnect(ban, request);
        return { ok: false, reason: 'banned' };
      }
    }
    const username = proven ?? request.username;
    if (username !== undefined) this.knownAddress(username, request.remoteAddress, now);
    if (!reauthenticate && request.clientId !== '') this.connected(request.clientId, now);
    return answer;
  }

  private refusedAtConnect(ban: Ban, request: AuthenticateRequest): void {
    this.counters.refusedAtConnect++;
    this.emit({ type: 'refused', ban, remoteAddress: request.remoteAddress, at: 'connect' });
  }

  private clientBan(request: AuthenticateRequest, now: number): Ban | undefined {
    const ban = this.bans.size === 0 ? undefined : this.bans.forClient(request, now);
    return ban && ban.kind === 'address' && ban.source === 'guard' && this.allow.has(request.remoteAddress) ? undefined : ban;
  }

  /** The ban on an address, except a detected one on an allow-listed address (banned for a neighbour in its /64). */
  private addressBan(remoteAddress: string, now: number): Ban | undefined {
    const ban = this.bans.size === 0 ? undefined : this.bans.forAddress(remoteAddress, now);
    return ban && ban.source === 'guard' && this.allow.has(remoteAddress) ? undefined : ban;
  }

  /** Per-address concurrency and rate, and the global accept rate; an allow-listed address has no per-address limit. */
  private withinConnectionLimits(remoteAddress: string, stream: ClosingStream, now: number): boolean {
    const allowed = this.allow.has(remoteAddress);
    const key = addressKey(remoteAddress);
    const open = this.open.get(key) ?? 0;
    // Per address first: a flood refused there must not spend everyone's global tokens.
    const fits = (allowed || (open < this.settings.maxConnectionsPerAddress && this.perAddressRate.take(key, now)))
      && this.globalRate.take(EVERYONE, now);
    if (!fits) {
      this.counters.connectionsLimited++;
      return false;
    }
    this.open.set(key, open + 1);
    stream.once('close', () => {
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    });
    return true;
  }

  private knownAddress(username: string, remoteAddress: string, now: number): void {
    const key = `${nameKey(username)}\n${addressKey(remoteAddress)}`;
    this.knownAddresses.delete(key);
    this.knownAddresses.set(key, now);
    if (this.knownAddresses.size > KNOWN_ADDRESSES_MAX) this.knownAddresses.delete(this.knownAddresses.keys().next().value!);
  }

  private failed(remoteAddress: string, now: number): void {
    this.counters.authenticationFailures++;
    if (this.allow.has(remoteAddress)) return;
    const key = addressKey(remoteAddress);
    // Answers still in flight when the ban fell are part of the same offence, not new ones.
    if (this.bans.forAddress(remoteAddress, now)) return;
    if (this.failures.hit(key, now) < this.settings.maxFailuresPerAddress) return;
    this.failures.forget(key);
    const previous = this.offenders.get(key);
    const offences = previous && now - previous.last < this.settings.forgetAfterSeconds * 1000 ? previous.offences + 1 : 1;
    this.offenders.delete(key);
    this.offenders.set(key, { offences, last: now });
    if (this.offenders.size > OFFENDERS_MAX) this.offenders.delete(this.offenders.keys().next().value!);
    const seconds = Math.min(this.settings.banSeconds * 2 ** (offences - 1), this.settings.maxBanSeconds);
    const ban: Ban = {
      kind: 'address', value: remoteAddress, since: now, until: now + seconds * 1000, source: 'guard',
      reason: `${this.settings.maxFailuresPerAddress} failed authentications within ${this.settings.failureWindowSeconds} s`,
    };
    this.bans.add(ban);
    this.counters.bansIssued++;
    this.emit({ type: 'banned', ban, rule: 'failed-authentication', offences });
  }

  private connected(clientId: string, now: number): void {
    if (this.connects.hit(clientId, now) <= this.settings.flappingConnects) return;
    this.connects.forget(clientId);
    const ban: Ban = {
      kind: 'clientId', value: clientId, since: now, until: now + this.settings.flappingBanSeconds * 1000, source: 'guard',
      reason: `more than ${this.settings.flappingConnects} connections within ${this.settings.flappingWindowSeconds} s (flapping)`,
    };
    this.bans.add(ban);
    this.counters.bansIssued++;
    this.counters.flappingBans++;
    this.emit({ type: 'banned', ban, rule: 'flapping' });
  }

  private emit(event: GuardEvent): void {
    if (event.type === 'banned') {
      const { ban } = event;
      this.audit?.record({
        event: 'guard.banned', clientId: ban.kind === 'clientId' ? ban.value : '', reason: ban.reason, rule: event.rule,
        ban: `${ban.kind} ${ban.value}`, ...(ban.until !== undefined && { until: new Date(ban.until).toISOString() }),
        ...(ban.kind === 'address' && { remoteAddress: ban.value }), ...(ban.kind === 'username' && { username: ban.value }),
      });
    } else if (event.type === 'unbanned') {
      this.audit?.record({ event: 'guard.unbanned', clientId: '', ban: `${event.kind} ${event.value}` });
    }
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a listener's mistake never changes what the guard decided
      }
    }
  }

  private sysTopics(): Array<[string, string]> {
    const c = this.counters;
    return [
      ['$SYS/broker/security/bans/active', String(this.bans.list(this.now()).length)],
      ['$SYS/broker/security/bans/issued', String(c.bansIssued)],
      ['$SYS/broker/security/bans/flapping', String(c.flappingBans)],
      ['$SYS/broker/security/authentication/failures', String(c.authenticationFailures)],
      ['$SYS/broker/security/refused/accept', String(c.refusedAtAccept)],
      ['$SYS/broker/security/refused/connect', String(c.refusedAtConnect)],
      ['$SYS/broker/security/connections/limited', String(c.connectionsLimited)],
      ['$SYS/broker/security/authentication/delayed', String(c.delayedAuthentications)],
    ];
  }
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined && typeof v === 'number')) as Partial<T>;
}

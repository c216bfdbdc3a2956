import { EventEmitter } from 'node:events';
import type { AuthExchange, AuthMethod, AuthStep } from '../../broker/enhanced-auth.js';
import type { AuthenticateRequest, AuthenticateResult, BrokerHooks, ClosingStream } from '../../broker/hooks.js';
import type { AuditLog } from '../audit.js';
import type { AuthChain, ChainResult } from '../authentication.js';
import { addressKey, AddressSet } from './addresses.js';
import { BanList, type Ban, type BanKind, type BanPersistence } from './bans.js';
import { TokenBuckets } from './buckets.js';
import { Offenders, type OffencePersistence } from './offenders.js';
import { SpreadGuesses } from './spread-guesses.js';
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
  /** The same for one client identifier (default 20): its answers are delayed, but not for an address it authenticated from. */
  maxFailuresPerClientId?: number;
  /** The longest delay before the answer to a slowed user name or client identifier (default 8 s, within the CONNECT timeout). */
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

/** A client that went over its publishing rate limit (reported by the broker's limiter through `Guard.report`). */
export interface RateLimitedEvent {
  type: 'rate-limited';
  clientId: string;
  username?: string;
  remoteAddress: string;
  limit: 'messages' | 'bytes';
  action: 'paused' | 'disconnected';
}

/** Something the guard detected or did; each is a library event and a counter, and most an audit line (docs/security.md). */
export type GuardEvent =
  | { type: 'banned'; ban: Ban; rule: 'failed-authentication' | 'flapping' | 'api'; offences?: number }
  | { type: 'unbanned'; kind: BanKind; value: string }
  | { type: 'refused'; ban: Ban; remoteAddress: string; at: 'accept' | 'connect' }
  /** A user name or client identifier reached its threshold of failures from any addresses: its answers wait from now on. */
  | { type: 'slowed'; name: 'username' | 'clientId'; value: string; failures: number }
  | RateLimitedEvent;

/** What other parts of the broker detect and tell the guard of, to be audited, emitted and counted with its own. */
export type ReportedEvent = RateLimitedEvent;

/**
 * The guard's events by name, for `guard.on(...)`: every event as `event`, and each under its own type
 * (`guard.on('banned', (e) => e.ban)` gets the `banned` event, typed).
 */
export type GuardEvents = { event: [GuardEvent] } & { [T in GuardEvent['type']]: [Extract<GuardEvent, { type: T }>] };

/**
 * An exchange that tells which user the client claims to be once it has read it (SCRAM's `n=`), so a failure
 * counts against that user name although the CONNECT may carry none.
 */
export interface ClaimingExchange extends AuthExchange {
  readonly claimedUser: string | undefined;
}

export interface GuardCounters {
  bansIssued: number;
  authenticationFailures: number;
  flappingBans: number;
  refusedAtAccept: number;
  refusedAtConnect: number;
  /** Connections closed on arrival by the per-address and global connection limits. */
  connectionsLimited: number;
  /** Authentications whose answer was delayed, their user name or client identifier being guessed at from many addresses. */
  delayedAuthentications: number;
  /** User names and client identifiers that reached their threshold of failures from any addresses (`slowed` events). */
  namesSlowed: number;
  /** Clients that went over their publishing rate limit (`rate-limited` events). */
  rateLimited: number;
  /** Encrypted payloads refused: not an envelope, an unknown key, tampered, or a replayed counter (src/payload). */
  payloadsRefused: number;
}

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
  maxFailuresPerClientId: 20,
  maxDelaySeconds: 8,
  maxConnectionsPerAddress: 10_000,
  connectionRatePerAddress: 100,
  connectionBurstPerAddress: 2_000,
  connectionRate: 5_000,
  connectionBurst: 20_000,
};

const EVERYONE = '*';
const DEFAULT_ALLOW = ['127.0.0.1', '::1'];

const wait = (ms: number): Promise<void> => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/**
 * Detection and response, apart from the authentication providers: counts failed authentications per address,
 * bans an address past the threshold (longer on each repeat offence), slows names guessed at from many
 * addresses, bans flapping client identifiers, and refuses whatever a ban names before any credential work (an
 * address already when it connects). Its events: `guard.on('event', (e) => …)`, or one type (`'banned'`…).
 */
export class Guard extends EventEmitter<GuardEvents> {
  readonly bans = new BanList();
  readonly counters: GuardCounters = {
    bansIssued: 0, authenticationFailures: 0, flappingBans: 0, refusedAtAccept: 0, refusedAtConnect: 0, connectionsLimited: 0,
    delayedAuthentications: 0, namesSlowed: 0, rateLimited: 0, payloadsRefused: 0,
  };
  private readonly settings: typeof DEFAULTS;
  private readonly allow: AddressSet;
  private readonly failures: SlidingWindow;
  private readonly connects: SlidingWindow;
  private readonly offenders: Offenders;
  private readonly open = new Map<string, number>();
  private readonly guessedUsernames: SpreadGuesses;
  private readonly guessedClientIds: SpreadGuesses;
  private readonly perAddressRate: TokenBuckets;
  private readonly globalRate: TokenBuckets;

  constructor(options: GuardOptions = {}, private readonly audit?: AuditLog, private readonly now: () => number = Date.now) {
    super();
    this.settings = { ...DEFAULTS, ...definedOnly(options) };
    // The machine itself by default: a local proxy or tool speaks for many clients, and banning it would lock
    // them all out. Configuring `allow` replaces this.
    this.allow = new AddressSet(options.allow ?? DEFAULT_ALLOW);
    this.failures = new SlidingWindow(this.settings.maxFailuresPerAddress, this.settings.failureWindowSeconds * 1000);
    this.connects = new SlidingWindow(this.settings.flappingConnects + 1, this.settings.flappingWindowSeconds * 1000);
    const windowMs = this.settings.failureWindowSeconds * 1000;
    this.guessedUsernames = new SpreadGuesses(this.settings.maxFailuresPerUsername, windowMs, this.settings.maxDelaySeconds * 1000);
    this.guessedClientIds = new SpreadGuesses(this.settings.maxFailuresPerClientId, windowMs, this.settings.maxDelaySeconds * 1000);
    this.offenders = new Offenders(this.settings.forgetAfterSeconds * 1000);
    this.perAddressRate = new TokenBuckets(this.settings.connectionRatePerAddress, this.settings.connectionBurstPerAddress);
    this.globalRate = new TokenBuckets(this.settings.connectionRate, this.settings.connectionBurst, 1);
    const since = this.now();
    for (const ban of options.bans ?? []) this.bans.add({ kind: ban.kind, value: ban.value, reason: ban.reason ?? 'configuration', since, source: 'config' });
  }

  /** Keeps the bans the guard and programs set in the broker's store, so they survive restarts. */
  attach(persistence: BanPersistence): void {
    this.bans.attach(persistence);
  }

  /** Keeps the offence counts of banned addresses in the broker's store, so a ban after a restart still doubles. */
  attachOffences(persistence: OffencePersistence): void {
    this.offenders.attach(persistence);
  }

  /**
   * A detected address ban set elsewhere (another worker of multi-core mode): its offence counts here too, so
   * this worker's next ban of the address doubles. Bans without a count (stored by older versions) teach nothing.
   */
  adoptOffence(ban: Ban): void {
    if (ban.kind !== 'address' || ban.source !== 'guard' || ban.offences === undefined) return;
    this.offenders.adopt(addressKey(ban.value), { offences: ban.offences, last: ban.since }, this.now());
  }

  /** Something detected elsewhere (the publishing rate limiter): audited, emitted and counted like the guard's own events. */
  report(event: ReportedEvent): void {
    if (event.type === 'rate-limited') this.counters.rateLimited++;
    this.notify(event);
  }

  /** Bans by hand (library, admin API); `seconds` absent: until removed. */
  ban(kind: BanKind, value: string, reason: string, seconds?: number): Ban {
    const now = this.now();
    const ban: Ban = { kind, value, reason, since: now, source: 'api', ...(seconds !== undefined && { until: now + seconds * 1000 }) };
    this.bans.add(ban);
    this.notify({ type: 'banned', ban, rule: 'api' });
    return ban;
  }

  unban(kind: BanKind, value: string): boolean {
    const removed = this.bans.remove(kind, value);
    if (removed) this.notify({ type: 'unbanned', kind, value });
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
          this.notify({ type: 'refused', ban, remoteAddress: peer.remoteAddress, at: 'accept' });
          return false;
        }
        return this.withinConnectionLimits(peer.remoteAddress, stream, now);
      },
      sysTopics: () => this.sysTopics(),
    };
  }

  /**
   * Wraps an authentication chain: a banned client is refused before the chain runs (no credential work);
   * the chain's refusals (those it conceals behind `unavailable` too) count against the address, the user name
   * and the client identifier, its acceptances against flapping.
   */
  wrap(chain: AuthChain): NonNullable<BrokerHooks['authenticate']> {
    return (request) => {
      const now = this.now();
      const ban = this.clientBan(request, now);
      if (ban) {
        this.refusedAtConnect(ban, request);
        return { ok: false, reason: 'banned' };
      }
      const delay = this.delayFor(request, request.username, now);
      const ask = (): MaybePromise<AuthenticateResult> => {
        const answer = chain(request);
        if (answer instanceof Promise) return answer.then((a) => this.judge(request, a));
        return this.judge(request, answer);
      };
      if (delay === 0) return ask();
      this.counters.delayedAuthentications++;
      return wait(delay).then(ask);
    };
  }

  /**
   * Wraps an MQTT 5 enhanced authentication method (SCRAM): a banned client is refused before the exchange
   * starts (0x8A); the exchange's outcome counts as a provider's would (failures per address, user name (the
   * one the exchange claims) and client identifier, flapping on success), and waits as a password check would
   * when its user name or client identifier is being guessed at from many addresses.
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
        const outcome = (s: AuthStep): MaybePromise<AuthStep> => {
          if (s.result === 'continue') return s;
          const username = (exchange as Partial<ClaimingExchange>).claimedUser ?? request.username;
          // Known only now (the user is in the exchange, not the CONNECT); every outcome waits, a success too,
          // so that a quick answer does not give a guess away.
          const delay = this.delayFor(request, username, this.now());
          if (delay === 0) return this.judgeStep(request, username, s, reauthenticate);
          this.counters.delayedAuthentications++;
          return wait(delay).then(() => this.judgeStep(request, username, s, reauthenticate));
        };
        return {
          step: (data) => {
            const step = exchange.step(data);
            return step instanceof Promise ? step.then(outcome) : outcome(step);
          },
        };
      },
    };
  }

  private judgeStep(request: AuthenticateRequest, username: string | undefined, s: AuthStep, reauthenticate: boolean): AuthStep {
    if (s.result === 'failure') {
      this.judge(request, { ok: false, reason: s.reason ?? 'badCredentials' }, reauthenticate, username);
      return s;
    }
    if (s.result !== 'success') return s;
    const verdict = this.judge(request, { ok: true, ...(s.identity && { identity: s.identity }) }, reauthenticate, username);
    return typeof verdict === 'object' && verdict !== null && !verdict.ok ? { result: 'failure', reason: 'banned' } : s;
  }

  /**
   * A user name or client identifier guessed at from many addresses: past its threshold each answer waits,
   * twice as long for every further threshold's worth of failures, up to the maximum; never for an address
   * that authenticated under that name before (its real owner), nor for an allow-listed address.
   */
  private delayFor(request: AuthenticateRequest, username: string | undefined, now: number): number {
    const byUsername = username === undefined ? 0 : this.guessedUsernames.delay(username, request.remoteAddress, now);
    const byClientId = request.clientId === '' ? 0 : this.guessedClientIds.delay(request.clientId, request.remoteAddress, now);
    const delay = Math.max(byUsername, byClientId);
    return delay > 0 && this.exempt(request.remoteAddress) ? 0 : delay;
  }

  /** `username`: the user the client claims, which an enhanced method may read from its exchange rather than the CONNECT. */
  private judge(request: AuthenticateRequest, answer: ChainResult, reauthenticate = false, username = request.username): AuthenticateResult {
    const now = this.now();
    // Only a judgement on the credentials counts: "busy" or "unavailable" say nothing about the client, unless
    // the unavailable answer conceals a provider's refusal (another one failed open).
    const refused = answer === false || (typeof answer === 'object' && answer !== null && !answer.ok
      && (answer.reason === undefined || answer.reason === 'badCredentials' || answer.reason === 'notAuthorized' || 'concealed' in answer));
    if (refused) {
      if (username !== undefined && this.guessedUsernames.failed(username, now)) this.slowed('username', username, this.settings.maxFailuresPerUsername);
      if (request.clientId !== '' && this.guessedClientIds.failed(request.clientId, now)) this.slowed('clientId', request.clientId, this.settings.maxFailuresPerClientId);
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
    const owner = proven ?? username;
    if (owner !== undefined) this.guessedUsernames.succeeded(owner, request.remoteAddress, now);
    if (request.clientId !== '') this.guessedClientIds.succeeded(request.clientId, request.remoteAddress, now);
    if (!reauthenticate && request.clientId !== '') this.connected(request.clientId, now);
    return answer;
  }

  private slowed(name: 'username' | 'clientId', value: string, failures: number): void {
    this.counters.namesSlowed++;
    this.notify({ type: 'slowed', name, value, failures });
  }

  /**
   * At CONNECT on a broker that authenticates nobody: a client identifier or user name ban refuses the client,
   * and connections count toward flapping (with authentication, `wrap` does both, counting only acceptances).
   */
  screenConnect(request: AuthenticateRequest): 'banned' | undefined {
    const now = this.now();
    const ban = this.clientBan(request, now);
    if (ban) {
      this.refusedAtConnect(ban, request);
      return 'banned';
    }
    if (request.clientId !== '') this.connected(request.clientId, now);
    return undefined;
  }

  private refusedAtConnect(ban: Ban, request: AuthenticateRequest): void {
    this.counters.refusedAtConnect++;
    this.notify({ type: 'refused', ban, remoteAddress: request.remoteAddress, at: 'connect' });
  }

  private clientBan(request: AuthenticateRequest, now: number): Ban | undefined {
    const ban = this.bans.size === 0 ? undefined : this.bans.forClient(request, now);
    return ban && ban.kind === 'address' && ban.source === 'guard' && this.exempt(request.remoteAddress) ? undefined : ban;
  }

  /** The ban on an address, except a detected one on an allow-listed address (banned for a neighbour in its /64). */
  /**
   * Not judged by address: the allow list, and Unix domain socket clients (`unix:<path>`: on this machine, and all
   * named alike, so an address ban would shut out every local client at once).
   */
  private exempt(remoteAddress: string): boolean {
    return remoteAddress.startsWith('unix:') || this.allow.has(remoteAddress);
  }

  private addressBan(remoteAddress: string, now: number): Ban | undefined {
    const ban = this.bans.size === 0 ? undefined : this.bans.forAddress(remoteAddress, now);
    return ban && ban.source === 'guard' && this.exempt(remoteAddress) ? undefined : ban;
  }

  /** Per-address concurrency and rate, and the global accept rate; an allow-listed address has no per-address limit. */
  private withinConnectionLimits(remoteAddress: string, stream: ClosingStream, now: number): boolean {
    const allowed = this.exempt(remoteAddress);
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

  private failed(remoteAddress: string, now: number): void {
    this.counters.authenticationFailures++;
    if (this.exempt(remoteAddress)) return;
    const key = addressKey(remoteAddress);
    // Answers still in flight when the ban fell are part of the same offence, not new ones.
    if (this.bans.forAddress(remoteAddress, now)) return;
    if (this.failures.hit(key, now) < this.settings.maxFailuresPerAddress) return;
    this.failures.forget(key);
    const offences = this.offenders.offend(key, now);
    const seconds = Math.min(this.settings.banSeconds * 2 ** (offences - 1), this.settings.maxBanSeconds);
    const ban: Ban = {
      kind: 'address', value: remoteAddress, since: now, until: now + seconds * 1000, source: 'guard', offences,
      reason: `${this.settings.maxFailuresPerAddress} failed authentications within ${this.settings.failureWindowSeconds} s`,
    };
    this.bans.add(ban);
    this.counters.bansIssued++;
    this.notify({ type: 'banned', ban, rule: 'failed-authentication', offences });
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
    this.notify({ type: 'banned', ban, rule: 'flapping' });
  }

  /** Audits `event`, then tells the listeners of `event` and of its type (and `onGuardEvent`), each on its own. */
  private notify(event: GuardEvent): void {
    this.record(event);
    for (const name of ['event', event.type] as const) {
      for (const listener of this.rawListeners(name) as Array<(e: GuardEvent) => void>) {
        try {
          listener.call(this, event);
        } catch {
          // a listener's mistake never changes what the guard decided, nor keeps the others from hearing of it
        }
      }
    }
  }

  private record(event: GuardEvent): void {
    if (event.type === 'banned') {
      const { ban } = event;
      this.audit?.record({
        event: 'guard.banned', clientId: ban.kind === 'clientId' ? ban.value : '', reason: ban.reason, rule: event.rule,
        ban: `${ban.kind} ${ban.value}`, ...(ban.until !== undefined && { until: new Date(ban.until).toISOString() }),
        ...(ban.kind === 'address' && { remoteAddress: ban.value }), ...(ban.kind === 'username' && { username: ban.value }),
      });
    } else if (event.type === 'unbanned') {
      this.audit?.record({ event: 'guard.unbanned', clientId: '', ban: `${event.kind} ${event.value}` });
    } else if (event.type === 'slowed') {
      this.audit?.record({
        event: 'guard.slowed', clientId: event.name === 'clientId' ? event.value : '', ...(event.name === 'username' && { username: event.value }),
        rule: event.name === 'username' ? 'failures-per-username' : 'failures-per-client-id',
        reason: `${event.failures} failed authentications within ${this.settings.failureWindowSeconds} s from any addresses; answers delayed`,
      });
    } else if (event.type === 'rate-limited') {
      this.audit?.record({
        event: 'guard.rate-limited', clientId: event.clientId, username: event.username, remoteAddress: event.remoteAddress,
        reason: `over its ${event.limit} rate`, action: event.action,
      });
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
      ['$SYS/broker/security/authentication/slowed', String(c.namesSlowed)],
      ['$SYS/broker/security/rate-limited', String(c.rateLimited)],
      ['$SYS/broker/security/payloads/refused', String(c.payloadsRefused)],
    ];
  }
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined && typeof v === 'number')) as Partial<T>;
}

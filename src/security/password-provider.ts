import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AuthenticateRequest } from '../broker/hooks.js';
import type { AuthProvider, ProviderAnswer } from './authentication.js';
import { DEFAULT_SCRYPT, parsePasswordFile, verifyPassword, type PasswordEntry, type PasswordHash, type ScramCredential } from './password-file.js';
import { FairGate } from './fair-gate.js';
import { addressKey } from './guard/addresses.js';
import { watchReplacedFile } from './file-watch.js';

interface ErrorLogger {
  error(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
}

/**
 * A password file kept in memory and read again when it changes (an atomic
 * rename by `moat passwd` included) or on `reload()` (SIGHUP). A file that no
 * longer parses is reported and the previous users stay in force; connected
 * clients are never dropped by a reload.
 */
export class PasswordFile {
  private users: Map<string, PasswordEntry>;
  private standInHash: PasswordHash | undefined;
  /** Stops watching the file (set while it is watched). */
  private unwatch: (() => void) | undefined;

  /** Throws PasswordFileError (file and line) or a read error naming the file. */
  constructor(readonly file: string, private readonly logger?: ErrorLogger) {
    this.users = this.read();
  }

  get(username: string): PasswordEntry | undefined {
    return this.users.get(username);
  }

  /** The SCRAM-SHA-256 keys of a user (Moat-format entries have them; Mosquitto ones do not). */
  scramCredential(username: string): ScramCredential | undefined {
    return this.users.get(username)?.scram;
  }

  get size(): number {
    return this.users.size;
  }

  /**
   * A hash no password matches, as costly to check as the costliest in the file
   * (same kind and parameters): checked for unknown users so that their refusal
   * takes no less time than a wrong password's.
   */
  get standIn(): PasswordHash {
    return (this.standInHash ??= standInLike(costliest([...this.users.values()].map((e) => e.hash))));
  }

  private read(): Map<string, PasswordEntry> {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      throw new Error(`${this.file}: cannot read the password file: ${(err as Error).message}`);
    }
    return parsePasswordFile(text, this.file);
  }

  /** Reads the file again; returns false (keeping the current users) if it cannot be read or parsed. */
  reload(): boolean {
    try {
      this.users = this.read();
      this.standInHash = undefined;
      this.logger?.info({ file: this.file, users: this.users.size }, 'password file reloaded');
      return true;
    } catch (err) {
      this.logger?.error({ file: this.file, err: (err as Error).message }, 'password file not reloaded; the previous users stay in force');
      return false;
    }
  }

  /** Watches the directory, so a file replaced by rename is seen too. */
  watch(): void {
    this.unwatch ??= watchReplacedFile(this.file, () => this.reload(), (err) => this.logger?.error({ file: this.file, err: err.message }, 'cannot watch the password file'));
  }

  close(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }
}

/** Where a PasswordProvider finds users: a PasswordFile, or the users kept at runtime (RuntimeSecurity). */
export interface PasswordSource {
  get(username: string): PasswordEntry | undefined;
  /** A hash no password matches, as costly to check as the source's own: checked for unknown users. */
  readonly standIn: PasswordHash;
  close(): void;
}

/**
 * Authenticates user name + password against a PasswordFile (or another PasswordSource). An unknown user
 * costs the same hashing as a known one (a stand-in hash is checked) and then
 * passes to the next provider; with none left the chain refuses it exactly
 * like a wrong password.
 */
export interface PasswordProviderLimits {
  /**
   * Password checks running at once (default: libuv's thread pool less one thread); more wait their turn, addresses
   * taking turns (FairGate). More would only queue inside the pool, where turns are not fair and the store's
   * fsync and file reads wait behind the hashing.
   */
  concurrent?: number;
  /**
   * The broker's CONNECT timeout (default 10 s, the broker's default): a check waits its turn at most this long
   * less a margin (`passwordCheckWaitMs`), so that a client the broker cannot serve in time is told "server busy"
   * rather than closed in silence, and a longer CONNECT timeout lets a larger storm wait its turn.
   */
  connectTimeoutMs?: number;
  /** How long a check may wait for its turn, when it must differ from what `connectTimeoutMs` gives; beyond it: CONNACK 3 / 0x89 Server busy. */
  maxWaitMs?: number;
  /** How long an accepted user name and password are remembered (default 1 h; 0: never): a reconnecting fleet skips the hashing. */
  rememberMs?: number;
}

/** scrypt runs in libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise): one is left for the rest. */
const DEFAULT_CONCURRENT_CHECKS = Math.max(1, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1);

/** Accepted credentials kept at most (a keyed digest each, never the password). */
const REMEMBERED_MAX = 100_000;

/**
 * How long a password check may wait for its turn under a CONNECT timeout of `connectTimeoutMs`: the timeout
 * less 1 s (less a tenth of it when it is shorter than 10 s), so the "server busy" answer leaves before the
 * broker closes the connection. 10 s gives 9 s; 30 s gives 29 s.
 */
export function passwordCheckWaitMs(connectTimeoutMs: number): number {
  return Math.max(0, connectTimeoutMs - Math.min(1000, connectTimeoutMs / 10));
}

/** The same hash (kind, parameters, salt and digest): a reloaded file's unchanged line gives a new but equal entry. */
function sameHash(a: PasswordHash, b: PasswordHash): boolean {
  if (a.kind !== b.kind || !a.salt.equals(b.salt) || !a.hash.equals(b.hash)) return false;
  if (a.kind === 'scrypt' && b.kind === 'scrypt') return a.logN === b.logN && a.r === b.r && a.p === b.p;
  if (a.kind === 'mosquitto-pbkdf2' && b.kind === 'mosquitto-pbkdf2') return a.iterations === b.iterations;
  return true;
}

export class PasswordProvider implements AuthProvider {
  readonly method = 'password';
  private readonly gate: FairGate;
  private readonly maxWaitMs: number;
  /** A random key for this process: the digests mean nothing outside it. */
  private readonly digestKey = randomBytes(32);
  /** user → the digest of the password that was accepted, the entry it matched, and until when. */
  private readonly remembered = new Map<string, { digest: Buffer; entry: PasswordEntry; until: number }>();

  constructor(private readonly passwords: PasswordSource, private readonly limits: PasswordProviderLimits = {}) {
    this.maxWaitMs = limits.maxWaitMs ?? passwordCheckWaitMs(limits.connectTimeoutMs ?? 10_000);
    this.gate = new FairGate({ slots: limits.concurrent ?? DEFAULT_CONCURRENT_CHECKS, maxWaitMs: this.maxWaitMs });
  }

  /**
   * Hashing is deliberately slow: checks beyond the slots wait their turn (bounded, fair between addresses)
   * rather than being refused, and a user name and password accepted recently are recognised by a keyed
   * digest (HMAC-SHA-256 with a per-process key) until the password file changes or the entry expires.
   */
  async authenticate(request: AuthenticateRequest): Promise<ProviderAnswer> {
    if (request.username === undefined) return { outcome: 'pass' };
    const known = this.recall(request.username, request.password);
    if (known) return known;
    // The CONNECT timeout runs from when the socket opened: what the connection already waited is not granted twice.
    const waited = request.openedAt === undefined ? 0 : Math.max(0, Date.now() - request.openedAt);
    const release = await this.gate.enter(addressKey(request.remoteAddress), Math.max(0, this.maxWaitMs - waited));
    if (!release) return { outcome: 'refuse', reason: 'busy', why: 'too many password checks waiting' };
    // While this one waited, the same credentials may have been checked (a fleet sharing them): no hashing then.
    const meanwhile = this.recall(request.username, request.password);
    if (meanwhile) {
      release();
      return meanwhile;
    }
    try {
      return await this.check({ ...request, username: request.username });
    } finally {
      release();
    }
  }

  private digest(username: string, password: Buffer): Buffer {
    return createHmac('sha256', this.digestKey).update(username).update('\0').update(password).digest();
  }

  /**
   * An accept without hashing, for credentials accepted before against the same entry of the file. A reload
   * (a user added with `moat passwd`, another's password changed) keeps what it did not change: the entry is
   * compared by its hash, not by identity.
   */
  private recall(username: string, password: Buffer | undefined): ProviderAnswer | undefined {
    const kept = this.remembered.get(username);
    if (!kept || password === undefined) return undefined;
    const current = this.passwords.get(username);
    if (kept.until <= Date.now() || current === undefined || (current !== kept.entry && !sameHash(current.hash, kept.entry.hash))) {
      this.remembered.delete(username);
      return undefined;
    }
    kept.entry = current;
    if (!timingSafeEqual(kept.digest, this.digest(username, password))) return undefined;
    return { outcome: 'accept', identity: { method: this.method, username } };
  }

  private remember(username: string, password: Buffer, entry: PasswordEntry): void {
    const ms = this.limits.rememberMs ?? 3_600_000;
    if (ms <= 0) return;
    this.remembered.delete(username);
    if (this.remembered.size >= REMEMBERED_MAX) this.remembered.delete(this.remembered.keys().next().value!);
    this.remembered.set(username, { digest: this.digest(username, password), entry, until: Date.now() + ms });
  }

  private async check(request: AuthenticateRequest & { username: string }): Promise<ProviderAnswer> {
    const entry = this.passwords.get(request.username);
    const password = request.password ?? Buffer.alloc(0);
    const ok = await verifyPassword(entry?.hash ?? this.passwords.standIn, password);
    if (!entry) return { outcome: 'pass', why: 'unknown user' };
    if (!ok || request.password === undefined) return { outcome: 'refuse', reason: 'badCredentials', why: 'wrong password' };
    this.remember(request.username, request.password, entry);
    return { outcome: 'accept', identity: { method: this.method, username: request.username } };
  }

  close(): void {
    this.passwords.close();
  }
}

function standInLike(model: PasswordHash | undefined): PasswordHash {
  const salt = randomBytes(model?.salt.length ?? 16);
  if (!model || model.kind === 'scrypt') {
    const params = model ?? DEFAULT_SCRYPT;
    return { kind: 'scrypt', logN: params.logN, r: params.r, p: params.p, salt, hash: randomBytes(32) };
  }
  if (model.kind === 'mosquitto-pbkdf2') return { kind: 'mosquitto-pbkdf2', iterations: model.iterations, salt, hash: randomBytes(model.hash.length) };
  return { kind: 'mosquitto-sha512', salt, hash: randomBytes(64) };
}

/** The hash that takes longest to check: scrypt before PBKDF2 before one SHA-512, then by cost. */
function costliest(hashes: PasswordHash[]): PasswordHash | undefined {
  const cost = (h: PasswordHash): number =>
    h.kind === 'scrypt' ? 1e12 + 2 ** h.logN * h.r * h.p : h.kind === 'mosquitto-pbkdf2' ? 1e6 + h.iterations : 0;
  return hashes.reduce<PasswordHash | undefined>((best, h) => (best === undefined || cost(h) > cost(best) ? h : best), undefined);
}

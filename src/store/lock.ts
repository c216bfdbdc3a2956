import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Redis } from 'ioredis';
import { StoreError } from './errors.js';

/** Who holds a store: enough for the refusal to name the process. */
interface Owner {
  pid: number;
  host: string;
  since: string;
  /** Which PID namespace of which boot the PID belongs to (Linux); PIDs are compared only within one. */
  ns?: string;
}

/** This process's PID namespace and boot, or undefined where /proc does not tell (then PIDs are never compared). */
function pidNamespace(): string | undefined {
  try {
    return `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}/${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    return undefined;
  }
}

function describeOwner(owner: Owner | undefined): string {
  if (!owner) return 'another process';
  const where = owner.host === hostname() ? '' : ` on host ${owner.host}`;
  return `another Moat broker (PID ${owner.pid}${where}, since ${owner.since})`;
}

/** The code of the StoreError a refused process gets. */
export const STORE_IN_USE = 'STORE_IN_USE';

function inUse(where: string, owner: Owner | undefined, setting: string): StoreError {
  return new StoreError(where, `the store is in use by ${describeOwner(owner)}; a store belongs to one broker at a time: stop that broker or give this one another ${setting}`, STORE_IN_USE);
}

function me(): Owner {
  const ns = pidNamespace();
  return { pid: process.pid, host: hostname(), since: new Date().toISOString(), ...(ns !== undefined && { ns }) };
}

const LOCK_FILE = 'moat.lock';

/**
 * One process at a time in a data directory. The lock is SQLite's own file lock (fcntl) on `moat.lock`:
 * a write transaction held open for the life of the process, which the kernel ends with the process,
 * so a broker killed with SIGKILL never blocks the next start. The holder's PID is committed to the
 * same file before the transaction is taken, so a refused process can read and name it.
 */
export class DirectoryLock {
  private constructor(private db: Database.Database | undefined) {}

  static acquire(directory: string): DirectoryLock {
    const file = path.join(directory, LOCK_FILE);
    let db: Database.Database;
    try {
      db = new Database(file, { timeout: 0 });
    } catch (err) {
      throw new StoreError(file, `cannot open the lock file: ${(err as Error).message}`);
    }
    const refuse = (): StoreError => {
      const owner = readOwner(db);
      db.close();
      return inUse(directory, owner, 'store.directory');
    };
    try {
      if (!tryBegin(db)) throw refuse();
      try {
        db.exec('CREATE TABLE IF NOT EXISTS owner (pid INTEGER NOT NULL, host TEXT NOT NULL, since TEXT NOT NULL)');
        const owner = me();
        db.exec('DELETE FROM owner');
        db.prepare('INSERT INTO owner (pid, host, since) VALUES (?, ?, ?)').run(owner.pid, owner.host, owner.since);
        db.exec('COMMIT');
      } catch {
        // The owner record could not be written (a full disk): the lock holds all the same, only a refused
        // process cannot name this one. The store itself reports what is wrong with the disk.
        if (db.inTransaction) db.exec('ROLLBACK');
      }
      // Another process may slip in between the commit and this second transaction; then it owns the store.
      if (!tryBegin(db)) throw refuse();
    } catch (err) {
      if (db.open) db.close();
      if (err instanceof StoreError) throw err;
      throw new StoreError(file, `cannot lock the store: ${(err as Error).message}`, (err as { code?: string }).code);
    }
    return new DirectoryLock(db);
  }

  release(): void {
    if (!this.db) return;
    this.db.exec('ROLLBACK');
    this.db.close();
    this.db = undefined;
  }
}

function tryBegin(db: Database.Database): boolean {
  try {
    db.exec('BEGIN IMMEDIATE');
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return false;
    throw err;
  }
}

function readOwner(db: Database.Database): Owner | undefined {
  try {
    return db.prepare('SELECT pid, host, since FROM owner').get() as Owner | undefined;
  } catch {
    return undefined;
  }
}

/** How long a Redis lock lives without renewal, and how often the holder renews it. */
const REDIS_LOCK_TTL_MS = 30_000;

const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const REPLACE = `if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseOwner(text: string | null): Owner | undefined {
  if (text === null) return undefined;
  try {
    const owner = JSON.parse(text) as Partial<Owner>;
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? owner as Owner : undefined;
  } catch {
    return undefined;
  }
}

/** A holder that is certainly gone: same boot and PID namespace as this process, and no such PID any more. */
function abandoned(owner: Owner | undefined): boolean {
  const ns = pidNamespace();
  return owner !== undefined && ns !== undefined && owner.ns === ns && owner.pid !== process.pid && !alive(owner.pid);
}

export interface RedisLockOptions {
  /** Called when the lock was lost and another broker holds it now: this broker must stop writing. */
  onLost: (holder: string) => void;
  /** Keep trying this long while another process holds the lock (a worker whose predecessor is still stopping). */
  waitMs?: number;
  ttlMs?: number;
}

/**
 * One broker at a time on a Redis key prefix: a key `{prefix}lock` set only if absent, with an expiry the
 * holder keeps renewing. A holder in this PID namespace whose PID is gone (killed) is taken over at once;
 * any other that stops renewing loses the lock when it expires. A holder that finds its lock expired (Redis
 * was unreachable longer than the expiry) takes it again if nobody else did, and otherwise is told.
 */
export class RedisLock {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly redis: Redis, private readonly key: string, private readonly value: string, private readonly options: RedisLockOptions,
  ) {
    const ttl = options.ttlMs ?? REDIS_LOCK_TTL_MS;
    this.timer = setInterval(() => void this.renew(ttl), Math.max(10, Math.floor(ttl / 3))).unref();
  }

  private async renew(ttl: number): Promise<void> {
    try {
      if (await this.redis.eval(RENEW, 1, this.key, this.value, ttl) === 1) return;
      if (await this.redis.set(this.key, this.value, 'PX', ttl, 'NX') === 'OK') return; // expired, nobody took it
      if (this.timer === undefined) return; // released meanwhile
      clearInterval(this.timer);
      this.timer = undefined;
      this.options.onLost(describeOwner(parseOwner(await this.redis.get(this.key))));
    } catch {
      // Redis unreachable: the store reports it; renewal is tried again
    }
  }

  static async acquire(redis: Redis, prefix: string, url: string, options: RedisLockOptions): Promise<RedisLock> {
    const key = `${prefix}lock`;
    const where = `${url} (key prefix "${prefix}")`;
    const ttl = options.ttlMs ?? REDIS_LOCK_TTL_MS;
    const value = JSON.stringify({ ...me(), token: randomBytes(8).toString('hex') });
    const deadline = Date.now() + (options.waitMs ?? 0);
    for (;;) {
      if (await redis.set(key, value, 'PX', ttl, 'NX') === 'OK') return new RedisLock(redis, key, value, options);
      const held = await redis.get(key);
      if (held === null) continue; // expired meanwhile
      const owner = parseOwner(held);
      if (abandoned(owner)) {
        if (await redis.eval(REPLACE, 1, key, held, value, ttl) === 1) return new RedisLock(redis, key, value, options);
        continue;
      }
      if (Date.now() >= deadline) throw inUse(where, owner, 'store.key_prefix');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.eval(RELEASE, 1, this.key, this.value).catch(() => undefined);
  }
}

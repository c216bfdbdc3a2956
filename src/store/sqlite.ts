import { accessSync, closeSync, constants, existsSync, fsync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import { DirectoryLock, STORE_IN_USE } from './lock.js';
import { messageToRow, openRow, rowToMessage, sealRow, toMessage, type MessageRow, type SealableFields } from './codec.js';
import { AtRestCipher, AtRestError, type AtRestKeys } from './at-rest.js';
import { LatencyHistogram } from '../measure/latency.js';
import type {
  BrokerStore, StoreLogger, StoreTimings, InflightRecord, QueuedRecord, RecoveredSession, RecoveredState, SessionRecord, StoredMessage, StoredRecord, SubscriptionRecord,
} from './store.js';

/** How acknowledgements relate to the disk (docs/storage.md). */
export type Durability = 'strict' | 'periodic';

export interface SqliteStoreOptions {
  /** Data directory; the database is `moat.db` inside it. */
  directory: string;
  /** strict: acknowledgements wait for the batch's fsync. periodic: they do not; a batch is written every `flushIntervalMs`. */
  durability?: Durability;
  /** periodic: milliseconds between batches (the most a crash can lose). strict: extra wait to gather a batch (default 0: one batch per event-loop turn). */
  flushIntervalMs?: number;
  logger?: StoreLogger;
  /** While another process holds the directory, keep trying this long before refusing (default 0: refuse at once). */
  lockWaitMs?: number;
  /** Encryption at rest of queued, in-flight and retained messages (docs/payload-encryption.md, "At rest"). */
  encryption?: AtRestKeys;
}

export { StoreError } from './errors.js';

/** Schema version written to PRAGMA user_version; MIGRATIONS[v] upgrades a database from version v to v + 1. */
export const SCHEMA_VERSION = 4;
const MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  (db) => db.exec(`
    CREATE TABLE sessions (client_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, expiry_interval INTEGER);
    CREATE TABLE subscriptions (client_id TEXT NOT NULL, filter TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (client_id, filter));
    CREATE TABLE queue (client_id TEXT NOT NULL, seq INTEGER NOT NULL, qos INTEGER NOT NULL, share TEXT,
      topic TEXT NOT NULL, payload BLOB NOT NULL, msg_qos INTEGER NOT NULL, retain INTEGER NOT NULL, props TEXT, expires_at INTEGER,
      PRIMARY KEY (client_id, seq));
    CREATE TABLE inflight (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, state TEXT NOT NULL, qos INTEGER NOT NULL, share TEXT,
      topic TEXT NOT NULL, payload BLOB NOT NULL, msg_qos INTEGER NOT NULL, retain INTEGER NOT NULL, props TEXT, expires_at INTEGER,
      PRIMARY KEY (client_id, packet_id));
    CREATE TABLE incoming_qos2 (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id));
    CREATE TABLE retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL, props TEXT, expires_at INTEGER);
  `),
  // 2: when a disconnected session expires, so the clock survives a restart; security data (bans, users...).
  (db) => db.exec(`
    ALTER TABLE sessions ADD COLUMN expires_at INTEGER;
    CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, key));
  `),
  // 3: who left each session behind, for the caps on stored sessions per user and per address.
  (db) => db.exec(`
    ALTER TABLE sessions ADD COLUMN username TEXT;
    ALTER TABLE sessions ADD COLUMN remote_address TEXT;
    ALTER TABLE sessions ADD COLUMN left_at INTEGER;
  `),
  // 4: encryption at rest; a row's key_id names the key that sealed its payload and props (NULL: stored as they are).
  (db) => db.exec(`
    ALTER TABLE queue ADD COLUMN key_id INTEGER;
    ALTER TABLE inflight ADD COLUMN key_id INTEGER;
    ALTER TABLE retained ADD COLUMN key_id INTEGER;
  `),
];

/** The tables of messages that encryption at rest seals, with the name each one's count has. */
const SEALED_TABLES = [['queue', 'queued'], ['inflight', 'inflight'], ['retained', 'retained']] as const;
/** Rows re-encrypted per batch: a few milliseconds of work between the broker's own writes. */
const REKEY_BATCH = 256;

type Op = () => void;

/** Records re-encrypted by a rekey pass, per kind. */
export interface ReencryptionCounts {
  queued: number;
  inflight: number;
  retained: number;
}

/** A rekey pass: which table it is at, where, and who waits for its end. */
interface RekeyPass {
  keyId: number;
  table: number;
  cursor: number;
  counts: ReencryptionCounts;
  /** Rows that did not open (changed on disk since the start); they keep their key. */
  unreadable: number;
  startedAt: number;
  waiters: Array<(counts: ReencryptionCounts) => void>;
}

/**
 * The embedded durable store: SQLite in WAL mode (docs/storage.md has the
 * measurement behind the choice). Changes are queued in memory and written in
 * one transaction per batch (group commit); with `strict` durability the batch
 * is fsynced before `whenDurable` callbacks run, so acknowledgements wait for it.
 * A failed write (full disk) keeps the batch and retries; acknowledgements wait.
 */
export class SqliteStore implements BrokerStore {
  readonly file: string;
  changes = 0;
  readonly timings: StoreTimings = { write: new LatencyHistogram(), sync: new LatencyHistogram() };
  private db: Database.Database | undefined;
  private ops: Op[] = [];
  /** Record changes queued in `ops` and not written yet, by kind and key. */
  private readonly unwrittenRecords = new Map<string, { json: string | undefined }>();
  /** Callbacks waiting for the changes queued in `ops`. */
  private waiters: Array<() => void> = [];
  /** strict: transactions committed to the WAL, and how many of them an fsync has made durable. */
  private commitSeq = 0;
  private syncedSeq = 0;
  /** strict: callbacks waiting for the next fsync, and the fsync running (the commits it covers, who waits for it). */
  private committed: Array<() => void> = [];
  private syncing: { upTo: number; callbacks: Array<() => void> } | undefined;
  private walFd: number | undefined;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private retryDelay = 10;
  private readonly durability: Durability;
  private readonly flushIntervalMs: number;
  private statements!: ReturnType<SqliteStore['prepare']>;
  /** Held from open to close: one process per data directory. */
  private lock: DirectoryLock | undefined;
  private readonly cipher: AtRestCipher | undefined;
  /** Rows the last load found under another key than the current one (or plain): a rekey pass starts after open. */
  private staleRows = 0;
  private rekey: RekeyPass | undefined;
  /** Run once the batch holding the ops queued with them has committed (a failed batch keeps them for its retry). */
  private afterCommit: Array<() => void> = [];

  constructor(private readonly options: SqliteStoreOptions) {
    this.file = path.join(options.directory, 'moat.db');
    this.durability = options.durability ?? 'strict';
    this.flushIntervalMs = options.flushIntervalMs ?? (this.durability === 'periodic' ? 100 : 0);
    if (options.encryption) this.cipher = new AtRestCipher(options.encryption);
  }

  async open(): Promise<RecoveredState> {
    const directory = this.options.directory;
    try {
      mkdirSync(directory, { recursive: true });
    } catch (err) {
      throw new StoreError(directory, `cannot create the data directory: ${(err as Error).message}`);
    }
    // SQLite would fall back to reading only; a broker that cannot write must not start.
    for (const target of existsSync(this.file) ? [directory, this.file] : [directory]) {
      try {
        accessSync(target, constants.W_OK);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'EROFS' ? 'on a read-only file system' : `not writable (${code ?? (err as Error).message})`;
        throw new StoreError(target, `${target === directory ? 'the data directory is' : 'the store is'} ${why}; refusing to start`);
      }
    }
    const deadline = Date.now() + (this.options.lockWaitMs ?? 0);
    for (;;) {
      try {
        this.lock = DirectoryLock.acquire(directory);
        break;
      } catch (err) {
        // A disk too full to take the lock is too full for the store: said about the store, as opening it would.
        if (err instanceof StoreError && err.code === 'SQLITE_FULL') throw new StoreError(this.file, `cannot open the store: ${describeSqliteError(err)}`);
        if (!(err instanceof StoreError && err.code === STORE_IN_USE) || Date.now() >= deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    let db: Database.Database;
    try {
      db = this.openDatabase();
    } catch (err) {
      this.releaseLock();
      throw err;
    }
    this.db = db;
    if (this.durability === 'strict') this.openWalForSync(db);
    this.statements = this.prepare(db);
    let state: RecoveredState;
    try {
      state = this.load(db);
    } catch (err) {
      this.db = undefined;
      db.close();
      this.releaseLock();
      if (err instanceof AtRestError) throw new StoreError(this.file, `${err.message}; refusing to start`);
      throw err;
    }
    // Plain rows (encryption just turned on) or rows under an older key: re-encrypted in the background.
    if (this.cipher && this.staleRows > 0) void this.reencrypt();
    return state;
  }

  private openDatabase(): Database.Database {
    let db: Database.Database;
    try {
      db = new Database(this.file);
      const integrity = db.pragma('quick_check', { simple: true });
      if (integrity !== 'ok') throw new Error(`integrity check failed: ${String(integrity)}`);
      db.pragma('journal_mode = WAL');
      // NORMAL keeps WAL mode consistent; strict durability adds its own fsync of the WAL (see flush).
      db.pragma('synchronous = NORMAL');
    } catch (err) {
      throw new StoreError(this.file, `cannot open the store: ${describeSqliteError(err)}`);
    }
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new StoreError(this.file, `written by a newer Moat (schema ${version}, this version reads up to ${SCHEMA_VERSION}); refusing to start`);
    }
    try {
      for (let v = version; v < SCHEMA_VERSION; v++) {
        db.transaction(() => {
          MIGRATIONS[v]!(db);
          db.pragma(`user_version = ${v + 1}`);
        })();
      }
    } catch (err) {
      db.close();
      throw new StoreError(this.file, `cannot prepare the schema: ${describeSqliteError(err)}`);
    }
    return db;
  }

  /**
   * strict durability fsyncs the WAL file from libuv's thread pool after each
   * commit instead of letting SQLite fsync on the event loop: routing goes on
   * while the disk works, and commits made meanwhile share the next fsync.
   * The directory is synced once so the WAL file itself survives a power cut.
   */
  private openWalForSync(db: Database.Database): void {
    try {
      db.exec('BEGIN IMMEDIATE; COMMIT'); // makes SQLite create the -wal file now
      this.walFd = openSync(`${this.file}-wal`, 'r');
      const dirFd = openSync(this.options.directory, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    } catch (err) {
      db.close();
      throw new StoreError(this.file, `cannot prepare the write-ahead log: ${(err as Error).message}`);
    }
  }

  private prepare(db: Database.Database) {
    const msgCols = 'topic, payload, msg_qos, retain, props, expires_at, key_id';
    return {
      saveSession: db.prepare(`INSERT INTO sessions (client_id, created_at, expiry_interval, expires_at, username, remote_address, left_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (client_id) DO UPDATE SET expiry_interval = excluded.expiry_interval, expires_at = excluded.expires_at,
          username = excluded.username, remote_address = excluded.remote_address, left_at = excluded.left_at`),
      deleteSession: ['sessions', 'subscriptions', 'queue', 'inflight', 'incoming_qos2'].map((t) => db.prepare(`DELETE FROM ${t} WHERE client_id = ?`)),
      putSubscription: db.prepare('INSERT OR REPLACE INTO subscriptions (client_id, filter, record) VALUES (?, ?, ?)'),
      deleteSubscription: db.prepare('DELETE FROM subscriptions WHERE client_id = ? AND filter = ?'),
      enqueue: db.prepare(`INSERT OR REPLACE INTO queue (client_id, seq, qos, share, ${msgCols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      dequeue: db.prepare('DELETE FROM queue WHERE client_id = ? AND seq = ?'),
      putInflight: db.prepare(`INSERT OR REPLACE INTO inflight (client_id, packet_id, state, qos, share, ${msgCols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      deleteInflight: db.prepare('DELETE FROM inflight WHERE client_id = ? AND packet_id = ?'),
      putIncoming: db.prepare('INSERT OR IGNORE INTO incoming_qos2 (client_id, packet_id) VALUES (?, ?)'),
      deleteIncoming: db.prepare('DELETE FROM incoming_qos2 WHERE client_id = ? AND packet_id = ?'),
      putRetained: db.prepare('INSERT OR REPLACE INTO retained (topic, payload, qos, props, expires_at, key_id) VALUES (?, ?, ?, ?, ?, ?)'),
      deleteRetained: db.prepare('DELETE FROM retained WHERE topic = ?'),
      putRecord: db.prepare('INSERT OR REPLACE INTO records (kind, key, value) VALUES (?, ?, ?)'),
      deleteRecord: db.prepare('DELETE FROM records WHERE kind = ? AND key = ?'),
      // Through the rowid: one pass over a table however many rows it holds.
      rekey: SEALED_TABLES.map(([table]) => ({
        select: db.prepare(`SELECT rowid, topic, payload, props, key_id FROM ${table} WHERE rowid > ? AND key_id IS NOT ? ORDER BY rowid LIMIT ?`),
        update: db.prepare(`UPDATE ${table} SET payload = ?, props = ?, key_id = ? WHERE rowid = ?`),
      })),
    };
  }

  private load(db: Database.Database): RecoveredState {
    const sessions = new Map<string, RecoveredSession>();
    type SessionRow = {
      client_id: string; created_at: number; expiry_interval: number | null; expires_at: number | null; username: string | null;
      remote_address: string | null; left_at: number | null;
    };
    const sessionColumns = 'client_id, created_at, expiry_interval, expires_at, username, remote_address, left_at';
    for (const row of db.prepare(`SELECT ${sessionColumns} FROM sessions`).iterate() as Iterable<SessionRow>) {
      const record: SessionRecord = { clientId: row.client_id, createdAt: row.created_at };
      if (row.expiry_interval !== null) record.expiryInterval = row.expiry_interval;
      if (row.expires_at !== null) record.expiresAt = row.expires_at;
      if (row.username !== null) record.username = row.username;
      if (row.remote_address !== null) record.remoteAddress = row.remote_address;
      if (row.left_at !== null) record.leftAt = row.left_at;
      sessions.set(row.client_id, { record, subscriptions: [], queue: [], inflight: [], incomingQos2: [] });
    }
    for (const row of db.prepare('SELECT client_id, record FROM subscriptions').iterate() as Iterable<{ client_id: string; record: string }>) {
      sessions.get(row.client_id)?.subscriptions.push(JSON.parse(row.record) as SubscriptionRecord);
    }
    type Held = MessageRow & { client_id: string; qos: number; share: string | null; msg_qos: number };
    const current = this.cipher?.currentKeyId ?? null;
    this.staleRows = 0;
    const message = (row: Held): StoredMessage => {
      if (row.key_id !== current) this.staleRows++;
      return rowToMessage({ ...row, qos: row.msg_qos }, this.cipher);
    };
    for (const row of db.prepare('SELECT * FROM queue ORDER BY client_id, seq').iterate() as Iterable<Held & { seq: number }>) {
      const entry: QueuedRecord = { seq: row.seq, qos: row.qos as QueuedRecord['qos'], message: message(row) };
      if (row.share !== null) entry.share = row.share;
      sessions.get(row.client_id)?.queue.push(entry);
    }
    for (const row of db.prepare('SELECT * FROM inflight').iterate() as Iterable<Held & { packet_id: number; state: 'publish' | 'pubrel' }>) {
      const entry: InflightRecord = { packetId: row.packet_id, state: row.state, qos: row.qos as InflightRecord['qos'], message: message(row) };
      if (row.share !== null) entry.share = row.share;
      sessions.get(row.client_id)?.inflight.push(entry);
    }
    for (const row of db.prepare('SELECT client_id, packet_id FROM incoming_qos2').iterate() as Iterable<{ client_id: string; packet_id: number }>) {
      sessions.get(row.client_id)?.incomingQos2.push(row.packet_id);
    }
    // The largest table: raw rows (arrays) and no intermediate objects.
    const retained: StoredMessage[] = [];
    const slab = new PayloadSlab();
    type RetainedRow = [string, Buffer, number, string | Buffer | null, number | null, number | null];
    const retainedRows = db.prepare('SELECT topic, payload, qos, props, expires_at, key_id FROM retained').raw(true).iterate() as Iterable<RetainedRow>;
    for (const [topic, stored, qos, storedProps, expiresAt, keyId] of retainedRows) {
      if (keyId !== current) this.staleRows++;
      const { payload, props } = keyId === null ? { payload: stored, props: storedProps } : openRow({ topic, payload: stored, props: storedProps, key_id: keyId }, this.cipher);
      retained.push(toMessage(topic, slab.keep(payload), qos, true, props as string | null, expiresAt));
    }
    const records: StoredRecord[] = [];
    for (const row of db.prepare('SELECT kind, key, value FROM records').iterate() as Iterable<{ kind: string; key: string; value: string }>) {
      records.push({ kind: row.kind, key: row.key, value: JSON.parse(row.value) as unknown });
    }
    return { sessions: [...sessions.values()], retained, records };
  }

  async close(): Promise<void> {
    if (!this.db) return;
    this.rekey = undefined; // an unfinished pass goes on at the next start
    this.cancelTimer();
    while (this.ops.length > 0 || this.waiters.length > 0) {
      if (!this.flush()) break; // the disk refuses: what is not written is lost with the process, as it would be in a crash
    }
    while (this.syncing) await new Promise((resolve) => setTimeout(resolve, 1));
    if (this.walFd !== undefined) {
      try {
        fsyncSync(this.walFd);
      } catch {
        // reported by the write path already; closing goes on
      }
      closeSync(this.walFd);
      this.walFd = undefined;
    }
    this.syncedSeq = this.commitSeq;
    const last = this.committed;
    this.committed = [];
    for (const done of last) done();
    this.db.close();
    this.db = undefined;
    this.releaseLock();
  }

  private releaseLock(): void {
    this.lock?.release();
    this.lock = undefined;
  }

  // ---- changes: queued, written by the next batch ----

  private change(op: Op): void {
    this.changes++;
    this.ops.push(op);
    this.schedule();
  }

  saveSession(r: SessionRecord): void {
    this.change(() => this.statements.saveSession.run(r.clientId, r.createdAt, r.expiryInterval ?? null, r.expiresAt ?? null, r.username ?? null, r.remoteAddress ?? null, r.leftAt ?? null));
  }

  deleteSession(clientId: string): void {
    this.change(() => {
      for (const stmt of this.statements.deleteSession) stmt.run(clientId);
    });
  }

  putSubscription(clientId: string, s: SubscriptionRecord): void {
    const record = JSON.stringify(s);
    this.change(() => this.statements.putSubscription.run(clientId, s.filter, record));
  }

  deleteSubscription(clientId: string, filter: string): void {
    this.change(() => this.statements.deleteSubscription.run(clientId, filter));
  }

  enqueue(clientId: string, e: QueuedRecord): void {
    const m = messageToRow(e.message, this.cipher);
    this.change(() => this.statements.enqueue.run(clientId, e.seq, e.qos, e.share ?? null, m.topic, m.payload, m.qos, m.retain, m.props, m.expires_at, m.key_id));
  }

  dequeue(clientId: string, seq: number): void {
    this.change(() => this.statements.dequeue.run(clientId, seq));
  }

  putInflight(clientId: string, e: InflightRecord): void {
    const m = messageToRow(e.message, this.cipher);
    const state = e.state; // the engine mutates the entry; capture its state now
    this.change(() => this.statements.putInflight.run(clientId, e.packetId, state, e.qos, e.share ?? null, m.topic, m.payload, m.qos, m.retain, m.props, m.expires_at, m.key_id));
  }

  deleteInflight(clientId: string, packetId: number): void {
    this.change(() => this.statements.deleteInflight.run(clientId, packetId));
  }

  putIncomingQos2(clientId: string, packetId: number): void {
    this.change(() => this.statements.putIncoming.run(clientId, packetId));
  }

  deleteIncomingQos2(clientId: string, packetId: number): void {
    this.change(() => this.statements.deleteIncoming.run(clientId, packetId));
  }

  putRetained(message: StoredMessage): void {
    const m = messageToRow(message, this.cipher);
    this.change(() => this.statements.putRetained.run(m.topic, m.payload, m.qos, m.props, m.expires_at, m.key_id));
  }

  deleteRetained(topic: string): void {
    this.change(() => this.statements.deleteRetained.run(topic));
  }

  putRecord(kind: string, key: string, value: unknown): void {
    this.changeRecord(kind, key, JSON.stringify(value));
  }

  deleteRecord(kind: string, key: string): void {
    this.changeRecord(kind, key, undefined);
  }

  /** A record changed several times before a flush (a payload key's counter, once per read) is written once, as it last was. */
  private changeRecord(kind: string, key: string, json: string | undefined): void {
    const id = `${kind}\u0000${key}`;
    const unwritten = this.unwrittenRecords.get(id);
    if (unwritten) {
      unwritten.json = json;
      this.changes++;
      return;
    }
    const record = { json };
    this.unwrittenRecords.set(id, record);
    this.change(() => {
      this.unwrittenRecords.delete(id);
      if (record.json === undefined) this.statements.deleteRecord.run(kind, key);
      else this.statements.putRecord.run(kind, key, record.json);
    });
  }

  // ---- encryption at rest: rekey ----

  /**
   * The key file read again (SIGHUP): new records use its current key at once, and a rekey pass re-encrypts the
   * rest. Keys the file no longer holds stay readable in memory until the restart. False: nothing changed.
   */
  useKeys(keys: AtRestKeys): boolean {
    if (!this.cipher || !this.cipher.differs(keys)) return false; // turning encryption on needs a restart
    const keptInMemory = this.cipher.use(keys);
    if (keptInMemory.length > 0) {
      this.options.logger?.warn?.({ file: keys.file, keyIds: keptInMemory }, 'key ids no longer in the store key file stay readable until the restart');
    }
    void this.reencrypt();
    return true;
  }

  /**
   * Re-encrypts every queued, in-flight and retained row not under the current key (plain rows included), a batch
   * of REKEY_BATCH rows per event-loop turn, each batch written with the broker's own changes of that turn. Resolves
   * with the counts once done; a pass started meanwhile (another key) takes over, and resolves both.
   */
  reencrypt(): Promise<ReencryptionCounts> {
    const cipher = this.cipher;
    if (!cipher || !this.db) return Promise.resolve({ queued: 0, inflight: 0, retained: 0 });
    return new Promise((resolve) => {
      const pass: RekeyPass = {
        keyId: cipher.currentKeyId, table: 0, cursor: 0, counts: { queued: 0, inflight: 0, retained: 0 }, unreadable: 0, startedAt: performance.now(),
        waiters: [...(this.rekey?.waiters ?? []), resolve],
      };
      this.rekey = pass;
      // What a rewritten row leaves behind (plaintext, or what the old key sealed) is zeroed, not left in free space.
      this.db!.pragma('secure_delete = ON');
      this.options.logger?.info?.({ path: this.file, keyId: pass.keyId }, 'store rekey started');
      this.queueRekeyBatch(pass);
    });
  }

  /**
   * One batch as an op behind every change queued so far: those were sealed before the key changed, and are
   * written before the pass reads their rows.
   */
  private queueRekeyBatch(pass: RekeyPass): void {
    if (this.rekey !== pass || !this.db) return;
    let done: { last: number; read: number; rewritten: number } | undefined;
    this.ops.push(() => {
      done = this.rekey === pass ? this.rekeyBatch(pass) : undefined;
    });
    this.afterCommit.push(() => {
      if (!done || this.rekey !== pass) return;
      pass.counts[SEALED_TABLES[pass.table]![1]] += done.rewritten;
      if (done.read === REKEY_BATCH) pass.cursor = done.last;
      else if (++pass.table < SEALED_TABLES.length) pass.cursor = 0;
      else return this.rekeyFinished(pass);
      setImmediate(() => this.queueRekeyBatch(pass));
    });
    this.schedule();
  }

  private rekeyBatch(pass: RekeyPass): { last: number; read: number; rewritten: number } {
    const { select, update } = this.statements.rekey[pass.table]!;
    const rows = select.all(pass.cursor, pass.keyId, REKEY_BATCH) as Array<SealableFields & { rowid: number }>;
    let rewritten = 0;
    for (const row of rows) {
      let sealed: SealableFields;
      try {
        sealed = sealRow(row, this.cipher!);
      } catch (err) {
        // Changed on disk since the start (which opened every row): left as it is, said once per pass; writes go on.
        if (!pass.unreadable++) this.options.logger?.error({ path: this.file, err: (err as Error).message }, 'store rekey: a record does not open; left as it is');
        continue;
      }
      update.run(sealed.payload, sealed.props, sealed.key_id, row.rowid);
      rewritten++;
    }
    return { last: rows.at(-1)?.rowid ?? pass.cursor, read: rows.length, rewritten };
  }

  /** Complete once durable: only then may the old key leave the file. */
  private rekeyFinished(pass: RekeyPass): void {
    this.rekey = undefined;
    this.whenDurable(() => {
      if (this.db && !this.rekey) {
        this.db.pragma('secure_delete = OFF');
        // The WAL still holds the pages as they were before the pass: emptied.
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      }
      const ms = Math.round(performance.now() - pass.startedAt);
      // Records that did not open are still under an old key: the old key must stay, and the operator must know.
      if (pass.unreadable > 0) this.options.logger?.error({ path: this.file, keyId: pass.keyId, ...pass.counts, unreadable: pass.unreadable, ms }, 'store rekey incomplete: records that do not open were left as they are; keep the old keys');
      else this.options.logger?.info?.({ path: this.file, keyId: pass.keyId, ...pass.counts, ms }, 'store rekey complete');
      for (const resolve of pass.waiters) resolve(pass.counts);
    });
  }

  // ---- durability ----

  whenDurable(done: () => void): void {
    if (this.durability === 'periodic') done();
    else if (this.ops.length > 0 || this.waiters.length > 0) this.waiters.push(done);
    else if (this.syncedSeq >= this.commitSeq) done();
    else if (this.syncing && this.syncing.upTo >= this.commitSeq) this.syncing.callbacks.push(done);
    else {
      this.committed.push(done);
      if (!this.syncing) this.syncWal();
    }
  }

  durableNow(): boolean {
    return this.durability === 'periodic' || (this.ops.length === 0 && this.syncedSeq >= this.commitSeq);
  }

  private schedule(): void {
    // While an fsync runs, changes gather; its completion writes them as one transaction.
    if (this.timer !== undefined || this.syncing) return;
    const run = (): void => {
      this.timer = undefined;
      if (!this.flush()) this.retryLater();
    };
    this.timer = this.flushIntervalMs > 0 ? setTimeout(run, this.flushIntervalMs) : setImmediate(run);
  }

  private cancelTimer(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = undefined;
  }

  /** Writes every queued change in one transaction; returns false if the disk refused (kept for a retry). */
  private flush(): boolean {
    const db = this.db;
    if (!db) return false;
    const ops = this.ops;
    const waiters = this.waiters;
    if (ops.length > 0) {
      try {
        const started = performance.now();
        db.transaction(() => {
          for (const op of ops) op();
        })();
        this.timings.write.observeSince(started);
      } catch (err) {
        this.options.logger?.error({ err: describeSqliteError(err), path: this.file }, 'store write failed; acknowledgements wait until it succeeds');
        return false;
      }
    }
    if (ops.length > 0) this.commitSeq++;
    const committed = this.afterCommit;
    this.ops = [];
    this.waiters = [];
    this.afterCommit = [];
    for (const hook of committed) hook();
    this.retryDelay = 10;
    if (this.walFd === undefined) {
      this.syncedSeq = this.commitSeq;
      for (const done of waiters) done();
    } else {
      // Committed to the WAL: durable once it is fsynced; callbacks keep their order.
      for (const done of waiters) this.committed.push(done);
      if (!this.syncing && this.committed.length > 0) this.syncWal();
    }
    return true;
  }

  /** One fsync at a time; what is committed while it runs waits for the next one. */
  private syncWal(): void {
    const syncing = { upTo: this.commitSeq, callbacks: this.committed };
    this.committed = [];
    this.syncing = syncing;
    const started = performance.now();
    fsync(this.walFd!, (err) => {
      this.syncing = undefined;
      if (!err) this.timings.sync!.observeSince(started);
      if (err) {
        this.options.logger?.error({ err: err.message, path: `${this.file}-wal` }, 'fsync failed; acknowledgements wait until it succeeds');
        this.committed = [...syncing.callbacks, ...this.committed];
        setTimeout(() => {
          if (!this.syncing && this.walFd !== undefined && this.committed.length > 0) this.syncWal();
        }, 100);
        return;
      }
      if (syncing.upTo > this.syncedSeq) this.syncedSeq = syncing.upTo;
      for (const callback of syncing.callbacks) callback();
      if (this.walFd === undefined) return;
      if (this.ops.length > 0 && this.timer === undefined) {
        if (!this.flush()) this.retryLater();
      } else if (this.committed.length > 0) this.syncWal();
    });
  }

  private retryLater(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.flush()) this.retryLater();
    }, this.retryDelay);
    this.retryDelay = Math.min(this.retryDelay * 2, 1000);
  }
}

/** What went wrong, in words an operator can act on (SQLite's own message kept). */
function describeSqliteError(err: unknown): string {
  const { code, message } = err as { code?: string; message: string };
  if (code === 'SQLITE_FULL') return `the disk is full (${message})`;
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') return `corrupted or not a Moat store (${message})`;
  if (code === 'SQLITE_READONLY' || code?.startsWith('SQLITE_READONLY_')) return `read-only (${message})`;
  if (code === 'SQLITE_CANTOPEN') return `cannot be opened for writing (${message})`;
  return message;
}

/**
 * Small payloads read at startup are copied into shared 64 KiB blocks: a million
 * retained messages would otherwise each hold a buffer with its own allocation.
 */
class PayloadSlab {
  private block = Buffer.allocUnsafeSlow(0);
  private used = 0;

  keep(payload: Buffer): Buffer {
    if (payload.length > 1024) return payload;
    if (this.used + payload.length > this.block.length) {
      this.block = Buffer.allocUnsafeSlow(64 * 1024);
      this.used = 0;
    }
    const view = this.block.subarray(this.used, this.used + payload.length);
    payload.copy(view);
    this.used += payload.length;
    return view;
  }
}

/**
 * SQLite (better-sqlite3, WAL) against LMDB (lmdb) on Moat's storage workload:
 * small records (queued/inflight messages, ~120 bytes) inserted and deleted in
 * group-commit batches, each batch made durable (fsync) before acknowledgements,
 * and a full read at startup. Run: npm i --no-save lmdb && npm run build && node dist/bench/store-choice.js
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';

// LMDB is not a dependency of Moat: install it just for this measurement (npm i --no-save lmdb).
interface LmdbDatabase {
  put(key: number, value: Buffer): void;
  remove(key: number): void;
  transaction(fn: () => void): Promise<unknown>;
  getRange(): Iterable<unknown>;
  close(): Promise<void>;
}
type LmdbModule = { open(options: { path: string; compression: boolean }): LmdbDatabase };
const lmdb = (await import('lmdb' as string).catch(() => {
  console.error('this measurement needs lmdb: npm i --no-save lmdb');
  process.exit(1);
})) as LmdbModule;
const open = lmdb.open;

const RECORD = Buffer.alloc(120, 7);
const TOTAL = 40_000;
const BATCHES = [1, 32, 256];
const LOAD_RECORDS = 100_000;

function time(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

async function timeAsync(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function sqliteRun(dir: string, batch: number): number {
  const db = new Database(path.join(dir, `s${batch}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE q (id INTEGER PRIMARY KEY, v BLOB)');
  const put = db.prepare('INSERT INTO q (id, v) VALUES (?, ?)');
  const del = db.prepare('DELETE FROM q WHERE id = ?');
  const commit = db.transaction((from: number) => {
    for (let i = from; i < from + batch; i++) {
      put.run(i, RECORD);
      if (i >= batch) del.run(i - batch);
    }
  });
  const ms = time(() => {
    for (let i = 0; i < TOTAL; i += batch) commit(i);
  });
  db.close();
  return (TOTAL / ms) * 1000;
}

async function lmdbRun(dir: string, batch: number): Promise<number> {
  const db = open({ path: path.join(dir, `l${batch}`), compression: false });
  const ms = await timeAsync(async () => {
    for (let from = 0; from < TOTAL; from += batch) {
      // One durable (synced) write transaction per batch.
      await db.transaction(() => {
        for (let i = from; i < from + batch; i++) {
          db.put(i, RECORD);
          if (i >= batch) db.remove(i - batch);
        }
      });
    }
  });
  await db.close();
  return (TOTAL / ms) * 1000;
}

function sqliteLoad(dir: string): number {
  const db = new Database(path.join(dir, 'load.db'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE q (id INTEGER PRIMARY KEY, v BLOB)');
  const put = db.prepare('INSERT INTO q (id, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let i = 0; i < LOAD_RECORDS; i++) put.run(i, RECORD);
  })();
  let n = 0;
  const ms = time(() => {
    for (const _row of db.prepare('SELECT id, v FROM q').iterate()) n++;
  });
  db.close();
  if (n !== LOAD_RECORDS) throw new Error('sqlite load mismatch');
  return ms;
}

async function lmdbLoad(dir: string): Promise<number> {
  const db = open({ path: path.join(dir, 'load-l'), compression: false });
  await db.transaction(() => {
    for (let i = 0; i < LOAD_RECORDS; i++) db.put(i, RECORD);
  });
  let n = 0;
  const ms = time(() => {
    for (const _entry of db.getRange()) n++;
  });
  await db.close();
  if (n !== LOAD_RECORDS) throw new Error('lmdb load mismatch');
  return ms;
}

const dir = mkdtempSync(path.join(tmpdir(), 'moat-store-choice-'));
try {
  console.log(`records of ${RECORD.length} bytes, ${TOTAL} inserts + deletes per row, one fsync per batch`);
  console.log('| batch | SQLite WAL, synchronous=FULL (records/s) | LMDB, synced transactions (records/s) |');
  console.log('|---|---|---|');
  for (const batch of BATCHES) {
    const s = sqliteRun(dir, batch);
    const l = await lmdbRun(dir, batch);
    console.log(`| ${batch} | ${Math.round(s)} | ${Math.round(l)} |`);
  }
  const sl = sqliteLoad(dir);
  const ll = await lmdbLoad(dir);
  console.log(`startup read of ${LOAD_RECORDS} records: SQLite ${sl.toFixed(0)} ms, LMDB ${ll.toFixed(0)} ms`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

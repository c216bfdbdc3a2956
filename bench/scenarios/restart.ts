import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RedisStore } from '../../src/store/redis.js';
import { startRedis } from '../lib/redis.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { BrokerStore } from '../../src/store/store.js';
import { startMoat } from '../lib/brokers.js';
import { fmt, fmtSummary, sampleProcess, summarize } from '../lib/system.js';
import type { BenchContext, ScenarioReport } from './context.js';

/**
 * Restart time: a store holding many persistent sessions (one subscription each)
 * and retained messages, then `moat` started on it until it answers a CONNECT.
 */

const RETAINED_PAYLOAD = Buffer.alloc(32, 0x72);

export async function populate(store: BrokerStore, sessions: number, retained: number, log: (s: string) => void): Promise<number> {
  const t0 = performance.now();
  await store.open();
  const durable = (): Promise<void> => new Promise((resolve) => store.whenDurable(resolve));
  const now = Date.now();
  for (let i = 0; i < sessions; i++) {
    const clientId = `restart-${i}`;
    store.saveSession({ clientId, createdAt: now, expiryInterval: 0xffffffff });
    store.putSubscription(clientId, { filter: `restart/s/${i}/#`, qos: 1 });
    if (i % 20_000 === 19_999) await durable();
  }
  for (let i = 0; i < retained; i++) {
    store.putRetained({ topic: `restart/r/${Math.floor(i / 1000)}/${i % 1000}`, payload: RETAINED_PAYLOAD, qos: 1, retain: true });
    if (i % 50_000 === 49_999) {
      await durable();
      if (i % 250_000 === 249_999) log(`  populated ${fmt(i + 1)} retained`);
    }
  }
  await durable();
  await store.close();
  return performance.now() - t0;
}

interface RestartRow {
  store: string;
  populateMs: number;
  ready: ReturnType<typeof summarize>;
  rssMiB: ReturnType<typeof summarize>;
}

async function measureRestarts(ctx: BenchContext, name: string, yaml: string, cwd: string): Promise<Omit<RestartRow, 'store' | 'populateMs'>> {
  const ready: number[] = [];
  const rss: number[] = [];
  for (let round = 0; round < ctx.rounds; round++) {
    const broker = await startMoat({ yaml, cwd, cpu: ctx.brokerCpu, timeoutMs: 600_000 });
    ready.push(broker.readyMs);
    rss.push(sampleProcess(broker.pid).rssKiB / 1024);
    ctx.log(`restart ${name} round ${round + 1}: first CONNACK after ${fmt(broker.readyMs)} ms, RSS ${fmt(rss.at(-1)!)} MiB`);
    await broker.stop();
  }
  return { ready: summarize(ready), rssMiB: summarize(rss) };
}

export async function restartScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const sessions = ctx.quick ? 1000 : 100_000;
  const retained = ctx.quick ? 10_000 : 1_000_000;
  const rows: RestartRow[] = [];
  const errors: string[] = [];

  const dir = mkdtempSync(path.join(tmpdir(), 'moat-bench-restart-'));
  try {
    const populateMs = await populate(new SqliteStore({ directory: path.join(dir, 'data') }), sessions, retained, ctx.log);
    ctx.log(`restart sqlite: populated in ${fmt(populateMs)} ms`);
    rows.push({ store: 'SQLite (`strict`)', populateMs, ...(await measureRestarts(ctx, 'sqlite', `store:\n  type: sqlite\n  directory: ${path.join(dir, 'data')}\n`, dir)) });

    const redis = await startRedis(dir);
    try {
      const redisPopulateMs = await populate(new RedisStore({ url: redis.url, keyPrefix: 'bench:' }), sessions, retained, ctx.log);
      ctx.log(`restart redis: populated in ${fmt(redisPopulateMs)} ms`);
      const yaml = `store:\n  type: redis\n  url: ${redis.url}\n  key_prefix: "bench:"\n`;
      rows.push({ store: 'Redis (`appendfsync always`)', populateMs: redisPopulateMs, ...(await measureRestarts(ctx, 'redis', yaml, dir)) });
    } finally {
      await redis.stop();
    }
  } catch (err) {
    errors.push((err as Error).message);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const table = [
    '| store | restart: spawn to first CONNACK, ms | broker RSS after start, MiB | writing the data set, ms |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.store} | ${fmtSummary(r.ready)} | ${fmtSummary(r.rssMiB)} | ${fmt(r.populateMs)} |`),
  ].join('\n');
  const setup = `${fmt(sessions)} persistent sessions (one subscription each, never expiring) and ${fmt(retained)} retained messages ` +
    `(32-byte payloads, topics \`restart/r/{n}/{m}\`), written through the store; then \`moat\` started on them ${ctx.rounds} time(s), ` +
    'timed from spawning the process until a CONNECT gets its CONNACK (everything recovered before the listener opens).';
  return { id: 'restart', title: 'Restart time with a large store', setup, table, errors, data: rows };
}

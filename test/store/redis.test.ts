import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisStore, REDIS_SCHEMA_VERSION, StoreError } from '../../src/store/index.js';
import { connectClient, startBroker, waitFor } from '../helpers/broker.js';
import { dropOldestPersists, expiredMessagesDroppedAtRestart, expiryClockSurvivesRestart, recordsSurviveRestart } from '../helpers/store-cases.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/** The Redis store against a real redis-server (CI installs it; without it these tests fail, they never skip). */
describe('RedisStore', () => {
  let server: Proc;
  let url = '';
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-redis-unit-'));
  before(async () => {
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    server = spawnProc('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { limitMs: 120_000 });
    await waitFor(() => server.stdout.includes('Ready to accept connections') || server.status !== undefined, 10_000, 'redis-server');
    assert.equal(server.status, undefined, `redis-server could not start: ${server.stderr}`);
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('restores sessions, queued messages and retained messages written by a previous broker', async () => {
    const first = await startBroker({ store: new RedisStore({ url, keyPrefix: 't1:' }) });
    const sub = await connectClient(first.url, { clientId: 'redis-keep', clean: false });
    await sub.subscribeAsync('r/#', { qos: 1 });
    await sub.endAsync();
    await waitFor(() => first.broker.sessions.get('redis-keep')?.connection === undefined, 3000, 'offline');
    const pub = await connectClient(first.url);
    await pub.publishAsync('r/q', 'queued', { qos: 1 });
    await pub.publishAsync('r/ret', 'kept', { qos: 1, retain: true });
    await pub.endAsync();
    await first.close();

    const second = await startBroker({ store: new RedisStore({ url, keyPrefix: 't1:' }) });
    try {
      const session = second.broker.sessions.get('redis-keep');
      assert.ok(session, 'session restored');
      assert.deepEqual([...session.queue].map((e) => e.message.payload.toString()), ['queued', 'kept']);
      assert.deepEqual([...session.subscriptions.keys()], ['r/#']);
      let retained = '';
      second.broker.retained.match('r/ret', Date.now(), (m) => (retained = m.payload.toString()));
      assert.equal(retained, 'kept');
    } finally {
      await second.close();
    }
  });

  it('a disconnected session keeps its expiry clock across a restart; one that ran out meanwhile is dropped', async () => {
    await expiryClockSurvivesRestart(() => new RedisStore({ url, keyPrefix: 'clock:' }));
  });

  it('queue_overflow drop_oldest: the dropped messages leave the store as well', async () => {
    await dropOldestPersists(() => new RedisStore({ url, keyPrefix: 'oldest:' }));
  });

  it('security data (bans, users) saved through the broker survives a restart', async () => {
    await recordsSurviveRestart(() => new RedisStore({ url, keyPrefix: 'records:' }));
  });

  it('[MQTT-3.3.2-5] retained and queued messages that expired while the broker was down are dropped at startup', async () => {
    await expiredMessagesDroppedAtRestart(() => new RedisStore({ url, keyPrefix: 'expired:' }));
  });

  it('loads state larger than one HSCAN batch and one pipeline chunk: 1,200 sessions and 12,000 retained messages', async () => {
    const writer = new RedisStore({ url, keyPrefix: 'big:' });
    await writer.open();
    for (let i = 0; i < 1200; i++) {
      writer.saveSession({ clientId: `s${i}`, createdAt: i, expiryInterval: 0xffffffff });
      writer.putSubscription(`s${i}`, { filter: `big/${i}/#`, qos: 1 });
      writer.enqueue(`s${i}`, { seq: 1, qos: 1, message: { topic: `big/${i}/q`, payload: Buffer.from(String(i)), qos: 1, retain: false } });
    }
    for (let i = 0; i < 12_000; i++) writer.putRetained({ topic: `big/r/${i}`, payload: Buffer.from(String(i)), qos: 0, retain: true });
    await new Promise<void>((resolve) => writer.whenDurable(resolve));
    await writer.close();

    const reader = new RedisStore({ url, keyPrefix: 'big:' });
    const state = await reader.open();
    await reader.close();
    assert.equal(state.sessions.length, 1200);
    assert.equal(new Set(state.sessions.map((s) => s.record.clientId)).size, 1200);
    for (const session of state.sessions) {
      const i = session.record.clientId.slice(1);
      assert.deepEqual(session.subscriptions.map((sub) => sub.filter), [`big/${i}/#`], `subscriptions of s${i}`);
      assert.deepEqual(session.queue.map((q) => q.message.payload.toString()), [i], `queue of s${i}`);
    }
    assert.equal(state.retained.length, 12_000);
    assert.deepEqual(new Set(state.retained.map((m) => m.topic)), new Set(Array.from({ length: 12_000 }, (_, i) => `big/r/${i}`)));
  });

  it('refuses data written by a newer schema, naming the Redis URL', async () => {
    const redis = new Redis(url);
    await redis.hset('t2:meta', 'schema', String(REDIS_SCHEMA_VERSION + 1));
    await redis.quit();
    await assert.rejects(new RedisStore({ url, keyPrefix: 't2:' }).open(), (err: unknown) =>
      err instanceof StoreError && err.path === url && /newer/.test(err.message));
  });

  it('names the URL when Redis cannot be reached', async () => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    await assert.rejects(new RedisStore({ url: closed }).open(), (err: unknown) => err instanceof StoreError && err.path === closed);
  });
});

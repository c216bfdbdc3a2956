import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { SqliteStore, StoreError, SCHEMA_VERSION } from '../../src/store/index.js';
import { connectClient, startBroker, waitFor } from '../helpers/broker.js';
import { dropOldestPersists, expiredMessagesDroppedAtRestart, expiryClockSurvivesRestart, recordsSurviveRestart } from '../helpers/store-cases.js';

describe('SqliteStore', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'moat-sqlite-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const freshDir = (): string => path.join(root, `d${n++}`);

  it('restores persistent sessions, subscriptions, queued messages with MQTT 5 properties, and retained messages after a restart', async () => {
    const directory = freshDir();
    const first = await startBroker({ store: new SqliteStore({ directory }) });
    const sub = await connectClient(first.url, { clientId: 'keep', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } });
    await sub.subscribeAsync('persist/#', { qos: 1, properties: { subscriptionIdentifier: 9 } });
    await sub.endAsync();
    await waitFor(() => first.broker.sessions.get('keep')?.connection === undefined, 3000, 'offline');
    const pub = await connectClient(first.url, { protocolVersion: 5 });
    await pub.publishAsync('persist/a', 'queued', { qos: 1, properties: { correlationData: Buffer.from([1, 2]), userProperties: { k: 'v' } } });
    await pub.publishAsync('persist/r', 'kept', { qos: 1, retain: true });
    await pub.endAsync();
    await first.close();

    const second = await startBroker({ store: new SqliteStore({ directory }) });
    try {
      const back = mqtt.connect(second.url, { clientId: 'keep', clean: false, protocolVersion: 5, reconnectPeriod: 0, properties: { sessionExpiryInterval: 3600 } });
      const got: Array<{ topic: string; payload: string; retain: boolean; props: unknown }> = [];
      back.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain, props: packet.properties }));
      const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => back.once('connect', resolve));
      await waitFor(() => got.length >= 1, 3000, 'the queued message');
      assert.equal(connack.sessionPresent, true);
      assert.equal(got[0]!.payload, 'queued');
      const props = got[0]!.props as { correlationData?: Buffer; userProperties?: Record<string, string>; subscriptionIdentifier?: number };
      assert.deepEqual([...props.correlationData!], [1, 2]);
      assert.deepEqual({ ...props.userProperties }, { k: 'v' });
      assert.equal(props.subscriptionIdentifier, 9);
      const late = await connectClient(second.url);
      const retained = new Promise<string>((resolve) => late.once('message', (_t, p) => resolve(p.toString())));
      await late.subscribeAsync('persist/r', { qos: 1 });
      assert.equal(await retained, 'kept');
      await Promise.all([back.endAsync(), late.endAsync()]);
    } finally {
      await second.close();
    }
  });

  it('refuses a store written by a newer schema, naming the file', async () => {
    const directory = freshDir();
    const store = new SqliteStore({ directory });
    await store.open();
    await store.close();
    const db = new Database(path.join(directory, 'moat.db'));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    await assert.rejects(new SqliteStore({ directory }).open(), (err: unknown) =>
      err instanceof StoreError && err.path === path.join(directory, 'moat.db') && /newer/.test(err.message));
  });

  it('refuses a corrupted file, naming it, and never starts empty over it', async () => {
    const directory = freshDir();
    const store = new SqliteStore({ directory });
    await store.open();
    store.putRetained({ topic: 't', payload: Buffer.from('x'), qos: 0, retain: true });
    await store.close();
    const file = path.join(directory, 'moat.db');
    writeFileSync(file, Buffer.alloc(8192, 0x5a));
    const broker = (await import('../../src/index.js')).createBroker({ listeners: [], store: new SqliteStore({ directory }) });
    await assert.rejects(broker.listen(), (err: unknown) => err instanceof StoreError && err.path === file);
  });

  it('names the directory when the data directory cannot be created', async () => {
    const blocker = path.join(root, 'a-file');
    writeFileSync(blocker, 'not a directory');
    const directory = path.join(blocker, 'data');
    await assert.rejects(new SqliteStore({ directory }).open(), (err: unknown) => err instanceof StoreError && err.path === directory);
  });

  it('strict durability: whenDurable waits for the batch to be written; periodic: it does not', async () => {
    const strict = new SqliteStore({ directory: freshDir() });
    await strict.open();
    strict.putRetained({ topic: 'a', payload: Buffer.from('1'), qos: 0, retain: true });
    let called = false;
    strict.whenDurable(() => (called = true));
    assert.equal(called, false, 'not before the batch is written');
    assert.equal(strict.durableNow(), false);
    await waitFor(() => called, 2000, 'the batch to be written and fsynced');
    assert.equal(strict.durableNow(), true);
    await strict.close();

    const periodic = new SqliteStore({ directory: freshDir(), durability: 'periodic', flushIntervalMs: 50 });
    await periodic.open();
    periodic.putRetained({ topic: 'a', payload: Buffer.from('1'), qos: 0, retain: true });
    let immediate = false;
    periodic.whenDurable(() => (immediate = true));
    assert.equal(immediate, true, 'periodic acknowledges at once');
    await periodic.close();
  });

  it('a disconnected session keeps its expiry clock across a restart; one that ran out meanwhile is dropped', async () => {
    const directory = freshDir();
    await expiryClockSurvivesRestart(() => new SqliteStore({ directory }));
  });

  it('queue_overflow drop_oldest: the dropped messages leave the store as well', async () => {
    const directory = freshDir();
    await dropOldestPersists(() => new SqliteStore({ directory }));
  });

  it('security data (bans, users) saved through the broker survives a restart', async () => {
    const directory = freshDir();
    await recordsSurviveRestart(() => new SqliteStore({ directory }));
  });

  it('[MQTT-3.3.2-5] retained and queued messages that expired while the broker was down are dropped at startup', async () => {
    const directory = freshDir();
    await expiredMessagesDroppedAtRestart(() => new SqliteStore({ directory }));
  });

  it('restores thousands of retained payloads of every size byte for byte (small ones share memory blocks)', async () => {
    const directory = freshDir();
    const payloadOf = (i: number): Buffer => Buffer.alloc((i * 37) % 2100, i % 251);
    const writer = new SqliteStore({ directory });
    await writer.open();
    for (let i = 0; i < 3000; i++) writer.putRetained({ topic: `sizes/${i}`, payload: payloadOf(i), qos: 0, retain: true });
    await writer.close();
    const reader = new SqliteStore({ directory });
    const state = await reader.open();
    await reader.close();
    assert.equal(state.retained.length, 3000);
    for (const m of state.retained) {
      const i = Number(m.topic.slice('sizes/'.length));
      assert.ok(m.payload.equals(payloadOf(i)), `payload of ${m.topic}`);
    }
  });

  it('migrates a schema 1 store (before expiry deadlines were kept) and keeps its data', async () => {
    const directory = freshDir();
    mkdirSync(directory);
    const file = path.join(directory, 'moat.db');
    const old = new Database(file);
    // The first released schema, as a version 1 broker left it.
    old.exec(`
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
      INSERT INTO sessions VALUES ('old-client', 1700000000000, 600);
      INSERT INTO subscriptions VALUES ('old-client', 'legacy/#', '{"filter":"legacy/#","qos":1}');
      INSERT INTO retained VALUES ('legacy/r', x'6f6c64', 0, NULL, NULL);
      PRAGMA user_version = 1;
    `);
    old.close();

    const tb = await startBroker({ store: new SqliteStore({ directory }) });
    try {
      const session = tb.broker.sessions.get('old-client');
      assert.ok(session, 'the session of the old schema is restored');
      assert.deepEqual([...session.subscriptions.keys()], ['legacy/#']);
      assert.ok(session.expiresAt! > Date.now() + 590_000, 'no recorded deadline: the interval runs from the restart');
      let retained = '';
      tb.broker.retained.match('legacy/r', Date.now(), (m) => (retained = m.payload.toString()));
      assert.equal(retained, 'old');
    } finally {
      await tb.close();
    }
    const db = new Database(file, { readonly: true });
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.ok((db.prepare('PRAGMA table_info(sessions)').all() as Array<{ name: string }>).some((c) => c.name === 'expires_at'));
    db.close();
  });
});

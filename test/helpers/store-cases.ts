import assert from 'node:assert/strict';
import type { BrokerStore } from '../../src/store/index.js';
import { connectClient, delay, startBroker, waitFor, type TestBroker } from './broker.js';
import { expectPublish, expectSilence, PUBACK, rawConnected, rawSubscribe, uniqueId } from './integration.js';

/** Behaviour every durable store must show across a broker restart; each store's test file runs these against it. */

async function leaveSession(tb: TestBroker, clientId: string, expiry: number, filter: string): Promise<void> {
  const client = await connectClient(tb.url, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: expiry } });
  await client.subscribeAsync(filter, { qos: 1 });
  await client.endAsync();
  await waitFor(() => tb.broker.sessions.get(clientId)?.connection === undefined, 3000, `${clientId} offline`);
}

/**
 * The Session Expiry Interval runs from when the client left, not from the restart
 * [MQTT-3.1.2-23]: a session whose time ran out while the broker was down is gone
 * (and deleted from the store); one still in time keeps its original deadline.
 */
export async function expiryClockSurvivesRestart(makeStore: () => BrokerStore): Promise<void> {
  const short = uniqueId('short');
  const long = uniqueId('long');
  const first = await startBroker({ store: makeStore() });
  await leaveSession(first, short, 1, 'clock/short');
  await leaveSession(first, long, 3600, 'clock/long');
  const shortDeadline = first.broker.sessions.get(short)!.expiresAt!;
  const longDeadline = first.broker.sessions.get(long)!.expiresAt!;
  await first.close();
  await delay(Math.max(0, shortDeadline - Date.now()) + 100);

  const second = await startBroker({ store: makeStore() });
  try {
    assert.equal(second.broker.sessions.has(short), false, 'the session that ran out while the broker was down is not restored');
    assert.equal(second.broker.sessions.get(long)?.expiresAt, longDeadline, 'the other keeps its deadline');
  } finally {
    await second.close();
  }
  const store = makeStore();
  const state = await store.open();
  await store.close();
  const ids = state.sessions.map((s) => s.record.clientId);
  assert.ok(!ids.includes(short), 'the expired session was deleted from the store');
  assert.ok(ids.includes(long));
}

/** queue_overflow drop_oldest on an offline persistent session: the dropped messages leave the store too. */
export async function dropOldestPersists(makeStore: () => BrokerStore): Promise<void> {
  const limits = { maxQueuedMessages: 3, queueOverflow: 'drop_oldest' as const };
  const clientId = uniqueId('oldest');
  const first = await startBroker({ store: makeStore(), limits });
  const sub = await rawConnected(first.port, { clientId, clean: false });
  await rawSubscribe(sub, 'oldest/p', 1);
  sub.destroy();
  await waitFor(() => first.broker.sessions.get(clientId)?.connection === undefined, 3000, 'offline');
  const pub = await connectClient(first.url);
  for (let i = 1; i <= 5; i++) await pub.publishAsync('oldest/p', String(i), { qos: 1 });
  await pub.endAsync();
  await first.close();

  const second = await startBroker({ store: makeStore(), limits });
  const back = await rawConnected(second.port, { clientId, clean: false });
  try {
    const got: string[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await expectPublish(back);
      got.push(p.payload.toString());
      back.send({ type: PUBACK, packetId: p.packetId! });
    }
    await expectSilence(back, 200);
    assert.deepEqual(got, ['3', '4', '5']);
  } finally {
    back.destroy();
    await second.close();
  }
}

/** Security data (bans, users...) kept through `broker.saveRecord` comes back after a restart; deleted ones do not. */
export async function recordsSurviveRestart(makeStore: () => BrokerStore): Promise<void> {
  const first = await startBroker({ store: makeStore() });
  first.broker.saveRecord('ban', '192.0.2.7', { until: 1_900_000_000_000, reason: 'brute force' });
  first.broker.saveRecord('ban', 'client-x', { until: 0 });
  first.broker.saveRecord('user', 'alice', { roles: ['reader', 'writer'], hash: 'scrypt$...' });
  first.broker.deleteRecord('ban', 'client-x');
  // Changed several times before the store writes them (one batch): what is kept is the last of each.
  for (const counter of ['1', '2', '3']) first.broker.saveRecord('payload-counter', 'device', counter);
  first.broker.deleteRecord('ban', '198.51.100.1');
  first.broker.saveRecord('ban', '198.51.100.1', { until: 0, reason: 'deleted, then banned again' });
  await first.close();

  const second = await startBroker({ store: makeStore() });
  try {
    assert.deepEqual(second.broker.records.get('ban'), new Map([
      ['192.0.2.7', { until: 1_900_000_000_000, reason: 'brute force' }], ['198.51.100.1', { until: 0, reason: 'deleted, then banned again' }],
    ]));
    assert.deepEqual(second.broker.records.get('payload-counter'), new Map([['device', '3']]));
    assert.deepEqual(second.broker.records.get('user'), new Map([['alice', { roles: ['reader', 'writer'], hash: 'scrypt$...' }]]));
  } finally {
    await second.close();
  }
}

/** Retained and queued messages whose Message Expiry Interval ran out while the broker was down are dropped, also from the store. */
export async function expiredMessagesDroppedAtRestart(makeStore: () => BrokerStore): Promise<void> {
  const clientId = uniqueId('expiring');
  const first = await startBroker({ store: makeStore() });
  await leaveSession(first, clientId, 3600, 'expiring/#');
  const pub = await connectClient(first.url, { protocolVersion: 5 });
  await pub.publishAsync('expiring/short', 'gone soon', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
  await pub.publishAsync('expiring/long', 'stays', { qos: 1, retain: true, properties: { messageExpiryInterval: 3600 } });
  await pub.endAsync();
  assert.equal(first.broker.sessions.get(clientId)!.queue.length, 2);
  await first.close();
  await delay(1100);

  const second = await startBroker({ store: makeStore() });
  try {
    const retained: string[] = [];
    second.broker.retained.match('expiring/#', Date.now() - 10_000, (m) => retained.push(m.payload.toString()));
    assert.deepEqual(retained, ['stays'], 'the expired retained message was not restored');
    assert.deepEqual([...second.broker.sessions.get(clientId)!.queue].map((e) => e.message.payload.toString()), ['stays']);
  } finally {
    await second.close();
  }
  const store = makeStore();
  const state = await store.open();
  await store.close();
  assert.deepEqual(state.retained.map((m) => m.topic), ['expiring/long'], 'deleted from the store too');
  assert.deepEqual(state.sessions.find((s) => s.record.clientId === clientId)!.queue.map((e) => e.message.topic), ['expiring/long']);
}

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { createBroker, MemoryStore, SqliteStore } from '../../src/index.js';
import type { RecoveredState } from '../../src/store/store.js';
import { delay, waitFor } from '../helpers/broker.js';
import { freePort } from '../helpers/process.js';

/** Broker.listen binds its listeners, then recovers the state; what arrives in between waits, and nothing breaks. */

/** A MemoryStore whose open() finishes only when the test says so: recovery of a large store, stretched. */
class SlowStore extends MemoryStore {
  opened = false;
  private release!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.release = resolve));
  finishRecovery(): void {
    this.release();
  }
  openCalled = false;
  override async open(): Promise<RecoveredState> {
    this.openCalled = true;
    await this.gate;
    this.opened = true;
    return super.open();
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('listen: listeners first, then recovery', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-listen-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a client connecting during recovery is served once it ends; one that resets meanwhile costs nothing', async () => {
    const store = new SlowStore();
    const port = await freePort();
    const broker = createBroker({ sysInterval: 0, store, listeners: [{ host: '127.0.0.1', port }] });
    const listening = broker.listen();
    // The port is bound before the store has answered.
    await waitFor(() => store.openCalled, 5000, 'recovery started');
    assert.equal(await portOpen(port), true, 'bound during recovery');
    assert.equal(store.opened, false);

    // A client that gives up: connection reset while it waits. Before, the waiting socket had no error
    // handler and the reset was an uncaught exception.
    const quitter = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => quitter.once('connect', () => resolve()));
    quitter.resetAndDestroy();

    const patient = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'patient', reconnectPeriod: 0, connectTimeout: 10_000 });
    let connected = false;
    patient.on('connect', () => (connected = true));
    await delay(300);
    assert.equal(connected, false, 'no CONNACK before the state is recovered');

    store.finishRecovery();
    await listening;
    await waitFor(() => connected, 5000, 'the waiting client served');
    assert.equal(broker.stats.connectedClients, 1, 'only the patient client: the reset one never became a connection');
    await patient.endAsync();
    await broker.close();
  });

  it('close() during listen(): listen rejects, the port is released and the store lock is let go', async () => {
    const data = path.join(dir, 'closed-early');
    const port = await freePort();
    const first = createBroker({ sysInterval: 0, store: new SqliteStore({ directory: data }), listeners: [{ host: '127.0.0.1', port }] });
    const listening = first.listen();
    const closing = first.close();
    await assert.rejects(listening, /closed while starting/);
    await closing;
    assert.equal(await portOpen(port), false, 'nothing listens on the port');
    const second = createBroker({ sysInterval: 0, store: new SqliteStore({ directory: data }), listeners: [{ host: '127.0.0.1', port }] });
    await second.listen(); // the store is free: the first broker holds no lock
    await second.close();
  });
});

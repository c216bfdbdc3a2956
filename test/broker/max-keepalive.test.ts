/**
 * `limits.maxKeepalive` (Mosquitto's `max_keepalive`) over real sockets, with raw clients for the exact CONNACK,
 * MQTT.js and mosquitto_sub: a keep-alive longer than the cap, or 0 (none), is held to the cap and MQTT 5 clients
 * are told in Server Keep Alive [MQTT-3.2.2-21]; a shorter one is kept [MQTT-3.2.2-22]; the housekeeper enforces
 * the value in force (1.5 x) [MQTT-3.1.2-22]; MQTT 3.1/3.1.1 clients, which cannot be told, are refused with
 * CONNACK 2 when they ask for more than the cap, as Mosquitto does since 2.0.12.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import type { ProtocolVersion } from '../../src/protocol/index.js';
import { connectClient, delay, startBroker, type TestBroker } from '../helpers/broker.js';
import { MessageInbox, rawConnect, trackClients, uniqueId } from '../helpers/connection.js';
import { MosquittoClients } from '../helpers/mosquitto.js';
import { killAll, run, spawnProc } from '../helpers/process.js';
import { connectedV5, expectDisconnect, expectNothing, show, trackRaw, uid } from '../helpers/v5.js';

const track = trackRaw();
const clients = trackClients();

/** Waits for the keep-alive DISCONNECT (0x8D) and returns the milliseconds since `start`. */
async function keepAliveTimeout(raw: Parameters<typeof expectDisconnect>[0], start: number, timeoutMs: number): Promise<number> {
  await expectDisconnect(raw, 0x8d, timeoutMs);
  return Date.now() - start;
}

describe('limits.maxKeepalive 2', () => {
  let tb: TestBroker;
  const mosq = new MosquittoClients(() => tb);
  const logged: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
  const record = (obj: object, msg?: string): void => {
    logged.push({ obj: obj as Record<string, unknown>, msg });
  };
  before(async () => {
    tb = await startBroker({ limits: { maxKeepalive: 2 }, logger: { debug: record, info: record, warn: record, error: record } });
  });
  afterEach(() => killAll());
  after(async () => {
    await killAll();
    await tb.close();
  });

  it('[MQTT-3.2.2-21] [MQTT-3.1.2-22] an MQTT 5 client asking 10 s gets Server Keep Alive 2 and, silent, is disconnected (0x8D) after ~3 s, not 15', async () => {
    const { raw, connack } = await connectedV5(tb.port, { keepalive: 10 });
    track(raw);
    const start = Date.now();
    assert.equal(connack.properties?.serverKeepAlive, 2, `Server Keep Alive in ${show(connack)}`);
    await expectNothing(raw, 2400, 'nothing before 1.5 x 2 s');
    const elapsed = await keepAliveTimeout(raw, start, 3000);
    assert.ok(elapsed >= 2900 && elapsed <= 4500, `closed after ${elapsed} ms, expected about 3 s (1.5 x the cap)`);
  });

  it('[MQTT-3.2.2-21] an MQTT 5 client asking 0 (no keep-alive) is held to 2 s: Server Keep Alive 2, disconnected after ~3 s', async () => {
    const { raw, connack } = await connectedV5(tb.port, { keepalive: 0 });
    track(raw);
    const start = Date.now();
    assert.equal(connack.properties?.serverKeepAlive, 2, `Server Keep Alive in ${show(connack)}`);
    const elapsed = await keepAliveTimeout(raw, start, 5000);
    assert.ok(elapsed >= 2900 && elapsed <= 4500, `closed after ${elapsed} ms, expected about 3 s`);
  });

  it('[MQTT-3.2.2-22] a client asking 1 s (under the cap) keeps it with no Server Keep Alive, while one asking 3 s is held to 2', async () => {
    const over = await connectedV5(tb.port, { keepalive: 3 });
    track(over.raw);
    assert.equal(over.connack.properties?.serverKeepAlive, 2, `the cap is in force: ${show(over.connack)}`);
    const { raw, connack } = await connectedV5(tb.port, { keepalive: 1 });
    track(raw);
    const start = Date.now();
    assert.equal(connack.properties?.serverKeepAlive, undefined, `no Server Keep Alive for a shorter keep-alive: ${show(connack)}`);
    const elapsed = await keepAliveTimeout(raw, start, 3000);
    assert.ok(elapsed >= 1400 && elapsed <= 2600, `closed after ${elapsed} ms, expected about 1.5 s (its own 1 s, not the cap)`);
  });

  it('[MQTT-3.1.2-22] [MQTT-3.2.2-21] the will of a client held to the cap is published when the capped keep-alive expires', async () => {
    const watcher = clients(await connectClient(tb.url, { clientId: uniqueId('mkw'), protocolVersion: 5 }));
    await watcher.subscribeAsync('mk/will/#', { qos: 1 });
    const inbox = new MessageInbox(watcher);
    const { raw, connack } = await connectedV5(tb.port, {
      clientId: uid('mkwill'), keepalive: 600, will: { topic: 'mk/will/silent', payload: Buffer.from('gone quiet'), qos: 1, retain: false },
    });
    track(raw);
    const start = Date.now();
    assert.equal(connack.properties?.serverKeepAlive, 2);
    const will = await inbox.next(5000);
    const elapsed = Date.now() - start;
    assert.deepEqual([will.topic, will.payload], ['mk/will/silent', 'gone quiet']);
    assert.ok(elapsed >= 2900 && elapsed <= 4500, `will after ${elapsed} ms, expected about 3 s (1.5 x the cap), not 900 s`);
  });

  it('[MQTT-3.2.2-21] MQTT.js (MQTT 5, keepalive 600) is told Server Keep Alive 2, pings at that pace and stays connected', async () => {
    const client = clients(mqtt.connect(tb.url, { clientId: uniqueId('mkjs'), protocolVersion: 5, keepalive: 600, reconnectPeriod: 0 }));
    const connack = await new Promise<{ properties?: { serverKeepAlive?: number } }>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    assert.equal(connack.properties?.serverKeepAlive, 2, 'Server Keep Alive in the CONNACK MQTT.js received');
    let closed = false;
    client.once('close', () => {
      closed = true;
    });
    await delay(4500);
    assert.equal(closed, false, 'a client following Server Keep Alive is not timed out');
    assert.equal(client.connected, true);
  });

  it('[MQTT-3.2.2-21] mosquitto_sub -V mqttv5 -k 60 follows Server Keep Alive 2: it sends PINGREQ within 5 s and is not timed out', async () => {
    const id = mosq.uid('mkms');
    const sub = spawnProc('mosquitto_sub', [...mosq.base(), '-V', 'mqttv5', '-k', '60', '-i', id, '-t', 'mk/none', '-d', '-W', '5'], { limitMs: 9000 });
    const gone: string[] = [];
    const onGone = (c: { id: string }, reason: string): void => {
      if (c.id === id) gone.push(reason);
    };
    tb.broker.on('clientDisconnected', onGone);
    try {
      await sub.waitExit(8000);
    } finally {
      tb.broker.off('clientDisconnected', onGone);
    }
    assert.match(sub.stdout, /received CONNACK \(0\)/, sub.stdout + sub.stderr);
    assert.match(sub.stdout, /sending PINGREQ/, `mosquitto_sub pinged within 5 s: ${sub.stdout}`);
    assert.ok(!gone.some((r) => r.includes('keep-alive')), `not timed out: ${gone.join(', ')}`);
  });

  for (const version of [4, 3] as ProtocolVersion[]) {
    const name = version === 4 ? 'MQTT 3.1.1' : 'MQTT 3.1';
    it(`[MQTT-3.2.2-5] ${name} cannot be told: asking 3 s or 0 gets CONNACK 2 (identifier rejected, as Mosquitto) and the connection closes`, async () => {
      for (const keepalive of [3, 0]) {
        const clientId = uniqueId(`mk${version}`);
        const { raw, connack } = await rawConnect(tb.port, { version, keepalive, clientId });
        track(raw);
        assert.equal(connack.returnCode, 2, `keep-alive ${keepalive}: ${show(connack)}`);
        assert.equal(await raw.waitClosed(3000), true, 'closed after the refusal');
        const line = logged.find((l) => l.obj.clientId === clientId);
        assert.equal(line?.msg, 'connection refused: keep-alive above limits.max_keepalive', 'the refusal is logged with its reason');
        assert.deepEqual([line.obj.keepalive, line.obj.maxKeepalive], [keepalive, 2]);
      }
    });
  }

  it('[MQTT-3.1.2-24] MQTT 3.1.1 asking at most the cap is accepted and held to its own value, while asking more is refused', async () => {
    const refused = await rawConnect(tb.port, { keepalive: 5, clientId: uniqueId('mk311r') });
    track(refused.raw);
    assert.equal(refused.connack.returnCode, 2, 'the cap is in force');
    const { raw, connack } = await rawConnect(tb.port, { keepalive: 1, clientId: uniqueId('mk311') });
    track(raw);
    const start = Date.now();
    assert.equal(connack.returnCode, 0);
    assert.equal(await raw.waitClosed(3000), true, 'a silent client is closed');
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 1400 && elapsed <= 2600, `closed after ${elapsed} ms, expected about 1.5 s`);
  });

  it('[MQTT-3.2.2-5] mosquitto_sub -V mqttv311 -k 60 is refused with "identifier rejected"', async () => {
    const result = await run('mosquitto_sub', [...mosq.base(), '-V', 'mqttv311', '-k', '60', '-i', mosq.uid('mk311s'), '-t', 'mk/x', '-W', '3'], { limitMs: 6000 });
    assert.notEqual(result.code, 0, `mosquitto_sub must fail: ${result.stdout}${result.stderr}`);
    assert.match(result.stderr, /identifier rejected/i, result.stderr);
  });
});

describe('limits.maxKeepalive with capabilities.serverKeepAlive', () => {
  let tb: TestBroker;
  before(async () => {
    tb = await startBroker({ limits: { maxKeepalive: 2 }, capabilities: { serverKeepAlive: 10 } });
  });
  after(() => tb.close());

  it('[MQTT-3.2.2-21] the cap also lowers an imposed Server Keep Alive: 10 becomes 2, enforced after ~3 s', async () => {
    const { raw, connack } = await connectedV5(tb.port, { keepalive: 1 });
    track(raw);
    const start = Date.now();
    assert.equal(connack.properties?.serverKeepAlive, 2, `Server Keep Alive in ${show(connack)}`);
    const elapsed = await keepAliveTimeout(raw, start, 5000);
    assert.ok(elapsed >= 2900 && elapsed <= 4500, `closed after ${elapsed} ms, expected about 3 s`);
  });
});

describe('limits.max_keepalive in YAML', () => {
  it('maps to limits.maxKeepalive and refuses values outside 0..65535', () => {
    const loaded = parseConfig('limits:\n  max_keepalive: 300\n', '/etc/moat/mk.yaml');
    assert.equal(loaded.broker.limits?.maxKeepalive, 300);
    assert.throws(() => parseConfig('limits:\n  max_keepalive: 70000\n', '/etc/moat/mk.yaml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.line, 2);
      return true;
    });
  });
});

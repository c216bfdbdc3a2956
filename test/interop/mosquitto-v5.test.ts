import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { connectClient, startBroker, waitFor, type TestBroker } from '../helpers/broker.js';
import { MosquittoClients, subLines } from '../helpers/mosquitto.js';
import { killAll } from '../helpers/process.js';

/** Interoperability with mosquitto_pub / mosquitto_sub speaking MQTT 5 (-V mqttv5). */

let tb: TestBroker;
const mosq = new MosquittoClients(() => tb);
const V5 = 'mqttv5';

describe('interop: mosquitto clients over MQTT 5', () => {
  before(async () => {
    tb = await startBroker();
  });
  afterEach(() => killAll());
  after(async () => {
    await killAll();
    await tb.close();
  });

  it('mosquitto clients connect with protocol level 5', async () => {
    const id = mosq.uid('lvl5');
    const seen = new Promise<number>((resolve) => {
      tb.broker.on('clientConnected', (client) => {
        if (client.id === id) resolve(client.protocolVersion);
      });
    });
    await mosq.pub(V5, ['-i', id, '-t', 'v5/level', '-m', 'x']);
    assert.equal(await seen, 5);
  });

  for (const qos of [0, 1, 2]) {
    it(`round trip at QoS ${qos} between mosquitto_pub and mosquitto_sub`, async () => {
      const id = mosq.uid('rt');
      const sub = await mosq.startSub(V5, id, ['-t', `v5/rt/${qos}`, '-q', String(qos), '-C', '1', '-F', '%q %t %p']);
      await mosq.pub(V5, ['-t', `v5/rt/${qos}`, '-q', String(qos), '-m', `hello ${qos}`]);
      assert.deepEqual(await subLines(sub), [`${qos} v5/rt/${qos} hello ${qos}`]);
    });
  }

  it('[MQTT-3.3.2-17] user properties reach a mosquitto_sub subscriber unchanged', async () => {
    const id = mosq.uid('up');
    const sub = await mosq.startSub(V5, id, ['-t', 'v5/up', '-C', '1', '-F', '%P|%p']);
    await mosq.pub(V5, ['-t', 'v5/up', '-m', 'payload', '-D', 'publish', 'user-property', 'colour', 'green',
      '-D', 'publish', 'user-property', 'shape', 'round']);
    const [line] = await subLines(sub);
    assert.ok(line!.endsWith('|payload'), line);
    assert.match(line!, /colour:green/);
    assert.match(line!, /shape:round/);
    assert.ok(line!.indexOf('colour') < line!.indexOf('shape'), 'order kept [MQTT-3.3.2-18]');
  });

  it('[MQTT-3.3.2-6] a message expiry interval is passed on, counted down, to mosquitto_sub', async () => {
    const id = mosq.uid('exp');
    const sub = await mosq.startSub(V5, id, ['-t', 'v5/exp', '-C', '1', '-F', '%E %p']);
    await mosq.pub(V5, ['-t', 'v5/exp', '-m', 'soon', '-D', 'publish', 'message-expiry-interval', '100']);
    const [line] = await subLines(sub);
    const [remaining, payload] = line!.split(' ');
    assert.equal(payload, 'soon');
    assert.ok(Number(remaining) >= 98 && Number(remaining) <= 100, `remaining interval ${remaining}`);
  });

  it('[MQTT-3.3.2-5] an expired retained message is not delivered to a later mosquitto_sub', async () => {
    await mosq.pub(V5, ['-t', 'v5/retexp', '-m', 'stale', '-r', '-D', 'publish', 'message-expiry-interval', '1']);
    await mosq.pub(V5, ['-t', 'v5/retkeep', '-m', 'fresh', '-r', '-D', 'publish', 'message-expiry-interval', '60']);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const id = mosq.uid('rx');
    const sub = await mosq.startSub(V5, id, ['-t', 'v5/retexp', '-t', 'v5/retkeep', '-C', '1', '-F', '%r %t %p']);
    assert.deepEqual(await subLines(sub), ['1 v5/retkeep fresh']);
  });

  it('mosquitto_sub v5 persistent session (session expiry) receives QoS 1 messages queued while offline', async () => {
    const id = mosq.uid('persist');
    const first = await mosq.startSub(V5, id, ['-c', '-x', '60', '-q', '1', '-t', 'v5/queue', '-C', '1', '-F', '%p']);
    await mosq.pub(V5, ['-t', 'v5/queue', '-q', '1', '-m', 'online']);
    assert.deepEqual(await subLines(first), ['online']);
    await waitFor(() => tb.broker.sessions.get(id)?.connection === undefined, 3000, 'the subscriber offline');
    for (const n of [1, 2, 3]) await mosq.pub(V5, ['-t', 'v5/queue', '-q', '1', '-m', `queued ${n}`]);
    const again = await mosq.startSub(V5, id, ['-c', '-x', '60', '-q', '1', '-t', 'v5/queue', '-C', '3', '-F', '%p']);
    assert.deepEqual(await subLines(again), ['queued 1', 'queued 2', 'queued 3']);
  });

  it('mixed versions: a mosquitto_pub v5 message with properties reaches a 3.1.1 mosquitto_sub and an MQTT.js v5 client', async () => {
    const id = mosq.uid('mix');
    const sub311 = await mosq.startSub('mqttv311', id, ['-t', 'v5/mix', '-q', '1', '-C', '1', '-F', '%q %p']);
    const js = await connectClient(tb.url, { protocolVersion: 5 });
    await js.subscribeAsync('v5/mix', { qos: 1 });
    const got = new Promise<Record<string, unknown> | undefined>((resolve) => js.once('message', (_t, _p, packet) => resolve(packet.properties)));
    await mosq.pub(V5, ['-t', 'v5/mix', '-q', '1', '-m', 'both', '-D', 'publish', 'content-type', 'text/plain']);
    assert.deepEqual(await subLines(sub311), ['1 both']);
    assert.equal((await got)?.contentType, 'text/plain');
    await js.endAsync();
  });

  it('a 3.1.1 mosquitto_pub message reaches a v5 mosquitto_sub', async () => {
    const id = mosq.uid('up5');
    const sub = await mosq.startSub(V5, id, ['-t', 'v5/from311', '-q', '2', '-C', '1', '-F', '%q %p']);
    await mosq.pub('mqttv311', ['-t', 'v5/from311', '-q', '2', '-m', 'old client']);
    assert.deepEqual(await subLines(sub), ['2 old client']);
  });
});

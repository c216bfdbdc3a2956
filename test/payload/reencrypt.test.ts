import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { deliveryKey, isEnvelopeError, openEnvelope, parseEnvelope, type ParsedEnvelope } from '../../src/payload/envelope.js';
import { ReplayWindow } from '../../src/payload/replay.js';
import { payloadBroker, type PayloadBroker } from '../helpers/payload-broker.js';

/**
 * Deliveries sealed for subscribers that hold keys (payload_encryption.reencrypt), against a real `moat` with MQTT.js:
 * a back end publishes plaintext, a device subscriber receives envelopes sealed with its newest key, opens them and
 * finds each counter new (also across a restart, and for a retained message sent again); two subscribers with one
 * key get the same bytes (one encryption per key); subscribers without keys, and topics outside the rules, get the
 * plaintext.
 */

const OLD_KEY = randomBytes(32);
const NEW_KEY = randomBytes(32);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('payload encryption, broker to client (reencrypt)', () => {
  let broker: PayloadBroker;
  /** The device's own replay check, as its firmware would keep it. */
  const seen = new ReplayWindow(0);

  const start = (): Promise<void> => broker.start();
  const connect = (clientId: string, user: string, options: Partial<IClientOptions> = {}): Promise<MqttClient> => broker.connect(clientId, user, options);
  const collect = async (client: MqttClient, filter: string, qos: 0 | 1 = 1): Promise<Array<[string, Buffer]>> => {
    const got: Array<[string, Buffer]> = [];
    client.on('message', (topic, payload) => got.push([topic, payload]));
    await client.subscribeAsync(filter, { qos });
    return got;
  };
  /** Opens what the device received: the envelope, its plaintext with the newest key, and whether its counter is new. */
  const openAsDevice = (topic: string, bytes: Buffer): { envelope: ParsedEnvelope; text: string | undefined; fresh: boolean } => {
    const envelope = parseEnvelope(bytes);
    assert.ok(!isEnvelopeError(envelope), `an envelope on ${topic}`);
    const text = openEnvelope(deliveryKey(NEW_KEY), envelope, topic)?.toString();
    return { envelope, text, fresh: seen.check(`k${envelope.keyId}`, envelope.counter) === 'fresh' };
  };

  before(async () => {
    broker = await payloadBroker('moat-reencrypt-', ['device1', 'backend'], ['key_file: payload.keys', 'topics: ["secure/#"]', 'reencrypt: true']);
    writeFileSync(path.join(broker.dir, 'payload.keys'), `device1:0:${OLD_KEY.toString('hex')}\ndevice1:3:${NEW_KEY.toString('hex')}\n`);
    await start();
  });
  after(() => broker.close());

  it('a device subscriber gets envelopes sealed with its newest key, each counter new; without keys or off the rules, plaintext', async () => {
    const device = await connect('dev-sub', 'device1');
    const deviceGot = await collect(device, '#');
    const backendSub = await connect('backend-sub', 'backend');
    const backendGot = await collect(backendSub, 'secure/#');
    const publisher = await connect('backend-pub', 'backend');
    await publisher.publishAsync('secure/cmd', 'turn on', { qos: 1 });
    await publisher.publishAsync('secure/cmd', 'turn off', { qos: 0 });
    await publisher.publishAsync('open/news', 'plain for everyone', { qos: 1 });
    await sleep(300);
    assert.deepEqual(backendGot.map(([t, p]) => [t, p.toString()]), [['secure/cmd', 'turn on'], ['secure/cmd', 'turn off']]);
    const mine = deviceGot.filter(([t]) => !t.startsWith('$'));
    assert.equal(mine.length, 3);
    const opened = mine.slice(0, 2).map(([t, p]) => openAsDevice(t, p));
    assert.deepEqual(opened.map((o) => [o.envelope.keyId, o.text, o.fresh]), [[3, 'turn on', true], [3, 'turn off', true]]);
    assert.ok(opened[1]!.envelope.counter > opened[0]!.envelope.counter, 'the broker counts up');
    assert.equal(openEnvelope(deliveryKey(NEW_KEY), opened[0]!.envelope, 'secure/other'), undefined, 'bound to its topic');
    assert.equal(openEnvelope(NEW_KEY, opened[0]!.envelope, 'secure/cmd'), undefined, 'sealed with the broker-to-client key, not the device\'s own');
    // Published back by someone holding the device's password: it does not open as the device's (another key).
    const replayer = await connect('dev-replay', 'device1');
    const back = await replayer.publishAsync('secure/cmd', mine[0]![1], { qos: 1 }).then((p) => (p as { reasonCode?: number } | undefined)?.reasonCode ?? 0, (err: { code?: number }) => err.code);
    assert.equal(back, 0x99, 'a delivered envelope sent back is refused');
    assert.deepEqual([mine[2]![0], mine[2]![1].toString()], ['open/news', 'plain for everyone']);
  });

  it('two subscribers with one key get the same envelope (one encryption per key); a retained message gets a new counter each time it is sent', async () => {
    const a = await connect('dev-a', 'device1');
    const b = await connect('dev-b', 'device1');
    const gotA = await collect(a, 'secure/shared');
    const gotB = await collect(b, 'secure/shared');
    const publisher = await connect('backend-pub2', 'backend');
    await publisher.publishAsync('secure/shared', 'one message', { qos: 1 });
    await publisher.publishAsync('secure/state', 'retained state', { qos: 1, retain: true });
    await sleep(300);
    assert.equal(gotA.length, 1);
    assert.deepEqual(gotA[0]![1], gotB[0]![1], 'the same bytes: sealed once for the key');
    assert.equal(openAsDevice('secure/shared', gotA[0]![1]).text, 'one message');

    const counters: bigint[] = [];
    for (const id of ['dev-r1', 'dev-r2']) {
      const reader = await connect(id, 'device1');
      const got = await collect(reader, 'secure/state');
      await sleep(200);
      assert.equal(got.length, 1);
      const { envelope, text, fresh } = openAsDevice('secure/state', got[0]![1]);
      assert.equal(text, 'retained state');
      assert.ok(fresh, 'a new counter for each sending of the retained message');
      counters.push(envelope.counter);
      await reader.endAsync();
    }
    assert.notEqual(counters[0], counters[1]);
  });

  it('after a restart the broker\'s counters go on above every one it used (reserved in the store)', async () => {
    const before = await connect('dev-before', 'device1');
    const got = await collect(before, 'secure/restart');
    const publisher = await connect('backend-pub3', 'backend');
    await publisher.publishAsync('secure/restart', 'before', { qos: 1 });
    await sleep(300);
    const last = openAsDevice('secure/restart', got[0]![1]).envelope.counter;
    await sleep(300); // the reservation's write is durable
    broker.proc.kill('SIGTERM');
    await broker.proc.waitExit(10_000);
    await start();
    const after = await connect('dev-after', 'device1');
    const gotAfter = await collect(after, 'secure/restart');
    const publisher2 = await connect('backend-pub4', 'backend');
    await publisher2.publishAsync('secure/restart', 'after', { qos: 1 });
    await sleep(300);
    const { envelope, text, fresh } = openAsDevice('secure/restart', gotAfter.at(-1)![1]);
    assert.equal(text, 'after');
    assert.ok(fresh && envelope.counter > last, `counter ${envelope.counter} above ${last}`);
  });
});

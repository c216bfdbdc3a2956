import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { ALGORITHMS, sealEnvelope } from '../../src/payload/envelope.js';
import { run } from '../helpers/process.js';
import { payloadBroker, type PayloadBroker } from '../helpers/payload-broker.js';

/**
 * Client-to-broker payload encryption against a real `moat` (SQLite store): a device holding a key publishes
 * envelopes (sealed here with src/payload, and by Python's `cryptography` then sent with mosquitto_pub), subscribers
 * get the plaintext, retained messages are kept as plaintext; tampered, replayed, unsealed and wrongly keyed payloads
 * are refused (MQTT 5 PUBACK 0x99, 3.1.1 dropped), audited and counted; clients without keys and topics outside the
 * rules pass as before; the replay state survives a restart; a changed key file applies without one.
 */

const KEY = randomBytes(32);
const KEY_7 = randomBytes(32);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('payload encryption, client to broker', () => {
  let broker: PayloadBroker;

  const keyFile = (lines: string[]): void => {
    // Written beside and renamed over, as an operator's tools do: the watcher sees the rename.
    writeFileSync(path.join(broker.dir, 'payload.keys.new'), `${lines.join('\n')}\n`);
    renameSync(path.join(broker.dir, 'payload.keys.new'), path.join(broker.dir, 'payload.keys'));
  };
  const start = (): Promise<void> => broker.start();
  const connect = (clientId: string, user: string, options: Partial<IClientOptions> = {}): Promise<MqttClient> => broker.connect(clientId, user, options);
  /** A subscriber that collects what reaches `filter`, as text. */
  const listen = async (filter: string): Promise<{ got: Array<[string, string]>; client: MqttClient }> => {
    const client = await connect(`sub-${Math.random().toString(36).slice(2)}`, 'backend');
    const got: Array<[string, string]> = [];
    client.on('message', (topic, payload) => got.push([topic, payload.toString()]));
    await client.subscribeAsync(filter, { qos: 1 });
    return { got, client };
  };
  /** The PUBACK reason code of a QoS 1 publish (0 for success). */
  const puback = async (client: MqttClient, topic: string, payload: Buffer | string): Promise<number> => {
    try {
      const packet = await client.publishAsync(topic, payload, { qos: 1 });
      return (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  };
  const seal = (topic: string, counter: number, plaintext: string, keyId = 0, key = KEY, algorithm: number = ALGORITHMS.aes256gcm): Buffer =>
    sealEnvelope({ key, keyId, counter, topic, plaintext, algorithm: algorithm as never });
  const refusals = (): Array<Record<string, unknown>> => broker.proc.stdout.split('\n').filter((l) => l.includes('"payload.refused"')).map((l) => JSON.parse(l) as Record<string, unknown>);

  before(async () => {
    broker = await payloadBroker('moat-payload-', ['device1', 'device2', 'backend'], ['key_file: payload.keys', 'topics: ["secure/#"]', 'replay_window: 8'], ['sys_interval: 1']);
    keyFile(['# device keys', `device1:0:${KEY.toString('hex')}`, `device1:7:${KEY_7.toString('hex')}`]);
    await start();
  });
  after(() => broker.close());

  it('an envelope is opened before routing: subscribers and the retained store get the plaintext; both algorithms, any key id', async () => {
    const { got } = await listen('secure/#');
    const device = await connect('dev-1', 'device1');
    assert.equal(await puback(device, 'secure/a', seal('secure/a', 1, 'hello')), 0);
    assert.equal(await puback(device, 'secure/b', seal('secure/b', 2, 'chacha', 0, KEY, ALGORITHMS.chacha20poly1305)), 0);
    assert.equal(await puback(device, 'secure/c', seal('secure/c', 1, 'rotated key', 7, KEY_7)), 0, 'key 7 has counters of its own');
    await device.publishAsync('secure/retained', seal('secure/retained', 3, 'kept as plaintext'), { qos: 1, retain: true });
    await sleep(200);
    assert.deepEqual(got, [['secure/a', 'hello'], ['secure/b', 'chacha'], ['secure/c', 'rotated key'], ['secure/retained', 'kept as plaintext']]);
    const late = await listen('secure/retained');
    await sleep(200);
    assert.deepEqual(late.got, [['secure/retained', 'kept as plaintext']]);
    // Cleared by a client without keys (its plaintext passes), so the next tests' subscribers do not get it.
    await late.client.publishAsync('secure/retained', '', { qos: 1, retain: true });
  });

  it('refused with 0x99 and audited: tampered, sealed for another topic, another key, not an envelope, a replayed counter; nothing routed', async () => {
    const { got } = await listen('secure/#');
    const device = await connect('dev-2', 'device1');
    const good = seal('secure/x', 10, 'original');
    const tampered = Buffer.from(good);
    tampered[tampered.length - 20]! ^= 0x01;
    assert.equal(await puback(device, 'secure/x', tampered), 0x99, 'a changed byte');
    assert.equal(await puback(device, 'secure/y', good), 0x99, 'sealed for secure/x, published to secure/y');
    assert.equal(await puback(device, 'secure/x', seal('secure/x', 11, 'wrong key', 0, randomBytes(32))), 0x99, 'another key');
    assert.equal(await puback(device, 'secure/x', seal('secure/x', 12, 'no such key id', 3)), 0x99, 'a key id the device does not have');
    assert.equal(await puback(device, 'secure/x', 'plain text from a device that has keys'), 0x99, 'not an envelope');
    assert.equal(await puback(device, 'secure/x', good), 0, 'the genuine one');
    assert.equal(await puback(device, 'secure/x', good), 0x99, 'the same envelope again: a replay');
    assert.equal(await puback(device, 'secure/x', seal('secure/x', 1, 'too old')), 0x99, 'far behind the newest counter (window 8)');
    await sleep(200);
    assert.deepEqual(got, [['secure/x', 'original']]);
    await broker.proc.waitStdout(() => refusals().length >= 7, 5000, 'refusals audited');
    const reasons = refusals().map((r) => String(r.reason));
    assert.ok(reasons.every((r, i) => r.length > 0 && refusals()[i]!.username === 'device1' && refusals()[i]!.clientId === 'dev-2'));
    assert.match(reasons.join('\n'), /authentication failed[\s\S]*no key 3 for device1[\s\S]*not an envelope[\s\S]*counter 10 already used[\s\S]*counter 1 too far behind/);
  });

  it('a QoS 1 envelope sent again with DUP after a lost PUBACK is acknowledged, not routed twice, and audited; without DUP it is a replay', async () => {
    const { got } = await listen('secure/dup');
    const device = await connect('dev-dup', 'device1');
    const once = seal('secure/dup', 13, 'exactly once'); // between the refusals' counters and the will's
    assert.equal(await puback(device, 'secure/dup', once), 0);
    const resent = await device.publishAsync('secure/dup', once, { qos: 1, dup: true });
    assert.equal((resent as { reasonCode?: number } | undefined)?.reasonCode ?? 0, 0, 'the resend is acknowledged: the device stops resending');
    await sleep(200);
    assert.deepEqual(got, [['secure/dup', 'exactly once']], 'routed once');
    const duplicates = (): Array<Record<string, unknown>> => broker.proc.stdout.split('\n').filter((l) => l.includes('"payload.duplicate"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    await broker.proc.waitStdout(() => duplicates().length >= 1, 5000, 'the resend audited');
    assert.equal(duplicates()[0]!.clientId, 'dev-dup');
    assert.match(String(duplicates()[0]!.reason), /counter 13 .*resent/);
  });

  it('a will is opened like a publish: a sealed will arrives as plaintext, a plaintext will from a key holder is refused', async () => {
    const { got } = await listen('secure/will/#');
    for (const [id, payload] of [['dev-will-sealed', seal('secure/will/a', 15, 'sealed last words')], ['dev-will-forged', Buffer.from('FORGED by a will')]] as const) {
      const topic = id === 'dev-will-sealed' ? 'secure/will/a' : 'secure/will/b';
      const device = await connect(id, 'device1', { will: { topic, payload, qos: 1, retain: false } });
      (device.stream as unknown as { destroy(): void }).destroy(); // gone without DISCONNECT: the will is published
    }
    await sleep(400);
    assert.deepEqual(got, [['secure/will/a', 'sealed last words']]);
    await broker.proc.waitStdout(() => refusals().some((r) => r.clientId === 'dev-will-forged'), 5000, 'the forged will audited');
  });

  it('MQTT 3.1.1: a bad envelope is acknowledged and dropped; a good one delivered', async () => {
    const { got } = await listen('secure/v4/#');
    const device = await connect('dev-v4', 'device1', { protocolVersion: 4 });
    await device.publishAsync('secure/v4/t', Buffer.from('not an envelope'), { qos: 1 });
    await device.publishAsync('secure/v4/t', seal('secure/v4/t', 20, 'v4 ok'), { qos: 1 });
    await sleep(200);
    assert.deepEqual(got, [['secure/v4/t', 'v4 ok']]);
  });

  it('unaffected: a client without keys publishes plaintext to the covered topics, a device to other topics', async () => {
    const { got } = await listen('#');
    const backend = await connect('backend-1', 'backend');
    const device = await connect('dev-3', 'device1');
    assert.equal(await puback(backend, 'secure/cmd', 'plaintext from the backend'), 0);
    assert.equal(await puback(device, 'open/status', 'plaintext elsewhere'), 0);
    await sleep(200);
    assert.deepEqual(got.filter(([t]) => !t.startsWith('$')), [['secure/cmd', 'plaintext from the backend'], ['open/status', 'plaintext elsewhere']]);
  });

  it('an independent implementation: Python\'s cryptography seals, mosquitto_pub sends; a tampered copy is refused', async () => {
    const { got } = await listen('secure/py');
    const script = [
      'import sys',
      'from cryptography.hazmat.primitives.ciphers.aead import AESGCM',
      'key = bytes.fromhex(sys.argv[1]); counter = int(sys.argv[2]); topic = sys.argv[3].encode()',
      'nonce = bytes(4) + counter.to_bytes(8, "big")',
      'header = bytes([1, 1, 0]) + counter.to_bytes(8, "big") + nonce',
      'open(sys.argv[4], "wb").write(header + AESGCM(key).encrypt(nonce, b"from python", header + topic))',
    ].join('\n');
    const sealed = await run('/usr/bin/python3', ['-c', script, KEY.toString('hex'), '30', 'secure/py', path.join(broker.dir, 'py.bin')], { limitMs: 10_000 });
    assert.equal(sealed.code, 0, sealed.stderr);
    const envelope = readFileSync(path.join(broker.dir, 'py.bin'));
    const common = ['-h', '127.0.0.1', '-p', String(broker.port), '-u', 'device1', '-P', 'device1-pw', '-V', '5', '-q', '1', '-t', 'secure/py'];
    const sent = await run('mosquitto_pub', [...common, '-i', 'py-dev', '-f', path.join(broker.dir, 'py.bin')], { limitMs: 10_000 });
    assert.equal(sent.code, 0, sent.stderr);
    envelope[30]! ^= 0xff;
    writeFileSync(path.join(broker.dir, 'py-tampered.bin'), envelope);
    const refused = await run('mosquitto_pub', [...common, '-i', 'py-dev2', '-f', path.join(broker.dir, 'py-tampered.bin')], { limitMs: 10_000 });
    assert.match(refused.stdout + refused.stderr, /payload format invalid/i);
    await sleep(200);
    assert.deepEqual(got, [['secure/py', 'from python']]);
  });

  it('the replay state survives a restart; a key added to the file applies without one; counted in $SYS', async () => {
    const device = await connect('dev-4', 'device1');
    assert.equal(await puback(device, 'secure/r', seal('secure/r', 100, 'before restart')), 0);
    await sleep(300); // the store's batch is written
    broker.proc.kill('SIGTERM');
    await broker.proc.waitExit(10_000);
    await start();
    const again = await connect('dev-4b', 'device1');
    assert.equal(await puback(again, 'secure/r', seal('secure/r', 100, 'replayed after restart')), 0x99);
    assert.equal(await puback(again, 'secure/r', seal('secure/r', 101, 'after restart')), 0);

    const key2 = randomBytes(32);
    const device2 = await connect('dev-5', 'device2');
    assert.equal(await puback(device2, 'secure/d2', 'no keys yet: plaintext passes'), 0);
    keyFile([`device1:0:${KEY.toString('hex')}`, `device2:${key2.toString('hex')}`]);
    await broker.proc.waitStdout((out) => out.includes('payload key file reloaded'), 5000, 'key file reloaded');
    assert.equal(await puback(device2, 'secure/d2', 'now it must be sealed'), 0x99);
    assert.equal(await puback(device2, 'secure/d2', seal('secure/d2', 1, 'sealed', 0, key2)), 0);
    assert.equal(await puback(again, 'secure/r', seal('secure/r', 1, 'key 7 is gone', 7, KEY_7)), 0x99, 'a key removed from the file');

    const sys = await connect('sys-reader', 'backend');
    // Published every second (sys_interval 1): the three refusals since this start are counted.
    const counted = new Promise<string>((resolve) => sys.on('message', (topic, payload) => {
      if (topic === '$SYS/broker/security/payloads/refused' && Number(payload.toString()) >= 3) resolve(payload.toString());
    }));
    await sys.subscribeAsync('$SYS/broker/security/payloads/refused');
    assert.equal(await Promise.race([counted, sleep(5000).then(() => 'not in time')]), '3');
  });
});

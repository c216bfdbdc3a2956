import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { startAdminBroker } from '../helpers/admin.js';
import { killAll } from '../helpers/process.js';

/**
 * The metrics that say why: connects refused and authentication failures by reason, disconnects by cause, messages
 * and payload bytes by QoS, messages dropped by cause, and the latency histograms (publish to delivery, sampled; the
 * SQLite store's writes and fsyncs). A real `moat` with a SQLite store, MQTT.js 3.1.1 and 5 clients and a raw socket
 * sending a malformed packet; each figure is read as a difference between two scrapes parsed by a Prometheus parser.
 */


interface Family { name: string; type: string; metrics: Array<{ value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }> }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];
/** A bucket's upper bound as a number (the parser gives buckets as an object, whose integer-like keys come first). */
const bound = (le: string): number => (le === '+Inf' ? Infinity : Number(le));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('metrics by reason, cause and QoS, and latency histograms', () => {
  let dir: string;
  let mqttPort: number;
  let base: string;
  const open: MqttClient[] = [];

  async function scrape(): Promise<Family[]> {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    return parsePrometheus(await res.text());
  }
  /** The value of one series (0 when the label set has not appeared yet). */
  const value = (families: Family[], name: string, labels: Record<string, string> = {}): number => {
    const family = families.find((f) => f.name === name);
    assert.ok(family, `the scrape has ${name}`);
    const series = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    return series ? Number(series.value) : 0;
  };
  const histogram = (families: Family[], name: string): { count: number; sum: number; buckets: Array<[string, number]> } => {
    const family = families.find((f) => f.name === name);
    assert.ok(family, `the scrape has ${name}`);
    assert.equal(family.type, 'HISTOGRAM');
    const series = family.metrics[0];
    assert.ok(series, `${name} has a series`);
    return { count: Number(series.count), sum: Number(series.sum), buckets: Object.entries(series.buckets ?? {}).map(([le, n]): [string, number] => [le, Number(n)]).sort((a, b) => bound(a[0]) - bound(b[0])) };
  };

  function connect(clientId: string, options: IClientOptions = {}): Promise<MqttClient> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId, username: 'bob', password: 'bob-password', reconnectPeriod: 0, connectTimeout: 5000, ...options,
    });
    open.push(client);
    return new Promise((resolve, reject) => {
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });
  }

  /** Waits until the scrape satisfies `ready` (counters are read at scrape time; the broker may still be at work). */
  async function until(ready: (families: Family[]) => boolean, what: string): Promise<Family[]> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const families = await scrape();
      if (ready(families)) return families;
      assert.ok(Date.now() < deadline, `in time: ${what}`);
      await sleep(50);
    }
  }

  before(async () => {
    ({ dir, mqttPort, base } = await startAdminBroker({
      prefix: 'moat-metrics-',
      users: { bob: { password: 'bob-password', roles: ['device'] } },
      roles: { device: '[{ topic: "m/#" }]' },
      admin: ['metrics_auth: false'],
      yaml: ['store: { type: sqlite, directory: data }'],
    }));
  });
  after(async () => {
    for (const client of open) client.end(true);
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a wrong password counts as a refused connect and an authentication failure, by reason', async () => {
    const before = await scrape();
    await assert.rejects(connect('wrong', { password: 'not-it', protocolVersion: 5 }));
    await assert.rejects(connect('wrong-3', { password: 'not-it', protocolVersion: 4 }));
    const after = await until((f) => value(f, 'moat_connects_refused_total', { reason: 'bad_user_name_or_password' }) - value(before, 'moat_connects_refused_total', { reason: 'bad_user_name_or_password' }) >= 2, 'two refusals');
    const diff = (name: string, labels: Record<string, string>): number => value(after, name, labels) - value(before, name, labels);
    assert.equal(diff('moat_connects_refused_total', { reason: 'bad_user_name_or_password' }), 2, 'MQTT 5 (0x86) and 3.1.1 (return code 4) alike');
    assert.equal(diff('moat_authentication_failures_total', { reason: 'bad_user_name_or_password' }), 2);
    assert.equal(diff('moat_authentication_failures_total', { reason: 'not_authorized' }), 0);
    assert.equal(diff('moat_connects_accepted_total', {}), 0);
  });

  it('a will the ACL refuses is counted apart from authentication failures; bytes that were never a CONNECT are not a refused CONNECT', async () => {
    const before = await scrape();
    await assert.rejects(connect('will-x', { protocolVersion: 5, will: { topic: 'x/y', payload: Buffer.from('bye'), qos: 0, retain: false } }));
    const scanner = net.connect(mqttPort, '127.0.0.1');
    scanner.resume();
    await new Promise<void>((resolve) => scanner.once('connect', () => resolve()));
    scanner.write(Buffer.from([0xc0, 0x00])); // PINGREQ first: a protocol violation [MQTT-3.1.0-1], not a CONNECT
    await new Promise<void>((resolve) => scanner.once('close', () => resolve()));
    const after = await until((f) => value(f, 'moat_connects_refused_total', { reason: 'will_not_authorized' }) > value(before, 'moat_connects_refused_total', { reason: 'will_not_authorized' }), 'the will refusal counted');
    const diff = (name: string, labels: Record<string, string>): number => value(after, name, labels) - value(before, name, labels);
    assert.equal(diff('moat_connects_refused_total', { reason: 'will_not_authorized' }), 1);
    assert.equal(diff('moat_authentication_failures_total', { reason: 'not_authorized' }), 0, 'right credentials: not an authentication failure');
    const refusedTotal = (f: Family[]): number => f.find((x) => x.name === 'moat_connects_refused_total')!.metrics.reduce((n, m) => n + Number(m.value), 0);
    assert.equal(refusedTotal(after) - refusedTotal(before), 1, 'the PINGREQ-first connection is not a refused CONNECT');
  });

  it('messages and payload bytes by QoS; a sample of publishes timed to delivery; the SQLite store\'s writes and fsyncs timed', async () => {
    const subscriber = await connect('sub', { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } });
    await subscriber.subscribeAsync('m/#', { qos: 1 });
    const publisher = await connect('pub');
    const before = await scrape();
    let received = 0;
    subscriber.on('message', () => received++);
    for (let i = 0; i < 128; i++) publisher.publish('m/zero', 'abcd', { qos: 0 });
    for (let i = 0; i < 3; i++) await publisher.publishAsync('m/one', 'abcdefgh', { qos: 1 });
    await publisher.publishAsync('m/two', 'xy', { qos: 2 });
    const deadline = Date.now() + 5000;
    while (received < 132) {
      assert.ok(Date.now() < deadline, `all 132 delivered (got ${received})`);
      await sleep(20);
    }
    const after = await until((f) => value(f, 'moat_messages_sent_total', { qos: '1' }) - value(before, 'moat_messages_sent_total', { qos: '1' }) >= 4, 'the QoS 1 deliveries counted');
    const diff = (name: string, labels: Record<string, string>): number => value(after, name, labels) - value(before, name, labels);
    assert.deepEqual(['0', '1', '2'].map((qos) => diff('moat_messages_received_total', { qos })), [128, 3, 1]);
    assert.deepEqual(['0', '1', '2'].map((qos) => diff('moat_payload_bytes_received_total', { qos })), [128 * 4, 3 * 8, 2]);
    // Sent at the lower of the publish's and the subscription's QoS: the QoS 2 message goes out at QoS 1.
    assert.deepEqual(['0', '1', '2'].map((qos) => diff('moat_messages_sent_total', { qos })), [128, 4, 0]);
    assert.deepEqual(['0', '1', '2'].map((qos) => diff('moat_payload_bytes_sent_total', { qos })), [128 * 4, 3 * 8 + 2, 0]);

    const latencyBefore = histogram(before, 'moat_delivery_latency_seconds');
    const latency = histogram(after, 'moat_delivery_latency_seconds');
    assert.ok(latency.count - latencyBefore.count >= 2, `132 publishes with a subscriber: at least 2 sampled (one in 64), got ${latency.count - latencyBefore.count}`);
    assert.ok(latency.sum > 0 && latency.sum < latency.count * 5, 'a plausible total time');
    const cumulative = latency.buckets.map(([, n]) => n);
    assert.deepEqual(cumulative, [...cumulative].sort((a, b) => a - b), 'buckets are cumulative');
    assert.equal(latency.buckets.at(-1)?.[0], '+Inf');
    assert.equal(latency.buckets.at(-1)?.[1], latency.count);

    // The persistent session's QoS 1 and 2 deliveries went through the store.
    const writes = histogram(after, 'moat_store_write_seconds');
    assert.ok(writes.count > histogram(before, 'moat_store_write_seconds').count, 'store writes timed');
    const syncs = histogram(after, 'moat_store_sync_seconds');
    assert.ok(syncs.count > histogram(before, 'moat_store_sync_seconds').count, 'durability strict: fsyncs timed');
  });

  it('dropped messages by cause: a QoS 0 message for an offline session, a publish the ACL refuses, an expired message', async () => {
    const sleeper = await connect('sleeper', { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } });
    await sleeper.subscribeAsync('m/sleep/#', { qos: 1 });
    await sleeper.endAsync();
    const before = await scrape();
    const publisher = await connect('dropper', { protocolVersion: 5 });
    await publisher.publishAsync('m/sleep/zero', 'lost', { qos: 0 });
    await assert.rejects(publisher.publishAsync('not/allowed', 'no', { qos: 1 }), (err: { code?: number }) => err.code === 0x87, 'PUBACK 0x87 Not authorized');
    await publisher.publishAsync('m/sleep/expiring', 'late', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await sleep(2100);
    // Coming back: the queued message has expired and is dropped instead of sent.
    const back = await connect('sleeper', { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } });
    const got: string[] = [];
    back.on('message', (topic) => got.push(topic));
    const after = await until((f) => value(f, 'moat_messages_dropped_total', { cause: 'expired' }) > value(before, 'moat_messages_dropped_total', { cause: 'expired' }), 'the expired message counted');
    const diff = (cause: string): number => value(after, 'moat_messages_dropped_total', { cause }) - value(before, 'moat_messages_dropped_total', { cause });
    assert.equal(diff('offline'), 1);
    assert.equal(diff('not_authorized'), 1);
    assert.equal(diff('expired'), 1);
    assert.equal(diff('queue_full'), 0);
    assert.deepEqual(got, [], 'nothing was delivered to the sleeper');
  });

  it('disconnects by cause: DISCONNECT from the client, a lost connection, a malformed packet', async () => {
    const before = await scrape();
    const polite = await connect('polite');
    await polite.endAsync();
    const vanishing = await connect('vanishing');
    (vanishing.stream as net.Socket).destroy();
    // A raw 3.1.1 client: CONNECT with bob's credentials, then a PUBLISH whose remaining length runs past the packet.
    const raw = net.connect(mqttPort, '127.0.0.1');
    raw.resume();
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    const user = Buffer.from('bob');
    const pass = Buffer.from('bob-password');
    const id = Buffer.from('raw');
    const body = Buffer.concat([
      Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([4, 0xc2, 0, 30]),
      Buffer.from([0, id.length]), id, Buffer.from([0, user.length]), user, Buffer.from([0, pass.length]), pass,
    ]);
    raw.write(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    await sleep(200);
    raw.write(Buffer.from([0x30, 0x02, 0x00, 0x05])); // topic length 5 in a 2-byte packet
    await new Promise<void>((resolve) => raw.once('close', () => resolve()));
    const after = await until((f) => value(f, 'moat_disconnects_total', { cause: 'connection_lost' }) > value(before, 'moat_disconnects_total', { cause: 'connection_lost' }), 'the lost connection counted');
    const diff = (cause: string): number => value(after, 'moat_disconnects_total', { cause }) - value(before, 'moat_disconnects_total', { cause });
    assert.equal(diff('client'), 1);
    assert.equal(diff('connection_lost'), 1);
    assert.equal(diff('malformed_packet') + diff('protocol_error'), 1, 'the malformed packet, by its reason');
    assert.equal(value(after, 'moat_connects_accepted_total') - value(before, 'moat_connects_accepted_total'), 3);
  });
});

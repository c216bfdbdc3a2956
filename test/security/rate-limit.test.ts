import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { PacketType } from '../../src/protocol/index.js';
import { RawClient, waitFor } from '../helpers/broker.js';
import { rawConnect, rawPublish } from '../helpers/codec.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/** Publishing rate limits, per client and per role, against a real `moat` process and MQTT.js clients. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

function connect(port: number, options: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

/** Subscribes to `topic` and collects payloads. */
async function collector(port: number, topic: string): Promise<{ client: MqttClient; got: string[] }> {
  const client = await connect(port, { clientId: `sub-${topic}`, username: 'root', password: 'root-password' });
  const got: string[] = [];
  client.on('message', (_t, payload) => got.push(payload.toString()));
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, got };
}

/** Publishes `count` messages without waiting between them; resolves when every one was handed to the socket and acknowledged (QoS 1). */
async function publishAll(client: MqttClient, topic: string, count: number, qos: 0 | 1, size = 1): Promise<number> {
  const started = Date.now();
  const pad = 'x'.repeat(Math.max(0, size - 6));
  await Promise.all(Array.from({ length: count }, (_, i) => client.publishAsync(topic, `${String(i).padStart(5, '0')}:${pad}`, { qos })));
  return Date.now() - started;
}

describe('publishing rate limits', () => {
  let dir: string;
  let proc: Proc;
  let port: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-rate-'));
    const entries = await Promise.all(['alice', 'bob', 'carol', 'dave', 'root'].map((u) => createEntry(u, Buffer.from(`${u}-password`), { logN: 10, r: 8, p: 1 })));
    writeFileSync(path.join(dir, 'users.pw'), `${entries.map(formatEntry).join('\n')}\n`);
  });
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function startMoat(extra: string): Promise<void> {
    port = await freePort();
    const file = path.join(dir, 'moat.yaml');
    writeFileSync(file, [
      `listeners:\n  - port: ${port}\n    host: 127.0.0.1`,
      'log:\n  format: json',
      'store:\n  type: memory',
      'authentication:\n  - type: password_file\n    path: users.pw',
      extra,
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  }

  const auditLines = (): Array<Record<string, unknown>> =>
    proc.stdout.split('\n').filter((l) => l.includes('"guard.rate-limited"')).map((l) => JSON.parse(l) as Record<string, unknown>);

  it('a default limit slows a fast publisher down (backpressure) and loses nothing, QoS 0 or 1; a role carries its own', async () => {
    await startMoat([
      'guard:\n  rate_limit:\n    messages_per_second: 100',
      'authorization:',
      '  roles:',
      '    everything:\n      - topic: "#"',
      '    slow:\n      rules:\n        - topic: "#"\n      rate_limit:\n        messages_per_second: 20',
      '    fast:\n      rules:\n        - topic: "#"\n      rate_limit:\n        messages_per_second: 100000',
      '  users:',
      '    bob:\n      roles: [slow]',
      '    carol:\n      roles: [slow, fast]',
      '  everyone:\n    roles: [everything]',
    ].join('\n'));
    const sub = await collector(port, 'rate/#');
    const alice = await connect(port, { clientId: 'alice', username: 'alice', password: 'alice-password' });
    // 300 messages at 100/s after a burst of 100: at least 2 s; unlimited, they take a few milliseconds.
    const qos1 = await publishAll(alice, 'rate/alice', 300, 1);
    assert.ok(qos1 >= 1800, `300 QoS 1 messages at 100/s took ${qos1} ms`);
    const qos0 = await publishAll(alice, 'rate/alice0', 300, 0);
    await waitFor(() => sub.got.length === 600, 10_000, 'all 600 messages');
    const alices = sub.got.filter((m) => !m.startsWith('b'));
    assert.deepEqual(alices.slice(0, 300), Array.from({ length: 300 }, (_, i) => `${String(i).padStart(5, '0')}:`), 'QoS 1: every message, in order');
    assert.equal(new Set(alices.slice(300)).size, 300, `QoS 0: every message arrived (published in ${qos0} ms)`);

    // bob's role says 20/s: 60 messages take at least 2 s; carol has that role and a generous one, which wins.
    const bob = await connect(port, { clientId: 'bob', username: 'bob', password: 'bob-password' });
    const carol = await connect(port, { clientId: 'carol', username: 'carol', password: 'carol-password' });
    const [bobMs, carolMs] = await Promise.all([publishAll(bob, 'rate/bob', 60, 1), publishAll(carol, 'rate/carol', 300, 1)]);
    assert.ok(bobMs >= 1800, `bob's 60 messages at 20/s took ${bobMs} ms`);
    assert.ok(carolMs < 1500, `carol's 300 messages under the generous role took ${carolMs} ms`);
    await waitFor(() => sub.got.length === 960, 10_000, 'bob and carol\'s messages');

    const audit = auditLines();
    assert.deepEqual(audit.map((l) => l.clientId).sort(), ['alice', 'bob'], 'audited once per limited connection');
    assert.equal(audit[0]!.action, 'paused');
    for (const c of [sub.client, alice, bob, carol]) await c.endAsync();
  });

  it('a paused client is not cut off by its keep-alive while the broker holds it back', async () => {
    await startMoat('guard:\n  rate_limit:\n    bytes_per_second: 2000');
    const sub = await collector(port, 'big/#');
    // keep-alive 1 s: silent for 1.5 s is a timeout; 10 KB at 2,000 B/s holds the client back about 4 s.
    const raw = await RawClient.connect(port);
    raw.sendBytes(rawConnect({ clientId: 'alice', keepalive: 1, username: 'alice', password: [...Buffer.from('alice-password')] }));
    assert.equal((await raw.nextPacket()).type, PacketType.CONNACK);
    const started = Date.now();
    raw.sendBytes(Buffer.concat([
      rawPublish({ topic: 'big/one', payload: [...Buffer.alloc(10_000, 0x31)] }),
      rawPublish({ topic: 'big/two', payload: [...Buffer.from('after')] }),
    ]));
    await waitFor(() => sub.got.includes('after'), 15_000, 'the message after the pause');
    const waited = Date.now() - started;
    assert.ok(waited >= 3000, `the second message waited for the allowance (${waited} ms)`);
    assert.equal(raw.closed, false, 'still connected after 3 s of a 1 s keep-alive: the broker, not the client, was silent');
    assert.equal(sub.got.length, 2);
    raw.socket.destroy();
    await sub.client.endAsync();
  });

  it('action disconnect: MQTT 5 clients get DISCONNECT 0x96 for messages, 0x97 for bytes; 3.1.1 clients are closed', async () => {
    await startMoat([
      'authorization:',
      '  roles:',
      '    everything:\n      - topic: "#"',
      '    strict:\n      rules:\n        - topic: "#"\n      rate_limit:\n        messages_per_second: 5\n        action: disconnect',
      '    bytes:\n      rules:\n        - topic: "#"\n      rate_limit:\n        bytes_per_second: 1000\n        action: disconnect',
      '    slowbytes:\n      rules:\n        - topic: "#"\n      rate_limit:\n        bytes_per_second: 1000',
      '  users:',
      '    bob:\n      roles: [strict]',
      '    dave:\n      roles: [bytes]',
      '    carol:\n      roles: [slowbytes]',
      '  everyone:\n    roles: [everything]',
    ].join('\n'));
    const disconnectCode = (client: MqttClient): Promise<number> => new Promise((resolve) => {
      client.once('disconnect', (packet) => resolve(packet.reasonCode ?? -1));
    });
    const bob = await connect(port, { clientId: 'bob5', username: 'bob', password: 'bob-password', protocolVersion: 5 });
    const bobTold = disconnectCode(bob);
    for (let i = 0; i < 20; i++) bob.publish('strict/x', String(i), { qos: 0 });
    assert.equal(await bobTold, 0x96);

    const dave = await connect(port, { clientId: 'dave5', username: 'dave', password: 'dave-password', protocolVersion: 5 });
    const daveTold = disconnectCode(dave);
    dave.publish('bytes/x', Buffer.alloc(3000), { qos: 0 });
    assert.equal(await daveTold, 0x97);

    // With `pause` too, a message that would hold its client back over 60 s (100 KB at 1,000 B/s) closes it.
    const carol = await connect(port, { clientId: 'carol5', username: 'carol', password: 'carol-password', protocolVersion: 5 });
    const carolTold = disconnectCode(carol);
    carol.publish('bytes/x', Buffer.alloc(100_000), { qos: 0 });
    assert.equal(await carolTold, 0x97);

    const bob4 = await connect(port, { clientId: 'bob4', username: 'bob', password: 'bob-password' });
    const closed = new Promise<void>((resolve) => bob4.once('close', () => resolve()));
    for (let i = 0; i < 20; i++) bob4.publish('strict/x', String(i), { qos: 0 });
    await closed;
    const audit = auditLines();
    assert.deepEqual(audit.map((l) => `${String(l.clientId)} ${String(l.action)}`).sort(), ['bob4 disconnected', 'bob5 disconnected', 'carol5 disconnected', 'dave5 disconnected']);
    for (const c of [bob, dave, carol, bob4]) c.end(true);
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { RawClient } from '../helpers/broker.js';
import { rawConnect, rawSubscribe } from '../helpers/codec.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/**
 * Overload protection against a real `moat` process: subscribers to `#` that never read make the broker hold
 * more and more; past the high-water mark new clients are refused (CONNACK 3 / 0x89), QoS 0 to slow consumers is
 * shed while a client that keeps up still gets everything, and below the low-water mark it all comes back.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const MB = 1024 * 1024;

function connack(port: number, options: IClientOptions): Promise<{ code: number; client?: MqttClient }> {
  return new Promise((resolve) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    client.once('connect', () => resolve({ code: 0, client }));
    client.once('error', (err) => {
      client.end(true);
      resolve({ code: (err as { code?: number }).code ?? -1 });
    });
  });
}

async function until(predicate: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('overload protection', () => {
  let dir: string;
  let proc: Proc;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-overload-'));
  });
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses newcomers and sheds QoS 0 to slow consumers past the high-water mark, and recovers below the low one', async () => {
    const port = await freePort();
    const file = path.join(dir, 'moat.yaml');
    // Queues without a byte cap, so that what the non-readers are owed piles up in the broker.
    writeFileSync(file, [
      `listeners:\n  - port: ${port}\n    host: 127.0.0.1`,
      'log:\n  format: json',
      'store:\n  type: memory',
      'sys_interval: 1',
      `limits:\n  memory_high_water: ${120 * MB}\n  memory_low_water: ${90 * MB}\n  max_queued_messages: 1000000\n  max_queued_bytes: 0`,
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');

    // The operator's window: $SYS counters.
    const sys = new Map<string, string>();
    const watcher = (await connack(port, { clientId: 'watcher' })).client!;
    watcher.on('message', (topic, payload) => sys.set(topic, payload.toString()));
    await watcher.subscribeAsync('$SYS/broker/security/#');
    // A consumer that keeps up, on QoS 0.
    const fast = (await connack(port, { clientId: 'fast' })).client!;
    let fastGot = 0;
    fast.on('message', () => fastGot++);
    await fast.subscribeAsync('flood/#', { qos: 0 });
    // Subscribers to everything that never read: one on QoS 1 (its queue grows), one on QoS 0 (a slow consumer).
    const stuck: RawClient[] = [];
    for (const [id, qos] of [['stuck-1', 1], ['stuck-0', 0]] as const) {
      const raw = await RawClient.connect(port);
      raw.sendBytes(rawConnect({ clientId: id }));
      await raw.nextPacket();
      raw.sendBytes(rawSubscribe([['#', qos]]));
      await raw.nextPacket();
      raw.socket.pause();
      stuck.push(raw);
    }

    // 64 KiB QoS 1 messages until the broker says it is overloaded (at most 400 MB).
    const publisher = (await connack(port, { clientId: 'publisher' })).client!;
    const payload = Buffer.alloc(64 * 1024, 0x61);
    for (let sent = 0; !proc.stdout.includes('memory past the high-water mark'); sent++) {
      assert.ok(sent < 6400, 'overload detected before 400 MB were sent');
      await publisher.publishAsync(`flood/${sent % 100}`, payload, { qos: 1 });
    }
    const refusing = proc.stdout.split('\n').filter((l) => l.includes('"guard.overload"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(refusing.length, 1);
    assert.equal(refusing[0]!.action, 'refusing');

    // Newcomers are refused: 3.1.1 CONNACK 3, MQTT 5 0x89 Server busy.
    assert.equal((await connack(port, { clientId: 'late-4' })).code, 3);
    assert.equal((await connack(port, { clientId: 'late-5', protocolVersion: 5 })).code, 0x89);

    // QoS 0 during the overload: the slow consumer's share is shed, the one that keeps up gets every message.
    const before = fastGot;
    for (let i = 0; i < 200; i++) publisher.publish('flood/q0', payload.subarray(0, 1024), { qos: 0 });
    await until(() => fastGot === before + 200, 10_000, 'the fast consumer\'s 200 QoS 0 messages');
    await until(() => Number(sys.get('$SYS/broker/security/overload/shed') ?? 0) > 0, 5000, 'shed messages counted in $SYS');
    assert.equal(sys.get('$SYS/broker/security/overload/active'), '1');
    await until(() => Number(sys.get('$SYS/broker/security/overload/refused') ?? 0) === 2, 5000, 'the two refusals counted in $SYS');

    // The non-readers go (their sessions end): memory falls below the low-water mark and newcomers are served again.
    for (const raw of stuck) raw.socket.destroy();
    await until(async () => {
      publisher.publish('flood/tick', 'x', { qos: 0 }); // a live broker allocates, and collects garbage
      return proc.stdout.includes('memory back below the low-water mark');
    }, 60_000, 'recovery below the low-water mark');
    const late = await connack(port, { clientId: 'late-again', protocolVersion: 5 });
    assert.equal(late.code, 0, 'accepted again after recovery');
    for (const c of [watcher, fast, publisher, late.client!]) await c.endAsync();
  });
});

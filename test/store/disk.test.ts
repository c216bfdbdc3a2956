import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { SqliteStore } from '../../src/store/index.js';
import { connectClient, delay, waitFor } from '../helpers/broker.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/**
 * The embedded store on a read-only directory and on a full disk, with the real
 * `moat` process. Each broker runs in its own mount namespace (`unshare`, as root
 * or through a user namespace), where a small tmpfs or a read-only bind mount
 * stands in for the disk; the test reaches that view through /proc/PID/root.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

/** Runs `script` (sh, with "$1".. from `args`) in a new mount namespace; it ends by exec-ing the broker. */
function inMountNamespace(script: string, args: string[], limitMs = 60_000): Proc {
  return spawnProc('unshare', ['--map-root-user', '--mount', 'sh', '-c', script, 'sh', ...args], { limitMs });
}

const READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"';
// Fills the 256 KiB tmpfs completely (head stops with ENOSPC, as intended).
const FULL_DISK = 'mount -t tmpfs -o size=256k tmpfs "$1" && { head -c 1M /dev/zero > "$1/filler" 2>/dev/null; true; }';

/** Starts `moat` on `data` after `prepare` (run in the namespace) and expects it to refuse: exit 1, stderr naming `named`. */
async function expectRefusal(prepare: string, data: string, config: string, named: string, problem: RegExp): Promise<void> {
  const broker = inMountNamespace(`${prepare} && exec "$2" "$3" --config "$4"`, [data, process.execPath, MOAT, config]);
  const status = await broker.waitExit(15_000);
  assert.equal(status.code, 1, `exit status; stderr: ${broker.stderr}`);
  assert.ok(broker.stderr.includes(named), `the error names ${named}: ${broker.stderr}`);
  assert.match(broker.stderr, problem);
}

function writeConfig(dir: string, port: number, dataDir: string): string {
  const file = path.join(dir, 'moat.yaml');
  writeFileSync(file, [
    'listeners:', `  - port: ${port}`, '    host: 127.0.0.1',
    'store:', '  type: sqlite', `  directory: ${dataDir}`,
    'log:', '  level: info', '  format: json', 'sys_interval: 0', '',
  ].join('\n'));
  return file;
}

/** Publishes at QoS 1 and reports whether the PUBACK came within `ms`. */
function acknowledgedWithin(client: MqttClient, topic: string, payload: Buffer, ms: number): Promise<{ acked: boolean; later: Promise<void> }> {
  const later = client.publishAsync(topic, payload, { qos: 1 }).then(() => undefined);
  return Promise.race([
    later.then(() => ({ acked: true, later })),
    delay(ms).then(() => ({ acked: false, later })),
  ]);
}

describe('SQLite store on a read-only directory and a full disk (real process)', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'moat-disk-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  afterEach(() => killAll());
  let n = 0;
  const fresh = (): string => {
    const dir = path.join(root, `case${n++}`);
    mkdirSync(dir);
    return dir;
  };

  it('refuses to start on a read-only directory holding a store, names the directory, and leaves the data as it was', async () => {
    const dir = fresh();
    const data = path.join(dir, 'data');
    const store = new SqliteStore({ directory: data });
    await store.open();
    store.putRetained({ topic: 'kept/r', payload: Buffer.from('precious'), qos: 1, retain: true });
    await store.close();
    const file = path.join(data, 'moat.db');
    const before = readFileSync(file);
    const config = writeConfig(dir, await freePort(), data);

    await expectRefusal(READ_ONLY, data, config, data, /read-only/);
    assert.deepEqual(readFileSync(file), before, 'the store is untouched');

    const again = new SqliteStore({ directory: data });
    const state = await again.open();
    await again.close();
    assert.deepEqual(state.retained.map((m) => m.payload.toString()), ['precious'], 'the data is still there once writable');
  });

  it('refuses to start on an empty read-only directory, naming it', async () => {
    const dir = fresh();
    const data = path.join(dir, 'data');
    mkdirSync(data);
    await expectRefusal(READ_ONLY, data, writeConfig(dir, await freePort(), data), data, /read-only/);
  });

  it('refuses to start on a full disk, naming the store file', async () => {
    const dir = fresh();
    const data = path.join(dir, 'data');
    mkdirSync(data);
    await expectRefusal(FULL_DISK, data, writeConfig(dir, await freePort(), data), path.join(data, 'moat.db'), /disk is full/);
  });

  it('a disk that fills up while running: acknowledgements wait, other clients carry on, and once space is back nothing is lost', async () => {
    const dir = fresh();
    const data = path.join(dir, 'data');
    mkdirSync(data);
    const port = await freePort();
    const config = writeConfig(dir, port, data);
    // 1 MiB of disk, 640 KiB of it taken by a file the test deletes later to free space.
    const broker = inMountNamespace('mount -t tmpfs -o size=1m tmpfs "$1" && head -c 640k /dev/zero > "$1/filler" && exec "$2" "$3" --config "$4"',
      [data, process.execPath, MOAT, config]);
    await broker.waitStdout((out) => out.includes('"msg":"listening"'), 15_000, 'the broker to listen');
    const url = `mqtt://127.0.0.1:${port}`;
    const clients: MqttClient[] = [];
    const track = (c: MqttClient): MqttClient => {
      clients.push(c);
      return c;
    };
    try {
      // A persistent subscriber that is offline: every message for it goes to the disk.
      const offline = await connectClient(url, { clientId: 'disk-sub', clean: false });
      await offline.subscribeAsync('disk/#', { qos: 1 });
      await offline.endAsync();

      const pub = track(await connectClient(url, { clientId: 'disk-pub' }));
      const payload = Buffer.alloc(16 * 1024, 0x61);
      const acked: number[] = [];
      let stalled: { seq: number; later: Promise<void> } | undefined;
      for (let seq = 0; seq < 200 && !stalled; seq++) {
        payload.writeUInt32BE(seq, 0);
        const result = await acknowledgedWithin(pub, `disk/${seq}`, Buffer.from(payload), 2000);
        if (result.acked) acked.push(seq);
        else stalled = { seq, later: result.later };
      }
      assert.ok(stalled, 'the disk filled up and an acknowledgement is held back');
      assert.ok(acked.length >= 5, `some messages were stored before the disk filled (${acked.length})`);
      await waitFor(() => /the disk is full/.test(broker.stdout), 5000, 'the full disk to be logged');
      assert.ok(broker.stdout.includes(path.join(data, 'moat.db')), 'the log names the store file');
      assert.equal(broker.status, undefined, 'the broker is still running');

      // Clients that store nothing carry on while the disk is full.
      const bystanderSub = track(await connectClient(url, { clientId: 'free-sub' }));
      const got: string[] = [];
      bystanderSub.on('message', (_topic, p) => got.push(p.toString()));
      await bystanderSub.subscribeAsync('free/x', { qos: 1 });
      const bystanderPub = track(await connectClient(url, { clientId: 'free-pub' }));
      for (let i = 0; i < 5; i++) await bystanderPub.publishAsync('free/x', `still here ${i}`, { qos: 1 });
      await waitFor(() => got.length === 5, 3000, 'messages between clients that store nothing');

      // Space comes back: the held acknowledgement follows, then new messages are stored again.
      const filler = path.join(`/proc/${broker.pid}/root`, data, 'filler');
      assert.ok(statSync(filler).size > 0, 'the filler is visible through /proc/PID/root');
      rmSync(filler);
      await Promise.race([stalled.later, delay(10_000).then(() => assert.fail('the held PUBACK never came after space was freed'))]);
      acked.push(stalled.seq);
      for (let seq = stalled.seq + 1; seq < stalled.seq + 4; seq++) {
        payload.writeUInt32BE(seq, 0);
        await pub.publishAsync(`disk/${seq}`, Buffer.from(payload), { qos: 1 });
        acked.push(seq);
      }

      // Every acknowledged message reaches the persistent subscriber, in order.
      // The handler is in place before CONNACK: queued messages follow it at once.
      const back = track(mqtt.connect(url, { clientId: 'disk-sub', clean: false, reconnectPeriod: 0 }));
      const delivered: number[] = [];
      back.on('message', (_topic, p) => delivered.push(p.readUInt32BE(0)));
      await waitFor(() => delivered.length >= acked.length, 10_000, `${acked.length} messages (have ${delivered.length})`);
      assert.deepEqual(delivered, acked);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    }
  });
});

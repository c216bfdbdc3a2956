import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { sumReports } from '../../src/multicore/sys-aggregation.js';
import { BrokerStats } from '../../src/broker/stats.js';
import { idOn } from '../helpers/multicore.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/** $SYS in multi-core mode describes the whole broker, once per interval, whichever worker a subscriber is on. */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

describe('$SYS in multi-core mode (workers: 2)', () => {
  let dir: string;
  let proc: Proc;
  let port: number;
  const clients: MqttClient[] = [];
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-mc-sys-'));
    port = await freePort();
    writeFileSync(path.join(dir, 'moat.yaml'), `workers: 2\nlisteners:\n  - { port: ${port} }\nsys_interval: 1\nstore:\n  type: memory\nlog:\n  format: json\n`);
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync().catch(() => {})));
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = async (clientId: string): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0 });
    clients.push(client);
    return client;
  };

  it('subscribers on either worker see the whole broker\'s figures, one value per interval', async () => {
    const publishers = [await connect(idOn(0, 'sys-pub')), await connect(idOn(1, 'sys-pub')), await connect(idOn(1, 'sys-pub'))];
    for (const publisher of publishers) for (let i = 0; i < 10; i++) await publisher.publishAsync('sys/load', 'x', { qos: 1 });
    const watchers = [await connect(idOn(0, 'sys-watch')), await connect(idOn(1, 'sys-watch'))];
    const seen = watchers.map((watcher) => {
      const values: Array<[string, string]> = [];
      watcher.on('message', (topic, payload) => values.push([topic, payload.toString()]));
      return values;
    });
    for (const watcher of watchers) await watcher.subscribeAsync(['$SYS/broker/clients/connected', '$SYS/broker/publish/messages/received', '$SYS/broker/uptime']);
    await new Promise((r) => setTimeout(r, 3500));
    for (const [w, values] of seen.entries()) {
      const connected = values.filter(([t]) => t === '$SYS/broker/clients/connected').map(([, v]) => Number(v));
      assert.equal(connected.at(-1), 5, `watcher ${w}: 3 publishers and 2 watchers, on both workers; saw ${JSON.stringify(values)}`);
      const received = values.filter(([t]) => t === '$SYS/broker/publish/messages/received').map(([, v]) => Number(v));
      assert.ok(received.at(-1)! >= 30, `watcher ${w}: the 30 publishes of all workers (${received.at(-1)})`);
      // One worker publishes: a value a second (plus the retained one at subscribe), not one per worker.
      const uptimes = values.filter(([t]) => t === '$SYS/broker/uptime');
      assert.ok(uptimes.length >= 3 && uptimes.length <= 5, `watcher ${w}: ${uptimes.length} uptime values in 3.5 s`);
    }
  });
});

describe('summing $SYS figures', () => {
  it('counts add up, the start is the earliest, the bans in force are not multiplied, text stays as it is', () => {
    const report = (connected: number, startedAt: number, bans: string) => {
      const stats = Object.assign(new BrokerStats(), { connectedClients: connected, publishReceived: connected * 10 });
      Object.assign(stats, { startedAt });
      return {
        snapshot: { stats, version: 'moat 1', disconnectedSessions: 1, subscriptions: 2, retained: 7, overloaded: connected > 2, storedSessions: 3, heapUsed: 100 },
        extra: [['$SYS/broker/security/bans/active', bans], ['$SYS/broker/security/bans/issued', '2'], ['$SYS/broker/x', 'text']] as Array<[string, string]>,
      };
    };
    const sum = sumReports([report(1, 5000, '4'), report(3, 4000, '4')]);
    assert.equal(sum.snapshot.stats.connectedClients, 4);
    assert.equal(sum.snapshot.stats.publishReceived, 40);
    assert.equal(sum.snapshot.stats.startedAt, 4000);
    assert.equal(sum.snapshot.retained, 7, 'every worker holds every retained message');
    assert.equal(sum.snapshot.overloaded, true);
    assert.equal(sum.snapshot.heapUsed, 200);
    assert.deepEqual(sum.extra, [['$SYS/broker/security/bans/active', '4'], ['$SYS/broker/security/bans/issued', '4'], ['$SYS/broker/x', 'text']]);
  });
});

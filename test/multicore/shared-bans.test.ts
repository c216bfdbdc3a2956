import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { silentLogger } from '../../src/broker/logger.js';
import { Primary } from '../../src/multicore/primary.js';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { delay, waitFor } from '../helpers/broker.js';
import { idOn } from '../helpers/multicore.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/**
 * Bans shared by the workers of multi-core mode: the `moat` command with `workers: 2` and a password file,
 * real clients from several loopback addresses, client identifiers chosen so that a connection lands on the
 * worker wanted (the primary routes by `workerFor`).
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const WORKERS = 2;


/** An MQTT.js client from a given loopback address: 0 once accepted (then closed), the CONNACK's refusal code, or 'closed' without a CONNACK. */
function outcome(port: number, from: string, options: IClientOptions): Promise<number | 'closed'> {
  return new Promise((resolve) => {
    const client = new mqtt.MqttClient(() => net.connect({ port, host: '127.0.0.1', localAddress: from }), { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    let settled = false;
    const done = (result: number | 'closed'): void => {
      if (settled) return;
      settled = true;
      client.end(true);
      resolve(result);
    };
    client.once('connect', () => done(0));
    client.once('error', (err) => {
      const code = (err as { code?: unknown }).code;
      done(typeof code === 'number' ? code : 'closed');
    });
    client.once('close', () => done('closed'));
  });
}

const alice = (clientId: string, password = 'alice-password', protocolVersion: 4 | 5 = 4): IClientOptions =>
  ({ clientId, username: 'alice', password, protocolVersion });

/** A client from 127.0.0.1 on `worker` that keeps the latest value of every $SYS/broker/security/ topic. */
async function securityWatcher(port: number, worker: number): Promise<{ client: MqttClient; sys: Map<string, string> }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, ...alice(idOn(worker, 'sys')) });
  const sys = new Map<string, string>();
  client.on('message', (topic, payload) => sys.set(topic.slice('$SYS/broker/security/'.length), payload.toString()));
  await client.subscribeAsync('$SYS/broker/security/#');
  return { client, sys };
}

const auditLines = (text: string, event: string): Array<Record<string, unknown>> =>
  text.split('\n').filter((l) => l.includes(`"${event}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('bans shared by the workers of multi-core mode', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-shared-bans-'));
    const entries = await Promise.all(['alice'].map((u) => createEntry(u, Buffer.from(`${u}-password`), { logN: 10, r: 8, p: 1 })));
    writeFileSync(path.join(dir, 'users.pw'), `${entries.map(formatEntry).join('\n')}\n`);
  });
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A configuration for two workers with a password file, a SQLite store and a low failure threshold. */
  function configFile(name: string, port: number, extra = ''): string {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, `workers: ${WORKERS}\nlisteners:\n  - port: ${port}\n    host: 127.0.0.1\nsys_interval: 0.2\n`
      + `store:\n  type: sqlite\n  directory: ${path.join(dir, `${name}-data`)}\nauthentication:\n  - type: password_file\n    path: users.pw\n`
      + `guard:\n  failures: { max_per_address: 3, window: 60 }\n${extra}`);
    return file;
  }

  async function startMoat(file: string): Promise<Proc> {
    const proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
    return proc;
  }

  async function stopMoat(proc: Proc): Promise<void> {
    proc.kill('SIGTERM');
    const status = await proc.waitExit(20_000);
    assert.equal(status.code, 0, `exit ${JSON.stringify(status)}; stderr: ${proc.stderr}`);
  }

  it('an address one worker bans for failed authentications is refused by both, 127.0.0.1 is still served, and the ban survives a restart', async () => {
    const port = await freePort();
    const file = configFile('brute', port, 'log:\n  level: info\n  format: json\n');
    let proc = await startMoat(file);
    const watchers = [await securityWatcher(port, 0), await securityWatcher(port, 1)];

    // Three wrong passwords from 127.0.0.2, all on worker 0: its guard bans the address.
    for (let n = 0; n < 3; n++) assert.equal(await outcome(port, '127.0.0.2', alice(idOn(0, 'guess'), `guess-${n}`)), 4, `guess ${n}: bad user name or password`);
    await waitFor(() => watchers.every((w) => w.sys.get('bans/active') === '1'), 5000, 'the ban in force ($SYS bans/active, the whole broker: not one per worker)');
    // $SYS sums the workers: had worker 1 counted the ban it applied as its own, the broker would report 2.
    await delay(1500);
    for (const w of watchers) assert.equal(w.sys.get('bans/issued'), '1', 'one ban issued in the whole broker');

    for (const worker of [0, 1]) {
      assert.equal(await outcome(port, '127.0.0.2', alice(idOn(worker, 'right'))), 'closed', `worker ${worker}: the right password from the banned address is closed at accept`);
      assert.equal(await outcome(port, '127.0.0.2', alice(idOn(worker, 'right5'), 'alice-password', 5)), 'closed', `worker ${worker}: MQTT 5 too`);
      assert.equal(await outcome(port, '127.0.0.1', alice(idOn(worker, 'local'))), 0, `worker ${worker}: 127.0.0.1 is served`);
    }
    // mosquitto_pub: from the banned address it fails, from 127.0.0.1 it publishes, whichever worker it lands on.
    for (const worker of [0, 1]) {
      const common = ['-h', '127.0.0.1', '-p', String(port), '-u', 'alice', '-P', 'alice-password', '-t', 'shared-bans/t', '-m', 'x', '-q', '1'];
      const banned = await run('mosquitto_pub', [...common, '-i', idOn(worker, 'mpub-banned'), '-A', '127.0.0.2'], { limitMs: 10_000 });
      assert.notEqual(banned.code, 0, `worker ${worker}: mosquitto_pub from 127.0.0.2 refused`);
      const local = await run('mosquitto_pub', [...common, '-i', idOn(worker, 'mpub-local')], { limitMs: 10_000 });
      assert.equal(local.code, 0, `worker ${worker}: mosquitto_pub from 127.0.0.1: ${local.stderr}`);
    }

    await delay(300);
    const banned = auditLines(proc.stdout, 'guard.banned');
    assert.equal(banned.length, 1, `one ban, audited once (by the worker that set it): ${JSON.stringify(banned)}`);
    assert.equal(banned[0]!.remoteAddress, '127.0.0.2');
    for (const w of watchers) await w.client.endAsync();

    await stopMoat(proc);
    proc = await startMoat(file);
    for (const worker of [0, 1]) {
      assert.equal(await outcome(port, '127.0.0.2', alice(idOn(worker, 'after'))), 'closed', `worker ${worker}: still banned after the restart`);
      assert.equal(await outcome(port, '127.0.0.1', alice(idOn(worker, 'after-local'))), 0, `worker ${worker}: 127.0.0.1 served after the restart`);
    }
    assert.deepEqual(auditLines(proc.stdout, 'guard.banned'), [], 'bans brought back at start-up are not audited again');
    await stopMoat(proc);
  });

  it('offence counts are shared: an address banned by one worker and offending again on the other once the ban expired is banned twice as long, and again', async () => {
    const port = await freePort();
    const proc = await startMoat(configFile('offences', port, '  ban: { first: 1 }\nlog:\n  level: info\n  format: json\n'));
    /** Three wrong passwords from 127.0.0.6 on `worker`: its `nth` ban, and how long it lasts (ms) by its audit line. */
    const offend = async (worker: number, nth: number): Promise<{ ms: number; until: number }> => {
      for (let n = 0; n < 3; n++) assert.equal(await outcome(port, '127.0.0.6', alice(idOn(worker, 'guess'), `guess-${n}`)), 4, `worker ${worker}, guess ${n}`);
      await waitFor(() => auditLines(proc.stdout, 'guard.banned').length >= nth, 3000, `ban ${nth} audited`);
      const lines = auditLines(proc.stdout, 'guard.banned');
      assert.equal(lines.length, nth, `one audit line a ban: ${JSON.stringify(lines)}`);
      const line = lines[nth - 1] as { time: number; until: string; remoteAddress: string };
      assert.equal(line.remoteAddress, '127.0.0.6');
      return { ms: Date.parse(line.until) - line.time, until: Date.parse(line.until) };
    };
    const expired = (ban: { until: number }): Promise<void> => delay(Math.max(0, ban.until - Date.now() + 100));

    const first = await offend(0, 1);
    assert.ok(Math.abs(first.ms - 1000) < 100, `worker 0's ban, the first offence: 1 s (${first.ms} ms)`);
    await expired(first);
    const second = await offend(1, 2);
    assert.ok(Math.abs(second.ms - 2000) < 100, `worker 1's ban, the second offence: 2 s (${second.ms} ms)`);
    await expired(second);
    // Back on worker 0, which had counted one offence itself and learnt of the second from worker 1.
    const third = await offend(0, 3);
    assert.ok(Math.abs(third.ms - 4000) < 100, `worker 0's ban, the third offence: 4 s (${third.ms} ms)`);
    await stopMoat(proc);
  });

  it('a ban only one worker had in its store is in force in every worker from the start; an expired one is not brought back', async () => {
    const port = await freePort();
    const data = path.join(dir, 'one-store-data');
    // One process on worker 0's directory: what it bans is in that store only.
    const single = path.join(dir, 'one-store-single.yaml');
    writeFileSync(single, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\nlog:\n  format: json\nstore:\n  type: sqlite\n  directory: ${path.join(data, 'worker-0')}\n`
      + 'authentication:\n  - type: password_file\n    path: users.pw\nguard:\n  failures: { max_per_address: 3, window: 60 }\n  flapping: { connects: 2, window: 60, ban: 1 }\n');
    let proc = await startMoat(single);
    for (let n = 0; n < 3; n++) assert.equal(await outcome(port, '127.0.0.5', alice(`guess-${n}`, `guess-${n}`)), 4);
    assert.equal(await outcome(port, '127.0.0.5', alice('right')), 'closed', 'banned by the single process');
    const flappy = idOn(1, 'flappy');
    for (let n = 0; n < 3; n++) assert.equal(await outcome(port, '127.0.0.1', alice(flappy)), 0);
    assert.equal(await outcome(port, '127.0.0.1', alice(flappy)), 5, 'banned for flapping, for one second');
    const flappingBanned = Date.now();
    await stopMoat(proc);

    const multi = path.join(dir, 'one-store.yaml');
    writeFileSync(multi, readFileSync(single, 'utf8').replace('listeners:', `workers: ${WORKERS}\nlisteners:`).replace(path.join(data, 'worker-0'), data));
    proc = await startMoat(multi);
    await delay(Math.max(0, flappingBanned + 1100 - Date.now()));
    for (const worker of [0, 1]) {
      assert.equal(await outcome(port, '127.0.0.5', alice(idOn(worker, 'stored'))), 'closed', `worker ${worker}: the stored ban is in force`);
      assert.equal(await outcome(port, '127.0.0.1', alice(idOn(worker, 'local'))), 0, `worker ${worker}: 127.0.0.1 is served`);
    }
    assert.equal(await outcome(port, '127.0.0.1', alice(flappy)), 0, 'the expired flapping ban did not come back');
    await stopMoat(proc);
  });

  it('the primary lists, adds and lifts bans for every worker (the seam of the admin API); a lifted or expired ban does not come back after a restart', async () => {
    const port = await freePort();
    const audit = path.join(dir, 'api-audit.log');
    // The workers inherit this process's stdout: only errors are logged there, the audit trail goes to a file.
    const file = configFile('api', port, `log:\n  level: error\naudit:\n  file: ${audit}\n`);
    const primaryFor = (): Primary => new Primary({
      workers: WORKERS, listeners: [{ endpoint: { host: '127.0.0.1', port }, routed: true }], connectTimeout: 10, maxPacketSize: 1 << 20,
      logger: silentLogger, script: MOAT, args: ['-c', file],
    });
    const brief = idOn(1, 'brief');
    let primary = primaryFor();
    await primary.start();
    try {
      // Added in the primary: set by one worker (audited there once), in force in both.
      const ban = await primary.bans.ban('address', '127.0.0.3', 'testing', 300);
      assert.deepEqual([ban.kind, ban.value, ban.source], ['address', '127.0.0.3', 'api']);
      assert.deepEqual(primary.bans.list().map((b) => b.value), ['127.0.0.3']);
      for (const worker of [0, 1]) assert.equal(await outcome(port, '127.0.0.3', alice(idOn(worker, 'api'))), 'closed', `worker ${worker}: refused at accept`);

      // Detected by worker 1: the primary's table has it, worker 0 refuses the address too.
      for (let n = 0; n < 3; n++) assert.equal(await outcome(port, '127.0.0.4', alice(idOn(1, 'guess'), `guess-${n}`)), 4);
      await waitFor(() => primary.bans.list().some((b) => b.value === '127.0.0.4' && b.source === 'guard'), 3000, 'the detected ban in the primary\'s table');
      assert.equal(await outcome(port, '127.0.0.4', alice(idOn(0, 'elsewhere'))), 'closed', 'worker 0 refuses what worker 1 banned');

      // Lifted from the primary (by worker 0): worker 1, which set it, serves the address again.
      assert.equal(await primary.bans.unban('address', '127.0.0.4'), true);
      assert.deepEqual(primary.bans.list().map((b) => b.value), ['127.0.0.3']);
      const deadline = Date.now() + 3000;
      let again: number | 'closed' = 'closed';
      while (again !== 0 && Date.now() < deadline) again = await outcome(port, '127.0.0.4', alice(idOn(1, 'lifted')));
      assert.equal(again, 0, 'worker 1 serves the address once the ban is lifted');
      assert.equal(await outcome(port, '127.0.0.4', alice(idOn(0, 'lifted'))), 0, 'worker 0 too');
      assert.equal(await primary.bans.unban('address', '127.0.0.4'), false, 'nothing left to lift');

      // A ban on a client identifier, for one second: CONNACK 5 (MQTT 5: 0x8A Banned) on its worker while it lasts.
      await primary.bans.ban('clientId', brief, 'testing', 1);
      assert.equal(await outcome(port, '127.0.0.1', alice(brief)), 5);
      assert.equal(await outcome(port, '127.0.0.1', alice(brief, 'alice-password', 5)), 0x8a);
      await delay(1100);
      assert.equal(await outcome(port, '127.0.0.1', alice(brief)), 0, 'served once it expired');
      assert.deepEqual(primary.bans.list().map((b) => b.value), ['127.0.0.3']);
      await assert.rejects(primary.bans.ban('address', 'not-an-address', 'testing'), /not-an-address/);

      // One more that expires while the broker is stopped.
      await primary.bans.ban('username', 'mallory', 'testing', 1);
      await primary.stop(0);
      assert.equal(await primary.done, 0);
      await delay(1100);

      primary = primaryFor();
      await primary.start();
      assert.deepEqual(primary.bans.list().map((b) => [b.kind, b.value]), [['address', '127.0.0.3']], 'neither the lifted nor the expired bans came back');
      for (const worker of [0, 1]) {
        assert.equal(await outcome(port, '127.0.0.3', alice(idOn(worker, 'restart'))), 'closed', `worker ${worker}: still banned after the restart`);
        assert.equal(await outcome(port, '127.0.0.4', alice(idOn(worker, 'restart'))), 0, `worker ${worker}: the lifted ban stays lifted`);
      }
    } finally {
      await primary.stop(0);
    }
    assert.ok(existsSync(audit));
    const text = readFileSync(audit, 'utf8');
    assert.deepEqual(auditLines(text, 'guard.banned').map((l) => l.ban), ['address 127.0.0.3', 'address 127.0.0.4', `clientId ${brief}`, 'username mallory'],
      'each ban audited once, by the worker that set it');
    assert.deepEqual(auditLines(text, 'guard.unbanned').map((l) => l.ban), ['address 127.0.0.4'], 'the lift audited once');
  });
});

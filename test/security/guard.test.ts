import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { createServer } from '../../src/server/index.js';
import { rawConnect } from '../helpers/codec.js';
import { rawConnectV5 } from '../helpers/codec-v5.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/** The guard against real clients from several loopback addresses: brute force, flapping, static and stored bans. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

/** What a raw CONNECT got: a CONNACK return/reason code, or the connection closed without one. */
async function attempt(port: number, from: string, connect: Buffer): Promise<number | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let settled = false;
    const done = (result: number | 'closed'): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => socket.write(connect));
    socket.on('data', (chunk: Buffer) => {
      // CONNACK: 0x20, remaining length, flags, code.
      if (chunk[0] === 0x20 && chunk.length >= 4) done(chunk[3]!);
    });
    socket.once('error', () => done('closed'));
    socket.once('close', () => done('closed'));
    setTimeout(() => done('closed'), 5000).unref();
  });
}

const password = (text: string): number[] => [...Buffer.from(text)];

/** An MQTT.js client from a given loopback address (MQTT.js has no localAddress option: its stream is built here). */
function clientFrom(port: number, from: string, options: mqtt.IClientOptions): Promise<MqttClient> {
  const client = new mqtt.MqttClient(() => net.connect({ port, host: '127.0.0.1', localAddress: from }), { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
    client.once('close', () => reject(new Error(`closed before CONNACK (${from})`)));
  });
}

describe('guard', () => {
  let dir: string;
  let users: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-guard-'));
    users = path.join(dir, 'users.pw');
    const entries = await Promise.all(['alice', 'bob', 'root'].map((u) => createEntry(u, Buffer.from(`${u}-password`), { logN: 10, r: 8, p: 1 })));
    writeFileSync(users, `${entries.map(formatEntry).join('\n')}\n`);
  });
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function startMoat(name: string, extra = '', store = 'store:\n  type: memory\n'): Promise<{ proc: Proc; port: number; file: string }> {
    const port = await freePort();
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\nlog:\n  format: json\n${store}authentication:\n  - type: password_file\n    path: users.pw\n${extra}`);
    const proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
    return { proc, port, file };
  }

  it('brute force: 1,000 wrong passwords from one address are banned after 10, while 50 clients on other addresses lose nothing', async () => {
    const { proc, port } = await startMoat('brute');
    // 50 honest clients, each from its own address, each publishing 20 QoS 1 messages to itself during the attack.
    const honest = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      clientFrom(port, `127.0.1.${i + 1}`, { clientId: `honest-${i}`, username: 'alice', password: 'alice-password' })));
    const received = honest.map(() => [] as string[]);
    await Promise.all(honest.map(async (c, i) => {
      c.on('message', (_topic, payload) => received[i]!.push(payload.toString()));
      await c.subscribeAsync(`honest/${i}`, { qos: 1 });
    }));
    const traffic = Promise.all(honest.map(async (c, i) => {
      for (let n = 0; n < 20; n++) await c.publishAsync(`honest/${i}`, String(n), { qos: 1 });
    }));

    const outcomes = new Map<string, number>();
    const started = Date.now();
    for (let n = 0; n < 1000; n++) {
      const result = await attempt(port, '127.0.0.99', rawConnect({ clientId: `attacker-${n}`, username: 'alice', password: password(`guess-${n}`) }));
      outcomes.set(String(result), (outcomes.get(String(result)) ?? 0) + 1);
    }
    const attackMs = Date.now() - started;
    await traffic;
    assert.equal(outcomes.get('4'), 10, `exactly the first 10 guesses were answered "bad user name or password": ${JSON.stringify([...outcomes])}`);
    assert.equal(outcomes.get('closed'), 990, `the other 990 were closed at once, unanswered: ${JSON.stringify([...outcomes])}`);
    assert.ok(attackMs < 30_000, `1,000 attempts took ${attackMs} ms`);

    await new Promise((resolve) => setTimeout(resolve, 200));
    received.forEach((got, i) => assert.deepEqual(got, Array.from({ length: 20 }, (_, n) => String(n)), `honest client ${i} got every message once, in order`));
    for (const c of honest) assert.equal(c.connected, true, 'no honest client was disconnected');

    assert.equal(await attempt(port, '127.0.0.99', rawConnect({ clientId: 'attacker-right', username: 'bob', password: password('bob-password') })), 'closed', 'even the right password is refused from the banned address');
    assert.equal(await attempt(port, '127.0.0.98', rawConnect({ clientId: 'neighbour', username: 'bob', password: password('bob-password') })), 0, 'another address is served');
    const audit = proc.stdout.split('\n').filter((l) => l.includes('"guard.banned"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(audit.length, 1, 'one ban, audited once');
    assert.equal(audit[0]!.remoteAddress, '127.0.0.99');
    assert.equal(audit[0]!.rule, 'failed-authentication');
    assert.match(String(audit[0]!.until), /^\d{4}-\d\d-\d\dT/);
    for (const c of honest) await c.endAsync();
  });

  it('a ban set by the guard survives a restart (SQLite store); allow-listed addresses are never banned', async () => {
    const store = `store:\n  directory: ${path.join(dir, 'bans-data')}\n`;
    const extra = 'guard:\n  allow: [127.0.3.0/24]\n  failures: { max_per_address: 3, window: 60 }\n';
    let broker = await startMoat('restart', extra, store);
    for (let n = 0; n < 3; n++) await attempt(broker.port, '127.0.0.77', rawConnect({ clientId: `x${n}`, username: 'alice', password: password('nope') }));
    for (let n = 0; n < 10; n++) {
      assert.equal(await attempt(broker.port, '127.0.3.9', rawConnect({ clientId: `y${n}`, username: 'alice', password: password('nope') })), 4, 'allow-listed: always answered');
    }
    assert.equal(await attempt(broker.port, '127.0.0.77', rawConnect({ clientId: 'z', username: 'alice', password: password('alice-password') })), 'closed');
    broker.proc.kill('SIGTERM');
    assert.equal((await broker.proc.waitExit(10_000)).code, 0);

    const port = broker.port;
    const file = broker.file;
    const proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started again');
    broker = { proc, port, file };
    assert.equal(await attempt(port, '127.0.0.77', rawConnect({ clientId: 'z2', username: 'alice', password: password('alice-password') })), 'closed', 'still banned after the restart');
    assert.equal(await attempt(port, '127.0.3.9', rawConnect({ clientId: 'ok', username: 'alice', password: password('alice-password') })), 0);
  });

  it('flapping: a client identifier connecting more than N times in the window is banned (3.1.1 CONNACK 5, MQTT 5 0x8A Banned)', async () => {
    const { port } = await startMoat('flapping', 'guard:\n  flapping: { connects: 5, window: 60, ban: 300 }\n');
    const connect = rawConnect({ clientId: 'flappy', username: 'bob', password: password('bob-password') });
    for (let n = 0; n < 6; n++) assert.equal(await attempt(port, '127.0.0.20', connect), 0, `connect ${n + 1} accepted`);
    assert.equal(await attempt(port, '127.0.0.20', connect), 5, 'then refused: not authorized [MQTT-3.2.2-6]');
    const v5 = rawConnectV5({ clientId: 'flappy', username: 'bob', password: password('bob-password') });
    assert.equal(await attempt(port, '127.0.0.21', v5), 0x8a, 'MQTT 5: 0x8A Banned, from any address');
    assert.equal(await attempt(port, '127.0.0.20', rawConnect({ clientId: 'steady', username: 'bob', password: password('bob-password') })), 0, 'other identifiers are unaffected');
  });

  it('static bans from YAML: a user name (refused before its password is checked), a network (closed at accept)', async () => {
    const extra = 'guard:\n  bans:\n    - username: bob\n      reason: compromised\n    - network: 127.0.4.0/24\n';
    const { port, proc } = await startMoat('static', extra);
    assert.equal(await attempt(port, '127.0.0.30', rawConnectV5({ clientId: 'b', username: 'bob', password: password('bob-password') })), 0x8a);
    assert.equal(await attempt(port, '127.0.4.200', rawConnect({ clientId: 'n', username: 'alice', password: password('alice-password') })), 'closed');
    assert.equal(await attempt(port, '127.0.0.30', rawConnect({ clientId: 'a', username: 'alice', password: password('alice-password') })), 0);
    assert.doesNotMatch(proc.stdout, /"username":"bob"[^\n]*"connect.refused"/, 'the banned user never reached the password check');
  });

  it('the library API bans, lists and lifts bans, with events; the counters are in $SYS/broker/security/', async () => {
    const port = await freePort();
    const file = path.join(dir, 'library.yaml');
    writeFileSync(file, `listeners:\n  - port: ${port}\nsys_interval: 1\nstore:\n  type: memory\nauthentication:\n  - type: password_file\n    path: users.pw\n`);
    const server = createServer({ configFile: file });
    server.logger.level = 'silent';
    await server.listen();
    try {
      const guard = server.security.guard!;
      const events: string[] = [];
      guard.on('event', (e) => events.push(e.type === 'banned' ? `banned ${e.ban.kind} ${e.ban.value}` : e.type === 'unbanned' ? `unbanned ${e.kind} ${e.value}` : e.type === 'refused' ? `refused ${e.at}` : e.type));
      guard.ban('clientId', 'intruder', 'testing', 60);
      assert.deepEqual(guard.bans.list().map((b) => [b.kind, b.value, b.reason, b.source]), [['clientId', 'intruder', 'testing', 'api']]);
      assert.equal(await attempt(port, '127.0.0.40', rawConnect({ clientId: 'intruder', username: 'bob', password: password('bob-password') })), 5);
      assert.equal(guard.unban('clientId', 'intruder'), true);
      assert.equal(await attempt(port, '127.0.0.40', rawConnect({ clientId: 'intruder', username: 'bob', password: password('bob-password') })), 0);
      assert.deepEqual(events, ['banned clientId intruder', 'refused connect', 'unbanned clientId intruder']);

      const root = await clientFrom(port, '127.0.0.41', { clientId: 'sys-reader', username: 'root', password: 'root-password' });
      const sys = new Map<string, string>();
      root.on('message', (topic, payload) => sys.set(topic, payload.toString()));
      await root.subscribeAsync('$SYS/broker/security/#');
      const deadline = Date.now() + 4000;
      // The retained value may predate the refusal; the next update (every second) counts it.
      while (sys.get('$SYS/broker/security/refused/connect') !== '1' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(sys.get('$SYS/broker/security/refused/connect'), '1');
      assert.equal(sys.get('$SYS/broker/security/bans/active'), '0');
      await root.endAsync();
    } finally {
      await server.close();
    }
  });

  it('connection flood: 5,000 connections from one address in a few seconds are cut to its burst, while other addresses are served', async () => {
    const { port } = await startMoat('flood', 'guard:\n  connections: { burst_per_address: 500, rate_per_address: 50 }\n');
    let accepted = 0;
    let refused = 0;
    const opened: net.Socket[] = [];
    const flood = async (): Promise<void> => {
      for (let wave = 0; wave < 50; wave++) {
        await Promise.all(Array.from({ length: 100 }, () => new Promise<void>((resolve) => {
          const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.70' });
          // The guard closes a refused socket as it arrives; an accepted one waits for its CONNECT.
          const onClose = (): void => {
            clearTimeout(timer);
            refused++;
            resolve();
          };
          const timer = setTimeout(() => {
            socket.off('close', onClose);
            accepted++;
            opened.push(socket);
            resolve();
          }, 300);
          socket.once('close', onClose);
          socket.once('error', () => {});
        })));
      }
    };
    const started = Date.now();
    const flooding = flood();
    // Meanwhile, another address connects and is served at once.
    const neighbour = await clientFrom(port, '127.0.0.71', { clientId: 'neighbour', username: 'alice', password: 'alice-password' });
    await flooding;
    const seconds = (Date.now() - started) / 1000;
    for (const socket of opened) socket.destroy();
    assert.ok(accepted >= 500 && accepted <= 500 + Math.ceil(seconds * 50) + 50, `accepted ${accepted} of 5,000 in ${seconds.toFixed(1)} s (burst 500, then 50/s)`);
    assert.equal(accepted + refused, 5000);
    assert.equal(neighbour.connected, true);
    await neighbour.endAsync();
  });

  it('connections open at once from one address are capped; closing one makes room', async () => {
    const { port } = await startMoat('concurrent', 'guard:\n  connections: { max_per_address: 20 }\n');
    const held = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      clientFrom(port, '127.0.0.80', { clientId: `held-${i}`, username: 'alice', password: 'alice-password' })));
    await assert.rejects(clientFrom(port, '127.0.0.80', { clientId: 'one-too-many', username: 'alice', password: 'alice-password' }), /closed before CONNACK|ECONNRESET|EPIPE/);
    assert.equal(await attempt(port, '127.0.0.81', rawConnect({ clientId: 'elsewhere', username: 'alice', password: password('alice-password') })), 0, 'another address is not affected');
    await held[0]!.endAsync();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const again = await clientFrom(port, '127.0.0.80', { clientId: 'room-again', username: 'alice', password: 'alice-password' });
    for (const c of [...held.slice(1), again]) await c.endAsync();
  });

  it('distributed brute force on one user name from 50 addresses is slowed; its owner, from its usual address, still connects at once', async () => {
    const { port } = await startMoat('distributed', 'guard:\n  failures: { max_per_address: 10 }\n');
    // The owner has connected from its address before.
    assert.equal(await attempt(port, '127.0.5.1', rawConnect({ clientId: 'owner', username: 'bob', password: password('bob-password') })), 0);
    const timed = async (from: string, pass: string): Promise<{ code: number | 'closed'; ms: number }> => {
      const started = Date.now();
      const code = await attempt(port, from, rawConnect({ clientId: `c-${from}-${pass}`, username: 'bob', password: password(pass) }));
      return { code, ms: Date.now() - started };
    };
    // 50 addresses, one wrong guess each, then one more round: no address reaches its own threshold.
    const first = [];
    for (let i = 0; i < 50; i++) first.push(await timed(`127.0.6.${i + 1}`, `guess-${i}`));
    assert.ok(first.every((r) => r.code === 4), 'each guess refused as bad credentials');
    const late = await timed('127.0.6.200', 'guess-late');
    assert.equal(late.code, 4);
    assert.ok(late.ms >= 450, `after 50 failures (threshold 20) the answer for "bob" waits 0.5 s (${late.ms} ms)`);
    const owner = await timed('127.0.5.1', 'bob-password');
    assert.equal(owner.code, 0);
    assert.ok(owner.ms < 500, `the owner from its usual address is not delayed (${owner.ms} ms)`);
    const started = Date.now();
    assert.equal(await attempt(port, '127.0.6.201', rawConnect({ clientId: 'alice-elsewhere', username: 'alice', password: password('alice-password') })), 0);
    assert.ok(Date.now() - started < 500, 'another user name is not slowed');
  });

  it('honest fleet: 1,000 clients behind one address, the right password, all at the same moment: all accepted', async () => {
    const { port } = await startMoat('fleet');
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) =>
      attempt(port, '127.0.0.90', rawConnect({ clientId: `device-${i}`, username: 'alice', password: password('alice-password') }))));
    const counts = new Map<string, number>();
    for (const r of results) counts.set(String(r), (counts.get(String(r)) ?? 0) + 1);
    assert.deepEqual([...counts], [['0', 1000]], `all accepted in ${Date.now() - started} ms`);
  });

  it('guard: { enabled: false } turns it off: wrong passwords are answered however many', async () => {
    const { port } = await startMoat('off', 'guard:\n  enabled: false\n  failures: { max_per_address: 2 }\n');
    for (let n = 0; n < 6; n++) assert.equal(await attempt(port, '127.0.0.50', rawConnect({ clientId: `o${n}`, username: 'alice', password: password('nope') })), 4);
  });

  it('a configuration error in guard: names the key', async () => {
    const file = path.join(dir, 'bad-guard.yaml');
    writeFileSync(file, 'authentication:\n  - type: password_file\n    path: users.pw\nguard:\n  allow: [10.0.0.0/40]\n');
    const proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 15_000 });
    const status = await proc.waitExit(10_000);
    assert.equal(status.code, 1);
    assert.equal(proc.stderr, `moat: configuration error: ${file}:5: guard.allow.0: "10.0.0.0/40" is not an IP address or a network in CIDR notation (e.g. 10.0.0.0/8)\n`);
  });
});

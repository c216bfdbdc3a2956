import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { connectClient } from '../helpers/broker.js';
import { freePort, killAll, spawnProc } from '../helpers/process.js';
import { createServer } from '../../src/server/index.js';
import { createEntry, formatEntry } from '../../src/security/index.js';

/** SIGHUP (and the library's reload()) re-read the whole YAML file and apply what can change at runtime. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

function yaml(port: number, extra: { roles: string; users: string; limits?: string; listenerName?: string }): string {
  return [
    'listeners:',
    `  - name: ${extra.listenerName ?? 'main'}`,
    `    port: ${port}`,
    'log:',
    '  format: json',
    'store:',
    '  type: memory',
    'authentication:',
    '  - type: password_file',
    '    path: users.pw',
    'authorization:',
    '  roles:',
    extra.roles,
    '  users:',
    extra.users,
    extra.limits ?? '',
  ].join('\n');
}

const READER_ONLY = { roles: '    reader:\n      - topic: a/#', users: '    alice: { roles: [reader] }\n    bob: { roles: [reader] }' };
const WITH_WRITER = {
  roles: '    reader:\n      - topic: a/#\n    writer:\n      - topic: b/#',
  users: '    alice: { roles: [reader, writer] }\n    bob: { roles: [reader] }\n    carol: { roles: [writer] }',
};

/** True if a publish by `client` on `topic` reaches a subscriber allowed to read it. */
async function publishReaches(publisher: MqttClient, subscriber: MqttClient, topic: string): Promise<boolean> {
  const payload = `p-${Math.random()}`;
  const got = new Promise<boolean>((resolve) => {
    const onMessage = (t: string, p: Buffer): void => {
      if (t === topic && p.toString() === payload) resolve(true);
    };
    subscriber.on('message', onMessage);
    setTimeout(() => {
      subscriber.off('message', onMessage);
      resolve(false);
    }, 700);
  });
  await publisher.publishAsync(topic, payload, { qos: 1 });
  return got;
}

describe('configuration reload', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-reload-'));
    const entries = await Promise.all(['alice', 'bob', 'carol', 'root'].map((u) => createEntry(u, Buffer.from(`${u}-password`))));
    writeFileSync(path.join(dir, 'users.pw'), `${entries.map(formatEntry).join('\n')}\n`);
  });
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('SIGHUP applies a role and a user added to the YAML (connected clients included), a new limit, and names what needs a restart', async () => {
    const port = await freePort();
    const file = path.join(dir, 'sighup.yaml');
    writeFileSync(file, yaml(port, { ...READER_ONLY, roles: `${READER_ONLY.roles}\n    root:\n      - topic: '#'`, users: `${READER_ONLY.users}\n    root: { roles: [root] }` }));
    const broker = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 60_000 });
    await broker.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
    const url = `mqtt://127.0.0.1:${port}`;
    const watcher = await connectClient(url, { username: 'root', password: 'root-password' });
    await watcher.subscribeAsync('#', { qos: 1 });
    const alice = await connectClient(url, { username: 'alice', password: 'alice-password' });
    assert.equal(await publishReaches(alice, watcher, 'b/1'), false, 'before: alice may not write b/#');
    const carolBefore = await connectClient(url, { username: 'carol', password: 'carol-password' });
    assert.equal(await publishReaches(carolBefore, watcher, 'b/2'), false, 'before: carol has no rules in the YAML');
    await carolBefore.endAsync();

    writeFileSync(file, yaml(port, {
      roles: `${WITH_WRITER.roles}\n    root:\n      - topic: '#'`,
      users: `${WITH_WRITER.users}\n    root: { roles: [root] }`,
      limits: 'limits:\n  max_topic_levels: 3',
      listenerName: 'renamed',
    }));
    broker.kill('SIGHUP');
    await broker.waitStdout((out) => out.includes('"configuration reloaded"'), 5000, 'configuration reloaded');
    assert.equal(await publishReaches(alice, watcher, 'b/1'), true, 'after: the connected alice writes b/# at once');
    const carol = await connectClient(url, { username: 'carol', password: 'carol-password' });
    assert.equal(await publishReaches(carol, watcher, 'b/2'), true, 'carol, added to the YAML, is served');
    const deep = await connectClient(url, { username: 'alice', password: 'alice-password', reconnectPeriod: 0 });
    const closed = new Promise<void>((resolve) => deep.once('close', () => resolve()));
    deep.publish('a/1/2/3', 'four levels', { qos: 0 });
    await closed; // the new max_topic_levels (3) applies: a 4-level topic ends the connection
    deep.end(true);
    assert.match(broker.stdout, /"sections":\["listeners"\]/, 'the renamed listener is named as needing a restart');
    for (const c of [watcher, alice, carol]) await c.endAsync();
  });

  it('multi-core: SIGHUP to the primary makes every worker apply the new roles', async () => {
    const port = await freePort();
    const file = path.join(dir, 'workers.yaml');
    const roles = { roles: `${READER_ONLY.roles}\n    root:\n      - topic: '#'`, users: `${READER_ONLY.users}\n    root: { roles: [root] }` };
    writeFileSync(file, `workers: 2\n${yaml(port, roles)}`);
    const broker = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 60_000 });
    await broker.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
    const url = `mqtt://127.0.0.1:${port}`;
    const watcher = await connectClient(url, { username: 'root', password: 'root-password' });
    await watcher.subscribeAsync('#', { qos: 1 });
    // Client identifiers spread over both workers (affinity by identifier).
    const writers = await Promise.all(['w-1', 'w-2', 'w-3', 'w-4', 'w-5', 'w-6'].map((clientId) =>
      connectClient(url, { clientId, username: 'alice', password: 'alice-password' })));
    for (const w of writers) assert.equal(await publishReaches(w, watcher, `b/${w.options.clientId}`), false, 'before: no b/# for alice');
    writeFileSync(file, `workers: 2\n${yaml(port, { roles: `${WITH_WRITER.roles}\n    root:\n      - topic: '#'`, users: `${WITH_WRITER.users}\n    root: { roles: [root] }` })}`);
    broker.kill('SIGHUP');
    await broker.waitStdout((out) => out.split('"configuration reloaded"').length - 1 >= 2, 10_000, 'both workers reloaded');
    for (const w of writers) assert.equal(await publishReaches(w, watcher, `b/${w.options.clientId}`), true, `after: ${w.options.clientId} writes b/#`);
    for (const c of [watcher, ...writers]) await c.endAsync();
    broker.kill('SIGTERM');
    assert.equal((await broker.waitExit(15_000)).code, 0);
  });

  it('multi-core: SIGHUP gives the primary the new connect_timeout too (it holds a socket until its CONNECT)', async () => {
    const port = await freePort();
    const file = path.join(dir, 'workers-timeout.yaml');
    const config = (seconds: number): string => `workers: 2\nlisteners:\n  - port: ${port}\nlog:\n  format: json\nstore:\n  type: memory\nlimits:\n  connect_timeout: ${seconds}\n`;
    writeFileSync(file, config(30));
    const broker = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 60_000 });
    await broker.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
    writeFileSync(file, config(1));
    broker.kill('SIGHUP');
    await broker.waitStdout((out) => out.split('"configuration reloaded"').length - 1 >= 2, 10_000, 'both workers reloaded');
    const silent = net.connect(port, '127.0.0.1');
    const opened = Date.now();
    await new Promise<void>((resolve) => silent.once('close', () => resolve()));
    const held = Date.now() - opened;
    assert.ok(held < 5000, `a socket that sends nothing is closed after the new 1 s, not 30 s (closed after ${held} ms)`);
    broker.kill('SIGTERM');
    assert.equal((await broker.waitExit(15_000)).code, 0);
  });

  it('a reload with an error keeps the running configuration and says why', async () => {
    const port = await freePort();
    const file = path.join(dir, 'broken.yaml');
    writeFileSync(file, yaml(port, WITH_WRITER));
    const broker = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 60_000 });
    await broker.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
    writeFileSync(file, `${yaml(port, WITH_WRITER)}\nlimits:\n  max_topic_levels: many\n`);
    broker.kill('SIGHUP');
    await broker.waitStdout((out) => out.includes('configuration not reloaded'), 5000, 'the refusal');
    const line = broker.stdout.split('\n').find((l) => l.includes('configuration not reloaded'))!;
    assert.match(line, /max_topic_levels/, `names the key: ${line}`);
    assert.match(line, /broken\.yaml:\d+/, `names the file and line: ${line}`);
    const url = `mqtt://127.0.0.1:${port}`;
    const carol = await connectClient(url, { username: 'carol', password: 'carol-password' });
    const watcher = await connectClient(url, { username: 'alice', password: 'alice-password' });
    await watcher.subscribeAsync('b/#', { qos: 1 });
    assert.equal(await publishReaches(carol, watcher, 'b/x'), true, 'the running rules still hold');
    await carol.endAsync();
    await watcher.endAsync();
  });

  it('a reload that turns authentication off applies none of it: clients are judged as before, and the log says a restart is needed', async () => {
    const port = await freePort();
    const file = path.join(dir, 'auth-off.yaml');
    writeFileSync(file, yaml(port, WITH_WRITER));
    const server = createServer({ configFile: file });
    server.logger.level = 'silent';
    await server.listen();
    try {
      const url = `mqtt://127.0.0.1:${port}`;
      const connected = await connectClient(url, { username: 'carol', password: 'carol-password' });
      writeFileSync(file, `listeners:\n  - name: main\n    port: ${port}\n    allow_anonymous: true\nlog:\n  format: json\nstore:\n  type: memory\n`);
      const result = server.reload();
      assert.equal(result.ok, true, result.error);
      assert.deepEqual(result.applied, []);
      assert.ok(result.restartNeeded.includes('authentication turned on or off'), result.restartNeeded.join(', '));
      assert.ok(result.restartNeeded.includes('authorization turned on or off'), result.restartNeeded.join(', '));
      const watcher = await connectClient(url, { username: 'alice', password: 'alice-password' });
      await watcher.subscribeAsync('b/#', { qos: 1 });
      assert.equal(await publishReaches(connected, watcher, 'b/still'), true, 'the connected client keeps its rights');
      await assert.rejects(connectClient(url, { username: 'carol', password: 'wrong-password' }), /Bad username or password|Not authorized/, 'passwords are still checked');
      await assert.rejects(connectClient(url), /Not authorized|Bad username/, 'anonymous clients are still refused');
      await connected.endAsync();
      await watcher.endAsync();
    } finally {
      await server.close();
    }
  });

  it('the library reload() does the same, and returns what it applied and what needs a restart', async () => {
    const port = await freePort();
    const file = path.join(dir, 'library.yaml');
    writeFileSync(file, yaml(port, READER_ONLY));
    const server = createServer({ configFile: file });
    server.logger.level = 'silent';
    await server.listen();
    try {
      const url = `mqtt://127.0.0.1:${port}`;
      const alice = await connectClient(url, { username: 'alice', password: 'alice-password' });
      await assert.rejects(alice.subscribeAsync('b/#', { qos: 1 }), /Subscribe error/, 'before: b/# refused (SUBACK 0x80)');
      writeFileSync(file, yaml(await freePort(), WITH_WRITER));
      const result = server.reload();
      assert.equal(result.ok, true, result.error);
      assert.deepEqual(result.applied, ['authentication and authorization']);
      assert.deepEqual(result.restartNeeded, ['listeners']);
      const again = await alice.subscribeAsync('b/#', { qos: 1 });
      assert.equal(again[0]!.qos, 1, 'after: b/# granted to the connected client');
      await alice.endAsync();
    } finally {
      await server.close();
    }
  });
});

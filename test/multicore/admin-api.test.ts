import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { OPENAPI_DOCUMENT } from '../../src/admin/index.js';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { delay } from '../helpers/broker.js';
import { idOn } from '../helpers/multicore.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/**
 * The REST API in multi-core mode: a real `moat` with `workers: 2` (SQLite store), MQTT.js clients placed on the
 * worker wanted (the primary routes by `workerFor`, so `idOn` picks identifiers for each). Lists cover every worker;
 * one client or session is found and acted on where it is; retained messages are held by every worker and listed once;
 * runtime users created through the API log in on either worker, a deleted one nowhere, and both survive a restart;
 * a stalled worker (SIGSTOP) makes lists say `partial` and lookups 503, instead of hanging or leaving it out silently.
 */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');
const FAST = { logN: 10, r: 8, p: 1 };
const WRITE_TOKEN = 'ops-0123456789abcdef0123456789abcdef0123456789';
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

interface Page { items: Array<Record<string, unknown>>; total: number; partial?: boolean; workers_missing?: number[] }

describe('REST API in multi-core mode (workers: 2)', () => {
  let dir: string;
  let mqttPort: number;
  let base: string;
  let proc: Proc;
  const clients: MqttClient[] = [];

  async function api(method: string, pathname: string, body?: unknown): Promise<{ status: number; json: any }> {
    const headers: Record<string, string> = { authorization: `Bearer ${WRITE_TOKEN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${pathname}`, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
    const text = await res.text();
    return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
  }
  const connect = async (clientId: string, options: Partial<IClientOptions> = {}, user = ['bob', 'bob-password']): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId, username: user[0], password: user[1], protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...options,
    });
    clients.push(client);
    return client;
  };
  /** 0 once accepted (then closed), else the CONNACK's refusal code. */
  const login = (clientId: string, user: string, password: string): Promise<number | 'closed'> => new Promise((resolve) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId, username: user, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 });
    const done = (result: number | 'closed'): void => {
      client.end(true);
      resolve(result);
    };
    client.once('connect', () => done(0));
    client.once('error', (err) => done(typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 'closed'));
    client.once('close', () => done('closed'));
  });
  const start = async (): Promise<void> => {
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
  };
  /** Waits for a security.change audit line with these fields (pino writes asynchronously). */
  const changeAudited = (fields: Record<string, string>): Promise<void> => proc.waitStdout((out) => out.split('\n').some((line) => {
    if (!line.includes('"security.change"')) return false;
    const event = JSON.parse(line) as Record<string, unknown>;
    return Object.entries(fields).every(([k, v]) => event[k] === v);
  }), 5000, `security.change ${JSON.stringify(fields)}`);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-mc-api-'));
    mqttPort = await freePort();
    const adminPort = await freePort();
    base = `http://127.0.0.1:${adminPort}`;
    const lines = await Promise.all(Object.entries({ root: 'root-password', bob: 'bob-password' }).map(async ([u, p]) => formatEntry(await createEntry(u, Buffer.from(p), FAST))));
    writeFileSync(path.join(dir, 'passwords'), `${lines.join('\n')}\n`);
    writeFileSync(path.join(dir, 'moat.yaml'), [
      'workers: 2',
      `listeners:\n  - { name: mqtt, host: 127.0.0.1, port: ${mqttPort} }`,
      'authentication:\n  - { type: password_file, path: passwords }',
      'authorization:\n  roles:\n    admin: []\n    device: [{ topic: "#" }]\n  users:\n    root: { roles: [admin] }\n    bob: { roles: [device] }',
      `admin:\n  host: 127.0.0.1\n  port: ${adminPort}`,
      `  tokens:\n    - { name: ops, token_sha256: ${sha256(WRITE_TOKEN)}, scopes: [read, write] }`,
      `log: { format: json }\nstore: { type: sqlite, directory: ${path.join(dir, 'data')} }`,
    ].join('\n'));
    await start();
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('clients of both workers are listed, looked up and kicked where they are; sessions and subscriptions too', async () => {
    const on0 = idOn(0, 'mc');
    const on1 = idOn(1, 'mc');
    await connect(on0);
    const kickMe = await connect(on1, { protocolVersion: 5 });
    await kickMe.subscribeAsync('mc/+/x', { qos: 1 });
    const listed = (await api('GET', '/api/v1/clients?id=mc-*')).json as Page;
    assert.deepEqual(listed.items.map((c) => c.id).sort(), [on0, on1].sort());
    assert.equal(listed.total, 2);
    assert.equal(listed.partial, undefined, 'every worker answered');
    const detail = await api('GET', `/api/v1/clients/${on1}`);
    assert.equal(detail.status, 200);
    assert.deepEqual(detail.json.subscriptions, [{ filter: 'mc/+/x', qos: 1, no_local: false, retain_as_published: false }]);
    assert.equal((await api('GET', '/api/v1/clients/mc-nobody')).status, 404);
    const subscriptions = (await api('GET', '/api/v1/subscriptions?filter=mc/%2B/x')).json as Page;
    assert.deepEqual(subscriptions.items.map((s) => s.client_id), [on1]);

    const reason = new Promise<number | undefined>((resolve) => kickMe.once('disconnect', (packet) => resolve(packet.reasonCode)));
    assert.equal((await api('DELETE', `/api/v1/clients/${on1}`)).status, 200);
    assert.equal(await reason, 0x98, 'worker 1 disconnected it: Administrative action');
    await changeAudited({ principal: 'token:ops', target: 'client', name: on1, change: 'kicked' });

    // A persistent session on worker 1, offline: listed, read, removed there.
    const keeper = idOn(1, 'keep');
    const first = await connect(keeper, { clean: false });
    await first.subscribeAsync('keep/#', { qos: 1 });
    await first.endAsync();
    await delay(100);
    const offline = (await api('GET', '/api/v1/sessions?state=offline')).json as Page;
    assert.ok(offline.items.some((s) => s.client_id === keeper && s.subscriptions === 1));
    assert.equal((await api('GET', `/api/v1/sessions/${keeper}`)).json.subscriptions.length, 1);
    assert.deepEqual((await api('DELETE', `/api/v1/sessions/${keeper}`)).json, { removed: keeper, was_online: false });
    assert.equal((await api('GET', `/api/v1/sessions/${keeper}`)).status, 404);
    const again = await connect(keeper, { clean: false });
    assert.equal(again.connected, true);
    await changeAudited({ principal: 'token:ops', target: 'session', name: keeper, change: 'deleted' });
  });

  it('retained messages: every worker holds them, listed once; deleted from one, gone from all', async () => {
    const publisher = await connect(idOn(1, 'ret'));
    await publisher.publishAsync('mc-shelf/a', 'kept', { qos: 1, retain: true });
    await delay(200);
    const listed = (await api('GET', '/api/v1/retained?prefix=mc-shelf')).json as Page;
    assert.deepEqual(listed.items.map((m) => m.topic), ['mc-shelf/a'], 'once, not once per worker');
    assert.equal((await api('GET', '/api/v1/retained/mc-shelf/a')).json.payload_utf8, 'kept');
    assert.deepEqual((await api('GET', '/api/v1/topics?prefix=mc-shelf')).json.levels, [{ level: 'a', topic: 'mc-shelf/a', subscriptions: 0, retained: 1, has_children: false }]);
    assert.equal((await api('DELETE', '/api/v1/retained/mc-shelf/a')).status, 200);
    await delay(200);
    for (const worker of [0, 1]) {
      const reader = await connect(idOn(worker, 'late'));
      const got: string[] = [];
      reader.on('message', (topic) => got.push(topic));
      await reader.subscribeAsync('mc-shelf/#', { qos: 1 });
      await delay(200);
      assert.deepEqual(got, [], `worker ${worker} holds it no more`);
    }
    await changeAudited({ principal: 'token:ops', target: 'retained', name: 'mc-shelf/a', change: 'deleted' });
  });

  it('bans: a client on worker 1 banned by the API is disconnected, refused on both workers, listed once, and lifted', async () => {
    const victim = idOn(1, 'ban');
    const client = await connect(victim);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const ban = await api('POST', `/api/v1/clients/${victim}/ban`, { by: 'user', duration: 600, reason: 'testing' });
    assert.equal(ban.status, 201, JSON.stringify(ban.json));
    await closed;
    for (const worker of [0, 1]) assert.notEqual(await login(idOn(worker, 'banned'), 'bob', 'bob-password'), 0, `worker ${worker}: refused`);
    const bans = (await api('GET', '/api/v1/bans?kind=username')).json as Page;
    assert.deepEqual(bans.items.map((b) => b.value), ['bob']);
    assert.equal((await api('DELETE', '/api/v1/bans/username/bob')).status, 200);
    await delay(100);
    for (const worker of [0, 1]) assert.equal(await login(idOn(worker, 'unbanned'), 'bob', 'bob-password'), 0);
    await changeAudited({ principal: 'token:ops', target: 'ban', name: 'username:bob', change: 'added' });
    await changeAudited({ principal: 'token:ops', target: 'ban', name: 'username:bob', change: 'removed' });
  });

  it('runtime users: created through the API they log in on either worker with their role; deleted, refused everywhere', async () => {
    const role = await api('POST', '/api/v1/roles', { name: 'sensors', rules: [{ filter: 'sensors/#', actions: ['publish', 'subscribe', 'receive'], effect: 'allow' }] });
    assert.equal(role.status, 201, JSON.stringify(role.json));
    for (const name of ['dave', 'erin']) assert.equal((await api('POST', '/api/v1/users', { name, password: `${name}-password`, roles: ['sensors'] })).status, 201);
    await changeAudited({ principal: 'token:ops', target: 'user', name: 'dave', change: 'created' });
    // Several clients, on both workers.
    for (const id of [idOn(0, 'dave'), idOn(1, 'dave'), idOn(0, 'dave'), idOn(1, 'dave')]) assert.equal(await login(id, 'dave', 'dave-password'), 0, id);
    assert.equal(await login(idOn(1, 'dave'), 'dave', 'wrong'), 4, 'bad user name or password');
    // The role is in force on worker 1 too: dave there reaches a subscriber on worker 0 on sensors/, nothing else.
    const watcher = await connect(idOn(0, 'watch'));
    const got: string[] = [];
    watcher.on('message', (topic) => got.push(topic));
    await watcher.subscribeAsync(['sensors/#', 'elsewhere/#'], { qos: 1 });
    const dave = await connect(idOn(1, 'dave'), {}, ['dave', 'dave-password']);
    await dave.publishAsync('sensors/t', 'x', { qos: 1 });
    await dave.publishAsync('elsewhere/t', 'x', { qos: 0 });
    await delay(300);
    assert.deepEqual(got, ['sensors/t']);
    await dave.endAsync();

    assert.equal((await api('DELETE', '/api/v1/users/dave')).status, 200);
    for (const worker of [0, 1]) assert.equal(await login(idOn(worker, 'dave'), 'dave', 'dave-password'), 4, `worker ${worker}: dave deleted`);
    await changeAudited({ principal: 'token:ops', target: 'user', name: 'dave', change: 'deleted' });
    assert.deepEqual(((await api('GET', '/api/v1/users')).json as Page).items.map((u) => u.name), ['erin']);

  });

  it('the security feed gathers every worker\'s events, and the API\'s own changes, in one numbered list', async () => {
    const before = (await api('GET', '/api/v1/events?limit=1')).json as { last_seq: number; boot_id: string };
    const on0 = idOn(0, 'guess');
    const on1 = idOn(1, 'guess');
    assert.equal(await login(on0, 'bob', 'wrong-0'), 4);
    assert.equal(await login(on1, 'bob', 'wrong-1'), 4);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'feed-role', rules: [] })).status, 201);
    let events: Array<Record<string, unknown>> = [];
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const page = (await api('GET', `/api/v1/events?after=${before.last_seq}`)).json as { items: Array<Record<string, unknown>>; boot_id: string };
      assert.equal(page.boot_id, before.boot_id);
      events = page.items;
      if (events.some((e) => e.event === 'security.change' && e.name === 'feed-role') && events.filter((e) => e.event === 'connect.refused').length >= 2) break;
      await delay(100);
    }
    const refused = events.filter((e) => e.event === 'connect.refused').map((e) => e.clientId).sort();
    assert.deepEqual(refused, [on0, on1].sort(), 'refusals from worker 0 and worker 1');
    assert.ok(events.some((e) => e.event === 'security.change' && e.target === 'role' && e.name === 'feed-role' && e.principal === 'token:ops'));
    const seqs = events.map((e) => e.seq as number);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'numbered in the order the primary received them');
  });

  it('every documented endpoint is served, configuration and reload included', async () => {
    const config = await api('GET', '/api/v1/broker/config');
    assert.equal(config.status, 200);
    assert.equal(config.json.admin.tokens[0].sha256, '[redacted]');
    const reload = await api('POST', '/api/v1/broker/reload');
    assert.deepEqual(reload.json, { ok: true, applied: [], restart_needed: [] });
    await changeAudited({ principal: 'token:ops', target: 'config', change: 'reloaded' });
    for (const [template, operations] of Object.entries(OPENAPI_DOCUMENT.paths)) {
      for (const method of Object.keys(operations)) {
        if (template.endsWith('/reload')) continue;
        const res = await api(method.toUpperCase(), template.replace(/\{\w+\}/g, 'zz-none'), method === 'post' || method === 'patch' ? {} : undefined);
        assert.ok(res.status !== 405 && !(res.status === 404 && /no such endpoint/.test(String(res.json?.error))), `${method} ${template}: ${res.status}`);
        assert.ok(res.status < 500, `${method} ${template}: ${res.status} ${JSON.stringify(res.json)}`);
      }
    }
  });

  it('a worker that does not answer in time: lists say partial and name it, a lookup that needs it is 503, nothing hangs', async () => {
    const on0 = idOn(0, 'stall');
    const on1 = idOn(1, 'stall');
    await connect(on0);
    await connect(on1);
    const worker1 = ((await api('GET', '/api/v1/broker')).json as { workers: Array<{ index: number; pid: number }> }).workers[1]!.pid;
    process.kill(worker1, 'SIGSTOP');
    try {
      const started = Date.now();
      const [list, lookup] = await Promise.all([api('GET', '/api/v1/clients?id=stall-*'), api('GET', `/api/v1/clients/${on1}`)]);
      assert.ok(Date.now() - started < 4000, `answered in ${Date.now() - started} ms`);
      assert.equal(list.status, 200);
      assert.deepEqual(list.json.items.map((c: { id: string }) => c.id), [on0]);
      assert.equal(list.json.partial, true);
      assert.deepEqual(list.json.workers_missing, [1]);
      assert.equal(lookup.status, 503);
      assert.deepEqual(lookup.json.workers_missing, [1]);
      assert.equal((await api('GET', `/api/v1/clients/${on0}`)).status, 200, 'found on worker 0, which answered');
    } finally {
      process.kill(worker1, 'SIGCONT');
    }
    const whole = (await api('GET', '/api/v1/clients?id=stall-*')).json as Page;
    assert.equal(whole.total, 2);
    assert.equal(whole.partial, undefined);
  });

  it('runtime users over restarts: every worker finds them in its store, and a worker new to its directory is given them', async () => {
    const restart = async (workers: number): Promise<void> => {
      proc.kill('SIGTERM');
      assert.equal((await proc.waitExit(20_000)).code, 0);
      if (workers !== 2) writeFileSync(path.join(dir, 'moat.yaml'), readFileSync(path.join(dir, 'moat.yaml'), 'utf8').replace('workers: 2', `workers: ${workers}`));
      await start();
    };
    await restart(2);
    for (const worker of [0, 1]) {
      assert.equal(await login(idOn(worker, 'erin'), 'erin', 'erin-password'), 0, `worker ${worker}: erin after the restart`);
      assert.equal(await login(idOn(worker, 'dave'), 'dave', 'dave-password'), 4, `worker ${worker}: dave still deleted after the restart`);
    }
    assert.deepEqual(((await api('GET', '/api/v1/users')).json as Page).items.map((u) => u.name), ['erin']);
    assert.deepEqual((await api('GET', '/api/v1/roles/sensors')).json.rules.map((r: { filter: string }) => r.filter), ['sensors/#']);
    // Worker 2's store starts empty: the primary gives it the newest set the others had.
    await restart(3);
    assert.equal(await login(idOn(2, 'erin', 3), 'erin', 'erin-password'), 0, 'worker 2: erin');
    assert.equal(await login(idOn(2, 'dave', 3), 'dave', 'dave-password'), 4, 'worker 2: no dave');
  });
});

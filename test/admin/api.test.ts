import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { apiRoutes, OPENAPI_DOCUMENT, type ApiContext } from '../../src/admin/index.js';
import { redact, REDACTED } from '../../src/admin/api/broker.js';
import { matchPath } from '../../src/admin/server.js';
import { sha256, startAdminBroker } from '../helpers/admin.js';
import { killAll, run } from '../helpers/process.js';

/**
 * The REST API under /api/v1/ against a real `moat` process with MQTT.js clients (3.1.1 and 5) and mosquitto_pub:
 * clients listed, filtered and paged, kicked (MQTT 5: DISCONNECT 0x98) and banned; an offline session deleted; a
 * retained message browsed and deleted; a role and a user created and used; the configuration (redacted) and a
 * reload; tokens with and without the write scope; the OpenAPI document against the routes.
 */

const WRITE_TOKEN = 'write-0123456789abcdef0123456789abcdef0123456789';
const READ_TOKEN = 'read-0123456789abcdef0123456789abcdef0123456789';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Page { items: Array<Record<string, unknown>>; total: number; next_cursor?: string }

describe('admin REST API (/api/v1/)', () => {
  let dir: string;
  let mqttPort: number;
  let base: string;
  const clients: MqttClient[] = [];

  async function api(method: string, pathname: string, body?: unknown, token: string | null = WRITE_TOKEN): Promise<{ status: number; json: any }> {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${pathname}`, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
    const text = await res.text();
    return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
  }

  function connect(clientId: string, protocolVersion: 4 | 5, extra: Partial<IClientOptions> = {}, user = ['bob', 'bob-password']): Promise<MqttClient> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId, username: user[0], password: user[1], protocolVersion, reconnectPeriod: 0, connectTimeout: 5000, ...extra,
    });
    clients.push(client);
    return new Promise((resolve, reject) => {
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });
  }
  const connack = (clientId: string, protocolVersion: 4 | 5, extra: Partial<IClientOptions> = {}, user?: string[]): Promise<{ sessionPresent: boolean }> =>
    new Promise((resolve, reject) => {
      const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
        clientId, username: user?.[0] ?? 'bob', password: user?.[1] ?? 'bob-password', protocolVersion, reconnectPeriod: 0, connectTimeout: 5000, ...extra,
      });
      clients.push(client);
      client.once('connect', (packet) => resolve({ sessionPresent: packet.sessionPresent }));
      client.once('error', reject);
    });
  const ids = (page: Page): string[] => page.items.map((c) => String(c.id)).sort();

  before(async () => {
    ({ dir, mqttPort, base } = await startAdminBroker({
      prefix: 'moat-api-',
      users: { root: { password: 'root-password', roles: ['admin'] }, bob: { password: 'bob-password', roles: ['device'] }, carol: { password: 'carol-password', roles: ['device'] } },
      tokens: [{ name: 'writer', token: WRITE_TOKEN, scopes: ['read', 'write'] }, { name: 'reader', token: READ_TOKEN, scopes: ['read'] }],
      yaml: ['audit: { file: audit.log }'],
    }));
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('authorization: no token 401, a read token GETs but gets 403 on DELETE; the call is in the audit trail', async () => {
    assert.equal((await api('GET', '/api/v1/clients', undefined, null)).status, 401);
    const read = await api('GET', '/api/v1/clients', undefined, READ_TOKEN);
    assert.equal(read.status, 200);
    assert.equal(typeof read.json.total, 'number');
    const del = await api('DELETE', '/api/v1/clients/anyone', undefined, READ_TOKEN);
    assert.equal(del.status, 403);
    assert.deepEqual(del.json, { error: 'token:reader does not have the "write" scope' });
    await sleep(100);
    const audit = readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(audit.some((l) => l.event === 'admin.request' && l.principal === 'token:reader' && l.httpMethod === 'DELETE' && l.path === '/api/v1/clients/anyone' && l.status === 403));
  });

  it('clients: listed with their fields, filtered by id, user, address, listener and protocol, paged by cursor and offset', async () => {
    const v5 = await connect('list-v5', 5, { properties: { sessionExpiryInterval: 60 }, keepalive: 33 });
    const a = await connect('list-a', 4);
    await connect('list-b', 4);
    await new Promise<void>((resolve) => v5.subscribe('list/+/x', { qos: 1 }, () => resolve()));
    // What each connection carried: list-a publishes 3 messages of 5 bytes, list-v5 receives them.
    for (let i = 0; i < 3; i++) await a.publishAsync('list/a/x', 'hello', { qos: 1 });
    await new Promise((r) => setTimeout(r, 200));
    const all = (await api('GET', '/api/v1/clients?id=list-*')).json as Page;
    const traffic = (id: string): unknown[] => { const c = all.items.find((x) => x.id === id)!; return [c.messages_in, c.messages_out]; };
    assert.deepEqual(traffic('list-a'), [3, 0]);
    assert.deepEqual(traffic('list-v5'), [0, 3]);
    const sender = all.items.find((c) => c.id === 'list-a')!;
    assert.ok(Number(sender.bytes_in) >= 3 * (2 + 2 + 8 + 2 + 5), `bytes in counts the PUBLISH packets: ${sender.bytes_in}`);
    assert.ok((sender.rates as Record<string, number>).messages_in_per_second > 0, 'an average rate since the connect');
    assert.deepEqual(ids(all), ['list-a', 'list-b', 'list-v5']);
    const one = all.items.find((c) => c.id === 'list-v5')!;
    assert.equal(one.user, 'bob');
    assert.equal(one.address, '127.0.0.1');
    assert.equal(typeof one.port, 'number');
    assert.equal(one.listener, 'mqtt');
    assert.equal(one.protocol, '5');
    assert.equal(one.keep_alive, 33);
    assert.equal(one.session_expiry_interval, 60);
    assert.equal(one.clean_start, true);
    assert.ok(Date.now() - Date.parse(String(one.connected_since)) < 60_000);
    assert.deepEqual(ids((await api('GET', '/api/v1/clients?id=list-*&protocol=5')).json), ['list-v5']);
    assert.deepEqual(ids((await api('GET', '/api/v1/clients?id=list-*&protocol=3.1.1')).json), ['list-a', 'list-b']);
    assert.deepEqual(ids((await api('GET', '/api/v1/clients?id=list-a')).json), ['list-a']);
    assert.deepEqual(ids((await api('GET', '/api/v1/clients?id=list-*&user=bob&address=127.0.0.0/8&listener=mqtt')).json), ['list-a', 'list-b', 'list-v5']);
    assert.equal((await api('GET', '/api/v1/clients?id=list-*&user=nobody')).json.total, 0);
    assert.equal((await api('GET', '/api/v1/clients?id=list-*&listener=other')).json.total, 0);
    assert.equal((await api('GET', '/api/v1/clients?protocol=6')).status, 400);
    // Paging: two pages of 2 by cursor; the offset gives the same last page.
    const first = (await api('GET', '/api/v1/clients?id=list-*&limit=2')).json as Page;
    assert.equal(first.items.length, 2);
    assert.equal(first.total, 3);
    assert.ok(first.next_cursor);
    const second = (await api('GET', `/api/v1/clients?id=list-*&limit=2&cursor=${first.next_cursor}`)).json as Page;
    assert.deepEqual([...ids(first), ...ids(second)].sort(), ['list-a', 'list-b', 'list-v5']);
    assert.equal(second.next_cursor, undefined);
    assert.deepEqual(ids((await api('GET', '/api/v1/clients?id=list-*&limit=2&offset=2')).json), ids(second));
    assert.equal((await api('GET', '/api/v1/clients?limit=0')).status, 400);
    // One client: its subscriptions and counts.
    const detail = await api('GET', '/api/v1/clients/list-v5');
    assert.equal(detail.status, 200);
    assert.deepEqual(detail.json.subscriptions, [{ filter: 'list/+/x', qos: 1, no_local: false, retain_as_published: false }]);
    assert.equal(detail.json.inflight, 0);
    assert.equal(detail.json.queued, 0);
    assert.equal((await api('GET', '/api/v1/clients/no-such-client')).status, 404);
    const subs = (await api('GET', '/api/v1/subscriptions?filter=list/%2B/x')).json as Page;
    assert.deepEqual(subs.items.map((s) => s.client_id), ['list-v5']);
  });

  it('DELETE /api/v1/clients/{id}: an MQTT 5 client gets DISCONNECT with reason 0x98 (Administrative action) [MQTT-3.14.2-1]', async () => {
    const client = await connect('kick-v5', 5);
    const disconnect = new Promise<number | undefined>((resolve) => client.once('disconnect', (packet) => resolve(packet.reasonCode)));
    const res = await api('DELETE', '/api/v1/clients/kick-v5');
    assert.equal(res.status, 200);
    assert.equal(await disconnect, 0x98);
    await sleep(100);
    assert.equal((await api('GET', '/api/v1/clients/kick-v5')).status, 404);
  });

  it('POST /api/v1/clients/{id}/ban: the user is banned, disconnected, and refused on reconnecting until the ban is lifted', async () => {
    const client = await connect('ban-me', 4, {}, ['carol', 'carol-password']);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const res = await api('POST', '/api/v1/clients/ban-me/ban', { by: 'user', duration: 600, reason: 'testing' });
    assert.equal(res.status, 201);
    assert.equal(res.json.kind, 'username');
    assert.equal(res.json.value, 'carol');
    assert.equal(res.json.source, 'api');
    await closed;
    await assert.rejects(connack('ban-me', 4, {}, ['carol', 'carol-password']), /Not authorized|Bad username|refused/i);
    const bans = (await api('GET', '/api/v1/bans?kind=username')).json as Page;
    assert.ok(bans.items.some((b) => b.value === 'carol' && b.reason === 'testing'));
    assert.equal((await api('DELETE', '/api/v1/bans/username/carol')).status, 200);
    assert.equal((await api('DELETE', '/api/v1/bans/username/carol')).status, 404);
    await connack('ban-me', 4, {}, ['carol', 'carol-password']);
    // A ban added directly, and a bad one.
    assert.equal((await api('POST', '/api/v1/bans', { kind: 'network', value: '198.51.100.0/24' })).status, 201);
    assert.equal((await api('DELETE', `/api/v1/bans/network/${encodeURIComponent('198.51.100.0/24')}`)).status, 200);
    assert.equal((await api('POST', '/api/v1/bans', { kind: 'address', value: 'not-an-address' })).status, 400);
    assert.equal((await api('POST', '/api/v1/bans', { kind: 'planet', value: 'mars' })).status, 400);
  });

  it('DELETE /api/v1/sessions/{id}: an offline persistent session is gone; a reconnect with clean_start=false gets session present 0', async () => {
    const options = { clean: false, properties: { sessionExpiryInterval: 600 } };
    const first = await connect('keep-me', 5, options);
    await new Promise<void>((resolve) => first.subscribe('keep/#', { qos: 1 }, () => resolve()));
    await new Promise<void>((resolve) => first.end(false, {}, () => resolve()));
    await sleep(100);
    const offline = (await api('GET', '/api/v1/sessions?state=offline')).json as Page;
    const mine = offline.items.find((s) => s.client_id === 'keep-me');
    assert.ok(mine, 'the offline session is listed');
    assert.equal(mine.online, false);
    assert.equal(mine.subscriptions, 1);
    assert.ok(!((await api('GET', '/api/v1/sessions?state=online')).json as Page).items.some((s) => s.client_id === 'keep-me'));
    assert.equal((await api('DELETE', '/api/v1/sessions/keep-me')).status, 200);
    assert.equal((await api('GET', '/api/v1/sessions/keep-me')).status, 404);
    assert.equal((await api('DELETE', '/api/v1/sessions/keep-me')).status, 404);
    const again = await connack('keep-me', 5, options);
    assert.equal(again.sessionPresent, false);
  });

  it('retained: browsed in the topic tree, read with its payload, deleted; a new subscriber then gets nothing', async () => {
    const publisher = await connect('retainer', 5);
    await new Promise<void>((resolve, reject) => publisher.publish('shelf/a/b', 'hello', { qos: 1, retain: true, properties: { contentType: 'text/plain' } }, (err) => (err ? reject(err) : resolve())));
    await new Promise<void>((resolve, reject) => publisher.publish('shelf/bin', Buffer.from([0xff, 0xfe]), { qos: 0, retain: true }, (err) => (err ? reject(err) : resolve())));
    await sleep(100);
    const tree = (await api('GET', '/api/v1/topics?prefix=shelf')).json;
    assert.deepEqual(tree.levels, [
      { level: 'a', topic: 'shelf/a', subscriptions: 0, retained: 1, has_children: true },
      { level: 'bin', topic: 'shelf/bin', subscriptions: 0, retained: 1, has_children: false },
    ]);
    const root = (await api('GET', '/api/v1/topics')).json;
    assert.ok(root.levels.some((l: { level: string; retained: number }) => l.level === 'shelf' && l.retained === 2));
    const listed = (await api('GET', '/api/v1/retained?prefix=shelf')).json as Page;
    assert.deepEqual(listed.items.map((m) => m.topic), ['shelf/a/b', 'shelf/bin']);
    const one = await api('GET', `/api/v1/retained/${encodeURIComponent('shelf/a/b')}`);
    assert.equal(one.status, 200);
    assert.equal(one.json.payload_utf8, 'hello');
    assert.equal(one.json.payload_base64, Buffer.from('hello').toString('base64'));
    assert.equal(one.json.qos, 1);
    assert.equal(one.json.properties.content_type, 'text/plain');
    const binary = await api('GET', '/api/v1/retained/shelf/bin');
    assert.equal(binary.json.payload_utf8, null);
    assert.equal(binary.json.payload_base64, Buffer.from([0xff, 0xfe]).toString('base64'));
    assert.equal((await api('DELETE', '/api/v1/retained/shelf/a/b')).status, 200);
    assert.equal((await api('GET', '/api/v1/retained/shelf/a/b')).status, 404);
    assert.equal((await api('DELETE', '/api/v1/retained/shelf/a/b')).status, 404);
    const subscriber = await connect('late-reader', 4);
    const got: string[] = [];
    subscriber.on('message', (topic) => got.push(topic));
    await new Promise<void>((resolve) => subscriber.subscribe('shelf/#', { qos: 1 }, () => resolve()));
    await sleep(300);
    assert.deepEqual(got, ['shelf/bin']);
  });

  it('roles and users: created through the API, used by mosquitto_pub at once; names the configuration defines refused with 409', async () => {
    const role = await api('POST', '/api/v1/roles', { name: 'sensors', rules: [{ filter: 'sensors/#', actions: ['publish', 'subscribe'], effect: 'allow' }] });
    assert.equal(role.status, 201, JSON.stringify(role.json));
    const user = await api('POST', '/api/v1/users', { name: 'dave', password: 'dave-password', roles: ['sensors'] });
    assert.equal(user.status, 201, JSON.stringify(user.json));
    assert.equal(user.json.has_password, true);
    assert.equal(user.json.password, undefined);
    assert.equal((await api('POST', '/api/v1/users', { name: 'dave', password: 'x' })).status, 409);
    const declared = await api('POST', '/api/v1/users', { name: 'bob', password: 'x' });
    assert.equal(declared.status, 409);
    assert.match(declared.json.error, /defined by the configuration/);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'device', rules: [] })).status, 409);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'bad', rules: [{ filter: 'a/#/b', actions: ['publish'], effect: 'allow' }] })).status, 400);
    assert.equal((await api('POST', '/api/v1/users', { name: 'erin', roles: ['no-such-role'] })).status, 404);
    assert.equal((await api('POST', '/api/v1/groups', { name: 'field', roles: ['sensors'] })).status, 201);
    assert.deepEqual((await api('GET', '/api/v1/users/dave')).json.roles, [{ name: 'sensors' }]);
    const listener = await connect('watcher', 4);
    const got: string[] = [];
    listener.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    await new Promise<void>((resolve) => listener.subscribe(['sensors/#', 'elsewhere/#'], { qos: 1 }, () => resolve()));
    const pub = (topic: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqttPort), '-u', 'dave', '-P', 'dave-password', '-V', '5', '-q', '1', '-t', topic, '-m', 'from dave'], { limitMs: 8000 });
    assert.equal((await pub('sensors/t1')).code, 0);
    await pub('elsewhere/t1'); // not allowed by the role: refused (PUBACK 0x87), never routed
    await sleep(300);
    assert.deepEqual(got, ['sensors/t1 from dave']);
    // Changed at once: with the role's rules replaced, the same publish goes nowhere.
    assert.equal((await api('PATCH', '/api/v1/roles/sensors', { rules: [{ filter: 'other/#', actions: ['publish'], effect: 'allow' }] })).status, 200);
    await pub('sensors/t2');
    await sleep(300);
    assert.deepEqual(got, ['sensors/t1 from dave']);
    assert.equal((await api('DELETE', '/api/v1/users/dave')).status, 200);
    assert.equal((await api('GET', '/api/v1/users/dave')).status, 404);
    const refused = await pub('other/t3');
    assert.notEqual(refused.code, 0);
  });

  it('broker: listeners and limits, the configuration with secrets redacted, and reload', async () => {
    const info = (await api('GET', '/api/v1/broker')).json;
    assert.equal(info.listeners[0].port, mqttPort);
    assert.equal(typeof info.limits.maxConnections, 'number');
    const config = await api('GET', '/api/v1/broker/config');
    assert.equal(config.status, 200);
    const text = JSON.stringify(config.json);
    assert.ok(!text.includes(sha256(WRITE_TOKEN)) && !text.includes(sha256(READ_TOKEN)), 'no token digest');
    assert.deepEqual(config.json.admin.tokens.map((t: { name: string; sha256: string }) => [t.name, t.sha256]), [['writer', REDACTED], ['reader', REDACTED]]);
    const yaml = readFileSync(path.join(dir, 'moat.yaml'), 'utf8');
    writeFileSync(path.join(dir, 'moat.yaml'), yaml.replace('level: info', 'level: debug'));
    const reload = await api('POST', '/api/v1/broker/reload');
    assert.equal(reload.status, 200);
    assert.deepEqual(reload.json, { ok: true, applied: ['log.level'], restart_needed: [] });
    writeFileSync(path.join(dir, 'moat.yaml'), `${yaml}\nnot_a_key: 1\n`);
    const failed = await api('POST', '/api/v1/broker/reload');
    assert.equal(failed.status, 409);
    assert.equal(failed.json.ok, false);
    assert.match(failed.json.error, /not_a_key/);
    writeFileSync(path.join(dir, 'moat.yaml'), yaml);
    assert.equal((await api('POST', '/api/v1/broker/reload', undefined, READ_TOKEN)).status, 403);
  });

  it('every change made through the API is a security.change audit event naming who, what, which one and how', async () => {
    const expected = [
      ['client', 'kick-v5', 'kicked'], ['ban', 'username:carol', 'added'], ['client', 'ban-me', 'kicked'], ['ban', 'username:carol', 'removed'],
      ['ban', 'network:198.51.100.0/24', 'added'], ['ban', 'network:198.51.100.0/24', 'removed'], ['session', 'keep-me', 'deleted'],
      ['retained', 'shelf/a/b', 'deleted'], ['role', 'sensors', 'created'], ['user', 'dave', 'created'], ['group', 'field', 'created'],
      ['role', 'sensors', 'updated'], ['user', 'dave', 'deleted'], ['config', 'configuration file', 'reloaded'],
    ];
    let changes: Array<Record<string, unknown>> = [];
    const deadline = Date.now() + 5000;
    const has = ([target, name, change]: string[]): boolean => changes.some((e) => e.target === target && e.name === name && e.change === change);
    while (Date.now() < deadline) {
      // The audit file is written asynchronously.
      changes = readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.event === 'security.change');
      if (expected.every(has)) break;
      await sleep(50);
    }
    for (const entry of expected) assert.ok(has(entry), `audited: ${entry.join(' ')}; got ${JSON.stringify(changes)}`);
    assert.ok(changes.every((e) => e.principal === 'token:writer' && e.listener === 'admin'), JSON.stringify(changes));
    // Refused changes changed nothing and are not security changes (the 409 on "bob", the failed reload).
    assert.ok(!changes.some((e) => e.name === 'bob'));
    assert.equal(changes.filter((e) => e.change === 'reloaded').length, 1);
  });

  it('unit: secrets in URL query strings are redacted, other parameters kept', () => {
    const shown = redact({
      store: { url: 'redis://h:6379/?password=x&db=2' },
      hooks: ['https://auth.example/check?token=abc&mode=strict', 'https://a.example/?secret=s3', 'https://b.example/x?key=k1&api_key=k2#access_token=t'],
      both: 'redis://moat:pw@h:6379/0?password=x',
      plain: 'https://example.com/?q=1&page=2',
    }) as any;
    assert.equal(shown.store.url, `redis://h:6379/?password=${REDACTED}&db=2`);
    assert.deepEqual(shown.hooks, [
      `https://auth.example/check?token=${REDACTED}&mode=strict`, `https://a.example/?secret=${REDACTED}`,
      `https://b.example/x?key=${REDACTED}&api_key=${REDACTED}#access_token=${REDACTED}`,
    ]);
    assert.equal(shown.both, `redis://moat:${REDACTED}@h:6379/0?password=${REDACTED}`);
    assert.equal(shown.plain, 'https://example.com/?q=1&page=2');
  });

  it('the OpenAPI document: served with the read scope, and naming exactly the routes the server has', async () => {
    assert.equal((await api('GET', '/api/v1/openapi.json', undefined, null)).status, 401);
    const served = await api('GET', '/api/v1/openapi.json', undefined, READ_TOKEN);
    assert.equal(served.status, 200);
    assert.equal(served.json.openapi, '3.1.0');
    const documented = Object.entries(OPENAPI_DOCUMENT.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
    const stub = {} as ApiContext;
    // The REST API's routes, and /api/v1/broker and /api/v1/events which the admin listener itself serves.
    const registered = [...apiRoutes(stub).map((r) => `${r.method} ${r.path.replace('*}', '}')}`), 'GET /api/v1/broker', 'GET /api/v1/events'].sort();
    assert.deepEqual(documented, registered);
    // And the running server answers every documented operation (neither 404 "no such endpoint" nor 405).
    for (const entry of documented) {
      const [method, template] = entry.split(' ') as [string, string];
      if (method === 'POST' && template.endsWith('/reload')) continue;
      const pathname = template.replace(/\{\w+\}/g, 'zz-none');
      const res = await api(method, pathname, method === 'POST' || method === 'PATCH' ? {} : undefined);
      assert.notEqual(res.status, 405, entry);
      assert.ok(res.status !== 404 || !/no such endpoint/.test(String(res.json?.error)), entry);
    }
  });

  it('unit: path templates and redaction', () => {
    assert.deepEqual(matchPath('/api/v1/clients/{id}', '/api/v1/clients/a%2Fb'), { id: 'a/b' });
    assert.equal(matchPath('/api/v1/clients/{id}', '/api/v1/clients/a/ban'), undefined);
    assert.deepEqual(matchPath('/api/v1/clients/{id}/ban', '/api/v1/clients/x/ban'), { id: 'x' });
    assert.deepEqual(matchPath('/api/v1/retained/{topic*}', '/api/v1/retained/a/b%20c'), { topic: 'a/b c' });
    assert.equal(matchPath('/api/v1/retained/{topic*}', '/api/v1/retained/'), undefined);
    const shown = redact({
      store: { type: 'redis', url: 'redis://moat:s3cret@redis:6379/0' },
      listeners: [{ tls: { cert: Buffer.alloc(10), key: Buffer.alloc(5), passphrase: 'pp', sourceFiles: ['/etc/k.pem'] } }],
      security: { authentication: [{ type: 'jwt', secretFile: '/etc/jwt.secret' }, { type: 'http', url: 'https://u:p@auth/x', headers: { authorization: 'Bearer abc' } }] },
      admin: { tokens: [{ name: 'writer', sha256: Buffer.alloc(32), scopes: ['read'] }] },
    }) as any;
    assert.equal(shown.store.url, `redis://moat:${REDACTED}@redis:6379/0`);
    assert.equal(shown.listeners[0].tls.key, REDACTED);
    assert.equal(shown.listeners[0].tls.passphrase, REDACTED);
    assert.equal(shown.listeners[0].tls.cert, '[10 bytes]');
    assert.deepEqual(shown.listeners[0].tls.sourceFiles, ['/etc/k.pem']);
    assert.equal(shown.security.authentication[0].secretFile, '/etc/jwt.secret');
    assert.equal(shown.security.authentication[1].url, `https://u:${REDACTED}@auth/x`);
    assert.deepEqual(shown.security.authentication[1].headers, { authorization: REDACTED });
    assert.deepEqual(shown.admin.tokens, [{ name: 'writer', sha256: REDACTED, scopes: ['read'] }]);
  });
});

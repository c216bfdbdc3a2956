import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { configError } from '../helpers/config.js';
import { freePort, killAll, run, spawnProc } from '../helpers/process.js';

/**
 * The admin listener against a real `moat` process: health endpoints open, /metrics and the API behind API tokens
 * with scopes or admin users (Basic, the broker's own authentication chain, the admin role), a Prometheus scrape
 * parsed by a real parser while MQTT.js clients connect and publish, every call in the audit file, the guard banning
 * guesses at the admin API, and the start refused for a port in use or a bad key.
 */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');
const FAST = { logN: 10, r: 8, p: 1 };

interface Family { name: string; help: string; type: string; metrics: Array<{ value: string; labels?: Record<string, string> }> }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

const PROM_TOKEN = 'prom-0123456789abcdef0123456789abcdef0123456789';
const READ_TOKEN = 'read-0123456789abcdef0123456789abcdef0123456789';
const EXPIRED_TOKEN = 'old-0123456789abcdef0123456789abcdef0123456789';
const LATER_TOKEN = 'later-0123456789abcdef0123456789abcdef0123456789';
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function passwordFile(file: string, users: Record<string, string>): Promise<void> {
  const lines = await Promise.all(Object.entries(users).map(async ([u, p]) => formatEntry(await createEntry(u, Buffer.from(p), FAST))));
  writeFileSync(file, `${lines.join('\n')}\n`);
}

async function startMoat(dir: string, yaml: string): Promise<void> {
  writeFileSync(path.join(dir, 'moat.yaml'), yaml);
  const proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 120_000 });
  await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
}

function connect(port: number, clientId: string, protocolVersion: 4 | 5 = 4): Promise<MqttClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, username: 'bob', password: 'bob-password', protocolVersion, reconnectPeriod: 0, connectTimeout: 5000 });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

/** The audit file's admin.request lines, once there are at least `count` (audit lines are written as the answer leaves). */
async function adminAudit(file: string, count: number): Promise<Array<Record<string, unknown>>> {
  const deadline = Date.now() + 5000;
  for (;;) {
    let lines: Array<Record<string, unknown>> = [];
    try {
      lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    } catch {
      // not written yet
    }
    const requests = lines.filter((l) => l.event === 'admin.request');
    if (requests.length >= count || Date.now() > deadline) return requests;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('admin listener: health, metrics and authentication', () => {
  let dir: string;
  let mqttPort: number;
  let base: string;
  /** Every request sent to an audited endpoint, as the audit file must show it. */
  const sent: Array<{ principal: string; method: string; path: string; status: number }> = [];

  async function call(pathname: string, authorization?: string, method = 'GET'): Promise<Response> {
    const res = await fetch(`${base}${pathname}`, { method, ...(authorization !== undefined && { headers: { authorization } }) });
    return res;
  }
  /** A call whose audit line is expected, with the principal it must name. */
  async function audited(principal: string, pathname: string, authorization?: string, method = 'GET'): Promise<Response> {
    const res = await call(pathname, authorization, method);
    sent.push({ principal, method, path: pathname, status: res.status });
    return res;
  }
  async function scrape(): Promise<Family[]> {
    const res = await audited('token:prometheus', '/metrics', `Bearer ${PROM_TOKEN}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parsePrometheus(await res.text());
  }
  const total = (families: Family[], name: string): number => {
    const family = families.find((f) => f.name === name);
    assert.ok(family, `the scrape has ${name}`);
    return family.metrics.reduce((sum, m) => sum + Number(m.value), 0);
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-admin-'));
    mqttPort = await freePort();
    const adminPort = await freePort();
    base = `http://127.0.0.1:${adminPort}`;
    await passwordFile(path.join(dir, 'passwords'), { root: 'root-password', bob: 'bob-password' });
    writeFileSync(path.join(dir, 'prom.token'), `${PROM_TOKEN}\n`);
    await startMoat(dir, [
      'listeners:',
      `  - { name: mqtt, host: 127.0.0.1, port: ${mqttPort} }`,
      'authentication:',
      '  - { type: password_file, path: passwords }',
      'authorization:',
      '  roles:',
      '    admin: []',
      '    device: [{ topic: "#" }]',
      '  users:',
      '    root: { roles: [admin] }',
      '    bob: { roles: [device] }',
      'audit: { file: audit.log }',
      'admin:',
      '  host: 127.0.0.1',
      `  port: ${adminPort}`,
      '  tokens:',
      '    - { name: prometheus, token_file: prom.token, scopes: [metrics] }',
      `    - { name: reader, token_sha256: ${sha256(READ_TOKEN)}, scopes: [read] }`,
      `    - { name: old, token_sha256: ${sha256(EXPIRED_TOKEN)}, scopes: [read], expires: "2020-01-31" }`,
      `    - { name: later, token_sha256: ${sha256(LATER_TOKEN)}, scopes: [read], expires: "2099-01-31T18:00:00+01:00" }`,
      'log: { format: json }',
      'store: { type: memory }',
    ].join('\n'));
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/healthz and /readyz answer without credentials', async () => {
    const health = await call('/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await call('/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready' });
  });

  it('/metrics: 401 without credentials or with an unknown token, 403 with a token lacking the metrics scope, 200 with it', async () => {
    const none = await audited('unauthenticated', '/metrics');
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /Bearer/);
    assert.equal(((await none.json()) as { error: string }).error, 'authentication required: an API token (Bearer) or an admin user (Basic)');
    assert.equal((await audited('unauthenticated', '/metrics', `Bearer ${PROM_TOKEN}x`)).status, 401);
    const reader = await audited('token:reader', '/metrics', `Bearer ${READ_TOKEN}`);
    assert.equal(reader.status, 403);
    assert.deepEqual(await reader.json(), { error: 'token:reader does not have the "metrics" scope' });
    assert.equal((await audited('token:reader', '/api/v1/broker', `Bearer ${READ_TOKEN}`)).status, 200);
    assert.equal((await audited('token:prometheus', '/api/v1/broker', `Bearer ${PROM_TOKEN}`)).status, 403);
    await scrape();
  });

  it('an expired token is refused (401, saying when it expired); one that expires later is accepted', async () => {
    const old = await audited('token:old', '/api/v1/broker', `Bearer ${EXPIRED_TOKEN}`);
    assert.equal(old.status, 401);
    assert.deepEqual(await old.json(), { error: 'API token "old" expired at 2020-01-31T00:00:00.000Z' });
    assert.equal((await audited('token:later', '/api/v1/broker', `Bearer ${LATER_TOKEN}`)).status, 200);
  });

  it('an admin user from the password file with the admin role gets in (Basic); a user without it 403; a wrong password 401', async () => {
    const root = await audited('user:root', '/metrics', basic('root', 'root-password'));
    assert.equal(root.status, 200);
    const info = await audited('user:root', '/api/v1/broker', basic('root', 'root-password'));
    assert.equal(info.status, 200);
    const body = await info.json() as { version: string; listeners: Array<{ name: string; port: number }>; ready: boolean };
    assert.deepEqual(body.listeners.map((l) => [l.name, l.port]), [['mqtt', mqttPort]]);
    assert.equal(body.ready, true);
    const bob = await audited('user:bob', '/metrics', basic('bob', 'bob-password'));
    assert.equal(bob.status, 403);
    assert.deepEqual(await bob.json(), { error: 'user bob does not have the "admin" role' });
    const wrong = await audited('user:root', '/metrics', basic('root', 'not-the-password'));
    assert.equal(wrong.status, 401);
    assert.deepEqual(await wrong.json(), { error: 'bad user name or password' });
  });

  it('an admin user\'s accepted login is reused for a few seconds: three calls ask the authentication chain at most once; a wrong password is still refused', async () => {
    const accepted = (): number => readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'connect.accepted' && l.listener === 'admin' && l.username === 'root').length;
    assert.equal((await audited('user:root', '/api/v1/broker', basic('root', 'root-password'))).status, 200);
    await new Promise((r) => setTimeout(r, 300)); // the audit line of that first login is written
    const before = accepted();
    for (let i = 0; i < 3; i++) assert.equal((await audited('user:root', '/api/v1/broker', basic('root', 'root-password'))).status, 200);
    assert.equal((await audited('user:root', '/api/v1/broker', basic('root', 'root-passwordX'))).status, 401);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(accepted() - before, 0, 'the three calls were answered from the remembered login');
  });

  it('a scrape parsed by a Prometheus parser: 3 MQTT clients read as 3 connections by listener and protocol, 25 publishes move messages received by 25', async () => {
    const before = await scrape();
    for (const family of before) assert.match(family.name, /^(moat|process|nodejs)_/);
    assert.equal(before.find((f) => f.name === 'moat_messages_received_total')?.type, 'COUNTER');
    assert.equal(before.find((f) => f.name === 'moat_connections')?.type, 'GAUGE');
    const clients = [await connect(mqttPort, 'c1'), await connect(mqttPort, 'c2'), await connect(mqttPort, 'c3', 5)];
    try {
      const during = await scrape();
      assert.equal(total(during, 'moat_connections'), 3);
      const byLabels = during.find((f) => f.name === 'moat_connections')!.metrics.map((m) => [m.labels?.listener, m.labels?.protocol, m.value]).sort();
      assert.deepEqual(byLabels, [['mqtt', '3.1.1', '2'], ['mqtt', '5', '1']]);
      const received = total(during, 'moat_messages_received_total');
      for (let i = 0; i < 25; i++) await clients[0]!.publishAsync('metrics/test', `m${i}`, { qos: 1 });
      const afterPublishing = await scrape();
      assert.equal(total(afterPublishing, 'moat_messages_received_total') - received, 25);
      assert.ok(total(afterPublishing, 'moat_bytes_received_total') > total(during, 'moat_bytes_received_total'));
      assert.ok(total(afterPublishing, 'nodejs_eventloop_lag_seconds') >= 0, 'event-loop lag from the default metrics');
      assert.ok(total(afterPublishing, 'moat_memory_held_bytes') > 0);
    } finally {
      for (const client of clients) await client.endAsync();
    }
    const deadline = Date.now() + 3000;
    while (total(await scrape(), 'moat_connections') !== 0) assert.ok(Date.now() < deadline, 'the connections are gone from the gauge');
  });

  it('one address holding idle sockets gets at most 32 of them; probes from elsewhere are still answered', async () => {
    const port = Number(new URL(base).port);
    const sockets: net.Socket[] = [];
    let closed = 0;
    try {
      for (let i = 0; i < 40; i++) {
        const socket = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
        socket.on('error', () => {});
        socket.on('close', () => closed++);
        socket.resume();
        sockets.push(socket);
      }
      const deadline = Date.now() + 3000;
      while (closed < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(closed, 8, 'the sockets past 32 were closed at once, the others kept');
      const ready = await call('/readyz');
      assert.equal(ready.status, 200);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  it('unknown paths are 404 and wrong methods 405, in JSON', async () => {
    const missing = await audited('unauthenticated', '/nothing-here');
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { error: 'no such endpoint: /nothing-here' });
    const post = await audited('unauthenticated', '/metrics', undefined, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET');
  });

  it('every call is in the audit file with its principal, method, path and status; health probes are not', async () => {
    const lines = await adminAudit(path.join(dir, 'audit.log'), sent.length);
    const seen = lines.map((l) => ({ principal: l.principal, method: l.httpMethod, path: l.path, status: l.status }));
    assert.deepEqual(seen, sent);
    assert.ok(lines.every((l) => l.remoteAddress === '127.0.0.1' && l.listener === 'admin'));
    assert.ok(!lines.some((l) => l.path === '/healthz' || l.path === '/readyz'));
  });
});

describe('admin listener: metrics_auth false, and no user authentication', () => {
  let dir: string;
  let base: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-admin-open-'));
    const adminPort = await freePort();
    base = `http://127.0.0.1:${adminPort}`;
    await startMoat(dir, [
      `listeners:\n  - { host: 127.0.0.1, port: ${await freePort()} }`,
      `admin:\n  port: ${adminPort}\n  metrics_auth: false`,
      `  tokens:\n    - { name: reader, token_sha256: ${sha256(READ_TOKEN)}, scopes: [read] }`,
      'log: { format: json }\nstore: { type: memory }',
    ].join('\n'));
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/metrics is open; the API is not; Basic credentials are refused when nothing authenticates users', async () => {
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.ok(parsePrometheus(await metrics.text()).some((f) => f.name === 'moat_messages_received_total'));
    assert.equal((await fetch(`${base}/api/v1/broker`)).status, 401);
    const user = await fetch(`${base}/api/v1/broker`, { headers: { authorization: basic('root', 'root-password') } });
    assert.equal(user.status, 401);
    assert.deepEqual(await user.json(), { error: 'no authentication is configured for users: use an API token' });
    assert.equal((await fetch(`${base}/api/v1/broker`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).status, 200);
  });
});

describe('admin listener: guessing an admin password is banned by the guard, as on MQTT', () => {
  let dir: string;
  let base: string;
  let mqttPort: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-admin-guard-'));
    const adminPort = await freePort();
    mqttPort = await freePort();
    base = `http://127.0.0.1:${adminPort}`;
    await passwordFile(path.join(dir, 'passwords'), { root: 'root-password', bob: 'bob-password' });
    await startMoat(dir, [
      `listeners:\n  - { host: 127.0.0.1, port: ${mqttPort} }`,
      'authentication:\n  - { type: password_file, path: passwords }',
      'authorization:\n  roles: { admin: [] }\n  users: { root: { roles: [admin] } }',
      // 127.0.0.1 is allow-listed by default: the test's address must be bannable.
      'guard:\n  allow: []\n  failures: { max_per_address: 3 }',
      `admin:\n  port: ${adminPort}`,
      `  tokens:\n    - { name: reader, token_sha256: ${sha256(READ_TOKEN)}, scopes: [read] }`,
      'audit: { file: audit.log }\nlog: { format: json }\nstore: { type: memory }',
    ].join('\n'));
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('three wrong passwords ban the address: the right password, a token and an MQTT client are refused after', async () => {
    for (let i = 0; i < 3; i++) {
      assert.equal((await fetch(`${base}/api/v1/broker`, { headers: { authorization: basic('root', `guess-${i}`) } })).status, 401);
    }
    const right = await fetch(`${base}/api/v1/broker`, { headers: { authorization: basic('root', 'root-password') } });
    assert.equal(right.status, 403);
    assert.deepEqual(await right.json(), { error: 'banned' });
    assert.equal((await fetch(`${base}/api/v1/broker`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).status, 403);
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'health stays open');
    const closed = await new Promise<boolean>((resolve) => {
      const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { username: 'root', password: 'root-password', reconnectPeriod: 0, connectTimeout: 3000 });
      client.once('connect', () => {
        client.end(true);
        resolve(false);
      });
      client.once('close', () => {
        client.end(true);
        resolve(true);
      });
    });
    assert.ok(closed, 'the MQTT listener closes the banned address too');
    const audit = readFileSync(path.join(dir, 'audit.log'), 'utf8');
    assert.match(audit, /"event":"guard\.banned".*"remoteAddress":"127\.0\.0\.1"/);
  });
});

describe('admin listener: refused starts', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-admin-start-'));
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the admin port in use fails the start with the port named, before any MQTT listener binds', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const taken = (blocker.address() as net.AddressInfo).port;
    const mqttPort = await freePort();
    try {
      writeFileSync(path.join(dir, 'moat.yaml'), `listeners:\n  - { host: 127.0.0.1, port: ${mqttPort} }\nadmin:\n  port: ${taken}\nstore: { type: memory }\n`);
      const result = await run(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 15_000 });
      assert.equal(result.code, 1);
      assert.equal(result.stderr, `moat: listener admin: cannot listen on 127.0.0.1:${taken}: the port is already in use by another process\n`);
      assert.doesNotMatch(result.stdout, /"listening"/, 'no MQTT listener was bound');
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});

describe('admin configuration errors name file, line and key', () => {
  const FILE = '/etc/moat/moat.yaml';
  const problem = (yaml: string): string => configError(() => parseConfig(yaml, FILE)).message;

  it('an unknown key, a bad scope, a digest that is none, a missing token source', () => {
    assert.equal(problem('admin:\n  prot: 8080\n'), `${FILE}:2: admin.prot: unknown key (did you mean "port"?)`);
    assert.equal(problem('admin:\n  tokens:\n    - { name: a, token_sha256: abc, scopes: [metrics] }\n'),
      `${FILE}:3: admin.tokens.0.token_sha256: must be a SHA-256 digest: 64 hexadecimal digits (e.g. the first field of: sha256sum token.txt), got "abc"`);
    assert.equal(problem(`admin:\n  tokens:\n    - name: a\n      token_sha256: ${'a'.repeat(64)}\n      scopes: [admin]\n`),
      `${FILE}:5: admin.tokens.0.scopes.0: expected one of "read", "write", "metrics", got "admin"`);
    assert.equal(problem('admin:\n  tokens:\n    - { name: a, scopes: [read] }\n'), `${FILE}:3: admin.tokens.0: needs exactly one of token_file or token_sha256`);
    assert.equal(problem('admin:\n  port: 70000\n'), `${FILE}:2: admin.port: must be at most 65535, got 70000`);
  });

  it('a token file that is missing or too short, and two tokens of one name', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'moat-admin-config-'));
    try {
      const file = path.join(dir, 'moat.yaml');
      writeFileSync(path.join(dir, 'short.token'), 'abc\n');
      assert.equal(configError(() => parseConfig('admin:\n  tokens:\n    - { name: a, token_file: missing.token, scopes: [read] }\n', file)).message,
        `${file}:3: admin.tokens.0.token_file: cannot read ${path.join(dir, 'missing.token')}: ENOENT (no such file)`);
      assert.equal(configError(() => parseConfig('admin:\n  tokens:\n    - { name: a, token_file: short.token, scopes: [read] }\n', file)).message,
        `${file}:3: admin.tokens.0.token_file: the token in ${path.join(dir, 'short.token')} is 3 characters long; a token needs at least 32 (e.g. openssl rand -hex 32 > short.token)`);
      const digest = 'b'.repeat(64);
      assert.equal(configError(() => parseConfig(`admin:\n  tokens:\n    - { name: a, token_sha256: ${digest}, scopes: [read] }\n    - { name: a, token_sha256: ${digest}, scopes: [read] }\n`, file)).message,
        `${file}:4: admin.tokens.1.name: another token is named "a" too: each token needs its own name (the audit trail names it)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an admin section with its defaults, in one process or several (test/multicore/admin.test.ts)', () => {
    const defaults = { host: '127.0.0.1', port: 18083, metricsAuth: true, adminRole: 'admin', tokens: [] };
    assert.deepEqual({ ...parseConfig('workers: 1\nadmin: {}\n', FILE).admin }, defaults);
    assert.deepEqual({ ...parseConfig('workers: 2\nadmin: {}\n', FILE).admin }, defaults);
    assert.deepEqual({ ...parseConfig('workers: auto\nadmin: {}\n', FILE).admin }, defaults);
  });
});

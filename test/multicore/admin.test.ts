import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import type { BrokerFigures } from '../../src/admin/index.js';
import { zeroStatFigures } from '../../src/admin/figures.js';
import { PrimaryBrokerView, primaryBanCheck, sumFigures, workerAdminUsers, type PrimaryStatus } from '../../src/multicore/admin-view.js';
import type { PrimaryToWorker, WorkerToPrimary } from '../../src/multicore/messages.js';
import { QueryTimeout, WorkerQueries } from '../../src/multicore/worker-queries.js';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { idOn } from '../helpers/multicore.js';
import { freePort, killAll, spawnProc } from '../helpers/process.js';

/**
 * The admin listener of a multi-core broker runs in the primary and describes the whole broker: /metrics sums the
 * workers' figures (asked over IPC at each scrape), /readyz waits for every worker, admin users are judged by a
 * worker's authentication chain and ACL, API tokens in the primary.
 */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');
const FAST = { logN: 10, r: 8, p: 1 };

interface Family { name: string; help: string; type: string; metrics: Array<{ value: string; labels?: Record<string, string> }> }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

const PROM_TOKEN = 'prom-0123456789abcdef0123456789abcdef0123456789';
const READ_TOKEN = 'read-0123456789abcdef0123456789abcdef0123456789';
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

const total = (families: Family[], name: string): number => {
  const family = families.find((f) => f.name === name);
  assert.ok(family, `the scrape has ${name}`);
  return family.metrics.reduce((sum, m) => sum + Number(m.value), 0);
};
const byWorker = (families: Family[], name: string): Record<string, number> =>
  Object.fromEntries((families.find((f) => f.name === name)?.metrics ?? []).map((m) => [m.labels?.worker ?? '', Number(m.value)]));

describe('admin listener in multi-core mode (workers: 2)', () => {
  let dir: string;
  let mqttPort: number;
  let base: string;
  const clients: MqttClient[] = [];

  const call = (pathname: string, authorization?: string): Promise<Response> =>
    fetch(`${base}${pathname}`, authorization === undefined ? {} : { headers: { authorization } });
  const scrape = async (): Promise<Family[]> => {
    const res = await call('/metrics', `Bearer ${PROM_TOKEN}`);
    assert.equal(res.status, 200);
    return parsePrometheus(await res.text());
  };
  const connect = async (clientId: string, protocolVersion: 4 | 5 = 4): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId, username: 'bob', password: 'bob-password', protocolVersion, reconnectPeriod: 0 });
    clients.push(client);
    return client;
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-mc-admin-'));
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
      `  tokens:\n    - { name: prometheus, token_sha256: ${sha256(PROM_TOKEN)}, scopes: [metrics] }\n    - { name: reader, token_sha256: ${sha256(READ_TOKEN)}, scopes: [read] }`,
      'audit: { file: audit.log }\nlog: { format: json }\nstore: { type: memory }',
    ].join('\n'));
    const proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync().catch(() => {})));
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/healthz answers from the primary; /readyz is ready once both workers are', async () => {
    assert.deepEqual(await (await call('/healthz')).json(), { status: 'ok' });
    const ready = await call('/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready' });
  });

  it('/metrics: 401 without credentials, 403 with a token lacking the metrics scope', async () => {
    assert.equal((await call('/metrics')).status, 401);
    const reader = await call('/metrics', `Bearer ${READ_TOKEN}`);
    assert.equal(reader.status, 403);
    assert.deepEqual(await reader.json(), { error: 'token:reader does not have the "metrics" scope' });
  });

  it('a scrape sums both workers: connections by listener and protocol, messages received; retained not multiplied; each worker up with its own process figures', async () => {
    const before = await scrape();
    assert.deepEqual(byWorker(before, 'moat_workers_up'), { 0: 1, 1: 1 });
    const received = total(before, 'moat_messages_received_total');
    const retained = total(before, 'moat_retained_messages');
    const on0 = [await connect(idOn(0, 'adm')), await connect(idOn(0, 'adm'), 5)];
    const on1 = [await connect(idOn(1, 'adm')), await connect(idOn(1, 'adm'))];
    for (let i = 0; i < 10; i++) await on0[0]!.publishAsync('metrics/w0', `m${i}`, { qos: 1 });
    for (let i = 0; i < 15; i++) await on1[0]!.publishAsync('metrics/w1', `m${i}`, { qos: 1 });
    await on1[1]!.publishAsync('metrics/retained', 'kept', { qos: 1, retain: true });

    const during = await scrape();
    assert.equal(total(during, 'moat_connections'), 4);
    const labels = during.find((f) => f.name === 'moat_connections')!.metrics.map((m) => [m.labels?.listener, m.labels?.protocol, m.value]).sort();
    assert.deepEqual(labels, [['mqtt', '3.1.1', '3'], ['mqtt', '5', '1']]);
    assert.equal(total(during, 'moat_messages_received_total') - received, 26, '10 on worker 0, 16 on worker 1');
    // Every worker holds every retained message: one more, not two.
    const deadline = Date.now() + 3000;
    let now = during;
    while (total(now, 'moat_retained_messages') !== retained + 1 && Date.now() < deadline) now = await scrape();
    assert.equal(total(now, 'moat_retained_messages'), retained + 1);
    assert.ok(total(now, 'moat_connections_max') >= 4);
    assert.equal(total(now, 'moat_guard_bans_active'), 0);
    const heap = byWorker(now, 'moat_worker_heap_used_bytes');
    assert.deepEqual(Object.keys(heap).sort(), ['0', '1']);
    assert.ok(heap['0']! > 0 && heap['1']! > 0);
    assert.deepEqual(Object.keys(byWorker(now, 'moat_worker_eventloop_lag_seconds')).sort(), ['0', '1']);
    assert.ok(total(now, 'process_resident_memory_bytes') > 0, "the primary's own default metrics");
    for (const family of now) assert.match(family.name, /^(moat|process|nodejs)_/);
    // GET /api/v1/broker counts the clients and sessions of both workers too.
    const info = await (await call('/api/v1/broker', `Bearer ${READ_TOKEN}`)).json() as { connected_clients: number; sessions: number; partial?: boolean };
    assert.equal(info.connected_clients, 4);
    assert.ok(info.sessions >= 4);
    assert.equal(info.partial, undefined);
  });

  it('an admin user (Basic) is judged by a worker: the admin role gets in, a user without it 403, a wrong password 401', async () => {
    assert.equal((await call('/metrics', basic('root', 'root-password'))).status, 200);
    const info = await call('/api/v1/broker', basic('root', 'root-password'));
    assert.equal(info.status, 200);
    const body = await info.json() as { version: string; uptime_seconds: number; listeners: Array<{ name: string; port: number }>; ready: boolean; workers: Array<{ index: number; pid: number; state: string }> };
    assert.match(body.version, /^\d/);
    assert.deepEqual(body.listeners.map((l) => [l.name, l.port]), [['mqtt', mqttPort]]);
    assert.equal(body.ready, true);
    assert.deepEqual(body.workers.map((w) => [w.index, w.state]), [[0, 'ready'], [1, 'ready']]);
    assert.ok(body.workers.every((w) => Number.isInteger(w.pid) && w.pid > 0));
    const bob = await call('/metrics', basic('bob', 'bob-password'));
    assert.equal(bob.status, 403);
    assert.deepEqual(await bob.json(), { error: 'user bob does not have the "admin" role' });
    const wrong = await call('/metrics', basic('root', 'nope'));
    assert.equal(wrong.status, 401);
    assert.deepEqual(await wrong.json(), { error: 'bad user name or password' });
    assert.equal((await call('/api/v1/broker', `Bearer ${READ_TOKEN}`)).status, 200);
  });

  it('the primary audits every admin request', async () => {
    const deadline = Date.now() + 3000;
    let requests: Array<Record<string, unknown>> = [];
    while (Date.now() < deadline) {
      requests = readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.event === 'admin.request');
      if (requests.some((l) => l.principal === 'user:root' && l.path === '/api/v1/broker')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(requests.some((l) => l.principal === 'token:reader' && l.path === '/metrics' && l.status === 403));
    assert.ok(requests.some((l) => l.principal === 'user:root' && l.path === '/api/v1/broker' && l.status === 200));
  });
});

/** Channels to fake workers: `answer` decides what each does with a query (nothing: it never answers). */
function fakeWorkers(count: number, answer: (index: number, message: PrimaryToWorker, reply: (m: WorkerToPrimary) => void) => void): WorkerQueries {
  const queries: WorkerQueries = new WorkerQueries({
    count: () => count,
    send: (index, message) => {
      setImmediate(() => answer(index, message, (m) => queries.received(m)));
      return true;
    },
  });
  return queries;
}

function figures(connected: number, received: number, retained: number, bans: number): BrokerFigures {
  return {
    version: '1.0.0',
    stats: {
      ...zeroStatFigures(),
      startedAt: 1000 + connected, packetsReceived: received, publishReceived: received,
      connectedClients: connected, maxConnectedClients: connected, totalConnections: connected,
      publishReceivedByQos: [received, 0, 0],
      droppedBy: { ...zeroStatFigures().droppedBy, queueFull: connected },
      disconnectsBy: { [`cause_${connected}`]: 1, client: connected },
      deliveryLatency: { counts: [received, 0, 1], sum: received / 1000, count: received + 1 },
    },
    store: { write: { counts: [connected], sum: 0.001, count: connected } },
    connections: [{ listener: 'mqtt', protocol: '5', count: connected }],
    sessions: { online: connected, offline: 0, queued: 0, queuedBytes: 0, inflight: 0, inflightBytes: 0, stored: 0 },
    subscriptions: 1,
    retained,
    memory: { held: 100, highWater: 1000, overloaded: false },
    guard: {
      bansActive: bans, bansIssued: 1, flappingBans: 0, authenticationFailures: 2, refusedAtAccept: 0, refusedAtConnect: 0,
      connectionsLimited: 0, delayedAuthentications: 0, namesSlowed: 0, rateLimited: 0, payloadsRefused: 0,
    },
  };
}

const PROCESS = { heapUsedBytes: 1, residentBytes: 2, cpuSeconds: 3, eventLoopLagSeconds: 0.001 };

function status(queries: WorkerQueries, count: number, overloaded: number[] = []): PrimaryStatus {
  return {
    queries, listening: [], started: true, stopping: false, startedAt: Date.now(),
    workerStates: () => Array.from({ length: count }, (_, index) => ({ index, pid: 100 + index, state: overloaded.includes(index) ? 'overloaded' as const : 'ready' as const })),
  };
}

describe('the primary\'s view of the workers', () => {
  it('sums counts and connections, keeps the earliest start, and does not multiply retained messages or bans in force', () => {
    const sum = sumFigures([figures(2, 10, 7, 3), figures(3, 5, 7, 3)], 'x');
    assert.deepEqual(sum.connections, [{ listener: 'mqtt', protocol: '5', count: 5 }]);
    assert.equal(sum.stats.publishReceived, 15);
    assert.equal(sum.stats.startedAt, 1002);
    assert.deepEqual(sum.stats.publishReceivedByQos, [15, 0, 0], 'by QoS, index by index');
    assert.equal(sum.stats.droppedBy.queueFull, 5);
    assert.deepEqual(sum.stats.disconnectsBy, { cause_2: 1, cause_3: 1, client: 5 }, 'causes only one worker saw are kept');
    assert.deepEqual(sum.stats.deliveryLatency.counts.slice(0, 3), [15, 0, 2], 'histogram buckets added');
    assert.equal(sum.stats.deliveryLatency.count, 17);
    assert.deepEqual(sum.store?.write.counts, [5]);
    assert.equal(sum.retained, 7);
    assert.equal(sum.guard?.bansActive, 3);
    assert.equal(sum.guard?.authenticationFailures, 4);
    assert.equal(sum.memory.highWater, 2000, 'each worker has its share of the high-water mark');
    assert.equal(sumFigures([], '9.9.9').stats.publishReceived, 0, 'no worker answered: every counter at 0');
  });

  it('a worker that does not answer within the timeout is reported down and left out of the sums; the scrape does not wait longer', async () => {
    const queries = fakeWorkers(2, (index, message, reply) => {
      if (message.type === 'query' && index === 0) reply({ type: 'reply', id: message.id, result: { broker: figures(2, 10, 1, 0), process: PROCESS } });
    });
    const view = new PrimaryBrokerView(status(queries, 2), '1.0.0', 100);
    const started = Date.now();
    const read = await view.read();
    assert.ok(Date.now() - started < 1000, `answered in ${Date.now() - started} ms`);
    assert.deepEqual(read.workers, [{ index: 0, process: PROCESS }, { index: 1 }]);
    assert.equal(read.broker.stats.publishReceived, 10);
    await assert.rejects(queries.ask(1, { kind: 'figures' }, 20), QueryTimeout);
  });

  it('/readyz reasons: an overloaded worker makes the broker not ready', () => {
    const view = new PrimaryBrokerView(status(fakeWorkers(2, () => {}), 2, [1]), '1.0.0');
    assert.deepEqual(view.readiness(), { ready: false, reasons: ['overloaded: memory past the high-water mark in worker 1, new clients refused there'] });
    assert.deepEqual(new PrimaryBrokerView(status(fakeWorkers(2, () => {}), 2), '1.0.0').readiness(), { ready: true, reasons: [] });
  });

  it('admin logins go to worker 0; no answer is a failure to answer, not a refusal', async () => {
    const asked: number[] = [];
    const queries = fakeWorkers(2, (index, message, reply) => {
      asked.push(index);
      if (message.type === 'query' && message.query.kind === 'admin-login' && message.query.login.username === 'root') {
        reply({ type: 'reply', id: message.id, result: { ok: true, name: 'root', roles: ['admin'] } });
      }
    });
    const users = workerAdminUsers(queries, 50);
    const login = { password: Buffer.from('x'), remoteAddress: '127.0.0.1', remotePort: 1 };
    assert.deepEqual(await users({ username: 'root', ...login }), { ok: true, name: 'root', roles: ['admin'] });
    assert.deepEqual(await users({ username: 'silent', ...login }), { ok: false, reason: 'failed' });
    assert.deepEqual(asked, [0, 0]);
  });

  it('tokens are refused from an address banned in the shared table or in the configuration', () => {
    const banned = primaryBanCheck(() => [{ kind: 'address', value: '192.0.2.7', reason: 'x', since: 0, source: 'detected' } as never], [{ kind: 'network', value: '10.0.0.0/8' }]);
    assert.equal(banned('192.0.2.7'), true);
    assert.equal(banned('::ffff:192.0.2.7'), true);
    assert.equal(banned('10.1.2.3'), true);
    assert.equal(banned('192.0.2.8'), false);
  });
});

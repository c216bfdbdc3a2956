import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { createEntry, formatEntry } from '../../src/security/password-file.js';
import { waitFor } from '../helpers/broker.js';
import { startMoat, startRedis } from '../helpers/cluster.js';
import { freePort, killAll, type Proc } from '../helpers/process.js';

/**
 * Cluster mode shares the guard's bans and the users, groups and roles changed at runtime: a ban set through the admin
 * API of node a refuses the client on node b at once, lifting it there lets it in again, and a node started later
 * finds the bans in force; a user and role created on one node log in on the others, a role changed there revokes a
 * connected client's subscription elsewhere, and a user deleted on one node is refused on the others. Real
 * redis-server, real nodes.
 */

const TOKEN = 'cluster-bans-test-token';

describe('cluster on Redis: bans, users, groups and roles are the cluster\'s (real processes)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-cluster-bans-'));
  const mqttPorts = new Map<string, number>();
  const adminPorts = new Map<string, number>();
  const procs = new Map<string, Proc>();
  let redisUrl = '';

  const startNode = async (node: string): Promise<void> => {
    mqttPorts.set(node, await freePort());
    adminPorts.set(node, await freePort());
    procs.set(node, await startMoat(dir, node, [
      `listeners:\n  - { host: 127.0.0.1, port: ${mqttPorts.get(node)}, allow_anonymous: true }`,
      'authentication:\n  - { type: password_file, path: passwords }',
      'authorization:\n  dynamic_security: { enabled: true }',
      `admin:\n  host: 127.0.0.1\n  port: ${adminPorts.get(node)}\n  tokens:\n    - { name: ops, token_sha256: ${createHash('sha256').update(TOKEN).digest('hex')}, scopes: [read, write] }`,
      `store: { type: redis, url: "${redisUrl}" }`,
      `cluster: { node_id: ${node}, heartbeat_ms: 200, dead_after_ms: 5000 }`,
      'log: { format: json }',
      'sys_interval: 0',
    ], 120_000));
  };
  /** Retries `attempt` until it gives `expected` (a change made on another node arrives within milliseconds). */
  const soon = async <T>(attempt: () => Promise<T>, expected: T): Promise<T> => {
    let got = await attempt();
    for (let i = 0; i < 40 && got !== expected; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      got = await attempt();
    }
    return got;
  };
  /** The CONNACK reason code for client id `clientId` on `node` (0: accepted), as `user` if given. */
  const connackOf = async (node: string, clientId: string, user?: { username: string; password: string }): Promise<number> => {
    try {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPorts.get(node)}`, {
        clientId, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000, ...(user && { username: user.username, password: user.password }),
      });
      await client.endAsync();
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  };
  const api = (node: string, method: string, route: string, body?: unknown): Promise<Response> => fetch(`http://127.0.0.1:${adminPorts.get(node)}/api/v1${route}`, {
    method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }),
  });

  before(async () => {
    redisUrl = (await startRedis(dir)).url;
    writeFileSync(path.join(dir, 'passwords'), `${formatEntry(await createEntry('someone', Buffer.from('pw'), { logN: 10, r: 8, p: 1 }))}\n`);
    await startNode('a');
    await startNode('b');
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a ban set on node a refuses the client on node b (0x8A); lifted on b, it connects on a again; a node started later has it', async () => {
    assert.equal(await connackOf('b', 'evil-device'), 0, 'allowed before the ban');
    const added = await api('a', 'POST', '/bans', { kind: 'client_id', value: 'evil-device', reason: 'test', duration: 600 });
    assert.equal(added.status, 201, await added.text());
    let refused = -1;
    for (let i = 0; i < 20 && refused !== 0x8a; i++) {
      refused = await connackOf('b', 'evil-device');
      if (refused !== 0x8a) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(refused, 0x8a, 'Banned, on the other node');
    assert.equal(await connackOf('b', 'good-device'), 0, 'others still welcome');
    await startNode('c');
    assert.equal(await connackOf('c', 'evil-device'), 0x8a, 'a node started later finds the ban');
    const lifted = await api('b', 'DELETE', '/bans/client_id/evil-device');
    assert.equal(lifted.status, 200, await lifted.text());
    let back = -1;
    for (let i = 0; i < 20 && back !== 0; i++) {
      back = await connackOf('a', 'evil-device');
      if (back !== 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(back, 0, 'lifted on b, welcome on a again');
    assert.equal(await connackOf('c', 'evil-device'), 0);
  });

  it('users, groups and roles changed at runtime on one node apply on the others, connected clients included', async () => {
    const dave = { username: 'dave', password: 'dave-password' };
    assert.equal(await connackOf('b', 'dave-1', dave), 0x86, 'unknown before');
    const role = await api('a', 'POST', '/roles', { name: 'sensors', rules: [{ filter: 'sensors/#', actions: ['publish', 'subscribe', 'receive'], effect: 'allow' }] });
    assert.equal(role.status, 201, await role.text());
    const user = await api('a', 'POST', '/users', { name: 'dave', password: dave.password, roles: ['sensors'] });
    assert.equal(user.status, 201, await user.text());
    assert.equal(await soon(() => connackOf('b', 'dave-1', dave), 0), 0, 'created on a, dave logs in on b');
    assert.equal(await connackOf('c', 'dave-1', dave), 0, 'and on c');
    // dave, connected to b, receives what he publishes on c; the role changed on a stops that at once.
    const listener = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPorts.get('b')}`, { clientId: 'dave-listens', protocolVersion: 5, reconnectPeriod: 0, ...dave });
    const got: string[] = [];
    listener.on('message', (_topic, payload) => got.push(payload.toString()));
    const granted = await listener.subscribeAsync('sensors/#', { qos: 1 });
    assert.equal(granted[0]!.qos, 1);
    const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPorts.get('c')}`, { clientId: 'dave-talks', protocolVersion: 5, reconnectPeriod: 0, ...dave });
    await publisher.publishAsync('sensors/t', 'before', { qos: 1 });
    await waitFor(() => got.length === 1, 5000, 'delivered before the change');
    const patched = await api('a', 'PATCH', '/roles/sensors', { rules: [
      { filter: 'sensors/#', actions: ['publish'], effect: 'allow' },
    ] });
    assert.equal(patched.status, 200, await patched.text());
    const rulesOnB = async (): Promise<number> => ((await (await api('b', 'GET', '/roles/sensors')).json()) as { rules: unknown[] }).rules.length;
    assert.equal(await soon(rulesOnB, 1), 1, 'b has the changed role');
    await publisher.publishAsync('sensors/t', 'after', { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(got, ['before'], 'the subscription revoked on b by the change made on a');
    await listener.endAsync();
    await publisher.endAsync();
    // Deleted on c: refused on a.
    assert.equal((await api('c', 'DELETE', '/users/dave')).status, 200);
    assert.equal(await soon(() => connackOf('a', 'dave-1', dave), 0x86), 0x86, 'deleted on c, refused on a');
  });

  it('a change whose event a node never heard reaches it: at once with the next change (its version is missing), or at the periodic check; a hash lost and begun again is read at once', async () => {
    const redis = new Redis(redisUrl);
    try {
      const password = 'erin-password';
      assert.equal((await api('a', 'POST', '/roles', { name: 'probes', rules: [{ filter: 'probes/#', actions: ['publish'], effect: 'allow' }] })).status, 201);
      assert.equal((await api('a', 'POST', '/users', { name: 'erin', password, roles: ['probes'] })).status, 201);
      assert.equal(await soon(() => connackOf('b', 'erin-1', { username: 'erin', password }), 0), 0, 'erin logs in on b');
      // A change written to the shared hash with its version, and its event lost (as a node writes one, minus PUBLISH).
      const erin = await redis.hget('moat:cluster:runtime', 'user\u0000erin');
      assert.ok(erin);
      const writeWithoutEvent = async (name: string): Promise<void> => {
        await redis.multi().hincrby('moat:cluster:runtime', '\u0000version', 1).hset('moat:cluster:runtime', `user\u0000${name}`, erin).exec();
      };
      await writeWithoutEvent('frank');
      assert.equal(await connackOf('b', 'frank-1', { username: 'frank', password }), 0x86, 'b did not hear of frank');
      // The next change on a: b finds a version missing before it, and reads the hash.
      assert.equal((await api('a', 'POST', '/users', { name: 'gina', password, roles: ['probes'] })).status, 201);
      assert.equal(await soon(() => connackOf('b', 'frank-1', { username: 'frank', password }), 0), 0, 'frank logs in on b after the next change');
      assert.equal(await connackOf('b', 'gina-1', { username: 'gina', password }), 0, 'and so does gina');
      // No change after the lost one: the periodic check (every 10 s) finds the hash ahead.
      await writeWithoutEvent('hank');
      const deadline = Date.now() + 13_000;
      for (const node of ['b', 'c']) {
        let hank = -1;
        while (hank !== 0 && Date.now() < deadline) {
          hank = await connackOf(node, 'hank-1', { username: 'hank', password });
          if (hank !== 0) await new Promise((resolve) => setTimeout(resolve, 250));
        }
        assert.equal(hank, 0, `hank logs in on ${node} within the periodic check`);
      }
      // The hash lost (flushed, evicted) and begun again by a change on b: its versions start ahead of the nodes', so a
      // and c read it at once, and a's set (erin and the others) is brought back into it.
      await redis.del('moat:cluster:runtime');
      assert.equal((await api('b', 'POST', '/users', { name: 'ivan', password, roles: ['probes'] })).status, 201);
      assert.equal(await soon(() => connackOf('a', 'ivan-1', { username: 'ivan', password }), 0), 0, 'ivan, created on b after the loss, logs in on a');
      assert.equal(await soon(() => connackOf('c', 'ivan-1', { username: 'ivan', password }), 0), 0, 'and on c');
      assert.equal(await soon(() => connackOf('b', 'erin-1', { username: 'erin', password }), 0), 0, 'erin is back in the hash, and on b');
      assert.ok(await redis.hget('moat:cluster:runtime', 'user\u0000erin'), 'erin is in the hash again');
    } finally {
      redis.disconnect();
    }
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { createEntry, formatEntry } from '../../src/security/password-file.js';
import { waitFor } from '../helpers/broker.js';
import { startMoat, startRedis } from '../helpers/cluster.js';
import { freePort, killAll, type Proc } from '../helpers/process.js';

/**
 * Cluster mode shares the guard's bans: a ban set through the admin API of node a refuses the client on node b at once,
 * lifting it there lets it in again, and a node started later finds the bans in force. Real redis-server, real nodes.
 */

const TOKEN = 'cluster-bans-test-token';

describe('cluster on Redis: bans are the cluster\'s (real processes)', () => {
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
      `admin:\n  host: 127.0.0.1\n  port: ${adminPorts.get(node)}\n  tokens:\n    - { name: ops, token_sha256: ${createHash('sha256').update(TOKEN).digest('hex')}, scopes: [read, write] }`,
      `store: { type: redis, url: "${redisUrl}" }`,
      `cluster: { node_id: ${node}, heartbeat_ms: 200, dead_after_ms: 5000 }`,
      'log: { format: json }',
      'sys_interval: 0',
    ], 120_000));
  };
  /** The CONNACK reason code for client id `clientId` on `node` (0: accepted). */
  const connackOf = async (node: string, clientId: string): Promise<number> => {
    try {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPorts.get(node)}`, { clientId, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000 });
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
});

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { waitFor } from '../helpers/broker.js';
import { crossNodeLoad, eventually, startMoat, startRedis, type CrossNodeLoad, type RedisServer } from '../helpers/cluster.js';
import { freePort, killAll, run, type Proc } from '../helpers/process.js';

/**
 * Two Moat nodes on a Redis Cluster (three masters, three replicas, all real redis-server processes): every key sits
 * in the slot of the hash tag `{moat:}`, so the store's transactions and the cluster's scripts run there; the master
 * owning that slot is killed under QoS 1 load, its replica takes over, and every acknowledged message arrives.
 */

describe('cluster on a Redis Cluster: the master of the slot killed under load (real processes)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-redis-cluster-'));
  const servers: RedisServer[] = [];
  const ports = new Map<string, number>();
  const loads: CrossNodeLoad[] = [];
  const procs = new Map<string, Proc>();
  let probe: Redis;

  /** The port of the master serving the slot of `{moat:}`, as a node of the Redis Cluster says. */
  const ownerPort = async (): Promise<number> => {
    const slot = Number(await probe.call('CLUSTER', 'KEYSLOT', '{moat:}'));
    const slots = await probe.call('CLUSTER', 'SLOTS') as Array<[number, number, [string, number]]>;
    const range = slots.find(([from, to]) => slot >= from && slot <= to)!;
    return Number(range[2][1]);
  };

  before(async () => {
    for (let i = 0; i < 6; i++) {
      const home = path.join(dir, `r${i}`);
      mkdirSync(home);
      servers.push(await startRedis(home, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000', '--repl-diskless-sync-delay', '0']));
    }
    const created = await run('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '1', '--cluster-yes'], { limitMs: 60_000 });
    assert.equal(created.code, 0, created.stdout + created.stderr);
    probe = new Redis({ host: '127.0.0.1', port: servers[0]!.port });
    await eventually(async () => String(await probe.call('CLUSTER', 'INFO')).includes('cluster_state:ok'), 20_000, 'the Redis Cluster is up');
    const nodes = servers.slice(0, 3).map((s) => `"127.0.0.1:${s.port}"`).join(', ');
    for (const node of ['a', 'b']) {
      ports.set(node, await freePort());
      procs.set(node, await startMoat(dir, node, [
        `listeners:\n  - { host: 127.0.0.1, port: ${ports.get(node)}, allow_anonymous: true }`,
        `store:\n  type: redis\n  cluster_nodes: [${nodes}]\n  wait_replicas: 1`,
        `cluster: { node_id: ${node}, heartbeat_ms: 500, dead_after_ms: 20000 }`,
        'log: { format: json }',
        'sys_interval: 0',
      ]));
    }
  });
  after(async () => {
    for (const load of loads) load.close();
    probe?.disconnect();
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('messages cross between the nodes; the slot\'s master killed, its replica goes on and every acknowledged QoS 1 message arrives', { timeout: 120_000 }, async () => {
    const slot = Number(await probe.call('CLUSTER', 'KEYSLOT', '{moat:}'));
    const load = await crossNodeLoad(ports.get('a')!, ports.get('b')!, 'rc');
    loads.push(load);
    const { acknowledged, received } = load;
    await waitFor(() => acknowledged.length >= 300 && received.size >= 300, 15_000, 'messages crossing between the nodes');
    const master = await ownerPort();
    // Closed whatever happens: left open, it would try the killed master for ever and keep this process alive.
    const onMaster = new Redis({ host: '127.0.0.1', port: master, lazyConnect: true });
    try {
      await eventually(async () => /slave0:.*state=online/.test(await onMaster.info('replication')), 20_000, 'its replica in sync');
      assert.ok(Number(await onMaster.call('CLUSTER', 'COUNTKEYSINSLOT', slot)) > 5, 'the store\'s and the cluster\'s keys are in the slot');
      // Every key the master holds, each in that slot (keys come and go under the load: one list, not two counts).
      const keys = await onMaster.keys('*');
      const elsewhere = [];
      for (const key of keys) if (Number(await onMaster.call('CLUSTER', 'KEYSLOT', key)) !== slot) elsewhere.push(key);
      assert.deepEqual(elsewhere, [], 'and nowhere else on that master');
    } finally {
      onMaster.disconnect();
    }
    servers.find((s) => s.port === master)!.proc.kill('SIGKILL');
    const atKill = acknowledged.length;
    if (probe.options.port === master) {
      probe.disconnect();
      probe = new Redis({ host: '127.0.0.1', port: servers.find((s) => s.port !== master)!.port });
    }
    await eventually(async () => (await ownerPort().catch(() => master)) !== master, 30_000, 'a replica took the slot over');
    await waitFor(() => acknowledged.length >= atKill + 300, 30_000, 'acknowledgements again after the failover').catch((err: Error) => {
      console.log('acknowledged', acknowledged.length, 'at kill', atKill);
      for (const [node, proc] of procs) console.log(node, proc.stdout.split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-8).join('\n'));
      throw err;
    });
    await load.stop();
    await load.allDelivered(20_000).catch((err: Error) => {
      for (const [node, proc] of procs) console.log(node, proc.stdout.split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-10).join('\n'));
      throw err;
    });
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { idOn } from '../helpers/multicore.js';
import { killAll, freePort, run, spawnProc, type Proc } from '../helpers/process.js';

/**
 * Mosquitto's dynamic-security API on a multi-core broker (workers: 2), driven by the real `mosquitto_ctrl` from an
 * admin connected to worker 1 and to worker 0 (placed by client identifier): worker 0 carries every command out, the
 * answer comes back where the request came in, and what was created is in force on both workers at once.
 */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

describe('dynamic security in multi-core mode (mosquitto_ctrl, workers: 2)', () => {
  let dir: string;
  let port: number;
  let proc: Proc;
  let adminPort: number;
  const TOKEN = 'dynsec-test-0123456789abcdef0123456789abcdef';

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-mc-dynsec-'));
    port = await freePort();
    adminPort = await freePort();
    const entry = formatEntry(await createEntry('admin', Buffer.from('admin-pw'), { logN: 10, r: 8, p: 1 }));
    writeFileSync(path.join(dir, 'users.pw'), `${entry}\n`);
    writeFileSync(path.join(dir, 'moat.yaml'), [
      `listeners:\n  - { host: 127.0.0.1, port: ${port} }`,
      'workers: 2',
      'log: { format: json }',
      'store: { type: sqlite, directory: store }',
      'authentication:\n  - { type: password_file, path: users.pw }',
      'authorization:\n  dynamic_security: { enabled: true }\n  roles:\n    admin: []\n  users:\n    admin: { roles: [admin] }',
      `admin:\n  port: ${adminPort}\n  tokens:\n    - { name: t, token_sha256: ${createHash('sha256').update(TOKEN).digest('hex')}, scopes: [read] }`,
    ].join('\n'));
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 20_000, 'moat started');
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  /** mosquitto_ctrl as the admin, its connection placed on `worker`. */
  async function ctrl(worker: number, ...args: string[]): Promise<string> {
    const result = await run('mosquitto_ctrl', ['-h', '127.0.0.1', '-p', String(port), '-u', 'admin', '-P', 'admin-pw', '-i', idOn(worker, 'ctrl'), 'dynsec', ...args], { limitMs: 15_000 });
    return result.stdout + result.stderr;
  }

  /** Whether `user` can log in through a connection placed on `worker` and publish to `topic` (PUBACK success). */
  async function publishes(worker: number, user: string, password: string, topic: string): Promise<boolean> {
    try {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: idOn(worker, user), username: user, password, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
      try {
        const ack = await client.publishAsync(topic, 'x', { qos: 1 });
        return (ack as { reasonCode?: number } | undefined)?.reasonCode === undefined || (ack as { reasonCode: number }).reasonCode < 0x80;
      } catch {
        return false;
      } finally {
        await client.endAsync();
      }
    } catch {
      return false;
    }
  }

  it('commands sent through worker 1 and worker 0 are carried out once and answered where they came in; the client works on both workers', async () => {
    assert.doesNotMatch(await ctrl(1, 'createClient', 'alice', '-p', 'secret'), /Error/);
    assert.doesNotMatch(await ctrl(0, 'createRole', 'sensors'), /Error/);
    assert.doesNotMatch(await ctrl(1, 'addRoleACL', 'sensors', 'publishClientSend', 'sensors/#', 'allow'), /Error/);
    assert.doesNotMatch(await ctrl(1, 'addClientRole', 'alice', 'sensors'), /Error/);
    // The answers of reads come back through either worker, describing the one set.
    assert.match(await ctrl(0, 'getClient', 'alice'), /Username:\s+alice[\s\S]*Roles:\s+sensors/);
    assert.match(await ctrl(1, 'getRole', 'sensors'), /publishClientSend\s*: allow : sensors\/#/);
    assert.match(await ctrl(0, 'createClient', 'alice', '-p', 'again'), /Client already exists/, 'worker 0 saw what came through worker 1');

    for (const worker of [0, 1]) {
      assert.equal(await publishes(worker, 'alice', 'secret', 'sensors/t'), true, `alice publishes to sensors/ on worker ${worker}`);
      assert.equal(await publishes(worker, 'alice', 'secret', 'other/t'), false, `outside her role on worker ${worker}`);
    }
    assert.doesNotMatch(await ctrl(1, 'deleteClient', 'alice'), /Error/);
    for (const worker of [0, 1]) assert.equal(await publishes(worker, 'alice', 'secret', 'sensors/t'), false, `deleted: refused on worker ${worker}`);

    // Each change audited once, by worker 0 which made it (its pid on the line), naming the admin.
    const info = await (await fetch(`http://127.0.0.1:${adminPort}/api/v1/broker`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { workers: Array<{ index: number; pid: number }> };
    const worker0 = info.workers.find((w) => w.index === 0)!.pid;
    await proc.waitStdout((out) => out.split('\n').filter((l) => l.includes('"security.change"')).length >= 5, 5000, 'changes audited');
    const changes = proc.stdout.split('\n').filter((l) => l.includes('"security.change"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(changes.map((c) => [c.principal, c.target, c.name, c.change]), [
      ['mqtt:admin', 'user', 'alice', 'createClient'], ['mqtt:admin', 'role', 'sensors', 'createRole'], ['mqtt:admin', 'role', 'sensors', 'addRoleACL'],
      ['mqtt:admin', 'user', 'alice', 'addClientRole'], ['mqtt:admin', 'user', 'alice', 'deleteClient'],
    ]);
    assert.deepEqual([...new Set(changes.map((c) => c.pid))], [worker0], 'carried out by worker 0, whichever worker the command came in on');
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';

/** Caps on stored sessions (session exhaustion), against a real `moat` process and MQTT.js clients. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

/** Connects (from `from`, a loopback address) and resolves with the CONNACK: its code, session present, properties. */
function connack(port: number, options: IClientOptions, from = '127.0.0.1'): Promise<{ code: number; present: boolean; expiry?: number; client?: MqttClient }> {
  return new Promise((resolve) => {
    const client = new mqtt.MqttClient(() => net.connect({ port, host: '127.0.0.1', localAddress: from }), { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    client.once('connect', (packet) => resolve({
      code: 0, present: packet.sessionPresent, client,
      ...(packet.properties?.sessionExpiryInterval !== undefined && { expiry: packet.properties.sessionExpiryInterval }),
    }));
    client.once('error', (err) => {
      client.end(true);
      resolve({ code: (err as { code?: number }).code ?? -1, present: false });
    });
  });
}

/** Leaves a stored session behind: connects with clean session off and disconnects. */
async function leaveSession(port: number, clientId: string, options: IClientOptions, from?: string): Promise<void> {
  const result = await connack(port, { clientId, clean: false, ...options }, from);
  assert.equal(result.code, 0, `${clientId} accepted`);
  await result.client!.subscribeAsync(`s/${clientId}`, { qos: 1 });
  await result.client!.endAsync();
}

describe('stored session caps', () => {
  let dir: string;
  let proc: Proc;
  let port: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-sessions-'));
    const entries = await Promise.all(['alice', 'bob'].map((u) => createEntry(u, Buffer.from(`${u}-password`), { logN: 10, r: 8, p: 1 })));
    writeFileSync(path.join(dir, 'users.pw'), `${entries.map(formatEntry).join('\n')}\n`);
  });
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function startMoat(config: string, name = 'moat'): Promise<void> {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\nlog:\n  format: json\n${config}`);
    proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  }

  const audit = (event: string): Array<Record<string, unknown>> =>
    proc.stdout.split('\n').filter((l) => l.includes(`"${event}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);

  const alice = { username: 'alice', password: 'alice-password' };

  it('per user: the oldest offline session of that user makes room, a restart keeps who owns what, and all connected means refused', async () => {
    port = await freePort();
    const config = [
      `store:\n  type: sqlite\n  directory: ${path.join(dir, 'store-user')}`,
      'authentication:\n  - type: password_file\n    path: users.pw',
      'limits:\n  max_sessions_per_user: 3',
    ].join('\n');
    await startMoat(config);
    // Created a1, a2, a3 but left a2, a1, a3: a2 is the one offline the longest.
    const first = await Promise.all(['a1', 'a2', 'a3'].map((id) => connack(port, { clientId: id, clean: false, ...alice })));
    for (const i of [1, 0, 2]) {
      await first[i]!.client!.endAsync();
      await new Promise((r) => setTimeout(r, 20));
    }
    await leaveSession(port, 'b1', { username: 'bob', password: 'bob-password' });
    // The owners are stored with the sessions: after a restart the fourth of alice's still pushes out her oldest.
    proc.kill('SIGTERM');
    await proc.waitExit(10_000);
    await startMoat(config);
    await leaveSession(port, 'a4', alice);
    const dropped = audit('guard.session-dropped');
    assert.deepEqual(dropped.map((l) => l.clientId), ['a2'], 'the session of alice\'s offline the longest, and only it');
    assert.equal(dropped[0]!.username, 'alice');
    for (const [id, present] of [['a2', false], ['b1', true]] as const) {
      const again = await connack(port, { clientId: id, clean: false, ...(id === 'b1' ? { username: 'bob', password: 'bob-password' } : alice) });
      assert.equal(again.present, present, `${id}: session present ${present}`);
      await again.client!.endAsync();
    }
    // a2 came back as a new session (pushing out a1); now a2, a3, a4 connected at once leave nothing offline to drop.
    const online = await Promise.all(['a2', 'a3', 'a4'].map((id) => connack(port, { clientId: id, clean: false, ...alice })));
    assert.ok(online.every((r) => r.code === 0));
    assert.equal((await connack(port, { clientId: 'a5', clean: false, ...alice })).code, 3, '3.1.1: server unavailable');
    assert.equal((await connack(port, { clientId: 'a5', protocolVersion: 5, properties: { sessionExpiryInterval: 60 }, ...alice })).code, 0x97, 'MQTT 5: quota exceeded');
    // A clean session leaves nothing behind and is not counted.
    const clean = await connack(port, { clientId: 'a6', clean: true, ...alice });
    assert.equal(clean.code, 0);
    assert.equal(audit('guard.session-refused').length, 2);
    assert.deepEqual(audit('guard.session-dropped').map((l) => l.clientId), ['a2', 'a1']);
    for (const r of [...online, clean]) await r.client!.endAsync();
  });

  it('per address and in all: the offender\'s sessions go first; anonymous clients get a shorter session expiry', async () => {
    port = await freePort();
    // No authentication: anonymous clients, allowed on a loopback listener.
    await startMoat('store:\n  type: memory\nlimits:\n  max_sessions_per_address: 2\n  max_sessions: 4');
    await leaveSession(port, 'honest-1', {}, '127.0.0.2');
    await leaveSession(port, 'honest-2', {}, '127.0.0.3');
    for (let i = 1; i <= 4; i++) await leaveSession(port, `noisy-${i}`, {}, '127.0.0.9');
    // 127.0.0.9 may hold 2: its own oldest went each time, never the honest ones.
    assert.deepEqual(audit('guard.session-dropped').map((l) => l.clientId), ['noisy-1', 'noisy-2']);
    // Overall cap 4 (2 honest + 2 noisy): a newcomer from 127.0.0.4 pushes out the oldest offline session of anyone.
    await leaveSession(port, 'newcomer', {}, '127.0.0.4');
    assert.deepEqual(audit('guard.session-dropped').map((l) => l.clientId), ['noisy-1', 'noisy-2', 'honest-1']);

    // Anonymous: at most a day (limits.max_session_expiry_anonymous), and MQTT 5 clients are told.
    const anonymous = await connack(port, { clientId: 'anon5', protocolVersion: 5, properties: { sessionExpiryInterval: 0xffffffff } }, '127.0.0.5');
    assert.equal(anonymous.expiry, 86_400);
    await anonymous.client!.endAsync();
  });

  it('nothing is dropped for a newcomer that another cap refuses anyway', async () => {
    port = await freePort();
    await startMoat('store:\n  type: memory\nauthentication:\n  - type: password_file\n    path: users.pw\nlimits:\n  max_sessions_per_user: 1\n  max_sessions_per_address: 1');
    await leaveSession(port, 'alice-phone', alice, '127.0.0.2');
    const bob = await connack(port, { clientId: 'bob-desk', clean: false, username: 'bob', password: 'bob-password' }, '127.0.0.3');
    assert.equal(bob.code, 0);
    // alice's laptop shares bob's address: her cap could drop her phone's session, but the address cap cannot be met.
    assert.equal((await connack(port, { clientId: 'alice-laptop', clean: false, ...alice }, '127.0.0.3')).code, 3);
    assert.deepEqual(audit('guard.session-dropped'), []);
    const phone = await connack(port, { clientId: 'alice-phone', clean: false, ...alice }, '127.0.0.2');
    assert.equal(phone.present, true, 'the phone\'s session is still there');
    for (const c of [bob.client!, phone.client!]) await c.endAsync();
  });

  it('the cap on anonymous sessions does not apply to authenticated clients', async () => {
    port = await freePort();
    await startMoat('store:\n  type: memory\nauthentication:\n  - type: password_file\n    path: users.pw');
    const authenticated = await connack(port, { clientId: 'auth5', protocolVersion: 5, properties: { sessionExpiryInterval: 0xffffffff }, ...alice });
    assert.equal(authenticated.code, 0);
    assert.equal(authenticated.expiry, undefined, 'granted as asked: no Session Expiry Interval in CONNACK');
    await authenticated.client!.endAsync();
  });
});

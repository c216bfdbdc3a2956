import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import { createEntry, formatEntry } from '../../src/security/index.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/**
 * Mosquitto's dynamic-security API driven by the real `mosquitto_ctrl`, against a real `moat` process with the SQLite
 * store; the clients it creates are then tried with mosquitto_pub and mosquitto_sub, across a restart and a SIGHUP.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

const BASE = [
  'authentication:\n  - type: password_file\n    path: users.pw',
  'authorization:\n  dynamic_security: { enabled: true }',
];

describe('dynamic security (mosquitto_ctrl dynsec)', () => {
  let dir: string;
  let proc: Proc;
  let port: number;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-dynsec-'));
    const entries = await Promise.all([['admin', 'admin-pw'], ['bob', 'bob-pw']].map(([u, p]) => createEntry(u!, Buffer.from(p!), { logN: 10, r: 8, p: 1 })));
    writeFileSync(path.join(dir, 'users.pw'), `${entries.map(formatEntry).join('\n')}\n`);
  });
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  const configFile = (): string => path.join(dir, 'moat.yaml');
  function writeConfig(roles: string, users = ''): void {
    writeFileSync(configFile(), [
      `listeners:\n  - port: ${port}\n    host: 127.0.0.1\nlog:\n  format: json`,
      `store:\n  type: sqlite\n  directory: ${path.join(dir, 'store')}`,
      ...BASE,
      `  users:\n    admin: { roles: [admin] }\n${users}`,
      `  roles:\n    admin: []\n${roles}`,
    ].join('\n'));
  }
  async function startMoat(): Promise<void> {
    proc = spawnProc(process.execPath, [MOAT, '-c', configFile()], { cwd: dir, limitMs: 120_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  }
  async function stopMoat(): Promise<void> {
    proc.kill('SIGTERM');
    await proc.waitExit(10_000);
  }

  const common = (): string[] => ['-h', '127.0.0.1', '-p', String(port)];
  async function ctrl(user: string, password: string, ...args: string[]): Promise<string> {
    const result = await run('mosquitto_ctrl', [...common(), '-u', user, '-P', password, 'dynsec', ...args], { limitMs: 10_000 });
    return result.stdout + result.stderr;
  }
  const admin = (...args: string[]): Promise<string> => ctrl('admin', 'admin-pw', ...args);

  /** Publishes `message` to `topic` as alice while a subscriber (alice) listens on `filter`: what it received, or undefined. */
  async function roundTrip(filter: string, topic: string, user = ['alice', 'secret']): Promise<string | undefined> {
    const sub = spawnProc('mosquitto_sub', [...common(), '-u', user[0]!, '-P', user[1]!, '-V', '5', '-t', filter, '-C', '1', '-W', '3'], { limitMs: 10_000 });
    // mosquitto_sub says nothing once subscribed: publish again every 300 ms until it has a message or gives up
    // (a loaded machine may take longer than any one pause).
    const publish = (): ReturnType<typeof run> => run('mosquitto_pub', [...common(), '-u', user[0]!, '-P', user[1]!, '-V', '5', '-q', '1', '-t', topic, '-m', `to ${topic}`], { limitMs: 8000 });
    await new Promise((r) => setTimeout(r, 300));
    const pub = await publish();
    while (pub.code === 0 && !sub.status) {
      await new Promise((r) => setTimeout(r, 300));
      if (!sub.status) await publish();
    }
    await sub.waitExit(8000);
    if (pub.code !== 0) return undefined;
    const line = sub.stdout.trim();
    return line === '' ? undefined : line;
  }

  const audit = (event: string): Array<Record<string, unknown>> =>
    proc.stdout.split('\n').filter((l) => l.includes(`"${event}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);

  it('an admin creates a client and a role; the client can use what the role allows only; it lasts across a restart and a SIGHUP', async () => {
    port = await freePort();
    writeConfig('');
    await startMoat();
    assert.doesNotMatch(await admin('createClient', 'alice', '-p', 'secret'), /Error/);
    assert.doesNotMatch(await admin('createRole', 'sensors'), /Error/);
    assert.doesNotMatch(await admin('addRoleACL', 'sensors', 'publishClientSend', 'sensors/#', 'allow'), /Error/);
    assert.doesNotMatch(await admin('addRoleACL', 'sensors', 'subscribePattern', 'sensors/#', 'allow'), /Error/);
    assert.doesNotMatch(await admin('addClientRole', 'alice', 'sensors'), /Error/);
    assert.match(await admin('getClient', 'alice'), /Username:\s+alice[\s\S]*Roles:\s+sensors/);
    assert.match(await admin('listClients'), /^alice$/m);
    assert.match(await admin('getRole', 'sensors'), /publishClientSend\s*: allow : sensors\/#[\s\S]*subscribePattern\s*: allow : sensors\/#/);
    // What Moat cannot express is refused with a reason.
    assert.match(await admin('addRoleACL', 'sensors', 'unsubscribePattern', 'x', 'allow'), /Error: Unsupported acltype/);
    assert.match(await admin('setDefaultACLAccess', 'publishClientSend', 'allow'), /Error: Unsupported/);
    assert.match(await admin('createClient', 'alice', '-p', 'again'), /Client already exists/);
    assert.match(await admin('createClient', 'bob', '-p', 'again'), /Client already exists/, 'a user of the password file is the file\'s');

    // Each change is in the audit trail with what it changed and who did it; reads and refused commands are not changes.
    await proc.waitStdout(() => audit('security.change').length >= 5, 5000, 'the changes audited');
    assert.deepEqual(audit('security.change').map((e) => [e.principal, e.target, e.name, e.change]), [
      ['mqtt:admin', 'user', 'alice', 'createClient'], ['mqtt:admin', 'role', 'sensors', 'createRole'], ['mqtt:admin', 'role', 'sensors', 'addRoleACL'],
      ['mqtt:admin', 'role', 'sensors', 'addRoleACL'], ['mqtt:admin', 'user', 'alice', 'addClientRole'],
    ]);

    assert.equal(await roundTrip('sensors/#', 'sensors/t1'), 'to sensors/t1');
    assert.equal(await roundTrip('sensors/#', 'other/t1'), undefined, 'a publish outside the role is dropped');
    assert.ok(audit('publish.refused').some((e) => e.username === 'alice' && e.topic === 'other/t1'));
    const wrong = await run('mosquitto_pub', [...common(), '-u', 'alice', '-P', 'wrong', '-t', 'sensors/x', '-m', 'x'], { limitMs: 8000 });
    assert.notEqual(wrong.code, 0, 'a wrong password is refused');

    // Restart: the SQLite store kept the user, its password hash and the role.
    await stopMoat();
    await startMoat();
    assert.equal(await roundTrip('sensors/#', 'sensors/t2'), 'to sensors/t2');
    assert.match(await admin('getClient', 'alice'), /Roles:\s+sensors/);

    // SIGHUP with an unchanged configuration: runtime items stay in force.
    proc.kill('SIGHUP');
    await proc.waitStdout((out) => out.includes('configuration reloaded'), 5000, 'reloaded');
    assert.equal(await roundTrip('sensors/#', 'sensors/t3'), 'to sensors/t3');

    // Disabled: refused at the next CONNECT; enabled again: accepted.
    assert.doesNotMatch(await admin('disableClient', 'alice'), /Error/);
    const disabled = await run('mosquitto_pub', [...common(), '-u', 'alice', '-P', 'secret', '-t', 'sensors/x', '-m', 'x'], { limitMs: 8000 });
    assert.notEqual(disabled.code, 0);
    assert.doesNotMatch(await admin('enableClient', 'alice'), /Error/);
    assert.doesNotMatch(await admin('deleteClient', 'alice'), /Error/);
    const deleted = await run('mosquitto_pub', [...common(), '-u', 'alice', '-P', 'secret', '-t', 'sensors/x', '-m', 'x'], { limitMs: 8000 });
    assert.notEqual(deleted.code, 0, 'a deleted client cannot log in');
  });

  it('a client without the admin role gets no answer and changes nothing, even publishing the command itself', async () => {
    port = await freePort();
    rmSync(path.join(dir, 'store'), { recursive: true, force: true });
    writeConfig('    listener:\n      - topic: "$CONTROL/dynamic-security/v1/response"\n        actions: [subscribe]\n', '    bob: { roles: [listener] }\n');
    await startMoat();
    // bob's rules would let him subscribe to the answers: the control API refuses him all the same.
    assert.match(await ctrl('bob', 'bob-pw', 'createClient', 'eve', '-p', 'x'), /Subscribe error|Not authorized/i);
    const raw = await run('mosquitto_pub', [...common(), '-u', 'bob', '-P', 'bob-pw', '-V', '5', '-q', '1', '-t', '$CONTROL/dynamic-security/v1',
      '-m', JSON.stringify({ commands: [{ command: 'createClient', username: 'eve', password: 'x' }] })], { limitMs: 8000 });
    assert.match(raw.stdout + raw.stderr, /not authori[sz]ed/i, 'PUBACK 0x87 Not authorized');
    assert.ok(audit('publish.refused').some((e) => e.username === 'bob' && String(e.reason).includes('admin role')));
    assert.match(await admin('getClient', 'eve'), /Client not found/);
    // Nor through a shared subscription.
    const shared = await run('mosquitto_sub', [...common(), '-u', 'bob', '-P', 'bob-pw', '-V', '5', '-t', '$share/g/$CONTROL/dynamic-security/v1/response', '-C', '1', '-W', '1'], { limitMs: 8000 });
    assert.ok(audit('subscribe.refused').some((e) => e.username === 'bob') || /denied|not authori[sz]ed/i.test(shared.stdout + shared.stderr), shared.stdout + shared.stderr);
    assert.ok(audit('dynsec.command').every((e) => e.username === 'admin'));
  });

  it('precedence: a role the YAML comes to define is the YAML\'s after a SIGHUP and a restart; removed from the YAML, the runtime one is back', async () => {
    port = await freePort();
    rmSync(path.join(dir, 'store'), { recursive: true, force: true });
    writeConfig('');
    await startMoat();
    await admin('createClient', 'carol', '-p', 'carol-pw');
    await admin('createRole', 'shared');
    await admin('addRoleACL', 'shared', 'publishClientSend', 'runtime/#', 'allow');
    await admin('addRoleACL', 'shared', 'subscribePattern', 'runtime/#', 'allow');
    await admin('addClientRole', 'carol', 'shared');
    const carol = ['carol', 'carol-pw'];
    assert.equal(await roundTrip('runtime/#', 'runtime/a', carol), 'to runtime/a');

    // The operator declares a role of the same name in the YAML: it wins at the reload.
    writeConfig('    shared:\n      - topic: yaml/#\n        actions: [publish, subscribe]\n');
    proc.kill('SIGHUP');
    await proc.waitStdout((out) => out.includes('configuration reloaded'), 5000, 'reloaded');
    assert.equal(await roundTrip('yaml/#', 'yaml/a', carol), 'to yaml/a');
    assert.equal(await roundTrip('runtime/#', 'runtime/b', carol), undefined);
    assert.match(await admin('addRoleACL', 'shared', 'publishClientSend', 'more/#', 'allow'), /defined by the configuration/);

    // And after a restart.
    await stopMoat();
    await startMoat();
    assert.equal(await roundTrip('yaml/#', 'yaml/b', carol), 'to yaml/b');
    assert.equal(await roundTrip('runtime/#', 'runtime/c', carol), undefined);

    // Gone from the YAML: the runtime role, kept in the store all along, is in force again.
    writeConfig('');
    proc.kill('SIGHUP');
    await proc.waitStdout((out) => out.includes('configuration reloaded'), 5000, 'reloaded after the restart');
    assert.equal(await roundTrip('runtime/#', 'runtime/d', carol), 'to runtime/d');
  });
});

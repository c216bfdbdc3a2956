import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, describe, it } from 'node:test';
import { parsePasswordFile, verifyPassword } from '../../src/security/password-file.js';
import { waitFor } from '../helpers/broker.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/** `moat passwd`, and the `moat` server with password and ACL files, driven with the Mosquitto command line tools. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

function passwd(args: string[], input: string): ReturnType<typeof run> {
  return run(process.execPath, [MOAT, 'passwd', ...args], { input, limitMs: 15_000 });
}

async function startMoat(dir: string, yaml: string): Promise<{ proc: Proc; port: number }> {
  const port = await freePort();
  const config = path.join(dir, `moat-${port}.yaml`);
  writeFileSync(config, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    allow_anonymous: false\nstore:\n  type: memory\nsys_interval: 0\nlog:\n  format: json\n${yaml}`);
  const proc = spawnProc(process.execPath, [MOAT, '--config', config], { cwd: dir, limitMs: 60_000 });
  await proc.waitStdout((out) => out.includes('"msg":"listening"'), 10_000, 'listening');
  return { proc, port };
}

/** mosquitto_pub's exit status and error text (it exits non-zero when CONNACK refuses). */
async function pub(port: number, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', ...args], { limitMs: 10_000 });
  return { code: r.code, stderr: r.stderr };
}

/** Subscribes with mosquitto_sub for `seconds` and returns the lines it printed (-v: "topic payload"). */
async function subFor(port: number, args: string[], seconds: number, during: () => Promise<void>): Promise<{ lines: string[]; stderr: string }> {
  const proc = spawnProc('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-v', '-W', String(seconds), ...args], { limitMs: (seconds + 5) * 1000 });
  await new Promise((resolve) => setTimeout(resolve, 700)); // time to connect and subscribe
  await during();
  await proc.exited;
  return { lines: proc.stdout.split('\n').filter((l) => l !== ''), stderr: proc.stderr };
}

describe('moat passwd', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-passwd-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('adds, updates and deletes users; the password comes from stdin; the file stays private', async () => {
    const file = path.join(dir, 'pw');
    assert.equal((await passwd([file, 'alice'], 'first-password\n')).code, 0);
    assert.equal((await passwd([file, 'bob'], 'bobs-password\n')).code, 0);
    let users = parsePasswordFile(readFileSync(file, 'utf8'), file);
    assert.equal(await verifyPassword(users.get('alice')!.hash, Buffer.from('first-password')), true);
    assert.ok(users.get('alice')!.scram, 'SCRAM keys are stored for enhanced authentication');
    assert.ok(!readFileSync(file, 'utf8').includes('first-password'), 'no password in the file');

    assert.equal((await passwd([file, 'alice'], 'second-password\n')).code, 0);
    users = parsePasswordFile(readFileSync(file, 'utf8'), file);
    assert.equal(await verifyPassword(users.get('alice')!.hash, Buffer.from('first-password')), false);
    assert.equal(await verifyPassword(users.get('alice')!.hash, Buffer.from('second-password')), true);
    assert.deepEqual([...users.keys()], ['alice', 'bob'], 'updated in place');

    const removed = await passwd(['-D', file, 'alice'], '');
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual([...parsePasswordFile(readFileSync(file, 'utf8'), file).keys()], ['bob']);
    const missing = await passwd(['-D', file, 'alice'], '');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no user "alice"/);
  });

  it('on a terminal the password is asked twice and never echoed', async () => {
    const file = path.join(dir, 'pw-tty');
    // `script` gives the command a pseudo-terminal; what we type after each prompt would show in its output if echo were on.
    const child = spawn('script', ['-qec', `${process.execPath} ${MOAT} passwd ${file} carol`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await waitFor(() => out.includes('Password: '), 10_000, 'the first prompt');
      child.stdin.write('hidden-pw\r');
      await waitFor(() => out.includes('Reenter password: '), 10_000, 'the second prompt');
      child.stdin.write('hidden-pw\r');
      assert.equal(await exited, 0, out);
    } finally {
      child.kill('SIGKILL');
    }
    assert.ok(!out.includes('hidden-pw'), `the password was echoed: ${JSON.stringify(out)}`);
    const users = parsePasswordFile(readFileSync(file, 'utf8'), file);
    assert.equal(await verifyPassword(users.get('carol')!.hash, Buffer.from('hidden-pw')), true);
  });

  it('refuses user names that would not read back (":", a leading "#", spaces around) and empty passwords', async () => {
    const file = path.join(dir, 'pw-bad');
    for (const name of ['a:b', '#root', ' bob']) {
      const r = await passwd([file, name], 'x\n');
      assert.equal(r.code, 1, name);
      assert.match(r.stderr, /user name/);
    }
    const empty = await passwd([file, 'bob'], '\n');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /password must not be empty/);
  });
});

describe('moat with password and ACL files (mosquitto_pub / mosquitto_sub)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-secfiles-'));
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a password file and an acl_file made for Mosquitto (real mosquitto_passwd) are accepted and enforced', async () => {
    const pw = path.join(dir, 'mosquitto.pw');
    assert.equal((await run('mosquitto_passwd', ['-c', '-b', pw, 'sensor', 'sensor-pw'])).code, 0);
    assert.equal((await run('mosquitto_passwd', ['-b', pw, 'viewer', 'viewer-pw'])).code, 0);
    writeFileSync(path.join(dir, 'mosquitto.acl'), [
      '# Mosquitto acl_file',
      'topic read public/#',
      '',
      'user sensor',
      'topic write sensors/#',
      'topic readwrite public/#',
      '',
      'user viewer',
      'topic deny sensors/secret',
      'topic read sensors/#',
      'pattern readwrite clients/%c/#',
      '',
    ].join('\n'));
    const { proc, port } = await startMoat(dir, 'authentication:\n  - type: password_file\n    path: mosquitto.pw\nauthorization:\n  acl_file: mosquitto.acl\n');

    // Authentication as Mosquitto would: right password in, wrong password and unknown user out.
    assert.equal((await pub(port, ['-u', 'sensor', '-P', 'sensor-pw', '-t', 'sensors/t', '-m', '1'])).code, 0);
    const wrong = await pub(port, ['-u', 'sensor', '-P', 'nope', '-t', 'sensors/t', '-m', '1']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /not authori[sz]ed|bad user name or password/i);
    assert.notEqual((await pub(port, ['-u', 'ghost', '-P', 'nope', '-t', 'sensors/t', '-m', '1'])).code, 0);

    // Permissions: the viewer reads sensors/# except sensors/secret, and its own clients/<id>/ topics.
    const seen = await subFor(port, ['-u', 'viewer', '-P', 'viewer-pw', '-i', 'viewer1', '-t', 'sensors/#', '-t', 'clients/viewer1/#'], 3, async () => {
      for (const [topic, msg] of [['sensors/temp', 'ok-1'], ['sensors/secret', 'hidden'], ['public/x', 'not-subscribed']]) {
        assert.equal((await pub(port, ['-u', 'sensor', '-P', 'sensor-pw', '-t', topic!, '-m', msg!])).code, 0);
      }
      // The viewer may not write sensors/ (PUBACK 0x87 with MQTT 5; the message is dropped).
      await pub(port, ['-V', '5', '-u', 'viewer', '-P', 'viewer-pw', '-t', 'sensors/temp', '-m', 'forged']);
    });
    assert.deepEqual(seen.lines, ['sensors/temp ok-1']);

    // The log has the audit trail of all this, and never a password.
    assert.match(proc.stdout, /"audit":true,"event":"connect.refused"/);
    for (const secret of ['sensor-pw', 'viewer-pw', 'nope']) assert.ok(!proc.stdout.includes(secret), `the log never holds "${secret}"`);

    // SIGHUP re-reads the acl_file: the viewer may now read public/#, and nothing else changes for it.
    writeFileSync(path.join(dir, 'mosquitto.acl'), ['user sensor', 'topic readwrite public/#', 'user viewer', 'topic read public/#', ''].join('\n'));
    proc.kill('SIGHUP');
    await waitFor(() => proc.stdout.includes('ACL file reloaded'), 5000, 'the ACL reload');
    const after = await subFor(port, ['-u', 'viewer', '-P', 'viewer-pw', '-i', 'viewer2', '-t', 'public/#'], 3, async () => {
      assert.equal((await pub(port, ['-u', 'sensor', '-P', 'sensor-pw', '-t', 'public/news', '-m', 'now visible'])).code, 0);
    });
    assert.deepEqual(after.lines, ['public/news now visible']);
  });

  it('a password file changed by moat passwd takes effect at once; SIGHUP reloads when watching is off; connected clients stay', async () => {
    const pw = path.join(dir, 'moat.pw');
    assert.equal((await passwd([pw, 'dave'], 'dave-password\n')).code, 0);
    const { proc, port } = await startMoat(dir, 'authentication:\n  - type: password_file\n    path: moat.pw\n    watch: false\n');
    assert.equal((await pub(port, ['-u', 'dave', '-P', 'dave-password', '-t', 't', '-m', '1'])).code, 0);

    // -C 1: done at the first message; -W 15 only bounds a failure (two scrypt hashes and a reload happen meanwhile,
    // which took longer than the 4 s this once allowed on a loaded machine).
    const stayed = await subFor(port, ['-u', 'dave', '-P', 'dave-password', '-t', 'after/reload', '-C', '1'], 15, async () => {
      assert.equal((await passwd([pw, 'erin'], 'erin-password\n')).code, 0);
      assert.notEqual((await pub(port, ['-u', 'erin', '-P', 'erin-password', '-t', 't', '-m', '1'])).code, 0, 'not before SIGHUP (watching is off)');
      proc.kill('SIGHUP');
      await waitFor(() => proc.stdout.includes('password file reloaded'), 5000, 'the reload');
      assert.equal((await pub(port, ['-u', 'erin', '-P', 'erin-password', '-t', 'after/reload', '-m', 'erin was let in'])).code, 0);
    });
    assert.deepEqual(stayed.lines, ['after/reload erin was let in'], 'the subscriber connected before the reload still receives');
  });

  it('YAML roles bound to users and groups are enforced (mosquitto_pub / mosquitto_sub, MQTT 5 reason codes)', async () => {
    const pw = path.join(dir, 'yaml.pw');
    assert.equal((await passwd([pw, 'writer'], 'writer-pw\n')).code, 0);
    assert.equal((await passwd([pw, 'reader'], 'reader-pw\n')).code, 0);
    const { proc, port } = await startMoat(dir, [
      'authentication:', '  - type: password_file', '    path: yaml.pw',
      'authorization:',
      '  roles:',
      '    produce:', '      - topic: plant/+/temp', '        actions: [publish]', '        max_qos: 1', '        retain: false',
      '    consume:', '      - topic: plant/secret/#', '        effect: deny', '      - topic: plant/#', '        actions: [subscribe]',
      '  users:', '    writer: { roles: [produce] }', '    reader: { groups: [staff] }',
      '  groups:', '    staff: { roles: [consume] }', '',
    ].join('\n'));
    const seen = await subFor(port, ['-V', '5', '-u', 'reader', '-P', 'reader-pw', '-t', 'plant/#'], 3, async () => {
      assert.equal((await pub(port, ['-u', 'writer', '-P', 'writer-pw', '-t', 'plant/a/temp', '-m', '21'])).code, 0);
      // Not allowed, acknowledged and dropped: QoS 2 above max_qos 1, retain, a topic outside the rule.
      await pub(port, ['-V', '5', '-u', 'writer', '-P', 'writer-pw', '-t', 'plant/a/temp', '-m', 'qos2', '-q', '2']);
      await pub(port, ['-V', '5', '-u', 'writer', '-P', 'writer-pw', '-t', 'plant/a/temp', '-m', 'retained', '-r']);
      await pub(port, ['-V', '5', '-u', 'writer', '-P', 'writer-pw', '-t', 'plant/a/humidity', '-m', 'other']);
    });
    assert.deepEqual(seen.lines, ['plant/a/temp 21']);
    const refused = proc.stdout.split('\n').filter((l) => l.includes('"event":"publish.refused"')).length;
    assert.equal(refused, 3, 'each refused publish is in the audit trail');
  });

  it('an unreadable or malformed password file stops startup with the file and line', async () => {
    const pw = path.join(dir, 'broken.pw');
    writeFileSync(pw, 'good:$7$101$c3Nzc3Nzc3Nzc3Nz$aGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaA==\nbroken-line\n');
    const port = await freePort();
    const config = path.join(dir, 'broken.yaml');
    writeFileSync(config, `listeners:\n  - port: ${port}\nstore:\n  type: memory\nauthentication:\n  - type: password_file\n    path: broken.pw\n`);
    const r = await run(process.execPath, [MOAT, '--config', config], { cwd: dir, limitMs: 10_000 });
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`${pw}:2`), r.stderr);
  });
});

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, describe, it } from 'node:test';
import { parsePasswordFile, verifyPassword } from '../../src/security/password-file.js';
import { freePort, killAll, run, spawnProc } from '../helpers/process.js';

/** `moat passwd` refuses passwords shorter than 8 characters unless --force is given. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

function passwd(args: string[], input: string): ReturnType<typeof run> {
  return run(process.execPath, [MOAT, 'passwd', ...args], { input, limitMs: 15_000 });
}

/** mosquitto_pub with a user name and password; its exit status (non-zero when CONNACK refuses). */
async function login(port: number, user: string, password: string): Promise<number | null> {
  const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', password, '-t', 't', '-m', 'x'], { limitMs: 10_000 });
  return r.code;
}

describe('moat passwd: minimum password length', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-passwd-len-'));
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a password shorter than 8 characters, in words, with exit status 1, and leaves the file as it was', async () => {
    const file = path.join(dir, 'pw-short');
    assert.equal((await passwd([file, 'alice'], 'long-enough\n')).code, 0);
    const before = readFileSync(file);
    for (const [user, password] of [['bob', 'x'], ['alice', 'short'], ['bob', 'seven77']]) {
      const r = await passwd([file, user!], `${password}\n`);
      assert.equal(r.code, 1, `${user}/${password}: ${r.stderr}`);
      assert.match(r.stderr, /password is too short: \d characters?, at least 8 are needed/);
      assert.match(r.stderr, /--force/, 'the message names the way out');
      assert.deepEqual(readFileSync(file), before, `the file is untouched after ${user}/${password}`);
    }
    const users = parsePasswordFile(readFileSync(file, 'utf8'), file);
    assert.equal(await verifyPassword(users.get('alice')!.hash, Buffer.from('long-enough')), true, 'alice keeps her password');

    const fresh = path.join(dir, 'pw-none');
    assert.equal((await passwd([fresh, 'bob'], 'x\n')).code, 1);
    assert.equal(existsSync(fresh), false, 'no file is created');
  });

  it('counts characters, not bytes: 8 accented letters pass, 7 do not (14 bytes)', async () => {
    const file = path.join(dir, 'pw-chars');
    const seven = await passwd([file, 'eve'], 'ééééééé\n');
    assert.equal(seven.code, 1, seven.stderr);
    assert.match(seven.stderr, /7 characters/);
    const eight = await passwd([file, 'eve'], 'pässwört\n');
    assert.equal(eight.code, 0, eight.stderr);
    const users = parsePasswordFile(readFileSync(file, 'utf8'), file);
    assert.equal(await verifyPassword(users.get('eve')!.hash, Buffer.from('pässwört')), true);
  });

  it('--force accepts a short password and exactly 8 characters need no force; both users log in (mosquitto_pub)', async () => {
    const file = path.join(dir, 'pw-login');
    const forced = await passwd(['--force', file, 'tiny'], 'a\n');
    assert.equal(forced.code, 0, forced.stderr);
    const eight = await passwd([file, 'eight'], '12345678\n');
    assert.equal(eight.code, 0, eight.stderr);
    assert.deepEqual([...parsePasswordFile(readFileSync(file, 'utf8'), file).keys()], ['tiny', 'eight']);
    // --force after -D is accepted too (and changes nothing about deleting).
    assert.equal((await passwd(['--force', file, 'gone'], 'b\n')).code, 0);
    assert.equal((await passwd(['-D', '--force', file, 'gone'], '')).code, 0);

    const port = await freePort();
    const config = path.join(dir, 'moat.yaml');
    writeFileSync(config, [
      'listeners:', `  - port: ${port}`, '    host: 127.0.0.1', '    allow_anonymous: false', 'store:', '  type: memory', 'sys_interval: 0',
      'log:', '  format: json', 'authentication:', '  - type: password_file', `    path: ${path.basename(file)}`, '',
    ].join('\n'));
    const moat = spawnProc(process.execPath, [MOAT, '-c', config], { cwd: dir, limitMs: 60_000 });
    await moat.waitStdout((out) => out.includes('"msg":"listening"'), 10_000, 'listening');
    assert.equal(await login(port, 'tiny', 'a'), 0, 'the forced short password works');
    assert.equal(await login(port, 'eight', '12345678'), 0, 'the 8-character password works');
    assert.notEqual(await login(port, 'eight', '1234567'), 0, 'a wrong password is still refused');
    assert.notEqual(await login(port, 'gone', 'b'), 0, 'the deleted user is gone');
  });

  it('an unknown option is refused with the usage, which names --force', async () => {
    const r = await passwd(['--forse', path.join(dir, 'pw-x'), 'bob'], 'whatever-long\n');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /usage: moat passwd \[-D\] \[--force\] <file> <user>/);
    assert.equal(existsSync(path.join(dir, 'pw-x')), false);
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parsePasswordFile, verifyPassword } from '../../src/security/index.js';
import { killAll, run, spawnProc } from '../helpers/process.js';

/**
 * The package as a user gets it: `npm pack`, installed from the tarball into an empty project, then used
 * there as a command (`npx moat`) and as a library (`import { createBroker } from 'moat-mqtt'`).
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const NPM = 'npm';

describe('the packed package, installed into an empty project', () => {
  let dir: string;
  let app: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-pack-'));
    app = path.join(dir, 'app');
    // npm test has just built dist: packing must not rebuild it under the other tests (prepare is a script).
    const packed = await run(NPM, ['pack', '--silent', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, limitMs: 120_000 });
    assert.equal(packed.code, 0, `npm pack: ${packed.stderr}`);
    const tarball = packed.stdout.trim().split('\n').pop()!;
    assert.match(tarball, /^moat-mqtt-\d+\.\d+\.\d+\.tgz$/, `the tarball is named after the package: ${tarball}`);
    await run('mkdir', [app]);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'newcomer-app', version: '1.0.0', private: true, type: 'module' }));
    // better-sqlite3 may be compiled from source here (no prebuilt binary reachable): minutes, not seconds.
    const installed = await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(dir, tarball)], { cwd: app, limitMs: 600_000 });
    assert.equal(installed.code, 0, `npm install of the tarball: ${installed.stderr}`);
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs under the name moat-mqtt with the moat command', () => {
    const manifest = JSON.parse(readFileSync(path.join(app, 'node_modules', 'moat-mqtt', 'package.json'), 'utf8')) as { name: string; bin: Record<string, string> };
    assert.equal(manifest.name, 'moat-mqtt');
    assert.deepEqual(Object.keys(manifest.bin), ['moat']);
  });

  it('npx moat --help runs the installed command', async () => {
    const help = await run('npx', ['--no-install', 'moat', '--help'], { cwd: app, limitMs: 60_000 });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^moat \d+\.\d+\.\d+: an MQTT broker/);
    assert.match(help.stdout, /moat passwd/);
  });

  it('npx moat passwd writes a password file the broker can verify', async () => {
    const file = path.join(app, 'users.pw');
    const added = await run('npx', ['--no-install', 'moat', 'passwd', file, 'newcomer'], { cwd: app, input: 'a-long-enough-secret\n', limitMs: 60_000 });
    assert.equal(added.code, 0, added.stderr);
    const users = parsePasswordFile(readFileSync(file, 'utf8'), file);
    assert.equal(await verifyPassword(users.get('newcomer')!.hash, Buffer.from('a-long-enough-secret')), true);
  });

  it("a script importing createBroker from 'moat-mqtt' exchanges a message with real clients", async () => {
    writeFileSync(path.join(app, 'echo.js'), [
      "import { createBroker } from 'moat-mqtt';",
      "const broker = createBroker({ listeners: [{ host: '127.0.0.1', port: 0 }] });",
      "broker.on('publish', (message, client) => {",
      "  if (client && message.topic === 'in') broker.publish({ topic: 'out', payload: `echo:${message.payload}` });",
      '});',
      'const [address] = await broker.listen();',
      'console.log(`port ${address.port}`);',
      "broker.on('subscribe', () => console.log('subscribed'));",
      "process.on('SIGTERM', () => broker.close().then(() => process.exit(0)));",
    ].join('\n'));
    const script = spawnProc(process.execPath, ['echo.js'], { cwd: app, limitMs: 60_000 });
    await script.waitStdout((out) => /port \d+/.test(out), 20_000, 'the broker script listening');
    const port = /port (\d+)/.exec(script.stdout)![1]!;
    const sub = spawnProc('mosquitto_sub', ['-p', port, '-t', 'out', '-C', '1', '-W', '10'], { limitMs: 15_000 });
    await script.waitStdout((out) => out.includes('subscribed'), 10_000, 'mosquitto_sub subscribed');
    const pub = await run('mosquitto_pub', ['-p', port, '-t', 'in', '-m', 'hello'], { limitMs: 10_000 });
    assert.equal(pub.code, 0, pub.stderr);
    const status = await sub.waitExit(15_000);
    assert.equal(status.code, 0, sub.stderr);
    assert.equal(sub.stdout, 'echo:hello\n');
    script.kill('SIGTERM');
    assert.equal((await script.waitExit(10_000)).code, 0);
  });
});

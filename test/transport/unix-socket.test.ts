import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/** Unix domain socket listeners (`path:`), for local bridges and sidecars: mosquitto_pub and mosquitto_sub --unix. */

const MOAT = path.join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'src', 'cli', 'moat.js');

describe('a Unix domain socket listener', () => {
  let dir: string;
  let socketPath: string;
  let proc: Proc;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-unix-'));
    socketPath = path.join(dir, 'moat.sock');
    // A socket file left by a process that was killed: nobody accepts on it, so the broker replaces it.
    const killed = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    await new Promise((resolve) => killed.once('exit', resolve));
    assert.ok(existsSync(socketPath), 'a stale socket file is there');
    writeFileSync(path.join(dir, 'moat.yaml'), 'listeners:\n  - path: moat.sock\nlog:\n  format: json\nstore:\n  type: memory\n');
    proc = spawnProc(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 60_000 });
    await proc.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
  });
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves clients over the socket (local, so anonymous like loopback), named by the socket path', async () => {
    const sub = spawnProc('mosquitto_sub', ['--unix', socketPath, '-i', 'local-sub', '-t', 'local/#', '-C', '1', '-v'], { limitMs: 15_000 });
    await proc.waitStdout((out) => out.includes('local-sub'), 10_000, 'the subscriber connected');
    await new Promise((r) => setTimeout(r, 200));
    const pub = await run('mosquitto_pub', ['--unix', socketPath, '-i', 'local-pub', '-q', '1', '-t', 'local/bridge', '-m', 'from a sidecar'], { limitMs: 10_000 });
    assert.equal(pub.code, 0, pub.stderr);
    const status = await sub.waitExit(10_000);
    assert.equal(status.code, 0, sub.stderr);
    assert.equal(sub.stdout.trim(), 'local/bridge from a sidecar');
    await proc.waitStdout((out) => out.includes('"clientId":"local-pub"'), 5_000, 'the publisher logged');
    const connected = proc.stdout.split('\n').filter((l) => l.includes('"client connected"')).map((l) => JSON.parse(l) as { clientId: string; remoteAddress: string });
    assert.equal(connected.find((l) => l.clientId === 'local-pub')?.remoteAddress, `unix:${socketPath}`);
  });

  it('a second broker on the same socket is refused with the reason, and the first carries on', async () => {
    const second = await run(process.execPath, [MOAT, '-c', 'moat.yaml'], { cwd: dir, limitMs: 15_000 });
    assert.equal(second.code, 1);
    assert.match(second.stderr, new RegExp(`cannot listen on ${socketPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: another process is serving that socket`));
    const pub = await run('mosquitto_pub', ['--unix', socketPath, '-t', 'still/here', '-m', 'ok'], { limitMs: 10_000 });
    assert.equal(pub.code, 0, pub.stderr);
  });

  it('the socket file is removed when the broker stops', async () => {
    proc.kill('SIGTERM');
    const status = await proc.waitExit(15_000);
    assert.equal(status.code, 0);
    assert.equal(existsSync(socketPath), false);
  });
});

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import { connectClient } from '../helpers/broker.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/** The `moat` command, run as a real process. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface LogLine {
  level: number;
  time: number;
  pid: number;
  msg: string;
  [key: string]: unknown;
}

/** Each broker runs in a fresh directory, so its default ./data store is its own. */
function freshCwd(): string {
  return mkdtempSync(path.join(tmpdir(), 'moat-cli-'));
}

function moat(args: string[], limitMs = 15_000): Proc {
  return spawnProc(process.execPath, [MOAT, ...args], { cwd: freshCwd(), limitMs });
}

function runMoat(args: string[]): ReturnType<typeof run> {
  return run(process.execPath, [MOAT, ...args], { cwd: freshCwd(), limitMs: 10_000 });
}

/** Every stdout line must be one JSON object (pino's format). */
function logLines(stdout: string): LogLine[] {
  return stdout.split('\n').filter((l) => l !== '').map((line) => {
    try {
      return JSON.parse(line) as LogLine;
    } catch {
      throw new Error(`stdout line is not JSON: ${line}`);
    }
  });
}

function hasLog(stdout: string, predicate: (l: LogLine) => boolean): boolean {
  // Only complete lines count.
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  return logLines(complete).some(predicate);
}

describe('cli: moat', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-cli-'));
  });
  afterEach(() => killAll());
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('--version prints the package.json version and exits 0', async () => {
    const r = await runMoat(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), VERSION);
  });

  it('-v is --version', async () => {
    const r = await runMoat(['-v']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), VERSION);
  });

  it('--help prints usage and exits 0', async () => {
    const r = await runMoat(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Usage: moat/);
    for (const option of ['--config', '--port', '--host', '--help', '--version']) {
      assert.ok(r.stdout.includes(option), `usage mentions ${option}`);
    }
  });

  it('an unknown option exits 1 and shows the usage on stderr', async () => {
    const r = await runMoat(['--no-such-option']);
    assert.equal(r.code, 1, `exit status ${JSON.stringify([r.code, r.signal])}; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.match(r.stderr, /no-such-option/, `stderr: ${r.stderr}`);
    assert.match(r.stderr, /Usage: moat/, `stderr: ${r.stderr}`);
  });

  it('an invalid --port exits 1 with a message', async () => {
    const r = await runMoat(['--port', 'eighty']);
    assert.equal(r.code, 1, `exit status ${JSON.stringify([r.code, r.signal])}; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.match(r.stderr, /--port/, `stderr: ${r.stderr}`);
    assert.match(r.stderr, /eighty/, `stderr: ${r.stderr}`);
  });

  it('a bad config file exits 1; stderr names the file, the line and the key', async () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'listeners:\n  - port: 1883\nlimits:\n  max_packet_size: "big"\n');
    const r = await runMoat(['--config', file]);
    assert.equal(r.code, 1, `exit status ${JSON.stringify([r.code, r.signal])}; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.ok(r.stderr.includes(`${file}:4`), `stderr names file and line: ${r.stderr}`);
    assert.ok(r.stderr.includes('limits.max_packet_size'), `stderr names the key: ${r.stderr}`);
    assert.match(r.stderr, /expected integer/, `stderr: ${r.stderr}`);
  });

  it('a config file with an unknown key exits 1 naming its line', async () => {
    const file = path.join(dir, 'unknown.yaml');
    writeFileSync(file, 'sys_interval: 5\nlisten_port: 1883\n');
    const r = await runMoat(['-c', file]);
    assert.equal(r.code, 1, `exit status ${JSON.stringify([r.code, r.signal])}; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.ok(r.stderr.includes(`${file}:2`), r.stderr);
    assert.ok(r.stderr.includes('listen_port'), r.stderr);
  });

  it('a missing config file exits 1 naming it', async () => {
    const file = path.join(dir, 'missing.yaml');
    const r = await runMoat(['--config', file]);
    assert.equal(r.code, 1, `exit status ${JSON.stringify([r.code, r.signal])}; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.ok(r.stderr.includes(file), r.stderr);
  });

  it('a listener on 0.0.0.0 without allow_anonymous (and no authentication) exits 1 with a clear message', async () => {
    const file = path.join(dir, 'open.yaml');
    writeFileSync(file, `listeners:\n  - host: 0.0.0.0\n    port: ${await freePort()}\n`);
    const r = await runMoat(['--config', file]);
    assert.equal(r.code, 1, `exit status ${JSON.stringify([r.code, r.signal])}; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.match(r.stderr, /0\.0\.0\.0/, `stderr: ${r.stderr}`);
    assert.match(r.stderr, /allow_anonymous/, `stderr: ${r.stderr}`);
    assert.match(r.stderr, /authentication/, `stderr: ${r.stderr}`);
  });

  it('--host 0.0.0.0 on the command line gets the same refusal', async () => {
    const r = await runMoat(['--host', '0.0.0.0', '--port', String(await freePort())]);
    assert.equal(r.code, 1, `exit status ${JSON.stringify([r.code, r.signal])}; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.match(r.stderr, /0\.0\.0\.0/, `stderr: ${r.stderr}`);
    assert.match(r.stderr, /allow_anonymous/, `stderr: ${r.stderr}`);
  });

  it('a port already in use exits 1 with one line, before the store is opened', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const cwd = freshCwd();
      const r = await run(process.execPath, [MOAT, '--port', String(port)], { cwd, limitMs: 10_000 });
      assert.equal(r.code, 1, `exit status ${JSON.stringify([r.code, r.signal])}; stdout: ${r.stdout} stderr: ${r.stderr}`);
      assert.equal(r.stderr, `moat: listener 127.0.0.1:${port}: cannot listen on 127.0.0.1:${port}: the port is already in use by another process\n`);
      assert.doesNotMatch(r.stdout, /already in use|state recovered|failed to start/, 'said once, on stderr only');
      assert.equal(existsSync(path.join(cwd, 'data')), false, 'the default store ./data was never created');
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('--port starts a broker that mosquitto_pub/sub and MQTT.js use; logs are JSON lines; SIGTERM shuts down gracefully', async () => {
    const port = await freePort();
    const broker = moat(['--port', String(port)]);
    await broker.waitStdout((out) => hasLog(out, (l) => l.msg === 'moat started'), 8000, 'the "moat started" log line');
    const lines = logLines(broker.stdout);
    const listening = lines.find((l) => l.msg === 'listening');
    assert.ok(listening, 'a "listening" line');
    assert.equal(listening.port, port);
    assert.equal(listening.host, '127.0.0.1');
    for (const l of lines) {
      assert.equal(typeof l.level, 'number');
      assert.equal(typeof l.time, 'number');
      assert.equal(l.pid, broker.pid);
    }
    const started = lines.find((l) => l.msg === 'moat started')!;
    assert.equal(started.version, VERSION);

    // mosquitto clients round trip.
    const sub = spawnProc('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-i', 'cli-sub', '-q', '1', '-t', 'cli/test', '-C', '1', '-W', '5', '-F', '%q %t %p'], { limitMs: 8000 });
    await broker.waitStdout((out) => hasLog(out, (l) => l.msg === 'client connected' && l.clientId === 'cli-sub'), 5000, 'cli-sub connected');
    // The subscription follows the CONNECT immediately; give the SUBSCRIBE a moment to be processed.
    const js = await connectClient(`mqtt://127.0.0.1:${port}`, { clientId: 'cli-js' });
    try {
      await js.subscribeAsync('cli/test', { qos: 1 });
      const jsGot = new Promise<string>((resolve) => js.once('message', (_t, p) => resolve(p.toString())));
      // Retry the publish until mosquitto_sub has it (its subscription is not observable from outside).
      let attempts = 0;
      while (sub.status === undefined && attempts < 20) {
        const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-t', 'cli/test', '-m', 'via moat'], { limitMs: 5000 });
        assert.equal(r.code, 0, r.stderr);
        attempts++;
        await Promise.race([sub.exited, new Promise((resolve) => setTimeout(resolve, 100))]);
      }
      assert.equal((await sub.waitExit(5000)).code, 0, sub.stderr);
      assert.equal(sub.stdout.trim(), '1 cli/test via moat');
      assert.equal(await jsGot, 'via moat');

      // SIGTERM: the connected client sees its connection closed; the process exits 0.
      const closed = new Promise<void>((resolve) => js.once('close', () => resolve()));
      const t0 = Date.now();
      broker.kill('SIGTERM');
      await closed;
      const status = await broker.waitExit(5000);
      assert.deepEqual(status, { code: 0, signal: null });
      assert.ok(Date.now() - t0 < 5000);
      assert.ok(hasLog(broker.stdout, (l) => l.msg === 'shutting down' && l.signal === 'SIGTERM'), broker.stdout);
      assert.ok(hasLog(broker.stdout, (l) => l.msg === 'broker closed'), broker.stdout);
      logLines(broker.stdout); // every line, to the end, is JSON
      assert.equal(broker.stderr, '');
    } finally {
      js.end(true);
    }
  });

  it('SIGINT or SIGTERM sent as soon as "moat started" is logged shuts down gracefully (exit 0)', async () => {
    // Once the broker says it started, a supervisor may stop it at any moment; repeat to catch races.
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGINT', 'SIGTERM', 'SIGINT', 'SIGTERM'] as const) {
      const broker = moat(['-p', '0']);
      await broker.waitStdout((out) => hasLog(out, (l) => l.msg === 'moat started'), 8000, 'startup');
      broker.kill(signal);
      const status = await broker.waitExit(5000);
      assert.deepEqual(status, { code: 0, signal: null }, `after ${signal}; stdout: ${broker.stdout}`);
      assert.ok(hasLog(broker.stdout, (l) => l.msg === 'broker closed'), `graceful close logged after ${signal}`);
    }
  });

  it('--config with allow_anonymous: true on 0.0.0.0 starts and logs a warning line', async () => {
    const port = await freePort('0.0.0.0');
    const file = path.join(dir, 'public.yaml');
    writeFileSync(file, `listeners:\n  - name: public\n    host: 0.0.0.0\n    port: ${port}\n    allow_anonymous: true\nlog:\n  level: info\n`);
    const broker = moat(['--config', file]);
    await broker.waitStdout((out) => hasLog(out, (l) => l.msg === 'moat started'), 8000, 'startup');
    const lines = logLines(broker.stdout);
    const warning = lines.find((l) => l.level === 40);
    assert.ok(warning, `a warn-level line in ${broker.stdout}`);
    assert.match(warning.msg, /0\.0\.0\.0/);
    assert.equal(warning.listener, 'public');
    const started = lines.find((l) => l.msg === 'moat started')!;
    assert.equal(started.config, file);

    // Reachable, and anonymous clients are accepted.
    const js = await connectClient(`mqtt://127.0.0.1:${port}`, { clientId: 'cli-public' });
    const closed = new Promise<void>((resolve) => js.once('close', () => resolve()));
    broker.kill('SIGTERM');
    await closed;
    assert.deepEqual(await broker.waitExit(5000), { code: 0, signal: null });
    js.end(true);
  });

  it('log.level from the config file applies (warn hides info lines)', async () => {
    const port = await freePort();
    const file = path.join(dir, 'quiet.yaml');
    writeFileSync(file, `listeners:\n  - port: ${port}\nlog:\n  level: warn\n`);
    const broker = moat(['--config', file]);
    // Nothing is logged at info; wait until the port accepts connections.
    const js = await (async () => {
      const deadline = Date.now() + 8000;
      for (;;) {
        try {
          return await connectClient(`mqtt://127.0.0.1:${port}`, { clientId: 'cli-quiet', connectTimeout: 500 });
        } catch (err) {
          if (Date.now() > deadline || broker.status) throw err;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    })();
    await js.endAsync();
    broker.kill('SIGTERM');
    assert.deepEqual(await broker.waitExit(5000), { code: 0, signal: null });
    const lines = logLines(broker.stdout);
    assert.ok(lines.every((l) => l.level >= 40), `only warn and above: ${broker.stdout}`);
  });
});

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import { makePki, type TestPki } from '../../bench/lib/pki.js';
import { freePort, killAll, run, spawnProc } from '../helpers/process.js';

/** What `moat` says when it starts: where its state is, and what each listener is. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

const lines = (stdout: string): LogLine[] => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);

describe('moat start-up', () => {
  let dir: string;
  let pki: TestPki;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-startup-'));
    pki = makePki();
  });
  afterEach(() => killAll());
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  });

  it('store.directory is relative to the configuration file, and the start line gives its absolute path', async () => {
    const confDir = path.join(dir, 'etc');
    const elsewhere = path.join(dir, 'cwd');
    mkdirSync(confDir);
    mkdirSync(elsewhere);
    const file = path.join(confDir, 'moat.yaml');
    writeFileSync(file, `listeners:\n  - port: ${await freePort()}\nlog:\n  format: json\nstore:\n  directory: state\n`);
    const broker = spawnProc(process.execPath, [MOAT, '-c', path.relative(elsewhere, file)], { cwd: elsewhere, limitMs: 30_000 });
    await broker.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
    const startedLine = lines(broker.stdout).find((l) => l.msg === 'moat started')!;
    assert.equal(startedLine.store, `${path.join(confDir, 'state')} (strict)`);
    assert.equal(startedLine.config, file, 'the configuration file, absolute');
    assert.ok(existsSync(path.join(confDir, 'state', 'moat.db')), 'the store is beside the configuration file');
    assert.equal(existsSync(path.join(elsewhere, 'state')), false, 'not in the working directory');
    broker.kill('SIGTERM');
    assert.equal((await broker.waitExit(10_000)).code, 0);
  });

  it('multi-core: a port in use fails the start in one line before any worker opens a store', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const cwd = mkdtempSync(path.join(dir, 'mc-'));
      const r = await run(process.execPath, [MOAT, '--workers', '2', '--port', String(port)], { cwd, limitMs: 15_000 });
      assert.equal(r.code, 1, JSON.stringify(r));
      assert.equal(r.stderr, `moat: listener 127.0.0.1:${port}: cannot listen on 127.0.0.1:${port}: the port is already in use by another process\n`);
      assert.equal(existsSync(path.join(cwd, 'data')), false, 'no store directory was created: no worker started');
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('each "listening" line says whether the listener is TLS and whether it takes anonymous clients', async () => {
    const plain = await freePort();
    const secure = await freePort();
    const file = path.join(dir, 'tls.yaml');
    writeFileSync(file, [
      'listeners:',
      '  - name: plain',
      `    port: ${plain}`,
      '  - name: secure',
      `    port: ${secure}`,
      '    tls:',
      `      cert_file: ${pki.serverCertFile}`,
      `      key_file: ${pki.serverKeyFile}`,
      'log:',
      '  format: json',
      'store:',
      '  type: memory',
    ].join('\n'));
    const broker = spawnProc(process.execPath, [MOAT, '-c', file], { cwd: dir, limitMs: 30_000 });
    await broker.waitStdout((out) => out.includes('"moat started"'), 15_000, 'moat started');
    const listening = lines(broker.stdout).filter((l) => l.msg === 'listening');
    assert.deepEqual(listening.map((l) => [l.listener, l.port, l.tls, l.anonymous]), [['plain', plain, false, true], ['secure', secure, true, true]]);
    broker.kill('SIGTERM');
    assert.equal((await broker.waitExit(10_000)).code, 0);
  });
});

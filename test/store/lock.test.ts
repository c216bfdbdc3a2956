import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisStore } from '../../src/store/index.js';
import { connectClient, waitFor } from '../helpers/broker.js';
import { freePort, killAll, run, spawnProc, type Proc } from '../helpers/process.js';

/** A store belongs to one broker process at a time; two real `moat` processes, SIGKILL and restart. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

/** Brokers started by a test, stopped after it (redis-server lives for the whole suite). */
const brokers: Proc[] = [];
let cwd = '';
function moat(file: string): Proc {
  const proc = spawnProc(process.execPath, [MOAT, '-c', file], { cwd, limitMs: 60_000 });
  brokers.push(proc);
  return proc;
}

function started(proc: Proc): Promise<void> {
  return proc.waitStdout((out) => out.includes('"moat started"'), 15_000, '"moat started"');
}

/** A configuration file in its own directory; the store settings are given, the port is free. */
async function configWith(dir: string, name: string, store: string): Promise<{ file: string; port: number }> {
  const port = await freePort();
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, `listeners:\n  - port: ${port}\nlog:\n  format: json\n${store}`);
  return { file, port };
}

async function retainedOn(port: number, topic: string): Promise<string | undefined> {
  const client = await connectClient(`mqtt://127.0.0.1:${port}`);
  try {
    const got = new Promise<string>((resolve) => client.on('message', (_t, payload) => resolve(payload.toString())));
    await client.subscribeAsync(topic, { qos: 1 });
    return await Promise.race([got, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000))]);
  } finally {
    await client.endAsync();
  }
}

async function publishRetained(port: number, topic: string, payload: string): Promise<void> {
  const client = await connectClient(`mqtt://127.0.0.1:${port}`);
  await client.publishAsync(topic, payload, { qos: 1, retain: true });
  await client.endAsync();
}

describe('store lock: one broker per store', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-lock-'));
    cwd = dir;
  });
  afterEach(async () => {
    for (const proc of brokers.splice(0)) if (proc.status === undefined) proc.kill('SIGKILL');
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('SQLite: a second broker on the same directory refuses to start, naming the directory and the PID; the first carries on', async () => {
    const data = path.join(dir, 'shared-data');
    const a = await configWith(dir, 'a', `store:\n  directory: ${data}\n`);
    const b = await configWith(dir, 'b', `store:\n  directory: ${data}\n`);
    const first = moat(a.file);
    await started(first);
    await publishRetained(a.port, 'lock/a', 'from-first');

    const second = await run(process.execPath, [MOAT, '-c', b.file], { cwd: dir, limitMs: 15_000 });
    assert.equal(second.code, 1, `second broker: ${JSON.stringify(second)}`);
    assert.equal(second.stderr.trim().split('\n').length, 1, `one line: ${second.stderr}`);
    assert.ok(second.stderr.includes(data), `names the directory: ${second.stderr}`);
    assert.ok(second.stderr.includes(`PID ${first.pid}`), `names the holder's PID ${first.pid}: ${second.stderr}`);
    assert.doesNotMatch(second.stdout, /state recovered|moat started/, 'the second broker never read the store');

    assert.equal(await retainedOn(a.port, 'lock/a'), 'from-first', 'the first broker still serves its state');
    first.kill('SIGTERM');
    assert.equal((await first.waitExit(10_000)).code, 0);
  });

  it('SQLite: a broker killed with SIGKILL does not block the next start, which recovers its state', async () => {
    const data = path.join(dir, 'killed-data');
    const a = await configWith(dir, 'k', `store:\n  directory: ${data}\n`);
    const first = moat(a.file);
    await started(first);
    await publishRetained(a.port, 'lock/k', 'survives');
    first.kill('SIGKILL');
    assert.equal((await first.waitExit(5000)).signal, 'SIGKILL');

    const again = moat(a.file);
    await started(again);
    assert.equal(await retainedOn(a.port, 'lock/k'), 'survives');
    again.kill('SIGTERM');
    assert.equal((await again.waitExit(10_000)).code, 0);
  });

  it('multi-core: the primary holds the data directory and each worker its own; a second broker is refused', async () => {
    const data = path.join(dir, 'multi-data');
    const a = await configWith(dir, 'm', `workers: 2\nstore:\n  directory: ${data}\n`);
    const primary = moat(a.file);
    await started(primary);
    assert.deepEqual(readdirSync(data).filter((f) => f.startsWith('worker-')).sort(), ['worker-0', 'worker-1']);

    const whole = await configWith(dir, 'm2', `store:\n  directory: ${data}\n`);
    const refused = await run(process.execPath, [MOAT, '-c', whole.file], { cwd: dir, limitMs: 15_000 });
    assert.equal(refused.code, 1, JSON.stringify(refused));
    assert.ok(refused.stderr.includes(`PID ${primary.pid}`), `names the primary: ${refused.stderr}`);

    const oneWorker = await configWith(dir, 'm3', `store:\n  directory: ${path.join(data, 'worker-1')}\n`);
    const refusedWorker = await run(process.execPath, [MOAT, '-c', oneWorker.file], { cwd: dir, limitMs: 15_000 });
    assert.equal(refusedWorker.code, 1, JSON.stringify(refusedWorker));
    const holder = /PID (\d+)/.exec(refusedWorker.stderr)?.[1];
    assert.ok(holder !== undefined && Number(holder) !== primary.pid, `a worker, not the primary, holds worker-1: ${refusedWorker.stderr}`);
    primary.kill('SIGTERM');
    assert.equal((await primary.waitExit(15_000)).code, 0);
  });

  it('multi-core: a primary killed with SIGKILL does not block an immediate restart, which recovers the state', async () => {
    const data = path.join(dir, 'multi-killed');
    const a = await configWith(dir, 'mk', `workers: 2\nstore:\n  directory: ${data}\n`);
    const first = moat(a.file);
    await started(first);
    await publishRetained(a.port, 'lock/mk', 'kept');
    first.kill('SIGKILL');
    await first.waitExit(5000);
    const again = moat(a.file);
    await started(again);
    assert.equal(await retainedOn(a.port, 'lock/mk'), 'kept');
    again.kill('SIGTERM');
    assert.equal((await again.waitExit(15_000)).code, 0);
  });

  describe('Redis', () => {
    let server: Proc;
    let url = '';
    before(async () => {
      const port = await freePort();
      url = `redis://127.0.0.1:${port}`;
      server = spawnProc('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''], { limitMs: 120_000 });
      await waitFor(() => server.stdout.includes('Ready to accept connections') || server.status !== undefined, 10_000, 'redis-server');
      assert.equal(server.status, undefined, `redis-server could not start: ${server.stderr}`);
    });

    it('a second broker on the same URL and key prefix is refused, naming both and the PID; another prefix is fine', async () => {
      const store = (prefix: string): string => `store:\n  type: redis\n  url: ${url}\n  key_prefix: "${prefix}"\n`;
      const a = await configWith(dir, 'ra', store('lk1:'));
      const b = await configWith(dir, 'rb', store('lk1:'));
      const c = await configWith(dir, 'rc', store('lk2:'));
      const first = moat(a.file);
      await started(first);
      const second = await run(process.execPath, [MOAT, '-c', b.file], { cwd: dir, limitMs: 15_000 });
      assert.equal(second.code, 1, JSON.stringify(second));
      assert.ok(second.stderr.includes(url) && second.stderr.includes('"lk1:"'), `names the URL and prefix: ${second.stderr}`);
      assert.ok(second.stderr.includes(`PID ${first.pid}`), `names the PID: ${second.stderr}`);
      const other = moat(c.file);
      await started(other);
      other.kill('SIGTERM');
      first.kill('SIGTERM');
      assert.equal((await first.waitExit(10_000)).code, 0);
      assert.equal((await other.waitExit(10_000)).code, 0);
      // A clean stop releases the lock: the refused configuration starts now.
      const third = moat(b.file);
      await started(third);
      third.kill('SIGTERM');
      assert.equal((await third.waitExit(10_000)).code, 0);
    });

    it('an expired lock nobody took is taken again; one another broker took is reported lost (the broker then stops)', async () => {
      const lost: string[] = [];
      const store = new RedisStore({ url, keyPrefix: 'lk5:', lockTtlMs: 300, onLockLost: (holder) => lost.push(holder) });
      await store.open();
      const other = new Redis(url);
      try {
        await other.del('lk5:lock'); // as if Redis had been unreachable past the expiry
        const deadline = Date.now() + 2000;
        while ((await other.get('lk5:lock')) === null) {
          assert.ok(Date.now() < deadline, 'the lock taken again within 2 s');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.deepEqual(lost, [], 'nobody else had it: not lost');
        await other.set('lk5:lock', JSON.stringify({ pid: 4242, host: 'elsewhere', since: '2026-12-06T00:00:00Z' }));
        await waitFor(() => lost.length > 0, 2000, 'the loss reported');
        assert.match(lost[0]!, /PID 4242 on host elsewhere/);
      } finally {
        other.disconnect();
        await store.close();
      }
    });

    it('multi-core on Redis: the primary holds the key prefix, so a broker on it is refused, naming the primary', async () => {
      const store = `store:\n  type: redis\n  url: ${url}\n  key_prefix: "lk6:"\n`;
      const a = await configWith(dir, 'rm', `workers: 2\n${store}`);
      const primary = moat(a.file);
      await started(primary);
      const b = await configWith(dir, 'rm2', store);
      const refused = await run(process.execPath, [MOAT, '-c', b.file], { cwd: dir, limitMs: 15_000 });
      assert.equal(refused.code, 1, JSON.stringify(refused));
      assert.ok(refused.stderr.includes(`PID ${primary.pid}`) && refused.stderr.includes('"lk6:"'), refused.stderr);
      primary.kill('SIGTERM');
      assert.equal((await primary.waitExit(15_000)).code, 0);
    });

    it('a broker killed with SIGKILL does not block a restart on the same prefix, which recovers its state', async () => {
      const a = await configWith(dir, 'rk', `store:\n  type: redis\n  url: ${url}\n  key_prefix: "lk3:"\n`);
      const first = moat(a.file);
      await started(first);
      await publishRetained(a.port, 'lock/r', 'kept-in-redis');
      first.kill('SIGKILL');
      await first.waitExit(5000);
      const again = moat(a.file);
      await started(again);
      assert.equal(await retainedOn(a.port, 'lock/r'), 'kept-in-redis');
      again.kill('SIGTERM');
      assert.equal((await again.waitExit(10_000)).code, 0);
    });
  });
});

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { waitFor } from '../helpers/broker.js';
import { freePort, killAll, spawnProc, type Proc } from '../helpers/process.js';
import {
  expectQueued, expectRetained, keyLine, leaveSubscriberOffline, markerIn, MoatProcess, publishMarked, published, SUBSCRIBER, writeKeys,
} from '../helpers/at-rest.js';

/** Encryption at rest with the Redis store: a real `moat` process and a real redis-server (docs/payload-encryption.md, "At rest"). */
describe('encryption at rest: Redis', () => {
  let dir: string;
  let server: Proc;
  let url = '';
  let redis: Redis;
  const running: MoatProcess[] = [];
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-at-rest-redis-'));
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    // Uncompressed dumps: the marker would show as it is if it were stored as it is.
    server = spawnProc('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--rdbcompression', 'no'], { limitMs: 120_000 });
    await waitFor(() => server.stdout.includes('Ready to accept connections') || server.status !== undefined, 10_000, 'redis-server');
    assert.equal(server.status, undefined, `redis-server could not start: ${server.stderr}`);
    redis = new Redis(url);
  });
  afterEach(() => {
    for (const broker of running.splice(0)) if (broker.proc?.status === undefined) broker.proc?.kill('SIGKILL');
  });
  after(async () => {
    redis?.disconnect();
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  function broker(name: string): { moat: MoatProcess; keys: string } {
    const keys = path.join(dir, `${name}.keys`);
    const moat = new MoatProcess(dir, name, `store:\n  type: redis\n  url: ${url}\n  key_prefix: "${name}:"\n  encryption:\n    key_file: ${keys}\n`);
    running.push(moat);
    return { moat, keys };
  }

  /** An RDB snapshot (SAVE) and the DUMP of every key of the prefix, as `redis-cli --scan` lists them. */
  async function redisBytes(prefix: string): Promise<Buffer> {
    await redis.save();
    const rdb = path.join(dir, 'dump.rdb');
    const parts: Buffer[] = existsSync(rdb) ? [readFileSync(rdb)] : [];
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 500 })) {
      for (const key of keys as string[]) parts.push(Buffer.from(key), Buffer.from((await redis.dumpBuffer(key)) ?? Buffer.alloc(0)));
    }
    return Buffer.concat(parts);
  }

  async function assertNoMarker(prefix: string, when: string): Promise<void> {
    const bytes = await redisBytes(prefix);
    assert.ok(bytes.includes(SUBSCRIBER), `${when}: the control, the plain client id, is in the dump`);
    const found = markerIn(bytes);
    assert.equal(found, undefined, `${when}: the marker is in Redis: ${found}`);
  }

  it('payloads, user properties and correlation data are nowhere in an RDB dump or DUMP output; restart, SIGHUP rekey, old key removed: all intact', async () => {
    const { moat, keys } = broker('online');
    const first = keyLine(1);
    writeKeys(keys, [first]);
    await moat.start();
    await leaveSubscriberOffline(moat.url);
    await publishMarked(moat.url, ['a', 'b', 'c'], 'r1');
    await assertNoMarker('online:', 'running');
    await moat.stop();
    await moat.start();
    await expectRetained(moat.url, 'r1');
    await expectQueued(moat.url, published(['a', 'b', 'c'], 'r1'));

    await leaveSubscriberOffline(moat.url);
    await publishMarked(moat.url, ['d', 'e'], 'r2');
    const second = keyLine(2);
    writeKeys(keys, [first, second]);
    const counts = await moat.rekeyOnSighup();
    assert.equal(counts.keyId, 2);
    assert.equal(counts.queued, 3, 'd, e and r2 were queued under key 1');
    assert.ok(counts.retained >= 2, 'r1, r2 and the retained $SYS topics');
    await publishMarked(moat.url, ['f'], 'r3');
    await moat.stop();
    await assertNoMarker('online:', 'after the rekey');

    writeKeys(keys, [second]);
    await moat.start(); // with key 1 gone: it would refuse to start if a record were still under key 1
    await expectRetained(moat.url, 'r1');
    await expectQueued(moat.url, [...published(['d', 'e'], 'r2'), ...published(['f'], 'r3')]);
    await moat.stop();
  });

  it('moat store rekey: refused while the broker runs; a key id the file lacks stops the start; a stopped store is rekeyed', async () => {
    const { moat, keys } = broker('offline');
    const first = keyLine(1);
    const second = keyLine(2);
    writeKeys(keys, [first]);
    await moat.start();
    await leaveSubscriberOffline(moat.url);
    await publishMarked(moat.url, ['a', 'b'], 'r');
    const whileRunning = await moat.rekeyOffline();
    assert.equal(whileRunning.code, 1, JSON.stringify(whileRunning));
    assert.ok(whileRunning.stderr.includes(`PID ${moat.proc.pid}`), `names the running broker: ${whileRunning.stderr}`);
    await moat.stop();

    writeKeys(keys, [second]);
    const said = await moat.refused();
    assert.match(said, /key id 1\b/, said);

    writeKeys(keys, [first, second]);
    const rekeyed = await moat.rekeyOffline();
    assert.equal(rekeyed.code, 0, JSON.stringify(rekeyed));
    assert.match(rekeyed.stdout, /rekeyed 3 queued, 0 in flight, \d+ retained messages/);
    writeKeys(keys, [second]);
    await assertNoMarker('offline:', 'after the offline rekey');
    await moat.start();
    await expectRetained(moat.url, 'r');
    await expectQueued(moat.url, published(['a', 'b'], 'r'));
    await moat.stop();
  });
});

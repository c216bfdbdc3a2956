import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { killAll } from '../helpers/process.js';
import {
  expectQueued, expectRetained, keyLine, leaveSubscriberOffline, markerIn, MoatProcess, publishMarked, published, SUBSCRIBER, writeKeys,
} from '../helpers/at-rest.js';

/** Encryption at rest with the SQLite store, on a real `moat` process (docs/payload-encryption.md, "At rest"). */
describe('encryption at rest: SQLite', () => {
  let dir: string;
  const running: MoatProcess[] = [];
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-at-rest-'));
  });
  afterEach(() => {
    for (const broker of running.splice(0)) if (broker.proc?.status === undefined) broker.proc?.kill('SIGKILL');
  });
  after(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  function broker(name: string): { moat: MoatProcess; data: string; keys: string } {
    const data = path.join(dir, `${name}-data`);
    const keys = path.join(dir, `${name}.keys`);
    const moat = new MoatProcess(dir, name, `store:\n  directory: ${data}\n  encryption:\n    key_file: ${keys}\n`);
    running.push(moat);
    return { moat, data, keys };
  }

  /** moat.db, its WAL and shared memory, as they are on disk now. */
  function storeBytes(data: string): Buffer {
    return Buffer.concat(['moat.db', 'moat.db-wal', 'moat.db-shm'].map((f) => path.join(data, f)).filter(existsSync).map((f) => readFileSync(f)));
  }

  function assertNoMarker(data: string, when: string): void {
    const bytes = storeBytes(data);
    // The control: what is not encrypted (the session's client id) is there to be found.
    assert.ok(bytes.includes(SUBSCRIBER), `${when}: the store files hold the plain client id`);
    const found = markerIn(bytes);
    assert.equal(found, undefined, `${when}: the marker is in the store files: ${found}`);
  }

  it('payloads, user properties and correlation data are nowhere in moat.db, its WAL or -shm; after a restart, a SIGHUP rekey and the old key removed, all arrive intact', async () => {
    const { moat, data, keys } = broker('online');
    const first = keyLine(1);
    writeKeys(keys, [first]);
    await moat.start();
    await leaveSubscriberOffline(moat.url);
    await publishMarked(moat.url, ['a', 'b', 'c'], 'r1');
    assertNoMarker(data, 'running');

    await moat.stop();
    assertNoMarker(data, 'stopped');
    await moat.start();
    await expectRetained(moat.url, 'r1');
    await expectQueued(moat.url, published(['a', 'b', 'c'], 'r1'));

    // Rotation without downtime: a new key on the last line, SIGHUP, the pass re-encrypts what is stored.
    await leaveSubscriberOffline(moat.url);
    await publishMarked(moat.url, ['d', 'e'], 'r2');
    const second = keyLine(2);
    writeKeys(keys, [first, second]);
    const counts = await moat.rekeyOnSighup();
    assert.equal(counts.keyId, 2);
    assert.equal(counts.queued, 3, 'd, e and r2 were queued under key 1');
    assert.ok(counts.retained >= 2, 'r1, r2 and the retained $SYS topics');
    await publishMarked(moat.url, ['f'], 'r3'); // sealed under key 2 at once
    await moat.stop();
    assertNoMarker(data, 'after the rekey');

    writeKeys(keys, [second]);
    await moat.start(); // with key 1 gone: it would refuse to start if a record were still under key 1
    await expectRetained(moat.url, 'r1');
    await expectQueued(moat.url, [...published(['d', 'e'], 'r2'), ...published(['f'], 'r3')]);
    await moat.stop();
  });

  it('moat store rekey: refused with the PID while the broker runs; a record under a key id the file lacks stops the start; a stopped store is rekeyed', async () => {
    const { moat, data, keys } = broker('offline');
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

    // Key 1 removed before any rekey: the broker refuses to start, naming it; nothing is dropped.
    writeKeys(keys, [second]);
    const said = await moat.refused();
    assert.match(said, /key id 1\b/, said);
    assert.ok(said.includes(keys), `names the key file: ${said}`);

    writeKeys(keys, [first, second]);
    const rekeyed = await moat.rekeyOffline();
    assert.equal(rekeyed.code, 0, JSON.stringify(rekeyed));
    assert.match(rekeyed.stdout, /rekeyed 3 queued, 0 in flight, \d+ retained messages/);
    writeKeys(keys, [second]);
    assertNoMarker(data, 'after the offline rekey');
    await moat.start();
    await expectRetained(moat.url, 'r');
    await expectQueued(moat.url, published(['a', 'b'], 'r'));
    await moat.stop();
  });

  it('a store written without encryption: its plain records still read, and moat store rekey seals them', async () => {
    const data = path.join(dir, 'plain-data');
    const keys = path.join(dir, 'plain.keys');
    const plain = new MoatProcess(dir, 'plain', `store:\n  directory: ${data}\n`);
    running.push(plain);
    await plain.start();
    await leaveSubscriberOffline(plain.url);
    await publishMarked(plain.url, ['a'], 'r');
    await plain.stop();
    assert.ok(markerIn(storeBytes(data)), 'the control: without encryption the marker is in moat.db');

    writeKeys(keys, [keyLine(9)]);
    const sealed = new MoatProcess(dir, 'sealed', `store:\n  directory: ${data}\n  encryption:\n    key_file: ${keys}\n`);
    running.push(sealed);
    const rekeyed = await sealed.rekeyOffline();
    assert.equal(rekeyed.code, 0, JSON.stringify(rekeyed));
    assert.match(rekeyed.stdout, /rekeyed 2 queued, 0 in flight, \d+ retained messages/);
    assertNoMarker(data, 'after sealing the plain records');
    await sealed.start();
    await expectRetained(sealed.url, 'r');
    await expectQueued(sealed.url, published(['a'], 'r'));
    await sealed.stop();
  });
});

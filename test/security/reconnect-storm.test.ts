import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEntry, formatEntry } from '../../src/security/password-file.js';
import {
  disconnectAll, makeClients, MOAT, password, storm, StormBroker, StormClient, username, usersFile, type StormResult,
} from '../../bench/lib/reconnect-storm.js';

/**
 * A reconnect storm of honest clients (docs/security.md, "Password files"): 300 users, each its own client
 * from one of 30 addresses (127.0.0.2-31, none allow-listed), all connecting at the same moment to a moat
 * process with a password file (the guard on with it). Right after the start every check hashes; after all
 * disconnect and reconnect at once, the remembered credentials are recognised without hashing, also when
 * `moat passwd` rewrote the file meanwhile (another user added). The hashing is counted by an instrument
 * preloaded into the broker (bench/lib/count-scrypt.ts), not timed. A second storm, sized from the rate
 * this broker hashes at, needs more than the 9 s a check may wait under the default CONNECT timeout: under
 * `limits.connect_timeout: 60` it is served whole (the wait follows the CONNECT timeout). The figures for
 * 5,000 users at the cost `moat passwd` uses: bench/reconnect-storm.ts.
 */
const USERS = 300;

function outcome(r: StormResult): string {
  return JSON.stringify({ accepted: r.accepted, refused: r.refused, closed: r.closed, timedOut: r.timedOut, errors: r.errors, details: r.errorDetails });
}

describe('reconnect storm', () => {
  let dir: string;
  let broker: StormBroker | undefined;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'moat-storm-test-'));
  });
  after(async () => {
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('300 users from 30 addresses: all accepted at once after a start (each password hashed once), and again from remembered credentials (none hashed) after moat passwd added a user', { timeout: 180_000 }, async () => {
    // A cheap cost keeps the test short; the outcome does not depend on it (the bench uses moat passwd's own).
    const { file } = await usersFile({ count: USERS, logN: 10, dir });
    broker = await StormBroker.start({ passwordFile: file, connectTimeout: 30, countScrypt: true, limitMs: 170_000 });
    const clients = makeClients(USERS, 30);
    const options = { patienceMs: 35_000 };

    const cold = await storm(broker.port, clients, options);
    assert.equal(cold.accepted, USERS, `every client accepted on the first storm: ${outcome(cold)}`);
    assert.equal(await broker.scryptCalls(), USERS, 'each password hashed exactly once');

    // Another user added with `moat passwd`: the file is rewritten and the broker reads it again.
    const reloads = broker.count('password file reloaded');
    const added = spawnSync(process.execPath, [MOAT, 'passwd', file, 'newcomer'], { input: 'newcomer-password\n', encoding: 'utf8', timeout: 30_000 });
    assert.equal(added.status, 0, added.stderr);
    for (let i = 0; i < 200 && broker.count('password file reloaded') === reloads; i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(broker.count('password file reloaded') > reloads, 'the broker read the rewritten file');

    await disconnectAll(clients);
    const warm = await storm(broker.port, clients, options);
    assert.equal(warm.accepted, USERS, `every client accepted on the remembered storm: ${outcome(warm)}`);
    assert.equal(await broker.scryptCalls(), USERS, 'no password hashed again: the unchanged users were remembered across the reload');
    await disconnectAll(clients);
    assert.equal(broker.count('guard.banned'), 0, 'nobody banned');
    const exit = await broker.stop();
    broker = undefined;
    assert.equal(exit.code, 0);
  });

  it('a storm that needs more than 9 s of hashing is served within a CONNECT timeout of 60 s: the checks wait their turn as long as limits.connect_timeout allows', { timeout: 240_000 }, async () => {
    // One user's hash (and so its password) under every name, made in one hashing rather than thousands: each
    // check still hashes, as credentials are remembered per user name.
    const logN = 14;
    const most = 3000;
    const probe = 40;
    const model = await createEntry(username(0), Buffer.from(password(0)), { logN, r: 8, p: 1 });
    const file = path.join(dir, 'slow-users.pw');
    writeFileSync(file, `${Array.from({ length: most + probe }, (_, i) => formatEntry({ ...model, username: username(i) })).join('\n')}\n`);
    broker = await StormBroker.start({ passwordFile: file, connectTimeout: 60, countScrypt: true, limitMs: 230_000 });
    // How fast this broker hashes, here and now: a small storm of other users first.
    const probing = await storm(broker.port, Array.from({ length: probe }, (_, i) => new StormClient(most + i, `127.0.0.${2 + (i % 50)}`, password(0))), { patienceMs: 65_000 });
    assert.equal(probing.accepted, probe, outcome(probing));
    const perSecond = probe / (probing.wallMs / 1000);
    // About 20 s of hashing at the probe's rate (a larger storm goes faster than the probe, about 14 s): well
    // past the 9 s a check may wait under the default 10 s CONNECT timeout, well within the 59 s of a 60 s one.
    const count = Math.min(most, Math.ceil(perSecond * 20));
    const clients = makeClients(count, 50, () => password(0));
    const cold = await storm(broker.port, clients, { patienceMs: 65_000 });
    assert.equal(cold.accepted, count, `all ${count} accepted (${perSecond.toFixed(0)} checks a second here; ${(cold.wallMs / 1000).toFixed(1)} s in all), none told "server busy": ${outcome(cold)}`);
    assert.equal(await broker.scryptCalls(), probe + count, 'each password hashed once');
    await disconnectAll(clients);
    await broker.stop();
    broker = undefined;
  });
});

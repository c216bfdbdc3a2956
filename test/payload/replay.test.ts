import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplayWindow } from '../../src/payload/replay.js';

/** The replay window of payload envelopes (pure): each counter once, a little reordering allowed, the highest kept. */
describe('ReplayWindow', () => {
  it('accepts growing counters once each; the same counter again is a replay', () => {
    const w = new ReplayWindow(8);
    assert.equal(w.check('k', 1n), 'fresh');
    assert.equal(w.check('k', 2n), 'fresh');
    assert.equal(w.check('k', 2n), 'replayed');
    assert.equal(w.check('k', 1n), 'replayed');
    assert.equal(w.check('other', 1n), 'fresh', 'each key has its own counters');
  });

  it('takes counters that arrive out of order within the window, once; older than the window is refused', () => {
    const w = new ReplayWindow(4);
    assert.equal(w.check('k', 10n), 'fresh');
    assert.equal(w.check('k', 8n), 'fresh', 'two behind, not seen');
    assert.equal(w.check('k', 8n), 'replayed');
    assert.equal(w.check('k', 6n), 'fresh', 'four behind: the edge of the window');
    assert.equal(w.check('k', 5n), 'too-old');
    assert.equal(w.check('k', 20n), 'fresh', 'a jump forward');
    assert.equal(w.check('k', 10n), 'too-old', 'the jump pushed the old counters out');
    assert.equal(w.check('k', 19n), 'fresh');
    assert.equal(w.check('k', 19n), 'replayed');
  });

  it('window 0: strictly growing counters only', () => {
    const w = new ReplayWindow(0);
    assert.equal(w.check('k', 5n), 'fresh');
    assert.equal(w.check('k', 4n), 'too-old');
    assert.equal(w.check('k', 6n), 'fresh');
  });

  it('saves each new highest once per tick; after a restart only counters above the stored highest pass', async () => {
    const saved = new Map<string, bigint>();
    let saves = 0;
    const persistence = { load: () => saved.entries(), save: (key: string, highest: bigint) => void (saves++, saved.set(key, highest)) };
    const before = new ReplayWindow(8);
    before.attach(persistence);
    for (const c of [3n, 5n, 4n]) assert.equal(before.check('k', c), 'fresh');
    assert.equal(before.check('j', 1n), 'fresh');
    assert.equal(saves, 0, 'not saved within the tick');
    await new Promise((resolve) => process.nextTick(resolve));
    assert.equal(saved.get('k'), 5n, 'the highest, not the last');
    assert.equal(saved.get('j'), 1n);
    assert.equal(saves, 2, 'one save per key for the whole burst');
    const after = new ReplayWindow(8);
    after.attach(persistence);
    assert.equal(after.check('k', 5n), 'replayed');
    assert.equal(after.check('k', 4n), 'replayed', 'the window is not kept: below the stored highest counts as seen');
    assert.equal(after.check('k', 6n), 'fresh');
    await new Promise((resolve) => process.nextTick(resolve));
    assert.equal(saved.get('k'), 6n);
  });

  it('counters up to 2^64 - 1', () => {
    const w = new ReplayWindow(64);
    const top = 2n ** 64n - 1n;
    assert.equal(w.check('k', top - 1n), 'fresh');
    assert.equal(w.check('k', top), 'fresh');
    assert.equal(w.check('k', top - 1n), 'replayed');
    assert.throws(() => new ReplayWindow(2000), RangeError);
  });
});

describe('OutboundCounters', () => {
  it('counts from 1 per key, reserves blocks ahead in the store, and after a restart goes on above the last reservation', async () => {
    const { OutboundCounters } = await import('../../src/payload/outbound.js');
    const saved = new Map<string, bigint>();
    const persistence = { load: () => saved.entries(), save: (key: string, reserved: bigint) => void saved.set(key, reserved) };
    const epoch = (): number => 0; // the time floor out of the way
    const first = new OutboundCounters(undefined, 3n, epoch);
    first.attach(persistence);
    assert.deepEqual([first.take('a'), first.take('a'), first.take('b'), first.take('a')], [1n, 2n, 1n, 3n]);
    assert.equal(saved.get('a'), 3n, 'one reservation covered three counters');
    assert.equal(first.take('a'), 4n);
    assert.equal(saved.get('a'), 6n, 'the next block reserved before it is used');
    const second = new OutboundCounters(undefined, 3n, epoch);
    second.attach(persistence);
    assert.equal(second.take('a'), 7n, 'above every counter the first may have used');
    assert.equal(second.take('b'), 4n);
    const nonce = second.nonce(7n);
    assert.equal(nonce.length, 12);
    assert.equal(nonce.readBigUInt64BE(4), 7n);
    assert.notDeepEqual(second.noncePrefix, first.noncePrefix, 'a random prefix per start (equal once in 2^32)');
  });

  it('counts from the time in microseconds at least, so a reservation lost in a crash is not reused', async () => {
    const { OutboundCounters } = await import('../../src/payload/outbound.js');
    let clock = 1_000;
    const durable = new Map<string, bigint>();
    // A crash before the store wrote anything: every reservation lost.
    const lost = { load: () => durable.entries(), save: () => {} };
    const first = new OutboundCounters(lost, 3n, () => clock);
    const used = [first.take('a'), first.take('a'), first.take('a'), first.take('a')];
    assert.deepEqual(used, [1_000_000n, 1_000_001n, 1_000_002n, 1_000_003n], 'a new key starts at the time, not at 1');
    clock = 1_050; // the restart, 50 ms later
    const second = new OutboundCounters(lost, 3n, () => clock);
    assert.ok(second.take('a') > used.at(-1)!, 'above every counter used before the crash');
    durable.set('b', 5_000_000n);
    assert.equal(new OutboundCounters(lost, 3n, () => clock).take('b'), 5_000_001n, 'a stored reservation above the time wins');
  });
});

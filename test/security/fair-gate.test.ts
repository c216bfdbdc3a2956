import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FairGate } from '../../src/security/fair-gate.js';

/** The queue for password checks (pure code): addresses take turns, waits are bounded. */
describe('FairGate', () => {
  it('addresses take turns for a free slot: one address queueing many cannot hold the others back', async () => {
    const gate = new FairGate({ slots: 1, maxWaitMs: 5000 });
    const order: string[] = [];
    const first = await gate.enter('flood');
    // Each holder releases its slot as soon as it has it, so the next in turn goes.
    const take = (address: string, name: string): Promise<void> => gate.enter(address).then((release) => {
      assert.ok(release, `${name} was served`);
      order.push(name);
      release();
    });
    const all = [...Array.from({ length: 5 }, (_, i) => take('flood', `flood-${i}`)), take('honest', 'honest')];
    first!();
    await Promise.all(all);
    assert.equal(order.length, 6, 'everyone is served in the end');
    assert.equal(order.indexOf('honest'), 1, `the honest address is served second, not sixth: ${order.join(', ')}`);
  });

  it('a wait beyond maxWaitMs, or beyond the queue limits, is refused (undefined)', async () => {
    const gate = new FairGate({ slots: 1, maxWaitMs: 50, maxQueued: 3, maxQueuedPerAddress: 2 });
    const held = await gate.enter('a');
    assert.ok(held);
    const late = gate.enter('a');
    const second = gate.enter('a');
    assert.equal(await gate.enter('a'), undefined, 'per-address queue full');
    const other = gate.enter('b');
    assert.equal(await gate.enter('c'), undefined, 'whole queue full');
    assert.equal(await late, undefined, 'waited too long');
    assert.equal(await second, undefined);
    assert.equal(await other, undefined);
    held();
    assert.ok(await gate.enter('a'), 'a free slot is granted at once');
  });

  it('a caller with less time left waits only that long (its connection has been open a while)', async () => {
    const gate = new FairGate({ slots: 1, maxWaitMs: 5000 });
    const held = await gate.enter('a');
    const started = Date.now();
    assert.equal(await gate.enter('b', 50), undefined, 'refused once its own 50 ms are up');
    const waited = Date.now() - started;
    assert.ok(waited < 1000, `not the gate's 5 s (${waited} ms)`);
    const patient = gate.enter('c');
    held!();
    const release = await patient;
    assert.ok(release, 'the gate\'s own limit still applies to the others');
    release();
  });
});

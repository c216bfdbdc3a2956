import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runLiveFuzz, summarize, type FuzzOptions } from './live-broker.js';

/**
 * The live-broker fuzzer with a fixed seed, a few seconds per store (docs/fuzzing.md). Long runs with a
 * random seed: `npm run fuzz -- --packets N`.
 */
const SEED = 0x5eed_0016;

async function fuzz(options: Pick<FuzzOptions, 'store' | 'packets'>): Promise<void> {
  const report = await runLiveFuzz({ seed: SEED, connections: 48, maxDurationMs: 20_000, ...options });
  const text = summarize(report);
  assert.deepEqual(report.violations, [], text);
  assert.ok(report.packets >= Math.min(options.packets, 2000), `the run sent too little to mean anything:\n${text}`);
  assert.ok(report.connections.mustClose > 0 && report.connections.mustCloseByMutation > 0, text);
  assert.equal(report.connections.mustCloseClosed, report.connections.mustClose, text);
  assert.ok(report.canary.roundTrips > 0, text);
  assert.equal(report.exit?.code, 0, text);
}

describe('fuzzing the live broker (fixed seed)', () => {
  it('memory store: no crash, refused connections closed, canary intact, nothing left behind', { timeout: 90_000 }, async () => {
    await fuzz({ store: 'memory', packets: 14_000 });
  });

  it('SQLite store: the same invariants', { timeout: 90_000 }, async () => {
    await fuzz({ store: 'sqlite', packets: 6_000 });
  });
});

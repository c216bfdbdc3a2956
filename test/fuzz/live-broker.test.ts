import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runLiveFuzz, summarize, type FuzzOptions, type FuzzReport } from './live-broker.js';

/**
 * The live-broker fuzzer with a fixed seed, a few seconds per store, and a few against an authenticated
 * broker (docs/fuzzing.md). Long runs with a random seed: `npm run fuzz -- --packets N [--auth]`.
 */
const SEED = 0x5eed_0016;

async function fuzz(options: Pick<FuzzOptions, 'store' | 'packets' | 'auth'>): Promise<FuzzReport> {
  const report = await runLiveFuzz({ seed: SEED, connections: 48, maxDurationMs: 20_000, ...options });
  const text = summarize(report);
  assert.deepEqual(report.violations, [], text);
  assert.ok(report.packets >= Math.min(options.packets, 2000), `the run sent too little to mean anything:\n${text}`);
  assert.ok(report.connections.mustClose > 0 && report.connections.mustCloseByMutation > 0, text);
  assert.equal(report.connections.mustCloseClosed, report.connections.mustClose, text);
  assert.ok(report.canary.roundTrips > 0, text);
  assert.equal(report.exit?.code, 0, text);
  return report;
}

describe('fuzzing the live broker (fixed seed)', () => {
  it('memory store: no crash, refused connections closed, canary intact, nothing left behind', { timeout: 90_000 }, async () => {
    await fuzz({ store: 'memory', packets: 14_000 });
  });

  it('SQLite store: the same invariants', { timeout: 90_000 }, async () => {
    await fuzz({ store: 'sqlite', packets: 6_000 });
  });

  it('authenticated broker (password file, guard, permissions): the same invariants, the canary unharmed while fuzz clients are refused and banned', { timeout: 90_000 }, async () => {
    const report = await fuzz({ store: 'memory', packets: 8_000, auth: true });
    const text = summarize(report);
    const audit = report.auth!.audit;
    const security = report.auth!.security;
    assert.ok(audit['connect.accepted']! > 100, `fuzz clients with the right password got in (and on to the packets after CONNECT):\n${text}`);
    assert.ok(audit['connect.refused']! > 100, `wrong and made-up credentials were refused:\n${text}`);
    assert.ok((security['bans/issued'] ?? 0) > 0 && (security['refused/accept'] ?? 0) > 0, `the guard banned addresses and closed their connections at accept:\n${text}`);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SCENARIOS, writeSection } from '../../bench/run.js';
import type { BenchContext, ScenarioReport } from '../../bench/scenarios/context.js';

/**
 * A short run of the benchmark harness against real `moat` processes, so that
 * `npm run bench` cannot rot. It checks that the harness measures and checks,
 * not how fast anything is (figures belong to `npm run bench`).
 */

const quick: BenchContext = { quick: true, rounds: 1, brokerCpu: undefined, loadCpu: undefined, brokers: ['moat'], log: () => {} };

describe('bench harness (smoke run)', () => {
  it('durability: QoS 1 runs for strict, periodic and memory deliver every message once, in order', async () => {
    const report = await SCENARIOS.durability!(quick);
    assert.deepEqual(report.errors, []);
    const rows = report.data as Array<{ mode: string; rate: { median: number }; cpu: { median: number }; missing: number; duplicates: number }>;
    assert.deepEqual(rows.map((r) => r.mode), ['strict', 'periodic', 'memory']);
    for (const row of rows) {
      assert.ok(row.rate.median > 0, `${row.mode}: messages were delivered`);
      assert.ok(row.cpu.median > 0, `${row.mode}: broker CPU was measured`);
      assert.equal(row.missing, 0, `${row.mode}: nothing lost`);
      assert.equal(row.duplicates, 0, `${row.mode}: nothing repeated`);
    }
    assert.match(report.table, /\| `strict` \|/);
  });

  it('restart: a populated SQLite store and a populated Redis store are recovered and the broker answers', async () => {
    const report = await SCENARIOS.restart!(quick);
    assert.deepEqual(report.errors, []);
    const rows = report.data as Array<{ store: string; ready: { median: number }; rssMiB: { median: number } }>;
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.ok(row.ready.median > 0, `${row.store}: time to first CONNACK measured`);
      assert.ok(row.rssMiB.median > 0, `${row.store}: RSS measured`);
    }
  });

  it('writeSection replaces only the text between a scenario\'s markers', () => {
    const report: ScenarioReport = { id: 'x', title: 'X', setup: 'how', table: '| a |\n|---|\n| 1 |', errors: [], data: null };
    const docs = 'intro\n<!-- bench:x -->\nold\n<!-- /bench:x -->\noutro\n';
    const updated = writeSection(docs, report, '2026-01-01');
    assert.ok(updated.startsWith('intro\n<!-- bench:x -->\n_2026-01-01; '));
    assert.ok(updated.includes('how\n\n| a |\n|---|\n| 1 |\n<!-- /bench:x -->\noutro\n'));
    assert.ok(!updated.includes('old'));
    const appended = writeSection('intro\n', report, '2026-01-01');
    assert.ok(appended.includes('## X\n\n<!-- bench:x -->'));
  });
});

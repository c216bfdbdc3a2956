import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LATENCY_BUCKETS, LatencyHistogram } from '../../src/measure/latency.js';

describe('LatencyHistogram', () => {
  it('puts a value in the first bucket whose bound is not below it; a bound itself belongs to its bucket; above all bounds goes last', () => {
    const h = new LatencyHistogram();
    h.observe(0);
    h.observe(0.00005);
    h.observe(0.00006);
    h.observe(0.003);
    h.observe(60);
    assert.equal(h.counts.length, LATENCY_BUCKETS.length + 1);
    assert.equal(h.counts[0], 2, '0 and exactly 50 µs');
    assert.equal(h.counts[1], 1, '60 µs: up to 100 µs');
    assert.equal(h.counts[LATENCY_BUCKETS.indexOf(0.005)], 1, '3 ms: up to 5 ms');
    assert.equal(h.counts.at(-1), 1, 'a minute: +Inf');
    assert.equal(h.count, 5);
    assert.ok(Math.abs(h.sum - 60.00311) < 1e-9);
  });

  it('figures are a copy: later observations do not change what a scrape already read', () => {
    const h = new LatencyHistogram();
    h.observe(0.001);
    const read = h.figures();
    h.observe(0.001);
    assert.equal(read.count, 1);
    assert.equal(read.counts.reduce((a, b) => a + b, 0), 1);
    assert.equal(h.count, 2);
  });
});

describe('metric labels from reason names', () => {
  it('snake case, with QoS as one word', async () => {
    const { reasonLabel, snakeCase } = await import('../../src/broker/stats.js');
    assert.equal(reasonLabel(0x86), 'bad_user_name_or_password');
    assert.equal(reasonLabel(0x9b), 'qos_not_supported');
    assert.equal(reasonLabel(0x8d), 'keep_alive_timeout');
    assert.equal(snakeCase('slowConsumer'), 'slow_consumer');
  });
});

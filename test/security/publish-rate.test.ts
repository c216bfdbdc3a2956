import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_ALLOWANCE_PAUSE_MS } from '../../src/broker/hooks.js';
import { mostGenerous, PublishRate } from '../../src/security/guard/publish-rate.js';

/** The token buckets behind publishing rate limits, as pure code (the behaviour on the wire: rate-limit.test.ts). */

describe('PublishRate', () => {
  it('lets a burst through, then answers how long the client is in debt', () => {
    const rate = new PublishRate({ messagesPerSecond: 10 }, 0);
    for (let i = 0; i < 10; i++) assert.equal(rate.take(1, 0), 0, `message ${i + 1} of the burst`);
    assert.equal(rate.take(1, 0), 100, 'one message over: a tenth of a second');
    assert.equal(rate.take(1, 0), 200);
    assert.equal(rate.take(1, 300), 0, 'after the wait it is in credit again');
    assert.equal(rate.exceeded, 'messages');
  });

  it('a clock that lags the one it started with refills nothing, and drains nothing', () => {
    // The broker reads its clock once per chunk: a PUBLISH in the same chunk as a slow CONNECT is charged as of then.
    const rate = new PublishRate({ messagesPerSecond: 100, burstSeconds: 0.1 }, 10_000);
    assert.equal(rate.take(10, 8_000), 0, 'the first message of a fresh allowance goes');
    for (let i = 0; i < 9; i++) assert.equal(rate.take(10, 8_000), 0);
    assert.ok(rate.take(10, 8_000) > 0, 'the burst is 10 messages, no more, no fewer');
  });

  it('the byte rate names itself, and a wait past the maximum pause is reported as a disconnection', () => {
    const told: string[] = [];
    const rate = new PublishRate({ bytesPerSecond: 1000 }, 0, (limit, action) => told.push(`${limit} ${action}`));
    assert.equal(rate.take(600, 0), 0);
    assert.equal(rate.take(600, 0), 200);
    assert.equal(rate.exceeded, 'bytes');
    assert.equal(rate.take(600, 0), 800);
    assert.deepEqual(told, ['bytes paused'], 'told once while it only pauses');
    assert.ok(rate.take(100_000, 0) > MAX_ALLOWANCE_PAUSE_MS);
    assert.deepEqual(told, ['bytes paused', 'bytes disconnected']);
  });

  it('several roles: the larger of each rate, a rate one role leaves out is not limited, pause unless all disconnect', () => {
    assert.deepEqual(mostGenerous([{ messagesPerSecond: 10, bytesPerSecond: 100 }, { messagesPerSecond: 50, bytesPerSecond: 20, action: 'disconnect' }]),
      { messagesPerSecond: 50, bytesPerSecond: 100, burstSeconds: 1, action: 'pause' });
    assert.deepEqual(mostGenerous([{ messagesPerSecond: 10, action: 'disconnect' }, { messagesPerSecond: 5, bytesPerSecond: 20, action: 'disconnect', burstSeconds: 3 }]),
      { messagesPerSecond: 10, burstSeconds: 3, action: 'disconnect' });
    assert.equal(mostGenerous([]), undefined);
  });
});

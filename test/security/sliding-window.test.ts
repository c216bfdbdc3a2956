import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlidingWindow } from '../../src/security/guard/window.js';

/** The guard's sliding windows, as pure code: counts, and memory that does not outlive the window. */

describe('SlidingWindow', () => {
  it('counts the events of a key within the window', () => {
    const window = new SlidingWindow(10, 1000);
    assert.equal(window.hit('a', 0), 1);
    assert.equal(window.hit('a', 500), 2);
    assert.equal(window.hit('a', 1200), 2, 'the first fell out of the window');
    assert.equal(window.count('a', 1600), 1);
  });

  it('forgets keys unseen for a whole window at the next event, not only when full', () => {
    const window = new SlidingWindow(10, 1000);
    for (let i = 0; i < 20_000; i++) window.hit(`one-off-${i}`, i / 100); // 20,000 identifiers within 200 ms
    assert.equal(window.keys, 20_000);
    window.hit('later', 5_000);
    assert.equal(window.keys, 1, 'only the key seen within the last window is kept');
    window.hit('recent', 5_500);
    assert.equal(window.keys, 2);
  });

  it('keeps at most maxKeys keys, the least recently seen dropped first', () => {
    const window = new SlidingWindow(10, 60_000, 3);
    for (const key of ['a', 'b', 'c']) window.hit(key, 0);
    window.hit('a', 1);
    window.hit('d', 2);
    assert.equal(window.keys, 3);
    assert.equal(window.count('b', 3), 0, 'b was the least recently seen');
    assert.equal(window.count('a', 3), 2);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TwoPaths, type Window } from '../../src/cluster/two-paths.js';

/** The bookkeeping that keeps a message from reaching a moving session along two paths (pure code, no I/O). */

describe('TwoPaths: each message reaches a session in a window along one path', () => {
  it('is inactive until a window opens, and forgets everything once the last one closes', () => {
    const paths = new TwoPaths();
    assert.equal(paths.active, false);
    const window = paths.open(new Set(['s']));
    assert.equal(paths.active, true);
    paths.routedUsually('a', 5);
    assert.equal(paths.handOn(window, 'a', 5), false);
    paths.close(window);
    assert.equal(paths.active, false);
    const next = paths.open(new Set(['s']));
    assert.equal(paths.handOn(next, 'a', 5), true, 'nothing of the closed window is left');
  });

  it('a message routed the usual way after the window opened is not handed on; one routed before it is', () => {
    const paths = new TwoPaths();
    const earlier = paths.open(new Set(['other']));
    paths.routedUsually('a', 1); // before the session arrived: it did not get it
    const window = paths.open(new Set(['s']));
    paths.routedUsually('a', 2);
    assert.equal(paths.handOn(window, 'a', 1), true);
    assert.equal(paths.handOn(window, 'a', 2), false);
    assert.equal(paths.handOn(window, 'b', 2), true, 'another node\'s number 2 is another message');
    assert.equal(paths.handOn(earlier, 'a', 1), false, 'the earlier window saw number 1 arrive');
  });

  it('a message handed on first is routed the usual way to the other sessions only', () => {
    const paths = new TwoPaths();
    const window = paths.open(new Set(['s']));
    assert.equal(paths.handOn(window, 'a', 7), true);
    const hadIt = paths.routedUsually('a', 7);
    assert.ok(hadIt);
    assert.equal(hadIt('s'), true);
    assert.equal(hadIt('t'), false);
    assert.equal(paths.routedUsually('a', 8), undefined, 'a message not handed on goes to everyone');
  });

  it('what a hand-over says the session had (routedUpTo) is not given to it again', () => {
    const paths = new TwoPaths();
    const window = paths.open(new Set(['s']), { a: 100 });
    const old = paths.routedUsually('a', 100);
    assert.ok(old);
    assert.equal(old('s'), true);
    assert.equal(paths.routedUsually('a', 101), undefined);
    assert.equal(paths.routedUsually('b', 50), undefined, 'only node a\'s numbers are covered');
    paths.close(window);
  });

  it('closing one window keeps what another still needs', () => {
    const paths = new TwoPaths();
    const first = paths.open(new Set(['s1']));
    paths.routedUsually('a', 1);
    const second = paths.open(new Set(['s2']));
    paths.routedUsually('a', 2);
    paths.routedUsually('a', 3);
    paths.close(first);
    assert.equal(paths.handOn(second, 'a', 2), false);
    assert.equal(paths.handOn(second, 'a', 3), false);
    assert.equal(paths.handOn(second, 'a', 1), true, 'routed before the second window opened');
    const third = paths.open(new Set(['s3']));
    paths.routedUsually('a', 4);
    paths.close(second);
    assert.equal(paths.handOn(third, 'a', 4), false);
    assert.equal(paths.handOn(third, 'a', 3), true);
  });

  it('finds any of many messages, at both ends and in the middle', () => {
    const paths = new TwoPaths();
    paths.open(new Set(['early']));
    for (let id = 1_000; id < 51_000; id++) paths.routedUsually('a', id * 2);
    const window = paths.open(new Set(['s']));
    for (let id = 51_000; id < 101_000; id++) paths.routedUsually('a', id * 2);
    for (const id of [51_000, 76_543, 100_999]) assert.equal(paths.handOn(window, 'a', id * 2), false, `number ${id * 2}`);
    for (const id of [1_000, 50_999]) assert.equal(paths.handOn(window, 'a', id * 2), true, `number ${id * 2}, before the window`);
    assert.equal(paths.handOn(window, 'a', 76_543 * 2 + 1), true, 'a number never routed');
  });

  it('a node whose numbers go back (its clock was set back) is still found', () => {
    const paths = new TwoPaths();
    const window = paths.open(new Set(['s']));
    paths.routedUsually('a', 500);
    paths.routedUsually('a', 600);
    paths.routedUsually('a', 100);
    paths.routedUsually('a', 200);
    for (const id of [500, 600, 100, 200]) assert.equal(paths.handOn(window, 'a', id), false, `number ${id}`);
    assert.equal(paths.handOn(window, 'a', 150), true);
  });

  it('agrees with a plain log of every message routed, over random opens, closes, routes and hand-ons', () => {
    let seed = 12345;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let round = 0; round < 300; round++) {
      const paths = new TwoPaths();
      const log: Array<[string, number]> = [];
      const open = new Map<Window, number>();
      const next: Record<string, number> = { a: 0, b: 0, c: 0 };
      for (let step = 0; step < 400; step++) {
        const r = random(100);
        if (r < 8) {
          const window = paths.open(new Set([`s${step}`]));
          if (open.size === 0) log.length = 0;
          open.set(window, log.length);
        } else if (r < 14 && open.size > 0) {
          const window = [...open.keys()][random(open.size)]!;
          paths.close(window);
          open.delete(window);
        } else if (r < 75) {
          if (open.size === 0) continue;
          const origin = ['a', 'b', 'c'][random(3)]!;
          // Now and then a number from the past (a clock set back).
          const id = random(20) === 0 ? random(next[origin]! + 1) : (next[origin]! += 1 + random(3));
          paths.routedUsually(origin, id);
          log.push([origin, id]);
        } else if (open.size > 0) {
          const window = [...open.keys()][random(open.size)]!;
          const origin = ['a', 'b', 'c'][random(3)]!;
          const id = random(next[origin]! + 3);
          const cameUsually = log.slice(open.get(window)!).some(([o, i]) => o === origin && i === id);
          assert.equal(paths.handOn(window, origin, id), !cameUsually, `round ${round} step ${step}: ${origin} ${id}`);
        }
      }
    }
  });
});

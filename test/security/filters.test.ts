import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { covers, matchesTopic } from '../../src/security/filters.js';
import { referenceMatch, smallFilter, smallTopic } from '../helpers/topics.js';

/**
 * Every topic of up to four levels over the small alphabet and a level no filter names (a witness for `+`),
 * and each of them one level deeper (a witness for `#`).
 */
const UNIVERSE: string[] = (() => {
  const levels = ['', 'a', 'b', 'A', '$x', 'a b', 'zz'];
  let all: string[][] = levels.map((l) => [l]);
  let frontier = all;
  for (let depth = 2; depth <= 4; depth++) {
    frontier = frontier.flatMap((t) => levels.map((l) => [...t, l]));
    all = all.concat(frontier);
  }
  const deeper = frontier.map((t) => [...t, 'zz']);
  return all.concat(deeper).map((t) => t.join('/')).filter((t) => t.length > 0);
})();

describe('security filters: matchesTopic', () => {
  it('agrees with the reference matcher (MQTT 4.7) on random filters and topics', () => {
    fc.assert(fc.property(smallFilter, smallTopic, (f, t) => matchesTopic(f, t) === referenceMatch(f, t)), { numRuns: 3000 });
  });
});

describe('security filters: covers (how a subscription is judged)', () => {
  it('is sound: when a granted filter covers a requested one, every topic the request reaches is granted', () => {
    fc.assert(fc.property(smallFilter, smallFilter, (granted, requested) => {
      if (!covers(granted, requested)) return true;
      return UNIVERSE.every((t) => !referenceMatch(requested, t) || referenceMatch(granted, t));
    }), { numRuns: 500 });
  });

  it('is complete: when it does not cover, some topic reached by the request is not granted', () => {
    fc.assert(fc.property(smallFilter, smallFilter, (granted, requested) => {
      if (covers(granted, requested)) return true;
      return UNIVERSE.some((t) => referenceMatch(requested, t) && !referenceMatch(granted, t));
    }), { numRuns: 500 });
  });

  it('a client allowed a/b only is refused #, a/+ and +/b, and allowed a/b itself', () => {
    assert.equal(covers('a/b', '#'), false);
    assert.equal(covers('a/b', 'a/+'), false);
    assert.equal(covers('a/b', '+/b'), false);
    assert.equal(covers('a/b', 'a/b/#'), false);
    assert.equal(covers('a/b', 'a/b'), true);
  });

  it('a/# covers a, a/+/c and a/#; + covers one level only; # never covers $SYS [MQTT-4.7.2-1]', () => {
    assert.equal(covers('a/#', 'a'), true);
    assert.equal(covers('a/#', 'a/+/c'), true);
    assert.equal(covers('a/#', 'a/#'), true);
    assert.equal(covers('+', 'a/b'), false);
    assert.equal(covers('#', '$SYS/#'), false);
    assert.equal(covers('$SYS/#', '$SYS/broker/+'), true);
    // A topic name is never empty: # reaches what +/# reaches (property tests found these).
    assert.equal(covers('+/#', '#'), true);
    assert.equal(covers('/+/#', '/#'), true);
    assert.equal(covers('a/+/#', 'a/#'), false, 'a/# also reaches a');
  });
});

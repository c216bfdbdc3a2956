import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SubscriptionTrie } from '../../src/topics/index.js';
import { referenceMatch, smallFilter, smallTopic } from '../helpers/topics.js';

/** Every (filter, key) visited for `topic`, sorted; values are the filters. */
function visited(trie: SubscriptionTrie<string>, topic: string): string[] {
  const out: string[] = [];
  trie.match(topic, (filter, key) => out.push(`${filter} ${key}`));
  return out.sort();
}

/** Filters (each subscribed once under key "k") that match `topic`. */
function matchingFilters(filters: readonly string[], topic: string): string[] {
  const trie = new SubscriptionTrie<string>();
  for (const f of filters) trie.add(f, 'k', f);
  const out: string[] = [];
  trie.match(topic, (f) => out.push(f));
  return out.sort();
}

function assertMatches(filter: string, topics: readonly string[], nonTopics: readonly string[]): void {
  for (const t of topics) assert.deepStrictEqual(matchingFilters([filter], t), [filter], `${filter} should match ${JSON.stringify(t)}`);
  for (const t of nonTopics) assert.deepStrictEqual(matchingFilters([filter], t), [], `${filter} should not match ${JSON.stringify(t)}`);
}

describe('SubscriptionTrie matching', () => {
  it('exact filters match only the identical topic', () => {
    assertMatches('sport/tennis/player1', ['sport/tennis/player1'], ['sport/tennis', 'sport/tennis/player1/x', 'sport/tennis/player2', 'sport/tennis/player1/']);
  });

  it('[MQTT-4.7.1-2] "#" matches the parent level and any number of child levels', () => {
    assertMatches('sport/tennis/player1/#',
      ['sport/tennis/player1', 'sport/tennis/player1/ranking', 'sport/tennis/player1/score/wimbledon', 'sport/tennis/player1/'],
      ['sport/tennis/player2', 'sport/tennis', 'sport/tennis/player10']);
    assertMatches('sport/#', ['sport', 'sport/', 'sport/a/b/c'], ['sports', 'Sport', 'x/sport']);
  });

  it('[MQTT-4.7.1-2] "#" alone matches every topic not beginning with "$"', () => {
    assertMatches('#', ['a', '/', '/a', 'a/b/c', 'a//b', ' ', 'a/$x'], ['$SYS', '$SYS/x', '$x/a']);
  });

  it('[MQTT-4.7.1-3] "+" matches exactly one level, including an empty one', () => {
    assertMatches('sport/tennis/+', ['sport/tennis/player1', 'sport/tennis/player2', 'sport/tennis/'], ['sport/tennis/player1/ranking', 'sport/tennis']);
    assertMatches('sport/+', ['sport/', 'sport/x'], ['sport', 'sport/x/y']);
    assertMatches('+/+', ['/finance', 'a/b', '/'], ['a', 'a/b/c']);
    assertMatches('/+', ['/finance', '/'], ['finance', 'a/b']);
    assertMatches('+', ['finance', ' '], ['/finance', 'a/b', '/']);
    assertMatches('+/tennis/#', ['sport/tennis', 'sport/tennis/x', '/tennis'], ['sport/Tennis', 'tennis']);
    assertMatches('a/+/b', ['a//b', 'a/x/b'], ['a/b', 'a/x/y/b']);
  });

  it('[MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with "$"', () => {
    assertMatches('#', [], ['$SYS/x', '$SYS', '$']);
    assertMatches('+/x', ['a/x', '/x'], ['$SYS/x']);
    assertMatches('+/monitor/Clients', [], ['$SYS/monitor/Clients']);
    assertMatches('+', [], ['$SYS', '$']);
    assertMatches('+/#', ['a', 'a/b'], ['$SYS/x', '$SYS']);
  });

  it('[MQTT-4.7.2-1] "$SYS/#" and "$SYS/monitor/+" do match "$SYS" topics', () => {
    assertMatches('$SYS/#', ['$SYS', '$SYS/x', '$SYS/broker/clients/connected'], ['$SYSX', 'SYS/x', '$sys/x']);
    assertMatches('$SYS/monitor/+', ['$SYS/monitor/Clients'], ['$SYS/monitor', '$SYS/monitor/a/b']);
    assertMatches('$SYS/x', ['$SYS/x'], ['$SYS/y']);
  });

  it('"$" not in the first level is an ordinary character for wildcards', () => {
    assertMatches('a/+', ['a/$x'], []);
    assertMatches('a/#', ['a/$x/y'], []);
    assertMatches('+/$x', ['a/$x'], ['$x/$x']);
  });

  it('(4.7.3) matching is case-sensitive', () => {
    assertMatches('ACCOUNTS', ['ACCOUNTS'], ['Accounts', 'accounts']);
    assertMatches('a/+/C', ['a/b/C'], ['a/b/c', 'A/b/C']);
    assertMatches('Sport/#', ['Sport/x'], ['sport/x']);
  });

  it('empty levels are levels: "/a", "a//b", "a/"', () => {
    assertMatches('/a', ['/a'], ['a', '//a', 'a/']);
    assertMatches('+/a', ['/a', 'x/a'], ['a']);
    assertMatches('a//b', ['a//b'], ['a/b', 'a///b']);
    assertMatches('a/', ['a/'], ['a', 'a//']);
    assertMatches('a/+', ['a/'], ['a']);
    assertMatches('a/#', ['a/', 'a', 'a//'], []);
    assertMatches('/', ['/'], ['', '//', 'a']);
    assertMatches('/#', ['/', '/a', '//'], ['a']);
  });

  it('all matching filters are reported, each (filter, subscriber) pair once', () => {
    const trie = new SubscriptionTrie<string>();
    for (const f of ['a/b', 'a/+', 'a/#', '#', '+/b', '+/+', 'a/b/#', 'b/#', 'a/c', '+']) {
      trie.add(f, 'c1', f);
      trie.add(f, 'c2', f);
    }
    const expected = ['a/b', 'a/+', 'a/#', '#', '+/b', '+/+', 'a/b/#'].flatMap((f) => [`${f} c1`, `${f} c2`]).sort();
    assert.deepStrictEqual(visited(trie, 'a/b'), expected);
  });
});

describe('SubscriptionTrie add / replace / remove', () => {
  it('add returns true for a new (filter, key) and false when replacing; the value is replaced', () => {
    const trie = new SubscriptionTrie<number>();
    assert.equal(trie.add('a/+', 'c1', 1), true);
    assert.equal(trie.add('a/+', 'c2', 2), true);
    assert.equal(trie.add('a/+', 'c1', 3), false);
    assert.equal(trie.size, 2);
    assert.equal(trie.get('a/+', 'c1'), 3);
    assert.equal(trie.get('a/+', 'c2'), 2);
    assert.equal(trie.get('a/+', 'c3'), undefined);
    assert.equal(trie.get('a/#', 'c1'), undefined);
    assert.equal(trie.get('a', 'c1'), undefined);
    const seen: Array<[number, string]> = [];
    trie.match('a/x', (v, k) => seen.push([v, k]));
    assert.deepStrictEqual(seen.sort(), [[2, 'c2'], [3, 'c1']]);
  });

  it('wildcard characters in a filter and literal look-alike levels are distinct entries', () => {
    const trie = new SubscriptionTrie<string>();
    trie.add('a/+', 'k', 'plus');
    trie.add('a/#', 'k', 'hash');
    trie.add('a/b', 'k', 'literal');
    assert.equal(trie.size, 3);
    assert.equal(trie.get('a/+', 'k'), 'plus');
    assert.equal(trie.get('a/#', 'k'), 'hash');
    assert.equal(trie.get('a/b', 'k'), 'literal');
  });

  it('remove returns true once, false for unknown filters or keys, and updates size', () => {
    const trie = new SubscriptionTrie<string>();
    trie.add('a/b', 'c1', 'x');
    trie.add('a/b', 'c2', 'y');
    assert.equal(trie.remove('a/b', 'c3'), false);
    assert.equal(trie.remove('a/c', 'c1'), false);
    assert.equal(trie.remove('a', 'c1'), false);
    assert.equal(trie.remove('a/b/c', 'c1'), false);
    assert.equal(trie.remove('a/+', 'c1'), false);
    assert.equal(trie.size, 2);
    assert.equal(trie.remove('a/b', 'c1'), true);
    assert.equal(trie.remove('a/b', 'c1'), false);
    assert.equal(trie.size, 1);
    assert.deepStrictEqual(visited(trie, 'a/b'), ['y c2']);
    // Removing a deeper filter keeps the shorter one on the same path, and vice versa.
    trie.add('a/b/c', 'c1', 'deep');
    assert.equal(trie.remove('a/b', 'c2'), true);
    assert.deepStrictEqual(visited(trie, 'a/b/c'), ['deep c1']);
    assert.deepStrictEqual(visited(trie, 'a/b'), []);
  });

  it('removing everything prunes the trie back to an empty root (size 0)', () => {
    const trie = new SubscriptionTrie<number>();
    const filters = ['a', 'a/b', 'a/+', 'a/#', '#', '+', '+/+/+', '/', '/#', 'a//b', '$SYS/#', 'x/y/z/w', 'a/+/c/#'];
    filters.forEach((f, i) => {
      trie.add(f, 'c1', i);
      trie.add(f, 'c2', i);
    });
    assert.equal(trie.size, filters.length * 2);
    for (const f of [...filters].reverse()) assert.equal(trie.remove(f, 'c1'), true);
    for (const f of filters) assert.equal(trie.remove(f, 'c2'), true);
    assert.equal(trie.size, 0);
    for (const t of ['a', 'a/b', '/', 'x/y/z/w', '$SYS/x']) assert.deepStrictEqual(visited(trie as unknown as SubscriptionTrie<string>, t), []);
    // White-box: no empty nodes are left behind (they would leak memory for every filter ever used).
    const root = (trie as unknown as { root: Record<string, unknown> }).root;
    assert.deepStrictEqual(
      { children: root.children, plus: root.plus, hash: root.hash, values: root.values },
      { children: undefined, plus: undefined, hash: undefined, values: undefined },
    );
  });

  it('property: matching agrees with a reference matcher over random filters, subscribers and removals', () => {
    const op = fc.record({ filter: smallFilter, key: fc.constantFrom('k1', 'k2', 'k3'), remove: fc.boolean() });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.array(smallTopic, { minLength: 1, maxLength: 10 }), (ops, topics) => {
        const trie = new SubscriptionTrie<string>();
        const model = new Map<string, string>(); // "filter key" -> filter
        for (const { filter, key, remove } of ops) {
          const id = `${filter} ${key}`;
          if (remove) {
            assert.equal(trie.remove(filter, key), model.delete(id));
          } else {
            assert.equal(trie.add(filter, key, filter), !model.has(id));
            model.set(id, filter);
          }
          assert.equal(trie.size, model.size);
        }
        for (const topic of topics) {
          const expected = [...model.keys()].filter((id) => referenceMatch(model.get(id)!, topic)).sort();
          assert.deepStrictEqual(visited(trie, topic), expected, `topic ${JSON.stringify(topic)}`);
        }
        for (const id of model.keys()) {
          const [filter, key] = [id.slice(0, id.lastIndexOf(' ')), id.slice(id.lastIndexOf(' ') + 1)];
          assert.equal(trie.remove(filter, key), true);
        }
        assert.equal(trie.size, 0);
        for (const topic of topics) assert.deepStrictEqual(visited(trie, topic), []);
      }),
      { numRuns: 500 },
    );
  });

  it('property: a single filter matches a topic exactly when the reference matcher says so', () => {
    fc.assert(
      fc.property(smallFilter, smallTopic, (filter, topic) => {
        assert.equal(matchingFilters([filter], topic).length === 1, referenceMatch(filter, topic), `${filter} vs ${topic}`);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('SubscriptionTrie match cache', () => {
  it('a topic matched before sees subscribers added, replaced and removed since', () => {
    const trie = new SubscriptionTrie<string>();
    trie.add('a/+', 'c1', 'first');
    assert.deepStrictEqual(visited(trie, 'a/b'), ['first c1']);
    trie.add('a/#', 'c2', 'hash');
    assert.deepStrictEqual(visited(trie, 'a/b'), ['first c1', 'hash c2']);
    trie.add('a/+', 'c1', 'replaced');
    assert.deepStrictEqual(visited(trie, 'a/b'), ['hash c2', 'replaced c1']);
    trie.remove('a/#', 'c2');
    assert.deepStrictEqual(visited(trie, 'a/b'), ['replaced c1']);
    trie.remove('a/+', 'c1');
    assert.deepStrictEqual(visited(trie, 'a/b'), []);
  });

  it('the $ rule holds for cached topics too [MQTT-4.7.2-1]', () => {
    const trie = new SubscriptionTrie<string>();
    trie.add('#', 'k', 'all');
    assert.deepStrictEqual(visited(trie, '$SYS/x'), []);
    assert.deepStrictEqual(visited(trie, '$SYS/x'), []);
    assert.deepStrictEqual(visited(trie, 'x'), ['all k']);
  });

  it('repeated matches with changes in between agree with a fresh trie (property)', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ add: fc.boolean(), filter: smallFilter, key: fc.constantFrom('k1', 'k2'), topic: smallTopic }), { maxLength: 40 }),
      (steps) => {
        const trie = new SubscriptionTrie<string>();
        const live = new Map<string, string>();
        for (const step of steps) {
          if (step.add) {
            trie.add(step.filter, step.key, step.filter);
            live.set(`${step.filter}\u0000${step.key}`, step.filter);
          } else {
            trie.remove(step.filter, step.key);
            live.delete(`${step.filter}\u0000${step.key}`);
          }
          const fresh = new SubscriptionTrie<string>();
          for (const [id, filter] of live) fresh.add(filter, id.split('\u0000')[1]!, filter);
          assert.deepStrictEqual(visited(trie, step.topic), visited(fresh, step.topic));
          assert.deepStrictEqual(visited(trie, step.topic), visited(fresh, step.topic));
        }
      },
    ));
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TopicTree } from '../../src/topics/index.js';
import { referenceMatch, smallFilter, smallTopic } from '../helpers/topics.js';

/** Topics reported by `match(filter)`, sorted; each stored value is "v:" + its topic. */
function matched(tree: TopicTree<string>, filter: string): string[] {
  const out: string[] = [];
  tree.match(filter, (value) => {
    assert.ok(value.startsWith('v:'), 'visit reports a stored value');
    out.push(value.slice(2));
  });
  return out.sort();
}

function treeOf(topics: readonly string[]): TopicTree<string> {
  const tree = new TopicTree<string>();
  for (const t of topics) tree.set(t, `v:${t}`);
  return tree;
}

const STORED = [
  'sport', 'sport/', 'sport/tennis', 'sport/tennis/player1', 'sport/tennis/player1/ranking', 'sport/tennis/player2',
  'Sport/tennis', 'sports', '/', '/finance', 'finance', 'a//b', 'a/b', 'a/', '$SYS', '$SYS/broker/uptime', '$SYS/x', 'a/$x',
];

function assertMatch(filter: string, expected: readonly string[]): void {
  assert.deepStrictEqual(matched(treeOf(STORED), filter), [...expected].sort(), `filter ${filter}`);
}

describe('TopicTree matching (stored topics selected by a filter)', () => {
  it('an exact filter selects only the identical topic', () => {
    assertMatch('sport/tennis', ['sport/tennis']);
    assertMatch('sport/tennis/player3', []);
  });

  it('[MQTT-4.7.1-2] "sport/#" selects "sport" itself and everything below it', () => {
    assertMatch('sport/#', ['sport', 'sport/', 'sport/tennis', 'sport/tennis/player1', 'sport/tennis/player1/ranking', 'sport/tennis/player2']);
    assertMatch('sport/tennis/player1/#', ['sport/tennis/player1', 'sport/tennis/player1/ranking']);
  });

  it('[MQTT-4.7.1-2] [MQTT-4.7.2-1] "#" selects every topic except those beginning with "$"', () => {
    assertMatch('#', STORED.filter((t) => !t.startsWith('$')));
  });

  it('[MQTT-4.7.1-3] "+" selects exactly one level, including empty levels', () => {
    assertMatch('sport/+', ['sport/', 'sport/tennis']);
    assertMatch('+', ['sport', 'Sport', 'sports', 'finance'].filter((t) => STORED.includes(t)));
    assertMatch('+/+', ['sport/', 'sport/tennis', 'Sport/tennis', '/', '/finance', 'a/b', 'a/', 'a/$x']);
    assertMatch('/+', ['/', '/finance']);
    assertMatch('a/+/b', ['a//b']);
    assertMatch('+/tennis/#', ['sport/tennis', 'sport/tennis/player1', 'sport/tennis/player1/ranking', 'sport/tennis/player2', 'Sport/tennis']);
  });

  it('[MQTT-4.7.2-1] "+/x" and "+/#" do not select "$SYS/x"; "$SYS/#" and "$SYS/+" do', () => {
    assertMatch('+/x', []);
    assert.ok(!matched(treeOf(STORED), '+/#').some((t) => t.startsWith('$')));
    assertMatch('$SYS/#', ['$SYS', '$SYS/broker/uptime', '$SYS/x']);
    assertMatch('$SYS/+', ['$SYS/x']);
    assertMatch('$SYS/x', ['$SYS/x']);
    assertMatch('a/+', ['a/b', 'a/', 'a/$x']);
  });

  it('(4.7.3) matching is case-sensitive', () => {
    assertMatch('Sport/#', ['Sport/tennis']);
    assertMatch('sport/Tennis', []);
  });

  it('empty levels: "/", "a//b", "a/"', () => {
    assertMatch('/', ['/']);
    assertMatch('a//b', ['a//b']);
    assertMatch('a/', ['a/']);
    assertMatch('a/#', ['a//b', 'a/b', 'a/', 'a/$x']);
    assertMatch('/#', ['/', '/finance']);
  });
});

describe('TopicTree set / get / delete', () => {
  it('set stores, replaces without changing size; get reads; delete removes', () => {
    const tree = new TopicTree<number>();
    tree.set('a/b', 1);
    tree.set('a', 2);
    tree.set('a/b', 3);
    assert.equal(tree.size, 2);
    assert.equal(tree.get('a/b'), 3);
    assert.equal(tree.get('a'), 2);
    assert.equal(tree.get('a/b/c'), undefined);
    assert.equal(tree.get('a/'), undefined);
    assert.equal(tree.get('A/b'), undefined);
    assert.equal(tree.delete('a/c'), false);
    assert.equal(tree.delete('a/b/c'), false);
    assert.equal(tree.delete('a/b'), true);
    assert.equal(tree.delete('a/b'), false);
    assert.equal(tree.size, 1);
    assert.equal(tree.get('a'), 2);
    assert.deepStrictEqual([...tree.values()], [2]);
  });

  it('deleting a topic keeps its parent and children', () => {
    const tree = treeOf(['a', 'a/b', 'a/b/c']);
    assert.equal(tree.delete('a/b'), true);
    assert.deepStrictEqual(matched(tree, '#'), ['a', 'a/b/c']);
    assert.equal(tree.delete('a'), true);
    assert.deepStrictEqual(matched(tree, '#'), ['a/b/c']);
  });

  it('removing everything prunes the tree back to an empty root (size 0)', () => {
    const tree = treeOf(STORED);
    assert.equal(tree.size, STORED.length);
    assert.equal([...tree.values()].length, STORED.length);
    for (const t of STORED) assert.equal(tree.delete(t), true, t);
    assert.equal(tree.size, 0);
    assert.deepStrictEqual([...tree.values()], []);
    assert.deepStrictEqual(matched(tree, '#'), []);
    // White-box: no empty nodes are left behind.
    const root = (tree as unknown as { root: { children: unknown; value: unknown } }).root;
    assert.deepStrictEqual({ children: root.children, value: root.value }, { children: undefined, value: undefined });
  });

  it('property: match agrees with a reference matcher over random stored topics and filters', () => {
    fc.assert(
      fc.property(
        fc.array(smallTopic, { maxLength: 20 }), fc.array(smallTopic, { maxLength: 8 }), fc.array(smallFilter, { minLength: 1, maxLength: 10 }),
        (stored, deleted, filters) => {
          const tree = treeOf(stored);
          const model = new Set(stored);
          for (const t of deleted) assert.equal(tree.delete(t), model.delete(t));
          assert.equal(tree.size, model.size);
          assert.deepStrictEqual([...tree.values()].sort(), [...model].map((t) => `v:${t}`).sort());
          for (const filter of filters) {
            const expected = [...model].filter((t) => referenceMatch(filter, t)).sort();
            assert.deepStrictEqual(matched(tree, filter), expected, `filter ${JSON.stringify(filter)}`);
          }
          for (const t of model) assert.equal(tree.delete(t), true);
          assert.equal(tree.size, 0);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

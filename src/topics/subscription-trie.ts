/**
 * Subscription trie: topic filters in, matching subscribers out.
 * Levels are split on '/', empty levels are levels, matching is case-sensitive.
 * Filters starting with a wildcard do not match topics starting with '$' [MQTT-4.7.2-1].
 */
interface FilterNode<T> {
  children: Map<string, FilterNode<T>> | undefined;
  plus: FilterNode<T> | undefined;
  hash: FilterNode<T> | undefined;
  /** Subscribers whose filter ends at this node, by subscriber key. */
  values: Map<string, T> | undefined;
}

function newNode<T>(): FilterNode<T> {
  return { children: undefined, plus: undefined, hash: undefined, values: undefined };
}

export type MatchVisitor<T> = (value: T, key: string) => void;

/** What a topic matched, kept until the next change to the trie. */
interface CachedMatch<T> {
  values: T[];
  keys: string[];
}

/** Topics remembered, subscriber references over all of them, and the longest topic kept: bounds on the cache's memory. */
const CACHE_TOPICS = 4096;
const CACHE_VALUES = 65_536;
const CACHE_TOPIC_LENGTH = 256;

export class SubscriptionTrie<T> {
  private readonly root: FilterNode<T> = newNode();
  private count = 0;
  /**
   * Recent topics and what they matched. Publishers mostly repeat their topics, and a
   * lookup is one hash of the topic where a walk splits it into levels and hashes each;
   * any add or remove empties it.
   */
  private readonly cache = new Map<string, CachedMatch<T>>();
  private cachedValues = 0;

  /** Number of (filter, subscriber) pairs. */
  get size(): number {
    return this.count;
  }

  /** Adds or replaces the value of `key` for `filter`. Returns true if it was new. */
  add(filter: string, key: string, value: T): boolean {
    this.forget();
    let node = this.root;
    for (const level of filter.split('/')) {
      if (level === '+') node = node.plus ??= newNode();
      else if (level === '#') node = node.hash ??= newNode();
      else {
        node.children ??= new Map();
        let child = node.children.get(level);
        if (!child) {
          child = newNode();
          node.children.set(level, child);
        }
        node = child;
      }
    }
    node.values ??= new Map();
    const isNew = !node.values.has(key);
    node.values.set(key, value);
    if (isNew) this.count++;
    return isNew;
  }

  get(filter: string, key: string): T | undefined {
    let node: FilterNode<T> | undefined = this.root;
    for (const level of filter.split('/')) {
      if (!node) return undefined;
      node = level === '+' ? node.plus : level === '#' ? node.hash : node.children?.get(level);
    }
    return node?.values?.get(key);
  }

  /** Removes `key` from `filter`; prunes nodes left empty. Returns true if it was there. */
  remove(filter: string, key: string): boolean {
    this.forget();
    const path: Array<[FilterNode<T>, string]> = [];
    let node: FilterNode<T> | undefined = this.root;
    for (const level of filter.split('/')) {
      path.push([node, level]);
      node = level === '+' ? node.plus : level === '#' ? node.hash : node.children?.get(level);
      if (!node) return false;
    }
    if (!node.values?.delete(key)) return false;
    this.count--;
    if (node.values.size === 0) node.values = undefined;
    for (let i = path.length - 1; i >= 0 && isEmpty(node); i--) {
      const [parent, level] = path[i]!;
      if (level === '+') parent.plus = undefined;
      else if (level === '#') parent.hash = undefined;
      else {
        parent.children!.delete(level);
        if (parent.children!.size === 0) parent.children = undefined;
      }
      node = parent;
    }
    return true;
  }

  /** Calls `visit` for every subscriber of every filter matching `topic`. */
  match(topic: string, visit: MatchVisitor<T>): void {
    let hit = this.cache.get(topic);
    if (hit === undefined) {
      const found: CachedMatch<T> = { values: [], keys: [] };
      const guardWildcards = topic.charCodeAt(0) === 0x24; // '$'
      this.matchFrom(this.root, topic, 0, guardWildcards, (value, key) => {
        found.values.push(value);
        found.keys.push(key);
      });
      if (this.cache.size >= CACHE_TOPICS || this.cachedValues + found.values.length > CACHE_VALUES) this.forget();
      if (found.values.length <= CACHE_VALUES && topic.length <= CACHE_TOPIC_LENGTH) {
        this.cache.set(topic, found);
        this.cachedValues += found.values.length;
      }
      hit = found;
    }
    // A visitor may change the trie: that drops cache entries but never alters their arrays.
    const { values, keys } = hit;
    for (let i = 0; i < values.length; i++) visit(values[i]!, keys[i]!);
  }

  private forget(): void {
    if (this.cache.size === 0) return;
    this.cache.clear();
    this.cachedValues = 0;
  }

  private matchFrom(node: FilterNode<T>, topic: string, start: number, noWildcards: boolean, visit: MatchVisitor<T>): void {
    // '#' matches the parent level and any number of levels below [MQTT-4.7.1-2].
    if (node.hash?.values && !noWildcards) visitAll(node.hash.values, visit);
    if (start === -1) {
      if (node.values) visitAll(node.values, visit);
      return;
    }
    const end = topic.indexOf('/', start);
    const level = end === -1 ? topic.slice(start) : topic.slice(start, end);
    const next = end === -1 ? -1 : end + 1;
    const child = node.children?.get(level);
    if (child) this.matchFrom(child, topic, next, false, visit);
    if (node.plus && !noWildcards) this.matchFrom(node.plus, topic, next, false, visit);
  }
}

function visitAll<T>(values: Map<string, T>, visit: MatchVisitor<T>): void {
  for (const [key, value] of values) visit(value, key);
}

function isEmpty<T>(node: FilterNode<T>): boolean {
  return !node.values && !node.children && !node.plus && !node.hash;
}

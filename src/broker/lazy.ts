/**
 * Map and Set that allocate their table on the first insertion: a session holds
 * several, and most of them stay empty for most clients (an idle connection then
 * costs a small object each instead of a hash table).
 */

const NOTHING: ReadonlyMap<never, never> & ReadonlySet<never> = Object.freeze(new Map()) as never;

export class LazyMap<K, V> implements Iterable<[K, V]> {
  private map: Map<K, V> | undefined;

  get size(): number {
    return this.map === undefined ? 0 : this.map.size;
  }

  get(key: K): V | undefined {
    return this.map?.get(key);
  }

  has(key: K): boolean {
    return this.map !== undefined && this.map.has(key);
  }

  set(key: K, value: V): this {
    (this.map ??= new Map()).set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.map !== undefined && this.map.delete(key);
  }

  clear(): void {
    this.map = undefined;
  }

  keys(): IterableIterator<K> {
    return (this.map ?? (NOTHING as ReadonlyMap<K, V>)).keys();
  }

  values(): IterableIterator<V> {
    return (this.map ?? (NOTHING as ReadonlyMap<K, V>)).values();
  }

  entries(): IterableIterator<[K, V]> {
    return (this.map ?? (NOTHING as ReadonlyMap<K, V>)).entries();
  }

  forEach(callback: (value: V, key: K) => void): void {
    this.map?.forEach((value, key) => callback(value, key));
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
}

export class LazySet<T> implements Iterable<T> {
  private set: Set<T> | undefined;

  get size(): number {
    return this.set === undefined ? 0 : this.set.size;
  }

  has(value: T): boolean {
    return this.set !== undefined && this.set.has(value);
  }

  add(value: T): this {
    (this.set ??= new Set()).add(value);
    return this;
  }

  delete(value: T): boolean {
    return this.set !== undefined && this.set.delete(value);
  }

  clear(): void {
    this.set = undefined;
  }

  values(): IterableIterator<T> {
    return (this.set ?? (NOTHING as ReadonlySet<T>)).values();
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this.values();
  }
}

/** FIFO with O(1) push and shift (arrays shift in O(n) once large); its array is made on the first push. */
export class Deque<T> {
  private items: Array<T | undefined> | undefined;
  private head = 0;

  get length(): number {
    return this.items === undefined ? 0 : this.items.length - this.head;
  }

  push(item: T): void {
    (this.items ??= []).push(item);
  }

  peek(): T | undefined {
    return this.items?.[this.head];
  }

  shift(): T | undefined {
    const items = this.items;
    if (items === undefined || this.head >= items.length) return undefined;
    const item = items[this.head];
    items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): void {
    this.items = undefined;
    this.head = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    const items = this.items;
    if (items === undefined) return;
    for (let i = this.head; i < items.length; i++) yield items[i]!;
  }
}

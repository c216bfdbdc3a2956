/**
 * Topic names in, one value per topic: the retained-message index. Answers
 * "which stored topics does this filter match" by walking the filter.
 */
interface TopicNode<T> {
  children: Map<string, TopicNode<T>> | undefined;
  value: T | undefined;
}

export class TopicTree<T> {
  private readonly root: TopicNode<T> = { children: undefined, value: undefined };
  private count = 0;

  get size(): number {
    return this.count;
  }

  set(topic: string, value: T): void {
    let node = this.root;
    for (const level of topic.split('/')) {
      node.children ??= new Map();
      let child = node.children.get(level);
      if (!child) {
        child = { children: undefined, value: undefined };
        node.children.set(level, child);
      }
      node = child;
    }
    if (node.value === undefined) this.count++;
    node.value = value;
  }

  get(topic: string): T | undefined {
    let node: TopicNode<T> | undefined = this.root;
    for (const level of topic.split('/')) {
      node = node.children?.get(level);
      if (!node) return undefined;
    }
    return node.value;
  }

  delete(topic: string): boolean {
    const path: Array<[TopicNode<T>, string]> = [];
    let node: TopicNode<T> | undefined = this.root;
    for (const level of topic.split('/')) {
      path.push([node, level]);
      node = node.children?.get(level);
      if (!node) return false;
    }
    if (node.value === undefined) return false;
    node.value = undefined;
    this.count--;
    for (let i = path.length - 1; i >= 0 && node.value === undefined && !node.children; i--) {
      const [parent, level] = path[i]!;
      parent.children!.delete(level);
      if (parent.children!.size === 0) parent.children = undefined;
      node = parent;
    }
    return true;
  }

  /** Calls `visit` for every stored topic matched by `filter` (same rules as subscriptions). */
  match(filter: string, visit: (value: T) => void): void {
    this.walk(this.root, filter.split('/'), 0, visit);
  }

  *values(): IterableIterator<T> {
    const stack: TopicNode<T>[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.value !== undefined) yield node.value;
      if (node.children) stack.push(...node.children.values());
    }
  }

  private walk(node: TopicNode<T>, levels: string[], depth: number, visit: (value: T) => void): void {
    if (depth === levels.length) {
      if (node.value !== undefined) visit(node.value);
      return;
    }
    const level = levels[depth]!;
    if (level === '#') {
      // The parent level itself matches ("a/#" matches "a").
      if (depth > 0 && node.value !== undefined) visit(node.value);
      this.visitSubtree(node, depth === 0, visit);
      return;
    }
    if (!node.children) return;
    if (level === '+') {
      for (const [name, child] of node.children) {
        if (depth === 0 && name.startsWith('$')) continue; // [MQTT-4.7.2-1]
        this.walk(child, levels, depth + 1, visit);
      }
      return;
    }
    const child = node.children.get(level);
    if (child) this.walk(child, levels, depth + 1, visit);
  }

  private visitSubtree(node: TopicNode<T>, atRoot: boolean, visit: (value: T) => void): void {
    if (!node.children) return;
    for (const [name, child] of node.children) {
      if (atRoot && name.startsWith('$')) continue; // [MQTT-4.7.2-1]
      if (child.value !== undefined) visit(child.value);
      this.visitSubtree(child, false, visit);
    }
  }
}

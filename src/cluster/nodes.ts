/**
 * The other nodes as this one sees them: when each last said it was alive. Pure bookkeeping, no I/O: the heartbeat
 * reads the nodes hash and hands it over; which nodes joined and which fell silent comes back.
 */
export class NodeTable {
  private readonly lastHeard = new Map<string, number>();

  constructor(private readonly self: string, private readonly deadAfterMs: number) {}

  heard(node: string, at: number): void {
    if (node !== this.self) this.lastHeard.set(node, Math.max(at, this.lastHeard.get(node) ?? 0));
  }

  isAlive(node: string): boolean {
    return this.lastHeard.has(node);
  }

  alive(): string[] {
    return [...this.lastHeard.keys()];
  }

  /** `beats`: node → its last heartbeat, as Redis has it. Nodes seen for the first time join; silent ones die. */
  update(beats: Record<string, string>, now: number): { joined: string[]; died: string[] } {
    const joined: string[] = [];
    const died: string[] = [];
    for (const [node, text] of Object.entries(beats)) {
      if (node === this.self) continue;
      const beat = Number(text);
      const silent = now - beat > this.deadAfterMs;
      if (silent) {
        if (this.lastHeard.delete(node) || !Number.isNaN(beat)) died.push(node);
      } else if (!this.lastHeard.has(node)) {
        this.lastHeard.set(node, beat);
        joined.push(node);
      } else this.lastHeard.set(node, beat);
    }
    // Gone from the hash (another survivor removed it): dead too.
    for (const node of [...this.lastHeard.keys()]) {
      if (!(node in beats)) {
        this.lastHeard.delete(node);
        died.push(node);
      }
    }
    return { joined, died };
  }
}

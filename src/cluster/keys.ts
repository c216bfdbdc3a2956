/**
 * Where the cluster keeps its state in Redis, under one prefix (default "moat:cluster:"): the nodes and when each
 * last said it was alive, each node's filters, each node's inbox stream, and the channel for changes.
 */
export class ClusterKeys {
  constructor(readonly prefix: string) {}

  /** Hash: node id → the time of its last heartbeat (ms since 1970). */
  get nodes(): string {
    return `${this.prefix}nodes`;
  }

  /** Pub/sub channel: "+", "-" (a node's filter gained or lost) and "up" (a node joined). */
  get events(): string {
    return `${this.prefix}events`;
  }

  /** Set: the filters a node has subscribers for (a shared one as `$share/group/filter`). */
  filters(node: string): string {
    return `${this.prefix}filters:${node}`;
  }

  /** Hash: "kind:value" → a ban in force, as the guard keeps it (shared by every node). */
  get bans(): string {
    return `${this.prefix}bans`;
  }

  /** Pub/sub channel: bans added and lifted, by the node that did it. */
  get banEvents(): string {
    return `${this.prefix}ban-events`;
  }

  /** Hash: "kind\u0000name" → a user, group or role changed at runtime (shared by every node). */
  get runtime(): string {
    return `${this.prefix}runtime`;
  }

  /** String, for a few minutes: the version a runtime change got (a change sent again after a lost reply runs once). */
  runtimeChange(id: string): string {
    return `${this.prefix}runtime-change:${id}`;
  }

  /** Pub/sub channel: each runtime record a change wrote, by the node that made it. */
  get runtimeEvents(): string {
    return `${this.prefix}runtime-events`;
  }

  /** Hash: Client Identifier → the node its session lives on. */
  get owners(): string {
    return `${this.prefix}owners`;
  }

  /** Pub/sub channel of one node: requests to hand a session over, and the answers to its own. */
  control(node: string): string {
    return `${this.prefix}control:${node}`;
  }

  /** Hash: Client Identifier → the will of its connection on a node, published by a survivor if that node dies. */
  wills(node: string): string {
    return `${this.prefix}wills:${node}`;
  }

  /** String, short-lived: a session on its way from one node to another. */
  handover(id: string): string {
    return `${this.prefix}handover:${id}`;
  }

  /**
   * Hash: sending node → the sequence number of the last entry from it a node routed (written with what routing it
   * stored): an entry Redis holds twice, or one read again after a crash, is not routed twice.
   */
  applied(node: string): string {
    return `${this.prefix}applied:${node}`;
  }

  /** Hash: dead node → the survivor adopting its sessions; claims of those sessions wait until it is done. */
  get adopting(): string {
    return `${this.prefix}adopting`;
  }

  /** Stream: messages other nodes route to a node, read through the consumer group "moat". */
  inbox(node: string): string {
    return `${this.prefix}inbox:${node}`;
  }
}

import type { Session } from './session.js';
import type { RouteEntry } from './router.js';

/**
 * A shared subscription group, `$share/{group}/{filter}`: each message goes to
 * one member. Distribution: round robin over the members, skipping members that
 * cannot take a message now (offline, congested, or at their receive maximum);
 * when none can, the next member that is online (its session queues it), and
 * only when no member is online, the next member at all.
 */
export class SharedGroup {
  readonly members: RouteEntry[] = [];
  /** Router scratch: the message this group was last matched for. */
  stamp = 0;
  private cursor = 0;

  constructor(
    /** The filter as subscribed: `$share/{group}/{filter}`. */
    readonly key: string,
    readonly filter: string,
  ) {}

  upsert(entry: RouteEntry): boolean {
    const i = this.members.findIndex((m) => m.session === entry.session);
    if (i === -1) {
      this.members.push(entry);
      return true;
    }
    this.members[i] = entry;
    return false;
  }

  remove(session: Session): boolean {
    const i = this.members.findIndex((m) => m.session === session);
    if (i === -1) return false;
    this.members.splice(i, 1);
    if (this.cursor > i) this.cursor--;
    return true;
  }

  /** `eligible`: the members that may be picked at all (all when undefined). */
  pick(canTakeNow: (session: Session) => boolean, exclude?: Session, eligible?: (session: Session) => boolean): RouteEntry | undefined {
    const n = this.members.length;
    if (n === 0) return undefined;
    let online: number | undefined;
    let anyone: number | undefined;
    for (let k = 0; k < n; k++) {
      const i = (this.cursor + k) % n;
      const member = this.members[i]!;
      if (member.session === exclude) continue;
      if (eligible !== undefined && !eligible(member.session)) continue;
      if (canTakeNow(member.session)) return this.advance(i);
      if (member.session.connection?.isConnected) online ??= i;
      anyone ??= i;
    }
    const chosen = online ?? anyone;
    return chosen === undefined ? undefined : this.advance(chosen);
  }

  private advance(i: number): RouteEntry {
    this.cursor = (i + 1) % this.members.length;
    return this.members[i]!;
  }
}

/**
 * Sessions that, for a while, can be reached by one message along two paths: routed here the usual way, and handed on
 * (a dead node's inbox drained into the sessions adopted from it; what the node a session left forwards to it after a
 * hand-over). Each message, known by the node that numbered it and its number there, reaches them along one path
 * only: QoS 2 stays exactly once while a session moves. One record for every window (a rolling restart opens hundreds
 * at once), kept only while a window is open; empty (and free) when nothing moves.
 */
export class TwoPaths {
  private readonly windows = new Set<Window>();
  /** Messages routed the usual way while a window was open, and when (insertion order is time order). */
  private readonly usual = new Map<string, number>();
  /** Messages handed on, and the windows whose sessions had them. */
  private readonly handedOn = new Map<string, Window[]>();
  /** Per numbering node, the highest number a window's session already has from its hand-over (fast path: above it, nothing to check). */
  private readonly skipAbove = new Map<string, number>();

  get active(): boolean {
    return this.windows.size > 0;
  }

  /**
   * Opens a window for `sessions` (the set may still grow), from the moment they are here: only what is routed the
   * usual way from then on can have reached them. `routedUpTo`: what they have already (a hand-over), by numbering node.
   */
  open(sessions: ReadonlySet<string>, routedUpTo?: Readonly<Record<string, number>>): Window {
    const window: Window = { sessions, openedAt: performance.now(), routedUpTo };
    this.windows.add(window);
    for (const [origin, id] of Object.entries(routedUpTo ?? {})) this.skipAbove.set(origin, Math.max(id, this.skipAbove.get(origin) ?? 0));
    return window;
  }

  close(window: Window): void {
    if (!this.windows.delete(window)) return;
    if (this.windows.size === 0) {
      this.usual.clear();
      this.handedOn.clear();
      this.skipAbove.clear();
      return;
    }
    let oldest = Infinity;
    for (const w of this.windows) oldest = Math.min(oldest, w.openedAt);
    for (const [key, at] of this.usual) {
      if (at >= oldest) break;
      this.usual.delete(key);
    }
    for (const [key, had] of this.handedOn) {
      const open = had.filter((w) => this.windows.has(w));
      if (open.length === 0) this.handedOn.delete(key);
      else if (open.length !== had.length) this.handedOn.set(key, open);
    }
  }

  /** The window a session is in, if any. */
  windowOf(clientId: string): Window | undefined {
    for (const window of this.windows) if (window.sessions.has(clientId)) return window;
    return undefined;
  }

  /**
   * A message routed the usual way. Returns the sessions that have it already (handed on, or in their hand-over):
   * route it to the others only. Undefined if none.
   */
  routedUsually(origin: string, id: number): ((clientId: string) => boolean) | undefined {
    const key = `${origin}\u0000${id}`;
    if (!this.usual.has(key)) this.usual.set(key, performance.now());
    let had = this.handedOn.get(key);
    if (id <= (this.skipAbove.get(origin) ?? 0)) {
      for (const window of this.windows) if (id <= (window.routedUpTo?.[origin] ?? 0)) (had = had ? [...had] : []).push(window);
    }
    return had && ((clientId) => had.some((w) => w.sessions.has(clientId)));
  }

  /** A message handed on to the sessions of `window`: whether to deliver it (false: it came the usual way already). */
  handOn(window: Window, origin: string, id: number): boolean {
    const key = `${origin}\u0000${id}`;
    const at = this.usual.get(key);
    if (at !== undefined && at >= window.openedAt) return false;
    const had = this.handedOn.get(key);
    if (had) had.push(window);
    else this.handedOn.set(key, [window]);
    return true;
  }
}

/** Sessions in a window, since when, and what they had from their hand-over. */
export interface Window {
  readonly sessions: ReadonlySet<string>;
  readonly openedAt: number;
  readonly routedUpTo: Readonly<Record<string, number>> | undefined;
}

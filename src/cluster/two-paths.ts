/**
 * Sessions that, for a while, can be reached by one message along two paths: routed here the usual way, and handed on
 * (a dead node's inbox drained into the sessions adopted from it; what the node a session left forwards to it after a
 * hand-over). Each message, known by the node that numbered it and its number there, reaches them along one path
 * only: QoS 2 stays exactly once while a session moves. One record for every window (a rolling restart opens hundreds
 * at once), kept only while a window is open; empty (and free) when nothing moves.
 */
export class TwoPaths {
  private readonly windows = new Set<Window>();
  /**
   * Per numbering node, the numbers of the messages routed the usual way while a window was open, in the order routed
   * (rising: each node numbers its messages in order, and they come from it in order). A number each, no key or
   * timestamp: every message routed here is recorded while any window is open, at full speed.
   */
  private readonly usual = new Map<string, UsualLog>();
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
    const usualFrom = new Map<string, number>();
    for (const [origin, log] of this.usual) usualFrom.set(origin, log.dropped + log.ids.length);
    const window: Window = { sessions, usualFrom, routedUpTo };
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
    // What every open window opened after is of no use any more.
    for (const [origin, log] of this.usual) {
      let keepFrom = Infinity;
      for (const w of this.windows) keepFrom = Math.min(keepFrom, w.usualFrom.get(origin) ?? 0);
      if (keepFrom > log.dropped) {
        log.ids.splice(0, keepFrom - log.dropped);
        log.dropped = keepFrom;
      }
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
    let log = this.usual.get(origin);
    if (!log) this.usual.set(origin, (log = { ids: [], dropped: 0, rising: true }));
    if (log.rising && log.ids.length > 0 && id <= log.ids[log.ids.length - 1]!) log.rising = false; // a clock set back
    log.ids.push(id);
    let had = this.handedOn.size > 0 ? this.handedOn.get(`${origin}\u0000${id}`) : undefined;
    if (id <= (this.skipAbove.get(origin) ?? 0)) {
      for (const window of this.windows) if (id <= (window.routedUpTo?.[origin] ?? 0)) (had = had ? [...had] : []).push(window);
    }
    return had && ((clientId) => had.some((w) => w.sessions.has(clientId)));
  }

  /** A message handed on to the sessions of `window`: whether to deliver it (false: it came the usual way already). */
  handOn(window: Window, origin: string, id: number): boolean {
    const log = this.usual.get(origin);
    if (log) {
      const from = Math.max(0, (window.usualFrom.get(origin) ?? 0) - log.dropped);
      const found = log.rising ? log.ids[firstAtLeast(log.ids, from, id)] === id : log.ids.indexOf(id, from) >= 0;
      if (found) return false;
    }
    const key = `${origin}\u0000${id}`;
    const had = this.handedOn.get(key);
    if (had) had.push(window);
    else this.handedOn.set(key, [window]);
    return true;
  }
}

interface UsualLog {
  /** In the order routed; `ids[i]` is the log's `dropped + i`th. */
  readonly ids: number[];
  /** How many were dropped from its start (no open window needs them). */
  dropped: number;
  /** Rising, as numbers are unless a node's clock was set back (then searched one by one). */
  rising: boolean;
}

/** The first index from `from` whose number is at least `id` (`ids` rising), or `ids.length`. */
function firstAtLeast(ids: readonly number[], from: number, id: number): number {
  let low = from;
  let high = ids.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (ids[mid]! < id) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Sessions in a window, where each numbering node's usual log stood when it opened, and what they had from their hand-over. */
export interface Window {
  readonly sessions: ReadonlySet<string>;
  readonly usualFrom: ReadonlyMap<string, number>;
  readonly routedUpTo: Readonly<Record<string, number>> | undefined;
}

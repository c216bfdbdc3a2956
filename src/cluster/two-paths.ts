/**
 * Sessions that, for a while, can be reached by one message along two paths: routed here the usual way, and handed on
 * (a dead node's inbox drained into the sessions adopted from it; what the node a session left forwards to it after a
 * hand-over). Each message, known by the node that numbered it and its number there, reaches them along one path
 * only: QoS 2 stays exactly once while a session moves. Pure bookkeeping; empty (and free) when nothing moves.
 */
export class TwoPaths {
  private readonly windows = new Set<Window>();

  get active(): boolean {
    return this.windows.size > 0;
  }

  /**
   * Opens a window for `sessions` (the set may still grow), from the moment they are here: only what is routed the
   * usual way from then on can have reached them. Returns it; `close` ends it.
   */
  open(sessions: ReadonlySet<string>): Window {
    const window: Window = { sessions, usual: new Set(), handedOn: new Set() };
    this.windows.add(window);
    return window;
  }

  close(window: Window): void {
    this.windows.delete(window);
  }

  /** The window a session is in, if any. */
  windowOf(clientId: string): Window | undefined {
    for (const window of this.windows) if (window.sessions.has(clientId)) return window;
    return undefined;
  }

  /**
   * A message routed the usual way. Returns the sessions that had it handed on already (route it to the others
   * only), or undefined if none.
   */
  routedUsually(origin: string, id: number): ((clientId: string) => boolean) | undefined {
    const key = `${origin}\u0000${id}`;
    let had: Window[] | undefined;
    for (const window of this.windows) {
      if (window.handedOn.has(key)) (had ??= []).push(window);
      else window.usual.add(key);
    }
    return had && ((clientId) => had.some((w) => w.sessions.has(clientId)));
  }

  /** A message handed on to the sessions of `window`: whether to deliver it (false: it came the usual way already). */
  handOn(window: Window, origin: string, id: number): boolean {
    const key = `${origin}\u0000${id}`;
    if (window.usual.has(key)) return false;
    window.handedOn.add(key);
    return true;
  }
}

/** Sessions in a window, and the messages that reached them each way since it opened. */
export interface Window {
  readonly sessions: ReadonlySet<string>;
  readonly usual: Set<string>;
  readonly handedOn: Set<string>;
}

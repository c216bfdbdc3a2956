import { ReasonCode } from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { BrokerLimits } from './options.js';

const SWEEP_INTERVAL_MS = 500;
/** How long a closing socket may wait for its peer before it is destroyed. */
const CLOSE_GRACE_MS = 2000;

/**
 * One timer for every connection instead of one per connection: each sweep
 * closes sockets that never sent CONNECT, clients silent for 1.5 x keep-alive
 * [MQTT-3.1.2-24], and closing sockets whose peer does not finish; then lets
 * the broker publish delayed wills and end expired sessions.
 */
export class Housekeeper {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly broker: { clock: number; readonly isReadingHeld: boolean; sweepSessions(now: number): void },
    private readonly connections: ReadonlySet<Connection>,
    private readonly limits: BrokerLimits,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.sweep(Date.now()), SWEEP_INTERVAL_MS).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  sweep(now: number): void {
    this.broker.clock = now;
    this.broker.sweepSessions(now);
    const connectTimeoutMs = this.limits.connectTimeout * 1000;
    for (const conn of this.connections) {
      switch (conn.state) {
        case 'awaiting-connect':
        case 'connecting':
          if (now - conn.openedAt > connectTimeoutMs) conn.close('no CONNECT in time', { publishWill: false });
          break;
        case 'connected':
          // While the broker holds reading (multi-core backpressure) a client's PINGREQ waits unread.
          // So does one the broker stopped reading for going over its publishing allowance.
          if (this.broker.isReadingHeld || conn.heldBack) conn.lastActivity = now;
          if (conn.keepalive > 0 && now - conn.lastActivity > conn.keepalive * 1500) {
            conn.disconnect(ReasonCode.KeepAliveTimeout, 'keep-alive timeout');
          } else if (conn.client!.identity?.expiresAt !== undefined && now >= conn.client!.identity.expiresAt) {
            conn.disconnect(ReasonCode.MaximumConnectTime, 'credentials expired');
          }
          break;
        case 'closing':
          if (now - conn.closingSince > CLOSE_GRACE_MS) conn.destroy();
          break;
        case 'closed':
          break;
      }
    }
  }
}

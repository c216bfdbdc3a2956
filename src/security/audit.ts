/**
 * The audit trail: who connected or was refused, from where, by which method
 * and why; which TLS handshakes failed; which publishes and subscriptions were
 * refused. Never a password or a token. Written through a logger (the broker's own, or a separate file).
 */

export interface AuditEvent {
  event: 'connect.accepted' | 'connect.anonymous' | 'connect.refused' | 'publish.refused' | 'subscribe.refused' | 'will.refused' | 'tls.refused'
    | 'guard.banned' | 'guard.unbanned' | 'guard.slowed' | 'guard.rate-limited' | 'guard.overload' | 'guard.session-dropped' | 'guard.session-refused'
    | 'admin.request' | 'dynsec.command' | 'security.change' | 'payload.refused' | 'payload.duplicate';
  /**
   * The identifier the session has: the one the broker assigned when the CONNECT carried an empty one
   * [MQTT-3.1.3-6]. Empty only for `tls.refused`: the handshake failed before any CONNECT.
   */
  clientId: string;
  username?: string | undefined;
  remoteAddress?: string;
  listener?: string;
  method?: string | undefined;
  topic?: string;
  reason?: string | undefined;
  /** guard: the rule that fired (failed-authentication, flapping, api), what is banned ("address 192.0.2.7"), until when. */
  rule?: string;
  ban?: string;
  until?: string;
  /** guard: what was done (paused, disconnected, refusing, recovered, dropped). */
  action?: string;
  /** admin.request: who asked ("token:<name>", "user:<name>", "anonymous" on an open endpoint, "unauthenticated"), what, and the HTTP status answered. */
  principal?: string;
  httpMethod?: string;
  path?: string;
  status?: number;
  /**
   * security.change: what was changed at runtime (through the REST API or dynamic security) — `user`, `group`,
   * `role`, `ban`, `session`, `client` — which one, and how (created, updated, deleted, kicked, ...). `principal`
   * says who did it.
   */
  target?: string;
  name?: string;
  change?: string;
}

export interface AuditLog {
  record(event: AuditEvent): void;
}

interface InfoLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Refusals at warn level, accepts at info; each line carries `audit: true` so it can be filtered out of the log. */
export function loggerAudit(logger: InfoLogger): AuditLog {
  return {
    record(event) {
      const line = { audit: true, ...event };
      const refused = event.event.endsWith('.refused') || event.event === 'guard.banned' || (event.status !== undefined && event.status >= 400);
      if (refused) logger.warn(line, event.event);
      else logger.info(line, event.event);
    },
  };
}

/** Keeps events in memory (tests, and programs that ship them elsewhere). */
export class MemoryAudit implements AuditLog {
  readonly events: AuditEvent[] = [];
  record(event: AuditEvent): void {
    this.events.push(event);
  }
}

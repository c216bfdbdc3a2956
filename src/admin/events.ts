import { randomUUID } from 'node:crypto';
import type { AuditEvent, AuditLog } from '../security/audit.js';
import { integer } from './api/common.js';
import type { Route } from './server.js';

/**
 * The security feed (GET /api/v1/events, the dashboard's Security view): the latest security-relevant audit events,
 * kept in memory in a ring, each numbered so a reader asks for what came after the last one it saw. The audit
 * trail stays the record; the feed is a window on it and starts empty with every start of the broker.
 */

/** An audit event as the feed keeps it: numbered from 1 in the order recorded, with the time it was recorded. */
export type SecurityEvent = { seq: number; time: string } & AuditEvent;

export interface SecurityEventsPage {
  /** Oldest first. */
  items: SecurityEvent[];
  /** The number of the newest event recorded so far (0: none yet). */
  last_seq: number;
  /** The oldest number still kept (0: none yet): a reader whose `after` is below `first_seq - 1` missed events. */
  first_seq: number;
  /** Different after each start of the broker, when numbers start again from 1: a reader seeing it change starts over. */
  boot_id: string;
}

/** What the admin listener reads; in multi-core mode the primary may be given one (none yet: an empty feed). */
export interface SecurityEventFeed {
  /** Events numbered above `after`, oldest first, at most `limit`; without `after`, the newest `limit`. */
  read(after: number | undefined, limit: number): SecurityEventsPage;
}

export const DEFAULT_FEED_CAPACITY = 1000;
/**
 * Longer text fields are cut (client identifiers, user names, topics and reasons are the client's choice, up to
 * 64 KiB each): the feed's memory stays bounded by its capacity, and a reader's answer small.
 */
export const MAX_FIELD_CHARS = 256;

/**
 * Whether an audit event belongs in the feed: refusals, the guard's actions and runtime security changes. Not
 * accepted connections, nor admin requests that passed (the dashboard's own polling would flood it); admin requests
 * refused for a wrong token, a missing scope or role, or a banned address are. A wrong admin password is already
 * in it, as the authentication chain's `connect.refused` on the listener `admin`.
 */
export function isSecurityEvent(event: AuditEvent): boolean {
  switch (event.event) {
    case 'connect.refused': case 'publish.refused': case 'subscribe.refused': case 'will.refused': case 'tls.refused':
    case 'security.change': case 'dynsec.command':
      return true;
    case 'admin.request':
      return event.status === 403 || (event.status === 401 && !event.principal?.startsWith('user:'));
    default:
      return event.event.startsWith('guard.');
  }
}

/** The feed as an audit sink: keeps the last `capacity` security events, drops the rest (see `teeAudit`). */
export class SecurityEvents implements AuditLog, SecurityEventFeed {
  private readonly ring: Array<SecurityEvent | undefined>;
  private last = 0;
  readonly bootId = randomUUID();

  constructor(readonly capacity = DEFAULT_FEED_CAPACITY, private readonly now: () => number = Date.now) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity: expected a positive integer, got ${capacity}`);
    this.ring = new Array<SecurityEvent | undefined>(capacity);
  }

  record(event: AuditEvent): void {
    if (!isSecurityEvent(event)) return;
    this.last++;
    this.ring[this.last % this.capacity] = { seq: this.last, time: new Date(this.now()).toISOString(), ...shortened(event) };
  }

  read(after: number | undefined, limit: number): SecurityEventsPage {
    const oldest = Math.max(1, this.last - this.capacity + 1);
    // Numbers are consecutive, so the event numbered n sits at n % capacity.
    const from = after === undefined ? Math.max(oldest, this.last - limit + 1) : Math.max(oldest, after + 1);
    const to = Math.min(this.last, from + limit - 1);
    const items: SecurityEvent[] = [];
    for (let seq = from; seq <= to; seq++) items.push(this.ring[seq % this.capacity]!);
    return { items, last_seq: this.last, first_seq: this.last === 0 ? 0 : oldest, boot_id: this.bootId };
  }
}

/** The event with every text field cut to MAX_FIELD_CHARS (marked with an ellipsis). */
function shortened(event: AuditEvent): AuditEvent {
  let copy: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(event)) {
    if (typeof value === 'string' && value.length > MAX_FIELD_CHARS) {
      copy ??= { ...event };
      copy[key] = `${value.slice(0, MAX_FIELD_CHARS)}…`;
    }
  }
  return (copy ?? event) as AuditEvent;
}

/** One audit sink that records into several: the audit trail and the feed. */
export function teeAudit(...logs: AuditLog[]): AuditLog {
  return { record: (event) => { for (const log of logs) log.record(event); } };
}

/** GET /api/v1/events?after=<seq>&limit=<n> (scope read). */
export function eventRoutes(feed: SecurityEventFeed): Route[] {
  return [{
    method: 'GET', path: '/api/v1/events', access: 'read',
    handle: ({ query }) => {
      const after = query.has('after') ? integer(query, 'after', 0, 0, Number.MAX_SAFE_INTEGER) : undefined;
      return { json: feed.read(after, integer(query, 'limit', 100, 1, 1000)) };
    },
  }];
}

/** A feed nothing records into. */
export const EMPTY_FEED: SecurityEventFeed = { read: () => ({ items: [], last_seq: 0, first_seq: 0, boot_id: 'none' }) };

import type { AuditLog } from '../../security/audit.js';
import { HttpError, type Route, type RouteRequest } from '../server.js';
import { WorkersMissing, type AdminBackend, type Found } from '../view.js';

/**
 * What the REST API's handlers (one module per resource under src/admin/api/) share: the context they read and act
 * on, paging, and reading a JSON body. Answers are JSON; a problem with the request is an HttpError (400, 404, 409).
 */

/** What a reload did, as the server reports it (src/server's ReloadResult). */
export interface ApiReloadResult {
  ok: boolean;
  applied: string[];
  restartNeeded: string[];
  error?: string;
  /** Multi-core mode: the workers that did not answer in time (they may have reloaded or not). */
  missing?: number[];
}

/** The running server around the broker: the configuration in force and its reload (absent for a bare library use). */
export interface ApiServer {
  config(): unknown;
  reload(): ApiReloadResult | Promise<ApiReloadResult>;
}

export interface ApiContext {
  /** The broker as the API reads and acts on it: this process's, or every worker's (src/admin/view.ts). */
  backend: AdminBackend;
  server: ApiServer | undefined;
  /** Where each change is recorded as a `security.change` event. */
  audit: AuditLog;
}

export const API = '/api/v1';

export type ApiRoutes = (context: ApiContext) => Route[];

/** Paging: at most `limit` items (default 100, at most 1000), from `offset`, or after `cursor` (the `next_cursor` of the page before). */
export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export interface Page<T> {
  items: T[];
  /** Items matching the filters, over all pages. */
  total: number;
  /** Pass as `cursor` for the next page; absent on the last one. */
  next_cursor?: string;
}

/**
 * One page of `items`, ordered by `key` (unique per item): a cursor names the last key seen, so a page stays right
 * while items come and go between requests; an offset counts from the start.
 */
export function page<T>(items: readonly T[], key: (item: T) => string, query: URLSearchParams): Page<T> {
  const limit = integer(query, 'limit', DEFAULT_LIMIT, 1, MAX_LIMIT);
  const cursor = query.get('cursor');
  if (cursor !== null && query.has('offset')) throw new HttpError(400, 'give cursor or offset, not both');
  const sorted = [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  let start = integer(query, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
  if (cursor !== null) {
    let after: string;
    try {
      after = Buffer.from(cursor, 'base64url').toString('utf8');
    } catch {
      throw new HttpError(400, 'cursor: not a cursor this API gave');
    }
    start = sorted.findIndex((item) => key(item) > after);
    if (start < 0) start = sorted.length;
  }
  const slice = sorted.slice(start, start + limit);
  const result: Page<T> = { items: slice, total: sorted.length };
  if (start + limit < sorted.length && slice.length > 0) result.next_cursor = Buffer.from(key(slice[slice.length - 1]!), 'utf8').toString('base64url');
  return result;
}

/** An integer query parameter within [min, max]; `fallback` when absent. */
export function integer(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new HttpError(400, `${name}: expected an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** The request body as a JSON object (an empty body is `{}`). */
export function jsonBody(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `the body is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

/** A field of a JSON body: absent, or of the type named (else 400). */
export function field<T extends 'string' | 'number' | 'boolean'>(
  body: Record<string, unknown>, name: string, type: T,
): (T extends 'string' ? string : T extends 'number' ? number : boolean) | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== type) throw new HttpError(400, `${name}: expected a ${type}, got ${JSON.stringify(value)}`);
  return value as never;
}

/** Refuses fields the endpoint does not know (a typo would otherwise be silently ignored). */
export function onlyFields(body: Record<string, unknown>, known: readonly string[]): void {
  const unknown = Object.keys(body).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new HttpError(400, `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; expected ${known.join(', ')}`);
}

export const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** MQTT protocol levels as people name them. */
export const PROTOCOL_NAMES: Readonly<Record<number, string>> = { 3: '3.1', 4: '3.1.1', 5: '5' };

/** A value matches a filter given exactly, or as a prefix ending in "*". */
export function matches(filter: string | null, value: string | undefined): boolean {
  if (filter === null) return true;
  if (value === undefined) return false;
  return filter.endsWith('*') ? value.startsWith(filter.slice(0, -1)) : value === filter;
}

/** A list answer gathered from workers some of which did not answer in time says so: `partial`, and which. */
export function partial(missing: readonly number[]): { partial?: true; workers_missing?: number[] } {
  return missing.length === 0 ? {} : { partial: true, workers_missing: [...missing] };
}

/** The item found; else 404, or 503 (WorkersMissing) when a worker that did not answer may hold it. */
export function found<T>(lookup: Found<T>, what: string): T {
  if (lookup.item !== undefined) return lookup.item;
  if (lookup.missing.length > 0) {
    throw new WorkersMissing(lookup.missing, `${what}: not on the workers that answered; worker ${lookup.missing.join(', ')} did not answer in time`);
  }
  throw new HttpError(404, `no ${what}`);
}

/**
 * A change made through the API, in the audit trail as a `security.change` event: who (`principal`), what (`target`:
 * user, group, role, ban, client, session, retained, config), which one (`name`) and how (`change`).
 */
export function recordChange(context: ApiContext, request: RouteRequest, target: string, name: string, change: string, reason?: string): void {
  context.audit.record({
    event: 'security.change', clientId: target === 'client' || target === 'session' ? name : '', listener: 'admin',
    principal: request.principal?.id ?? 'unauthenticated', target, name, change, ...(reason !== undefined && { reason }),
  });
}

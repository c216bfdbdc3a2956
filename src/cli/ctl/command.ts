import { parseDuration } from './duration.js';
import type { ApiClient } from './http.js';

/**
 * What a `moat ctl` command is: a name, its arguments and options (as data, so parsing and help come from one
 * place), and what it does with the API. A command answers with the API's JSON (printed as it is for --json)
 * and the same as people read it, or with raw text (metrics).
 */

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** Given more than once, each value kept (`--role a --role b`). */
  multiple?: boolean;
  /** How the help names the value: `--for DURATION`. */
  value?: string;
  help: string;
}

export type OptionValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

export interface CommandContext {
  api: ApiClient;
  /** The arguments after the command's name. */
  args: string[];
  options: OptionValues;
  /** The command's options in the order given: a role's rules keep the order they were typed in. */
  order: ReadonlyArray<{ name: string; value: string | undefined }>;
  /** Items asked for per request while paging through a list. */
  pageSize: number;
  /** --json: what the command prints as it goes (events --follow) is JSON too. */
  json: boolean;
}

export type Outcome =
  | { json: unknown; human: string; note?: string; exitCode?: number }
  | { raw: string | Buffer; exitCode?: number };

export interface Command {
  /** `list`, `show`; empty for a resource that is its own command (`health`, `metrics`). */
  name: string;
  /** The arguments as the help shows them: `ID`, `[PREFIX]` (optional). */
  args?: string;
  summary: string;
  options?: Readonly<Record<string, OptionSpec>>;
  run(context: CommandContext): Promise<Outcome>;
}

export interface Resource {
  name: string;
  summary: string;
  commands: readonly Command[];
}

/** A command-line mistake: printed with the usage of what was being typed, exit status 2. */
export class UsageError extends Error {}

export const text = (context: CommandContext, name: string): string | undefined => {
  const value = context.options[name];
  return typeof value === 'string' ? value : undefined;
};

export const texts = (context: CommandContext, name: string): string[] | undefined => {
  const value = context.options[name];
  return Array.isArray(value) ? value.map(String) : undefined;
};

export const flag = (context: CommandContext, name: string): boolean => context.options[name] === true;

/** One path segment: a client identifier, a user name, a topic (its "/" as %2F, which the API reads back). */
export const segment = (value: string): string => encodeURIComponent(value);

export const LIMIT_OPTION: Readonly<Record<string, OptionSpec>> = {
  limit: { type: 'string', value: 'N', help: 'at most N items (default: all, page after page)' },
};

function limitOf(context: CommandContext): number | undefined {
  const raw = text(context, 'limit');
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new UsageError(`--limit: expected a whole number above 0, got "${raw}"`);
  return Number(raw);
}

export interface Listing<T> {
  /** As the API answers a list: with one page asked for, that page unchanged; over several, the items joined. */
  json: Record<string, unknown>;
  items: T[];
  /** Items matching, over all pages. */
  total: number;
}

/**
 * Every page of a list (or the first `--limit` items), following `next_cursor`; `key` is where a page holds its
 * items (`levels` for the topic tree). Over several pages, `total` and the other fields are the last page's.
 */
export async function listAll<T>(context: CommandContext, path: string, query: Record<string, string | undefined> = {}, key = 'items'): Promise<Listing<T>> {
  const limit = limitOf(context);
  const items: T[] = [];
  let page: Record<string, unknown>;
  let cursor: string | undefined;
  let pages = 0;
  do {
    pages++;
    const wanted = limit === undefined ? context.pageSize : Math.min(context.pageSize, limit - items.length);
    page = await context.api.get<Record<string, unknown>>(path, { ...query, limit: String(wanted), ...(cursor !== undefined && { cursor }) });
    items.push(...((page[key] as T[] | undefined) ?? []));
    cursor = typeof page.next_cursor === 'string' ? page.next_cursor : undefined;
  } while (cursor !== undefined && (limit === undefined || items.length < limit));
  const { next_cursor: _last, ...rest } = page;
  const json = pages === 1 ? page : { ...rest, [key]: items, ...(cursor !== undefined && { next_cursor: cursor }) };
  return { json, items, total: Number(page.total) };
}

/** What people are told when --limit left items out (on stderr, so the table stays clean for a pipe). */
export function shownOf(listing: Listing<unknown>, what: string): string | undefined {
  const shown = listing.items.length;
  return shown < listing.total ? `${shown} of ${listing.total} ${what} shown (without --limit: all)` : undefined;
}

/** `--for` as the API's `duration` in seconds; nothing when absent (until removed). */
export function durationField(raw: string | undefined): { duration?: number } {
  if (raw === undefined) return {};
  try {
    return { duration: parseDuration(raw) };
  } catch (err) {
    throw new UsageError(`--for: ${(err as Error).message}`);
  }
}

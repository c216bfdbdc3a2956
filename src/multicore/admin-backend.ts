import type { AdminBackend, ApiReloadResult, ApiServer, ClientDetail, Found, Gathered, RetainedView } from '../admin/index.js';
import { HttpError } from '../admin/server.js';
import { WorkersMissing } from '../admin/view.js';
import type { SessionView } from '../broker/broker.js';
import type { Ban } from '../security/guard/bans.js';
import type { AdminCall } from './messages.js';
import { QUERY_TIMEOUT_MS, WorkerUnavailable, type WorkerQueries } from './worker-queries.js';

/**
 * The REST API in multi-core mode: the primary holds no broker, so each call goes to the workers over IPC, where
 * each worker's own backend (src/admin/api/local.ts) answers, and the answers are merged here.
 *
 * - Lists (clients, sessions and their subscriptions, retained messages, bans): every worker at once, the items
 *   concatenated (a retained message or a ban, which every worker holds alike, once); the API filters and pages them.
 * - One client or session: looked up on every worker; an action on it (disconnect, remove) goes to the worker that has
 *   it. A retained message is removed by the worker that has it, and the empty retained publish reaches all of them.
 * - Bans set or lifted, and runtime users, groups and roles read or changed: worker 0, the one writer; the change
 *   reaches the others through the primary (shared-bans.ts, shared-runtime.ts).
 *
 * A worker that does not answer within the deadline is named in `missing`; an answer that cannot be given without
 * it is a WorkersMissing (503).
 */

/** A change may hash a password (scrypt) in a busy worker: it is given longer than a read. */
const CHANGE_TIMEOUT_MS = 5000;

type Method = keyof AdminBackend;
/** The calls that change something: without an answer, the change may still have been made. */
const CHANGES: ReadonlySet<Method> = new Set<Method>(['ban', 'unban', 'setItem', 'removeItem']);
type Answer<M extends Method> = Awaited<ReturnType<AdminBackend[M]>>;

export class PrimaryAdminBackend implements AdminBackend {
  constructor(private readonly queries: WorkerQueries, private readonly workers: number, private readonly timeoutMs = QUERY_TIMEOUT_MS) {}

  clients(): Promise<Answer<'clients'>> {
    return this.gather('clients', []);
  }

  async client(id: string): Promise<Found<ClientDetail>> {
    return (await this.locate<ClientDetail>('client', [id])).found;
  }

  disconnect(id: string, reason?: string): Promise<Answer<'disconnect'>> {
    return this.actOn('client', id, 'disconnect', [id, reason]);
  }

  async sessions(): Promise<Answer<'sessions'>> {
    const { items, missing } = await this.gather('sessions', []);
    // A client's session lives in one worker; should two hold one (the worker count changed), the online one is shown.
    const byId = new Map<string, (typeof items)[number]>();
    for (const s of items) if (!byId.get(s.clientId)?.online) byId.set(s.clientId, s);
    return { items: [...byId.values()], missing };
  }

  async session(id: string): Promise<Found<SessionView>> {
    return (await this.locate<SessionView>('session', [id])).found;
  }

  removeSession(id: string): Promise<Answer<'removeSession'>> {
    return this.actOn('session', id, 'removeSession', [id]);
  }

  async retained(filters: string[]): Promise<Answer<'retained'>> {
    const { items, missing } = await this.gather('retained', [filters]);
    return { items: [...new Map(items.map((m) => [m.topic, m])).values()], missing };
  }

  async deleteRetained(topic: string): Promise<Answer<'deleteRetained'>> {
    const { found, index } = await this.locate<RetainedView>('retained', [[topic]]);
    if (index === undefined) return found;
    return this.on(index, 'deleteRetained', [topic], missingOr(found.missing, index));
  }

  async bans(): Promise<Answer<'bans'>> {
    const { items, missing } = await this.gather('bans', []);
    const byKey = new Map<string, Ban>();
    for (const ban of items) {
      const key = `${ban.kind}:${ban.value}`;
      if ((byKey.get(key)?.since ?? -Infinity) < ban.since) byKey.set(key, ban);
    }
    return { items: [...byKey.values()], missing };
  }

  ban(...args: Parameters<AdminBackend['ban']>): Promise<Ban> {
    return this.onWriter('ban', args);
  }

  unban(...args: Parameters<AdminBackend['unban']>): Promise<boolean> {
    return this.onWriter('unban', args);
  }

  items(...args: Parameters<AdminBackend['items']>): Promise<Answer<'items'>> {
    return this.onWriter('items', args);
  }

  item(...args: Parameters<AdminBackend['item']>): Promise<Answer<'item'>> {
    return this.onWriter('item', args);
  }

  setItem(...args: Parameters<AdminBackend['setItem']>): Promise<Answer<'setItem'>> {
    return this.onWriter('setItem', args, CHANGE_TIMEOUT_MS);
  }

  removeItem(...args: Parameters<AdminBackend['removeItem']>): Promise<void> {
    return this.onWriter('removeItem', args);
  }

  /** Calls `method` in worker `index`; a worker's refusal is rethrown as the HttpError it was, no answer is `onMissing`. */
  private async on<M extends Method>(
    index: number, method: M, args: Parameters<AdminBackend[M]>, onMissing: () => never, timeoutMs = this.timeoutMs,
  ): Promise<Answer<M>> {
    let answer;
    try {
      answer = await this.queries.ask(index, { kind: 'admin', call: { method, args } as AdminCall }, timeoutMs);
    } catch (err) {
      if (err instanceof WorkerUnavailable) return onMissing();
      throw err;
    }
    if ('error' in answer) throw new HttpError(answer.status, answer.error);
    return answer.value as Answer<M>;
  }

  /** Worker 0, where bans and runtime items change; without its answer there is none. */
  private onWriter<M extends Method>(method: M, args: Parameters<AdminBackend[M]>, timeoutMs = this.timeoutMs): Promise<Answer<M>> {
    return this.on(0, method, args, () => {
      const maybe = CHANGES.has(method) ? '; the change may still be made: read it back' : '';
      throw new WorkersMissing([0], `worker 0 did not answer within ${timeoutMs} ms${maybe}`);
    }, timeoutMs);
  }

  /** Every worker asked at once: the answers of those that answered in time, in index order, and the others. */
  private async every<M extends Method>(
    method: M, args: Parameters<AdminBackend[M]>,
  ): Promise<{ answers: Array<{ index: number; value: Answer<M> }>; missing: number[] }> {
    const missing: number[] = [];
    const settled = await Promise.allSettled(Array.from({ length: this.workers }, (_, index) => this.on(index, method, args, () => {
      missing.push(index);
      throw new WorkersMissing([index], `worker ${index} did not answer`);
    })));
    const answers: Array<{ index: number; value: Answer<M> }> = [];
    for (const [index, result] of settled.entries()) {
      if (result.status === 'fulfilled') answers.push({ index, value: result.value });
      else if (!(result.reason instanceof WorkersMissing)) throw result.reason;
    }
    return { answers, missing: missing.sort((a, b) => a - b) };
  }

  /** A list from every worker, concatenated. */
  private async gather<M extends 'clients' | 'sessions' | 'retained' | 'bans'>(method: M, args: Parameters<AdminBackend[M]>): Promise<Answer<M>> {
    const { answers, missing } = await this.every(method, args);
    return { items: answers.flatMap((a) => (a.value as Gathered<unknown>).items), missing } as Answer<M>;
  }

  /** One item (a client, a session, a retained message) looked up on every worker, and the index of the first that has it. */
  private async locate<T>(
    method: 'client' | 'session' | 'retained', args: Parameters<AdminBackend['client' | 'retained']>,
  ): Promise<{ found: Found<T>; index: number | undefined }> {
    const { answers, missing } = await this.every(method, args as never);
    for (const { index, value } of answers) {
      const item = ('items' in value ? value.items[0] : value.item) as T | undefined;
      if (item !== undefined) return { found: { item, missing }, index };
    }
    return { found: { item: undefined, missing }, index: undefined };
  }

  /** An action on a client or session, sent to the worker that has it. */
  private async actOn<M extends 'disconnect' | 'removeSession'>(
    lookup: 'client' | 'session', id: string, method: M, args: Parameters<AdminBackend[M]>,
  ): Promise<Answer<M>> {
    const { found, index } = await this.locate<unknown>(lookup, [id]);
    if (index === undefined) return { item: undefined, missing: found.missing } as Answer<M>;
    return this.on(index, method, args, missingOr(found.missing, index));
  }
}

/** The worker that had the item stopped answering before the action: the answer names it. */
function missingOr(missing: number[], index?: number): () => never {
  return () => {
    const all = [...new Set([...missing, ...(index === undefined ? [] : [index])])].sort((a, b) => a - b);
    throw new WorkersMissing(all, `worker ${all.join(', ')} did not answer in time; the change may still be made: read it back`);
  };
}

/**
 * POST /api/v1/broker/reload in multi-core mode: every worker reads the configuration again, as on SIGHUP, and says
 * what it applied; `reread` then updates what the primary itself holds (its limits, the configuration it shows).
 */
export function primaryApiServer(
  queries: WorkerQueries, workers: number, config: () => unknown, reread: () => void, timeoutMs = CHANGE_TIMEOUT_MS,
): ApiServer {
  return {
    config,
    async reload() {
      const settled = await Promise.allSettled(Array.from({ length: workers }, (_, index) => queries.ask(index, { kind: 'reload' }, timeoutMs)));
      const result: ApiReloadResult & { missing: number[] } = { ok: true, applied: [], restartNeeded: [], missing: [] };
      for (const [index, answer] of settled.entries()) {
        if (answer.status === 'rejected') {
          if (!(answer.reason instanceof WorkerUnavailable)) throw answer.reason;
          result.missing.push(index);
          continue;
        }
        const r = answer.value;
        result.ok &&= r.ok;
        if (r.error !== undefined) result.error ??= r.error;
        for (const a of r.applied) if (!result.applied.includes(a)) result.applied.push(a);
        for (const a of r.restartNeeded) if (!result.restartNeeded.includes(a)) result.restartNeeded.push(a);
      }
      if (result.missing.length === workers) throw new WorkersMissing(result.missing, 'no worker answered in time; the reload may still happen');
      if (result.ok) reread();
      return result;
    },
  };
}

import type { PrimaryToWorker, WorkerAnswers, WorkerQuery, WorkerToPrimary } from './messages.js';
import type { WorkerChannels } from './shared-bans.js';

/**
 * Questions from the primary to its workers, for programs in the primary (the admin listener): each `query` carries
 * an id, the worker sends one `reply` with it, and the primary stops waiting after a timeout, so a stalled worker
 * never holds a scrape or a login for longer.
 */

/** How long the primary waits for a worker's answer by default. */
export const QUERY_TIMEOUT_MS = 2000;

/** No answer from the worker: it is not running, the broker is stopping, or it did not answer in time. */
export class WorkerUnavailable extends Error {}

export class QueryTimeout extends WorkerUnavailable {}

/** The primary's side. */
export class WorkerQueries {
  private readonly waiting = new Map<number, { resolve: (result: unknown) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly workers: WorkerChannels) {}

  /** Asks worker `index`; rejects if it is not running, answers with an error, or has not answered within `timeoutMs`. */
  ask<K extends WorkerQuery['kind']>(index: number, query: Extract<WorkerQuery, { kind: K }>, timeoutMs = QUERY_TIMEOUT_MS): Promise<WorkerAnswers[K]> {
    if (this.closed) return Promise.reject(new WorkerUnavailable('the broker is stopping'));
    const id = this.nextId++;
    return new Promise<WorkerAnswers[K]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new QueryTimeout(`worker ${index} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve: resolve as (result: unknown) => void, reject, timer });
      if (!this.workers.send(index, { type: 'query', id, query } satisfies PrimaryToWorker)) {
        clearTimeout(timer);
        this.waiting.delete(id);
        reject(new WorkerUnavailable(`worker ${index} is not running`));
      }
    });
  }

  /** A message from a worker; false if it is not a reply. A reply that comes after its timeout is dropped. */
  received(message: WorkerToPrimary): boolean {
    if (message.type !== 'reply') return false;
    const entry = this.waiting.get(message.id);
    if (!entry) return true;
    this.waiting.delete(message.id);
    clearTimeout(entry.timer);
    if (message.error !== undefined) entry.reject(new Error(message.error));
    else entry.resolve(message.result);
    return true;
  }

  /** The broker stops: questions still waiting fail. */
  close(): void {
    this.closed = true;
    for (const { reject, timer } of this.waiting.values()) {
      clearTimeout(timer);
      reject(new WorkerUnavailable('the broker is stopping'));
    }
    this.waiting.clear();
  }
}

/** How a worker answers each kind of query. */
export type QueryHandlers = { [K in WorkerQuery['kind']]: (query: Extract<WorkerQuery, { kind: K }>) => WorkerAnswers[K] | Promise<WorkerAnswers[K]> };

/** The worker's side: answers a `query` from the primary with one `reply`. */
export function answerQuery(message: Extract<PrimaryToWorker, { type: 'query' }>, handlers: QueryHandlers, send: (message: WorkerToPrimary) => void): void {
  const handler = handlers[message.query.kind] as (query: WorkerQuery) => unknown;
  Promise.resolve()
    .then(() => handler(message.query))
    .then(
      (result) => send({ type: 'reply', id: message.id, result }),
      (err: unknown) => send({ type: 'reply', id: message.id, error: (err as Error).message }),
    );
}

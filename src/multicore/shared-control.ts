import type { DynsecCaller, DynsecExecutor, DynsecResponse } from '../security/index.js';
import type { PrimaryToWorker, WorkerToPrimary } from './messages.js';

/**
 * Mosquitto's dynamic-security API in multi-core mode. A command arrives on whichever worker the admin client is
 * on; that worker checks the sender holds the admin role, then has the request carried out by worker 0, the one
 * writer of runtime users, groups and roles (src/multicore/shared-runtime.ts), whose changes reach every worker
 * through the primary. The answer comes back the same way and is published where the request came in.
 */

/** Longer than the primary's wait for worker 0 (a request may hash a password): the primary answers first. */
const FORWARD_TIMEOUT_MS = 10_000;
export const CONTROL_QUERY_TIMEOUT_MS = 8_000;

/** A worker other than 0: its requests go to worker 0 through the primary. */
export class ControlForwarder {
  private readonly waiting = new Map<number, { resolve: (answer: { responses: DynsecResponse[] }) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;

  constructor(private readonly send: (message: WorkerToPrimary) => boolean) {}

  readonly execute: DynsecExecutor = (payload: Buffer, caller: DynsecCaller) => new Promise((resolve, reject) => {
    const id = this.nextId++;
    const timer = setTimeout(() => {
      this.waiting.delete(id);
      reject(new Error('worker 0 did not answer'));
    }, FORWARD_TIMEOUT_MS);
    this.waiting.set(id, { resolve, reject, timer });
    if (!this.send({ type: 'control-request', id, payload: new Uint8Array(payload), caller })) {
      clearTimeout(timer);
      this.waiting.delete(id);
      reject(new Error('the primary is gone'));
    }
  });

  /** A message from the primary; false if it is not an answer to a request of ours. */
  handle(message: PrimaryToWorker): boolean {
    if (message.type !== 'control-answer') return false;
    const entry = this.waiting.get(message.id);
    if (!entry) return true;
    this.waiting.delete(message.id);
    clearTimeout(entry.timer);
    if (message.answer) entry.resolve(message.answer);
    else entry.reject(new Error(message.error ?? 'no answer'));
    return true;
  }
}

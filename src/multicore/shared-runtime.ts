import type { RuntimeRecord, RuntimeSecurity } from '../security/runtime-store.js';
import type { PrimaryToWorker, RuntimeSnapshot, WorkerToPrimary } from './messages.js';
import type { WorkerChannels } from './shared-bans.js';

/**
 * Runtime users, groups and roles shared by the workers of multi-core mode (docs/multicore.md).
 *
 * One writer: the REST API runs in the primary and sends every change to worker 0 (src/multicore/admin-backend.ts),
 * whose runtime store checks it (names the configuration defines, roles and groups that exist) and hashes the
 * password. Each record worker 0 writes, cascades included, goes to the primary with the set's new revision, and the
 * primary passes it on to the other workers, which hold it, store it and put it in force without reporting it back.
 * The primary passes it on as it arrives, before worker 0's answer reaches the API, and a worker reads its IPC in
 * order: a client handed to any worker after the API answered finds the change there.
 *
 * Every worker keeps the whole set in its own store, with its revision (the number of changes it has seen). At
 * start-up each reports what it has; the primary gives the newest set to every worker before any connection is handed
 * over. So a restart finds the set, a worker new to its data directory (another worker count) is given it, and a
 * worker that missed the last change before a crash does not bring a deleted user back.
 */

/** Where a worker keeps the revision of its set: a store record of its own, beside the items. */
export interface RevisionStore {
  load(): number;
  save(revision: number): void;
}

export const REVISION_RECORD = { kind: 'runtime-revision', key: 'revision' } as const;

/** The primary's side: the newest set at start-up, then each change passed on. */
export class SharedRuntime {
  private newest: RuntimeSnapshot | undefined;

  constructor(private readonly workers: WorkerChannels) {}

  /** Start-up: a worker's set; the one with the highest revision wins (the lowest index on a tie). */
  merge(snapshot: RuntimeSnapshot | undefined): void {
    if (snapshot && (!this.newest || snapshot.revision > this.newest.revision)) this.newest = snapshot;
  }

  /** Start-up, once every worker is ready and before any socket: every worker gets the newest set. */
  distribute(): void {
    const snapshot = this.newest;
    if (!snapshot) return;
    for (let index = 0; index < this.workers.count(); index++) this.workers.send(index, { type: 'runtime-set', snapshot });
    this.newest = undefined;
  }

  /** A message from worker `from`; false if it is not about runtime items. */
  received(from: number, message: WorkerToPrimary): boolean {
    if (message.type !== 'runtime-record') return false;
    for (let index = 0; index < this.workers.count(); index++) if (index !== from) this.workers.send(index, message);
    return true;
  }
}

/**
 * A worker's side: reports the records its store writes for a change made here, applies those from the primary
 * silently, and keeps the revision. Without a runtime store (off in the configuration) there is nothing to share.
 */
export class WorkerRuntime {
  private revision: number;

  constructor(
    private readonly runtime: RuntimeSecurity | undefined, private readonly revisions: RevisionStore,
    private readonly send: (message: WorkerToPrimary) => void,
  ) {
    this.revision = runtime ? revisions.load() : 0;
    runtime?.onRecord((record) => this.changedHere(record));
  }

  /** The set in this worker's store (read again now that the store is recovered), for the 'ready' message. */
  stored(): RuntimeSnapshot | undefined {
    if (!this.runtime) return undefined;
    this.runtime.readStored();
    this.revision = this.revisions.load();
    return { revision: this.revision, records: this.runtime.records() };
  }

  /** A message from the primary; false if it is not about runtime items. */
  handle(message: PrimaryToWorker): boolean {
    switch (message.type) {
      case 'runtime-set':
        if (this.runtime && message.snapshot.revision !== this.revision) {
          this.runtime.replaceAll(message.snapshot.records);
          this.keep(message.snapshot.revision);
        }
        return true;
      case 'runtime-record':
        if (this.runtime) {
          this.runtime.applyRecord(message.record);
          this.keep(message.revision);
        }
        return true;
      default:
        return false;
    }
  }

  private changedHere(record: RuntimeRecord): void {
    this.keep(this.revision + 1);
    this.send({ type: 'runtime-record', revision: this.revision, record });
  }

  private keep(revision: number): void {
    this.revision = revision;
    this.revisions.save(revision);
  }
}

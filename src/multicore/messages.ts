import type { SysReport } from '../broker/peers.js';
import type { Ban, BanKind } from '../security/guard/bans.js';
import type { AdminBackend, AdminLogin, ApiReloadResult, BrokerFigures, ProcessFigures, UserVerdict } from '../admin/index.js';
import type { RuntimeRecord } from '../security/runtime-store.js';
import type { AuditEvent } from '../security/audit.js';
import type { DynsecCaller, DynsecResponse } from '../security/dynsec.js';

/**
 * Questions the primary asks a worker for a program there (the admin listener), each answered by one `reply` with
 * the same id (src/multicore/worker-queries.ts). The primary gives up on an answer after its timeout.
 */
export type WorkerQuery =
  /** This worker's figures for /metrics: its broker's, and its process's. */
  | { kind: 'figures' }
  /** Judge an admin user's Basic credentials with this worker's authentication chain, guard and ACL. */
  | { kind: 'admin-login'; login: AdminLogin }
  /** The REST API: a call of this worker's own AdminBackend (src/admin/api/local.ts). */
  | { kind: 'admin'; call: AdminCall }
  /** POST /api/v1/broker/reload: read the configuration again, as SIGHUP does, and say what happened. */
  | { kind: 'reload' }
  /** Worker 0: carry out a dynamic-security request an admin sent to another worker (its sender already checked). */
  | { kind: 'control'; payload: Uint8Array; caller: DynsecCaller };

/** A call of an AdminBackend method, as data. */
export type AdminCall = { [M in keyof AdminBackend]: { method: M; args: Parameters<AdminBackend[M]> } }[keyof AdminBackend];

/** What each query is answered with. */
export interface WorkerAnswers {
  figures: { broker: BrokerFigures; process: ProcessFigures };
  'admin-login': UserVerdict;
  /** What the method returned, or the HTTP refusal it threw (an HttpError). */
  admin: { value: unknown } | { status: 400 | 404 | 409 | 503; error: string };
  reload: ApiReloadResult;
  control: { responses: DynsecResponse[] };
}

/**
 * The runtime users, groups and roles a worker holds (src/multicore/shared-runtime.ts): every item, and the revision
 * of the set (how many changes it has seen), so the newest set wins at start-up.
 */
export interface RuntimeSnapshot {
  revision: number;
  records: RuntimeRecord[];
}

/**
 * IPC between the primary and its workers (multi-core mode). Bans travel here too: a worker reports each ban
 * added or removed in it (`ban-added`, `ban-removed`), the primary keeps the table of bans in force and passes
 * each change on to the other workers, which apply it without reporting it again. Runtime users, groups and roles
 * likewise (`runtime-record`), changed in worker 0 only (the API's calls go there).
 */
export type PrimaryToWorker =
  /** A client's socket (the IPC handle), the bytes the primary read from it, and its listener (index). */
  | { type: 'socket'; listener: number; head: Uint8Array }
  /** SIGHUP: read the password and ACL files again. */
  | { type: 'reload' }
  /** Another worker's $SYS figures (to worker 0, which publishes the whole broker's). */
  | { type: 'sys-report'; index: number; report: SysReport }
  /** The keys that seal TLS session tickets, the same in every worker (sent before any socket, and on each rotation). */
  | { type: 'ticket-keys'; keys: Uint8Array }
  | { type: 'shutdown' }
  /** Once every worker is ready, before any socket: the bans in force (what all the workers had stored). */
  | { type: 'bans'; bans: Ban[] }
  /** A ban added or removed in another worker: applied here, stored, not reported back (no audit line, not counted). */
  | { type: 'ban-added'; ban: Ban }
  | { type: 'ban-removed'; ban: Ban }
  /** On behalf of a program in the primary (the admin API): ban or unban as `guard.ban` / `guard.unban` here would, then `answer`. */
  | { type: 'ban-request'; id: number; kind: BanKind; value: string; reason: string; seconds?: number }
  | { type: 'unban-request'; id: number; kind: BanKind; value: string }
  /** A question for the admin listener, answered with a `reply` of the same id. */
  | { type: 'query'; id: number; query: WorkerQuery }
  /** Once every worker is ready, before any socket: the newest set of runtime users, groups and roles any worker had stored. */
  | { type: 'runtime-set'; snapshot: RuntimeSnapshot }
  /** A runtime user, group or role changed in another worker: applied here and stored, at that revision. */
  | { type: 'runtime-record'; revision: number; record: RuntimeRecord }
  /** The answer to this worker's `control-request`, carried out by worker 0 (src/multicore/shared-control.ts). */
  | { type: 'control-answer'; id: number; answer?: { responses: DynsecResponse[] }; error?: string };

export type WorkerToPrimary =
  /**
   * The state is recovered and the peers linked; `bans`: those in its store (configuration bans are not sent);
   * `runtime`: its runtime users, groups and roles (absent when the runtime store is off).
   */
  | { type: 'ready'; bans: Ban[]; runtime?: RuntimeSnapshot }
  | { type: 'failed'; reason: string }
  /** This worker's $SYS figures, at each $SYS interval (workers other than 0). */
  | { type: 'sys-report'; report: SysReport }
  /** A ban added or removed in this worker, by its guard or a program (not one applied from the primary). */
  | { type: 'ban-added'; ban: Ban }
  | { type: 'ban-removed'; ban: Ban }
  /** The outcome of a `ban-request` (the ban) or an `unban-request` (whether there was one), or why it failed. */
  | { type: 'answer'; id: number; ban?: Ban; removed?: boolean; error?: string }
  /** The answer to a `query` (what `WorkerAnswers` says for its kind), or why there is none. */
  | { type: 'reply'; id: number; result?: unknown; error?: string }
  /** The worker's memory went past its high-water mark (it refuses new clients) or came back under it; /readyz reads it. */
  | { type: 'overload'; overloaded: boolean }
  /** A runtime user, group or role changed here (through the API), with the revision the change made. */
  | { type: 'runtime-record'; revision: number; record: RuntimeRecord }
  /** A security audit event (a refusal, a ban, a change) for the admin listener's security feed. */
  | { type: 'audit'; event: AuditEvent }
  /** A dynamic-security request from an admin on this worker, for worker 0 to carry out. */
  | { type: 'control-request'; id: number; payload: Uint8Array; caller: DynsecCaller };

/** IPC between the primary and its workers (multi-core mode). */
export type PrimaryToWorker =
  /** A client's socket (the IPC handle), the bytes the primary read from it, and its listener (index). */
  | { type: 'socket'; listener: number; head: Uint8Array }
  /** SIGHUP: read the password and ACL files again. */
  | { type: 'reload' }
  | { type: 'shutdown' };

export type WorkerToPrimary =
  | { type: 'ready' }
  | { type: 'failed'; reason: string };

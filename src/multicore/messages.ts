/** IPC between the primary and its workers (multi-core mode). */
export type PrimaryToWorker =
  /** A client's socket (the IPC handle); its first bytes follow in `head` with the same id. */
  | { type: 'socket'; id: number }
  /** The bytes the primary read from socket `id` before handing it over, and its listener (index). */
  | { type: 'head'; id: number; listener: number; head: Uint8Array }
  /** The handed-over socket `id` closed before its head could follow. */
  | { type: 'drop'; id: number }
  /** SIGHUP: read the password and ACL files again. */
  | { type: 'reload' }
  | { type: 'shutdown' };

export type WorkerToPrimary =
  | { type: 'ready' }
  | { type: 'failed'; reason: string };

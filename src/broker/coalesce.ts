/**
 * Joining a turn's packets into few buffers before a socket write. A write of many
 * tiny buffers becomes a writev of at most 1,024 of them, after which libuv waits for
 * the next loop iteration; copying small packets together costs less than that wait.
 */

/** Packets below this size are copied together; larger ones (shared payloads) are written as they are. */
export const COALESCE_CHUNK = 2048;
/** The most bytes one joined buffer holds. */
export const COALESCE_LIMIT = 256 * 1024;

/** Runs of small chunks joined into buffers of at most COALESCE_LIMIT bytes; large chunks kept as they are, in order. */
export function coalesce(chunks: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let run: Buffer[] = [];
  let runBytes = 0;
  const endRun = (): void => {
    if (run.length > 0) out.push(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
    run = [];
    runBytes = 0;
  };
  for (const chunk of chunks) {
    if (chunk.length >= COALESCE_CHUNK) {
      endRun();
      out.push(chunk);
      continue;
    }
    if (runBytes + chunk.length > COALESCE_LIMIT) endRun();
    run.push(chunk);
    runBytes += chunk.length;
  }
  endRun();
  return out;
}

